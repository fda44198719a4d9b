"""Checkpoints without pickle: safetensors for tensors, JSON for everything else, atomic and crash-safe.

A checkpoint of step ``t`` is three files in ``RUN/checkpoints/``:

* ``last.safetensors`` -- the model's ``state_dict`` (of the unwrapped module), metadata ``step``;
* ``last.optim.safetensors`` -- the optimizer's per-parameter tensors (``"<param id>/<name>"``);
* ``last.json`` -- ``{"step": t, "optimizer": {param_groups, scalar state}, ...training state...}``.

Saving writes all three under temporary names, then for each kind (weights first, the JSON state
last) moves the previous ``last.*`` to ``prev.*`` and renames the new file onto ``last.*``. Loading
picks the newest step for which all three kinds agree, so a ``kill -9`` at any instant leaves a
loadable checkpoint (the new one or the previous one).
"""

from __future__ import annotations

import json
import os
from contextlib import suppress
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from cohesiv.errors import CohesivError
from cohesiv.io.atomic import FILE_MODE, temp_file_beside

WEIGHTS, OPTIM, STATE = "safetensors", "optim.safetensors", "json"
_KINDS = (WEIGHTS, OPTIM, STATE)
_TAGS = ("last", "prev")


def optimizer_to_flat(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer ``state_dict`` into tensors (for safetensors) and a JSON-able rest.

    Args:
        state_dict: ``optimizer.state_dict()`` (``{"state": {id: {name: value}}, "param_groups": [...]}``).

    Returns:
        ``(tensors, scalars)``: tensors keyed ``"<id>/<name>"``; scalars ``{"param_groups": ...,
        "state": {id: {name: value}}}`` with the non-tensor per-parameter values.
    """
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entry in state_dict["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{pid}/{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[name] = value
    groups = [
        {k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
        for g in state_dict["param_groups"]
    ]
    return tensors, {"param_groups": groups, "state": scalars}


def optimizer_from_flat(tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> dict:
    """Inverse of :func:`optimizer_to_flat`: rebuild an optimizer ``state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        pid, name = key.split("/", 1)
        state.setdefault(int(pid), {})[name] = value
    for pid, entry in scalars.get("state", {}).items():
        state.setdefault(int(pid), {}).update(entry)
    groups = []
    for g in scalars["param_groups"]:
        g = dict(g)
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def _tmp(folder: Path, name: str) -> Path:
    return temp_file_beside(folder / name, f".tmp-{name}-")


def save_checkpoint(
    folder: str | Path,
    *,
    step: int,
    model_state: dict[str, torch.Tensor],
    optimizer_state: dict,
    state: dict[str, Any],
    weights_metadata: dict[str, str] | None = None,
) -> None:
    """Write the checkpoint of ``step`` atomically (see the module docstring for the protocol).

    Args:
        folder: ``RUN/checkpoints``.
        step: number of optimisation steps done.
        model_state: ``state_dict()`` of the unwrapped model.
        optimizer_state: ``optimizer.state_dict()``.
        state: JSON-able training state (epoch, scheduler, RNG, ...); ``"step"`` is set here.
        weights_metadata: extra string metadata of the weights file (e.g. the model config).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # temporaries of a save killed with -9 (its finally never ran); one writer per run folder
    for stale in folder.glob(".tmp-*"):
        if stale.name.startswith((".tmp-weights-", ".tmp-optim-", ".tmp-state-")):
            with suppress(FileNotFoundError):
                stale.unlink()
    meta = {"step": str(int(step))}
    otensors, oscalars = optimizer_to_flat(optimizer_state)
    doc = dict(state, step=int(step), optimizer=oscalars)
    tmps: dict[str, Path] = {}
    try:
        tmps[WEIGHTS] = _tmp(folder, "weights")
        wmeta = dict(weights_metadata or {}, **meta)
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in model_state.items()}, tmps[WEIGHTS], metadata=wmeta
        )
        tmps[OPTIM] = _tmp(folder, "optim")
        save_file(otensors, tmps[OPTIM], metadata=meta)
        tmps[STATE] = _tmp(folder, "state")
        tmps[STATE].write_text(json.dumps(doc), encoding="utf-8")
        for kind in _KINDS:  # weights first, the state last
            last, prev = folder / f"last.{kind}", folder / f"prev.{kind}"
            if last.exists():
                os.replace(last, prev)
            os.chmod(tmps[kind], FILE_MODE)  # safetensors writes 0600 files
            os.replace(tmps.pop(kind), last)
    finally:
        for p in tmps.values():
            with suppress(FileNotFoundError):
                p.unlink()


def _step_of(path: Path) -> int | None:
    try:
        if path.suffix == ".json":
            return int(json.loads(path.read_text(encoding="utf-8"))["step"])
        with safe_open(str(path), framework="pt") as f:
            return int((f.metadata() or {})["step"])
    except (OSError, ValueError, KeyError, TypeError, SafetensorError):
        return None


def checkpoint_step(folder: str | Path) -> int | None:
    """Return the step of the newest complete checkpoint in ``folder``, or None when there is none."""
    found = _find(Path(folder))
    return None if found is None else found[0]


def _find(folder: Path) -> tuple[int, dict[str, Path]] | None:
    if not folder.is_dir():
        return None
    by_kind: dict[str, dict[int, Path]] = {k: {} for k in _KINDS}
    for kind in _KINDS:
        for tag in _TAGS:
            p = folder / f"{tag}.{kind}"
            if p.is_file():
                s = _step_of(p)
                if s is not None:
                    by_kind[kind].setdefault(s, p)
    common = set(by_kind[WEIGHTS]) & set(by_kind[OPTIM]) & set(by_kind[STATE])
    if not common:
        return None
    step = max(common)
    return step, {k: by_kind[k][step] for k in _KINDS}


def load_checkpoint(folder: str | Path) -> tuple[dict[str, torch.Tensor], dict, dict[str, Any]] | None:
    """Load the newest complete checkpoint.

    Args:
        folder: ``RUN/checkpoints``.

    Returns:
        ``(model_state, optimizer_state, state)`` (``state["step"]`` is the step), or None when the
        folder holds no complete checkpoint.

    Raises:
        CohesivError: files exist but none form a complete checkpoint (names the folder).
    """
    folder = Path(folder)
    found = _find(folder)
    if found is None:
        if folder.is_dir() and any(folder.glob("last.*")):
            raise CohesivError(
                f"{folder}: checkpoint files are incomplete or do not agree on the step; "
                "delete the folder to start over"
            )
        return None
    _, paths = found
    model_state = load_file(str(paths[WEIGHTS]))
    otensors = load_file(str(paths[OPTIM]))
    doc = json.loads(paths[STATE].read_text(encoding="utf-8"))
    optim = optimizer_from_flat(otensors, doc.pop("optimizer"))
    return model_state, optim, doc
