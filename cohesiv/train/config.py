"""Training configuration: a frozen dataclass, presets, and its saved YAML form in the run folder.

``RUN/config.yaml`` is written and read by :mod:`cohesiv.model.io` (the run folder's owner);
:func:`read_train_config` turns it into a :class:`TrainConfig`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cohesiv.errors import CohesivError
from cohesiv.model import ModelConfig
from cohesiv.model.io import CONFIG_FILE, read_run_config
from cohesiv.model.io import git_sha as git_sha  # its old path
from cohesiv.train.data import AugmentConfig

SCHEDULES = ("constant", "cosine", "plateau")

#: Named presets: values that replace the defaults (explicit command-line values win over both).
PRESETS: dict[str, dict[str, Any]] = {
    # COHESIV section 4.1: AdamW, batch 10, lr 1e-2, halve the lr after 5 epochs without improvement
    # of the validation loss, stop after 10 epochs without improvement. "Validation" here is a
    # held-out 10 % of the pseudo-label samples (by sample id), scored by the training loss.
    "paper": {
        "batch": 10,
        "lr": 1e-2,
        "weight_decay": 1e-2,
        "schedule": "plateau",
        "warmup_steps": 0,
        "plateau_patience": 5,
        "plateau_factor": 0.5,
        "early_stop_patience": 10,
        "val_fraction": 0.1,
        "epochs": 100,
    },
}

#: Model values of the presets (``ModelConfig`` fields), applied unless given on the command line.
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    # the query/key heads at full resolution and F = 64, as in the paper (A = 64: not published)
    "paper": {"head_stride": 1, "embed_dim": 64, "head_dim": 64},
}

#: Fields that must agree between a run folder and a ``--resume`` of it.
RESUME_KEYS = ("data", "model", "size", "batch", "seed", "lr", "weight_decay", "schedule", "object_threshold")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (saved as ``RUN/config.yaml``).

    Attributes:
        data: pseudo-label dataset folders.
        out: run folder.
        model: network and embedding-loss configuration.
        size: side of the square training crops (a multiple of 32).
        batch: global batch size (split over the processes of a distributed run).
        steps: optimisation steps; None to use ``epochs``.
        epochs: passes over the training samples (incomplete last batches dropped); used when ``steps`` is None.
        lr: peak learning rate of AdamW.
        weight_decay: AdamW weight decay.
        schedule: "constant", "cosine" (to 0 at the last step) or "plateau" (halve on a stalled
            validation loss; needs epochs).
        warmup_steps: linear warm-up from 0 (constant and cosine schedules).
        plateau_patience: epochs without improvement before the lr is multiplied by ``plateau_factor``.
        plateau_factor: lr multiplier on a plateau.
        early_stop_patience: stop after this many epochs without improvement (plateau schedule; 0 = never).
        val_fraction: share of samples held out for the plateau validation loss (0: use the epoch's
            mean training loss).
        grad_clip: clip the global gradient norm to this (None: no clipping).
        preset: name of the preset the config was built from, for the record.
        save_every: save a checkpoint every this many steps (and at the end).
        keep_every: also keep the weights of every this many steps as
            ``checkpoints/step-NNNNNN.safetensors`` (0: never), to evaluate a run along its length.
        log_every: log scalars every this many steps.
        image_every: log TensorBoard images every this many steps (0: never).
        seed: seeds the initialisation, the sample order and the augmentation.
        num_workers: DataLoader worker processes.
        object_threshold: object mask = some hand responsibility above this, minus person.
        w_resp: weight of the responsibility loss.
        w_emb: weight of the embedding loss.
        sync_bn: use SyncBatchNorm in distributed GPU runs (batch statistics over the global batch);
            PyTorch's SyncBatchNorm is GPU-only, so CPU runs normalise over each process' share.
        device: "cpu", "cuda", "cuda:1", ... or None (CUDA when available).
        channels_last: keep the network and its input in channels-last (NHWC) memory layout
            (0.76x the time of a training step on this project's CPU, bench/levers.py).
        augment: augmentation parameters.
    """

    data: tuple[str, ...]
    out: str
    model: ModelConfig = field(default_factory=ModelConfig)
    size: int = 128
    batch: int = 8
    steps: int | None = None
    epochs: int | None = None
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_steps: int = 20
    plateau_patience: int = 5
    plateau_factor: float = 0.5
    early_stop_patience: int = 10
    val_fraction: float = 0.0
    grad_clip: float | None = 5.0
    preset: str | None = None
    save_every: int = 100
    keep_every: int = 0
    log_every: int = 10
    image_every: int = 100
    seed: int = 0
    num_workers: int = 0
    object_threshold: float = 0.5
    w_resp: float = 10.0
    w_emb: float = 1.0
    sync_bn: bool = True
    device: str | None = None
    channels_last: bool = True
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        """Check values the user can get wrong (raises CohesivError)."""
        if not self.data:
            raise CohesivError("no pseudo-label dataset given (--data)")
        if self.size <= 0 or self.size % 32:
            raise CohesivError(f"--size must be a positive multiple of 32, got {self.size}")
        if self.batch <= 0:
            raise CohesivError(f"--batch must be positive, got {self.batch}")
        if self.steps is not None and self.steps <= 0:
            raise CohesivError(f"--steps must be positive, got {self.steps}")
        if self.epochs is not None and self.epochs <= 0:
            raise CohesivError(f"--epochs must be positive, got {self.epochs}")
        if self.schedule not in SCHEDULES:
            raise CohesivError(f"unknown schedule {self.schedule!r}; choose from {', '.join(SCHEDULES)}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise CohesivError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.save_every <= 0 or self.log_every <= 0:
            raise CohesivError("save_every and log_every must be positive")
        if self.keep_every < 0:
            raise CohesivError(f"keep_every must be 0 (never) or positive, got {self.keep_every}")

    def to_dict(self) -> dict[str, Any]:
        """Return the plain-dict (YAML) form."""
        d = dataclasses.asdict(self)
        d["data"] = list(self.data)
        d["augment"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in d["augment"].items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build from the plain-dict form (unknown keys raise CohesivError)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise CohesivError(f"unknown training config keys {unknown}")
        d = dict(d)
        d["data"] = tuple(d.get("data", ()))
        if isinstance(d.get("model"), dict):
            d["model"] = ModelConfig.from_dict(d["model"])
        if isinstance(d.get("augment"), dict):
            d["augment"] = AugmentConfig(
                **{k: (tuple(v) if isinstance(v, list) else v) for k, v in d["augment"].items()}
            )
        return cls(**d)


def make_config(
    *, data, out, preset: str | None = None, model: ModelConfig | None = None, **overrides
) -> TrainConfig:
    """Build a :class:`TrainConfig`: defaults, then the preset's values, then ``overrides`` (None values ignored).

    Args:
        data: pseudo-label dataset folders.
        out: run folder.
        preset: None or a name in :data:`PRESETS`.
        model: the model configuration (default :class:`~cohesiv.model.ModelConfig`).
        **overrides: any other :class:`TrainConfig` field.

    Raises:
        CohesivError: unknown preset or field, or an invalid value.
    """
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise CohesivError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        values.update(PRESETS[preset])
    given = {k: v for k, v in overrides.items() if v is not None}
    if "steps" in given:  # an explicit step count replaces the preset's epoch count
        values.pop("epochs", None)
    values.update(given)
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise CohesivError(f"unknown training options {unknown}")
    if model is not None:
        values["model"] = model
    if values.get("steps") is None and values.get("epochs") is None:
        values["steps"] = 1000
    # absolute, so that calibrate/eval find the datasets from any working folder
    return TrainConfig(data=tuple(os.path.abspath(p) for p in data), out=str(out), preset=preset, **values)


def read_train_config(run: str | Path) -> TrainConfig:
    """Read the :class:`TrainConfig` saved in a run folder.

    The file is read by :func:`cohesiv.model.io.read_run_config` (the run folder's owner, which also
    refuses another run format or major version).

    Raises:
        CohesivError: no ``config.yaml``, or one that does not hold a training config (names the file).
    """
    path = Path(run) / CONFIG_FILE
    if not path.is_file():
        raise CohesivError(f"{run}: not a training run (no config.yaml)")
    doc = read_run_config(run)
    try:
        return TrainConfig.from_dict(dict(doc["train"], model=doc["model"]))
    except (KeyError, TypeError) as e:
        raise CohesivError(f"{path}: cannot read the run config ({e!r})") from None
