"""Training configuration: a frozen dataclass, presets, and its saved YAML form in the run folder.

``RUN/config.yaml`` is written and read by :mod:`cohesiv.model.io` (the run folder's owner);
:func:`read_train_config` turns it into a :class:`TrainConfig`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from cohesiv.config import DEFAULT_STEPS, TrainConfig
from cohesiv.config import MODEL_PRESETS as MODEL_PRESETS  # old paths, kept for one release
from cohesiv.config import PRESETS as PRESETS
from cohesiv.config import SCHEDULES as SCHEDULES
from cohesiv.errors import CohesivError
from cohesiv.model import ModelConfig
from cohesiv.model.io import CONFIG_FILE, read_run_config
from cohesiv.model.io import git_sha as git_sha  # its old path

#: Fields that must agree between a run folder and a ``--resume`` of it.
RESUME_KEYS = (
    "data",
    "model",
    "size",
    "batch",
    "seed",
    "lr",
    "encoder_lr",
    "weight_decay",
    "schedule",
    "object_threshold",
)


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
        values["steps"] = DEFAULT_STEPS
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
