"""Folder layout of written flows (``cohesiv flow --out DIR``), shared with :class:`FlowCache`.

::

    DIR/flow.json                    the FlowConfig + clip, size, offsets (JSON)
    DIR/flow/fw1/000000.flo          flow 0 -> 1   (Middlebury .flo, (2, H, W) dx, dy)
    DIR/flow/bw1/000001.flo          flow 1 -> 0   (with --backward)
    DIR/flow/fw2/000000.flo          flow 0 -> 2   (with --offsets 1,2)
    DIR/color/fw1/000000.png         colour image of flow/fw1/000000.flo
    DIR/valid/fw1/000000.png         forward-backward valid mask, 255 = valid (with --backward)

Files are named by the source frame t; the folder says the direction and the offset |s - t|.
"""

from __future__ import annotations

import json
from pathlib import Path

from cohesiv.errors import InputError
from cohesiv.flow.estimator import FlowConfig
from cohesiv.io.atomic import atomic_write_text

CONFIG_NAME = "flow.json"


def pair_name(t: int, s: int) -> str:
    """Folder name of the pair t -> s: ``"fw<k>"`` (s = t + k) or ``"bw<k>"`` (s = t - k)."""
    if s == t:
        raise ValueError(f"a flow pair needs two different frames, got t = s = {t}")
    return f"fw{s - t}" if s > t else f"bw{t - s}"


def flow_file(out_dir: str | Path, t: int, s: int) -> Path:
    """Path of the ``.flo`` file of flow t -> s."""
    return Path(out_dir) / "flow" / pair_name(t, s) / f"{t:06d}.flo"


def color_file(out_dir: str | Path, t: int, s: int) -> Path:
    """Path of the colour image of flow t -> s."""
    return Path(out_dir) / "color" / pair_name(t, s) / f"{t:06d}.png"


def valid_file(out_dir: str | Path, t: int, s: int) -> Path:
    """Path of the forward-backward valid mask (uint8 PNG, 255 = valid) of flow t -> s."""
    return Path(out_dir) / "valid" / pair_name(t, s) / f"{t:06d}.png"


def read_flow_json(out_dir: str | Path) -> tuple[FlowConfig, dict] | None:
    """Read ``DIR/flow.json``: ``(config, whole JSON dict)``, None when absent.

    Raises:
        InputError: the file is unreadable or malformed.
    """
    path = Path(out_dir) / CONFIG_NAME
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        fields = {f: data["config"][f] for f in FlowConfig.__dataclass_fields__ if f in data["config"]}
        return FlowConfig(**fields), data
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(path, f"cannot read flow config ({e})") from None


def read_flow_config(out_dir: str | Path) -> FlowConfig | None:
    """Read the :class:`FlowConfig` of ``DIR/flow.json`` (None when absent)."""
    found = read_flow_json(out_dir)
    return None if found is None else found[0]


def write_flow_config(out_dir: str | Path, config: FlowConfig, **extra) -> None:
    """Write ``DIR/flow.json`` with ``config`` and any extra JSON-serialisable facts, atomically."""
    from cohesiv import __version__

    data = {"version": 1, "cohesiv": __version__, "config": config.to_dict(), **extra}
    atomic_write_text(Path(out_dir) / CONFIG_NAME, json.dumps(data, indent=2))


def check_flow_config(out_dir: str | Path, config: FlowConfig, clip: str | Path | None = None) -> bool:
    """Return True when ``DIR`` holds flows made with ``config``, False when it holds none.

    Args:
        out_dir: the flow folder.
        config: the flow settings about to be used.
        clip: the clip about to be used; checked against the recorded clip when both are known.

    Raises:
        InputError: ``DIR`` holds flows of another method/preset/model or of another clip
            (mixing them would be wrong).
    """
    found = read_flow_json(out_dir)
    if found is None:
        return False
    old, data = found
    if clip is not None and data.get("clip") and Path(data["clip"]).resolve() != Path(clip).resolve():
        raise InputError(
            Path(out_dir) / CONFIG_NAME,
            f"folder holds flows of clip {data['clip']}, not {clip}; use another output folder (or --overwrite)",
        )
    if not old.same_flow(config):
        raise InputError(
            Path(out_dir) / CONFIG_NAME,
            f"folder holds flows made with {old.to_dict()}, not {config.to_dict()}; "
            "use another output folder (or --overwrite)",
        )
    return True
