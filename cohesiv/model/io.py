"""The model's part of a run folder: weights, model config and calibration, in one place.

Run folder layout (docs/LAYOUT.md)::

    RUN/config.yaml                   resolved config (:func:`run_config_document`, read by
                                      :func:`read_run_config`); its ``model:`` section is a
                                      ModelConfig, its ``train:`` section a TrainConfig
    RUN/checkpoints/last.safetensors  state_dict of the unwrapped CohesivNet (safetensors, no pickle)
    RUN/calibration.json              {"prototypes": {"person": [F floats], "object": [F floats]},
                                       "thresholds": {"tau_h": .., "tau_o": .., "tau_r": ..}, ...}

The weights file written by :func:`save_run_model` also carries the model config in its metadata
(``"model_config"``, JSON), so a checkpoint copied alone still loads.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cohesiv.errors import CohesivError, InputError
from cohesiv.io.atomic import atomic_path, atomic_write_text
from cohesiv.model.net import CohesivNet, ModelConfig, build_model
from cohesiv.model.readout import OPTIONAL_THRESHOLD_NAMES, THRESHOLD_NAMES

#: Version of the run-folder layout. Readers refuse a run with another ``run_format`` in its
#: ``config.yaml`` (a run without the key predates it and is read as format 1).
RUN_FORMAT = 1

CONFIG_FILE = "config.yaml"
CHECKPOINT_DIR = "checkpoints"
CALIBRATION_FILE = "calibration.json"
PROTOTYPE_NAMES = ("person", "object")


def _unwrap(model: nn.Module) -> nn.Module:
    while hasattr(model, "module") and isinstance(model.module, nn.Module):  # DDP / DataParallel
        model = model.module
    return model


def weights_path(run_dir: str | os.PathLike, name: str = "last") -> Path:
    """Path of the weights file ``RUN/checkpoints/<name>.safetensors``."""
    return Path(run_dir) / CHECKPOINT_DIR / f"{name}.safetensors"


def save_run_model(
    run_dir: str | os.PathLike,
    model: nn.Module,
    cfg: ModelConfig,
    *,
    name: str = "last",
    state: dict[str, Any] | None = None,
) -> Path:
    """Write the model's weights (safetensors, atomically) into a run folder.

    Args:
        run_dir: the run folder (created if needed).
        model: the network (a DDP/DataParallel wrapper is unwrapped).
        cfg: its config, stored in the file's metadata.
        name: file stem in ``RUN/checkpoints/`` ("last", "best", ...).
        state: optional JSON-able training state, written to ``RUN/checkpoints/<name>.json``.

    Returns:
        The path of the weights file.
    """
    from safetensors.torch import save_file

    path = weights_path(run_dir, name)
    sd = {k: v.detach().cpu().contiguous().clone() for k, v in _unwrap(model).state_dict().items()}
    meta = {"format": "cohesiv", "model_config": json.dumps(cfg.to_dict())}
    with atomic_path(path) as tmp:
        save_file(sd, str(tmp), metadata=meta)
    if state is not None:
        atomic_write_text(path.with_suffix(".json"), json.dumps(state, indent=1))
    return path


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise InputError(path, f"cannot read the run config ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise InputError(path, "the run config must be a YAML mapping")
    return data


def check_run_config(doc: dict[str, Any], path: str | os.PathLike) -> None:
    """Refuse a run config written in another run format or by an incompatible cohesiv version.

    Args:
        doc: the parsed ``config.yaml``; its optional ``run_format`` (int) and ``cohesiv_version``
            ("X.Y.Z") keys are checked: the format must be :data:`RUN_FORMAT` and the major version
            must be this cohesiv's.
        path: the file, for the message.

    Raises:
        InputError: naming the file, the format or version found and the ones supported.
    """
    from cohesiv import __version__

    fmt = doc.get("run_format")
    if fmt is not None and fmt != RUN_FORMAT:
        raise InputError(
            path,
            f"run format {fmt} is not readable by cohesiv {__version__} (it reads run format {RUN_FORMAT}); "
            "use the cohesiv version that wrote the run",
        )
    ver = doc.get("cohesiv_version")
    if ver is not None and str(ver).split(".")[0] != __version__.split(".")[0]:
        raise InputError(
            path,
            f"run written by cohesiv {ver}, incompatible with this cohesiv {__version__} (major version differs)",
        )


def read_run_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's resolved config (``RUN/config.yaml``) as a dict; ``{}`` when the file is absent.

    The one reader of the file: :func:`cohesiv.train.config.read_train_config` builds the
    ``TrainConfig`` from this document.

    Raises:
        InputError: unreadable file, or another run format / major version (:func:`check_run_config`).
    """
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        return {}
    doc = _read_yaml(path)
    check_run_config(doc, path)
    return doc


def git_sha() -> str | None:
    """Return the commit of the cohesiv source tree (with ``-dirty`` when modified), or None."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("-dirty" if dirty else "") if sha else None


def run_config_document(model: dict[str, Any], train: dict[str, Any]) -> dict[str, Any]:
    """The ``RUN/config.yaml`` document: cohesiv version, run format, git SHA, then the two sections.

    Args:
        model: the ``model:`` section (``ModelConfig.to_dict()``).
        train: the ``train:`` section (``TrainConfig.to_dict()`` without its model).
    """
    from cohesiv import __version__

    return {
        "cohesiv_version": __version__,
        "run_format": RUN_FORMAT,
        "git_sha": git_sha(),
        "model": model,
        "train": train,
    }


def write_run_config(run_dir: str | os.PathLike, doc: dict[str, Any]) -> Path:
    """Write ``RUN/config.yaml`` (a :func:`run_config_document`) atomically; return its path."""
    import yaml

    path = Path(run_dir) / CONFIG_FILE
    atomic_write_text(path, yaml.safe_dump(doc, sort_keys=False))
    return path


def read_model_config(run_dir: str | os.PathLike, name: str = "last") -> ModelConfig:
    """The run's :class:`ModelConfig`.

    Read from the ``model:`` section of ``RUN/config.yaml`` (or its top level, if it has no such
    section), else from the metadata of the weights file. Unknown keys are ignored.

    Raises:
        InputError: neither source holds a model config.
    """
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    section = cfg.get("model", cfg) if isinstance(cfg.get("model", cfg), dict) else {}
    if "encoder_name" in section:
        return ModelConfig.from_dict(section, strict=False)
    wpath = weights_path(run_dir, name)
    if wpath.is_file():
        from safetensors import safe_open

        with safe_open(str(wpath), framework="pt") as f:
            meta = f.metadata() or {}
        if "model_config" in meta:
            return ModelConfig.from_dict(json.loads(meta["model_config"]), strict=False)
    raise InputError(
        run_dir,
        f"no model config: expected a 'model:' section with encoder_name in {CONFIG_FILE} "
        f"or a weights file {wpath.relative_to(run_dir)} written by cohesiv",
    )


def load_run_model(
    run_dir: str | os.PathLike, *, name: str = "last", device: torch.device | str | None = None
) -> tuple[CohesivNet, ModelConfig]:
    """Build the run's network and load its weights (safetensors only, never pickle).

    Args:
        run_dir: the run folder.
        name: weights file stem in ``RUN/checkpoints/`` ("last" by default).
        device: where to put the model (default CPU).

    Returns:
        ``(model, cfg)``; the model is in eval mode.

    Raises:
        InputError: missing run folder, config or weights, or weights that do not fit the config.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(run_dir, "no such run folder")
    wpath = weights_path(run_dir, name)
    if not wpath.is_file():
        raise InputError(run_dir, f"no weights: {wpath.relative_to(run_dir)} is missing (has training run?)")
    cfg = read_model_config(run_dir, name)
    # The encoder's ImageNet file was only the starting point: the checkpoint has every weight.
    model = build_model(replace(cfg, encoder_weights=None))
    try:
        sd = load_file(str(wpath), device="cpu")
    except (SafetensorError, OSError) as e:
        raise InputError(wpath, f"cannot read weights ({e})") from None
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [
        f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in sd and sd[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        raise InputError(
            wpath,
            f"weights do not fit the model config (encoder {cfg.encoder_name!r}, embed_dim {cfg.embed_dim}, "
            f"head_dim {cfg.head_dim}): {len(missing)} missing e.g. {missing[:3]}, "
            f"{len(unexpected)} unexpected e.g. {unexpected[:3]}, {len(shapes)} of another shape e.g. {shapes[:2]}",
        )
    model.load_state_dict(sd, strict=True)
    model.eval()
    if device is not None:
        model.to(device)
    return model, cfg


@dataclass(frozen=True)
class Calibration:
    """Inference read-out parameters of a run (``RUN/calibration.json``).

    Attributes:
        prototypes: ``{"person": (F,), "object": (F,)}`` float32 mean embeddings, or None.
        thresholds: ``{"tau_h", "tau_o", "tau_r"}`` floats (and ``"tau_g"`` / ``"open_o"`` when hand growing / object opening is on), or None.
        size: the network's longer image side the prototypes and thresholds were fitted at (prediction
            uses it unless told otherwise), or None (older files: the run's training size).
        flip: the maps were fitted with the test-time flip (:class:`cohesiv.model.Predictor`), so
            prediction uses it too.
        relative_scores: the thresholds were fitted on scores relative to the score at the query
            (:class:`cohesiv.model.Predictor` ``relative_scores``); False for older files.
        query_person: the person prototype is taken per image at the query points
            (:class:`cohesiv.model.Predictor` ``query_person``); False for older files.
    """

    prototypes: dict[str, np.ndarray] | None
    thresholds: dict[str, float] | None
    size: int | None = None
    flip: bool = False
    relative_scores: bool = False
    query_person: bool = False


def read_calibration(run_dir: str | os.PathLike) -> Calibration | None:
    """Read ``RUN/calibration.json``; None when the file does not exist.

    Raises:
        InputError: the file exists but is malformed (names the problem).
    """
    path = Path(run_dir) / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(path, f"cannot read calibration ({e})") from None
    if not isinstance(data, dict):
        raise InputError(path, "calibration must be a JSON object")
    protos = data.get("prototypes")
    if protos is not None:
        if not isinstance(protos, dict) or any(k not in protos for k in PROTOTYPE_NAMES):
            raise InputError(path, f"'prototypes' must have keys {list(PROTOTYPE_NAMES)}")
        try:
            protos = {k: np.asarray(protos[k], dtype=np.float32).reshape(-1) for k in PROTOTYPE_NAMES}
        except (TypeError, ValueError):
            raise InputError(path, "'prototypes' must be lists of numbers") from None
        if protos["person"].shape != protos["object"].shape or not all(
            np.isfinite(p).all() for p in protos.values()
        ):
            raise InputError(path, "'prototypes' person and object must be finite vectors of the same length")
    ths = data.get("thresholds")
    if ths is not None:
        if not isinstance(ths, dict) or any(k not in ths for k in THRESHOLD_NAMES):
            raise InputError(path, f"'thresholds' must have keys {list(THRESHOLD_NAMES)}")
        try:
            names = THRESHOLD_NAMES + tuple(k for k in OPTIONAL_THRESHOLD_NAMES if ths.get(k) is not None)
            ths = {k: float(ths[k]) for k in names}
        except (TypeError, ValueError):
            raise InputError(path, "'thresholds' must be numbers") from None
    size = data.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
        raise InputError(path, f"'size' must be a positive integer, got {size!r}")
    flip = data.get("flip", False)
    if not isinstance(flip, bool):
        raise InputError(path, f"'flip' must be true or false, got {flip!r}")
    relative = data.get("relative_scores", False)
    if not isinstance(relative, bool):
        raise InputError(path, f"'relative_scores' must be true or false, got {relative!r}")
    query_person = data.get("query_person", False)
    if not isinstance(query_person, bool):
        raise InputError(path, f"'query_person' must be true or false, got {query_person!r}")
    return Calibration(protos, ths, size, flip, relative, query_person)


def write_calibration(
    run_dir: str | os.PathLike,
    prototypes: dict[str, Any] | None,
    thresholds: dict[str, float] | None,
    **extra: Any,
) -> Path:
    """Write ``RUN/calibration.json`` atomically.

    Args:
        run_dir: the run folder.
        prototypes: ``{"person": (F,), "object": (F,)}`` arrays/lists, or None.
        thresholds: ``{"tau_h", "tau_o", "tau_r"}`` (optionally ``"tau_g"``, ``"open_o"``), or None.
        **extra: other JSON-able entries (e.g. the grid-search scores, the number of samples).

    Returns:
        The path written.
    """
    if prototypes is not None and any(k not in prototypes for k in PROTOTYPE_NAMES):
        raise CohesivError(f"prototypes need keys {list(PROTOTYPE_NAMES)}, got {sorted(prototypes)}")
    if thresholds is not None and any(k not in thresholds for k in THRESHOLD_NAMES):
        raise CohesivError(f"thresholds need keys {list(THRESHOLD_NAMES)}, got {sorted(thresholds)}")
    doc: dict[str, Any] = dict(extra)
    doc["prototypes"] = (
        None
        if prototypes is None
        else {
            k: [float(v) for v in np.asarray(prototypes[k], dtype=np.float64).reshape(-1)]
            for k in PROTOTYPE_NAMES
        }
    )
    doc["thresholds"] = (
        None
        if thresholds is None
        else {
            k: float(thresholds[k])
            for k in THRESHOLD_NAMES + OPTIONAL_THRESHOLD_NAMES
            if thresholds.get(k) is not None
        }
    )
    path = Path(run_dir) / CALIBRATION_FILE
    atomic_write_text(path, json.dumps(doc, indent=1))
    return path
