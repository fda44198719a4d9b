"""Middlebury ``.flo`` optical-flow files.

Format: float32 magic 202021.25, int32 width, int32 height, then ``H*W*2`` float32 values
``(u, v)`` row-major. Unknown flow is stored as values > 1e9.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cohesiv.errors import InputError
from cohesiv.io.atomic import atomic_path

FLO_MAGIC = 202021.25
UNKNOWN_FLOW_THRESHOLD = 1e9


def read_flo(path: str | Path, *, allow_nonfinite: bool = False) -> np.ndarray:
    """Read a Middlebury ``.flo`` file.

    Args:
        path: the file.
        allow_nonfinite: accept NaN/inf values (otherwise they are an error). Values > 1e9
            ("unknown flow" in Middlebury ground truth) are always accepted.

    Returns:
        Flow ``(2, H, W)`` float32 in pixels; channel 0 = dx (right), channel 1 = dy (down).

    Raises:
        InputError: missing file, wrong magic number, truncated data, NaN/inf values.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(path, "no such flow file") from None
    except OSError as e:
        raise InputError(path, f"cannot read flow file ({e.strerror})") from None
    if len(raw) < 12:
        raise InputError(path, f"not a .flo file: only {len(raw)} bytes")
    magic = np.frombuffer(raw, "<f4", 1, 0)[0]
    if magic != np.float32(FLO_MAGIC):
        raise InputError(path, f"not a .flo file: magic number {magic!r}, expected {FLO_MAGIC}")
    w, h = (int(v) for v in np.frombuffer(raw, "<i4", 2, 4))
    if w <= 0 or h <= 0 or w > 1 << 15 or h > 1 << 15:
        raise InputError(path, f"invalid .flo size {w}x{h}")
    need = 12 + 8 * w * h
    if len(raw) < need:
        raise InputError(path, f"truncated .flo file: {len(raw)} bytes, expected {need} for {w}x{h}")
    flow = np.frombuffer(raw, "<f4", 2 * w * h, 12).reshape(h, w, 2).transpose(2, 0, 1)
    flow = np.ascontiguousarray(flow, dtype=np.float32)
    if not allow_nonfinite and not np.isfinite(flow).all():
        bad = int((~np.isfinite(flow)).any(0).sum())
        raise InputError(path, f"flow has NaN or infinite values at {bad} pixels")
    return flow


def write_flo(path: str | Path, flow: np.ndarray) -> None:
    """Write flow ``(2, H, W)`` (channel 0 = dx, 1 = dy) to a Middlebury ``.flo`` file, atomically."""
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[0] != 2:
        raise ValueError(f"flow must have shape (2, H, W), got {flow.shape}")
    _, h, w = flow.shape
    header = np.array([FLO_MAGIC], "<f4").tobytes() + np.array([w, h], "<i4").tobytes()
    body = np.ascontiguousarray(flow.transpose(1, 2, 0), dtype="<f4").tobytes()
    with atomic_path(path) as tmp:
        tmp.write_bytes(header + body)


def unknown_flow_mask(flow: np.ndarray) -> np.ndarray:
    """Return ``(H, W)`` bool: True where Middlebury marks the flow unknown (> 1e9) or non-finite."""
    return ~np.isfinite(flow).all(0) | (np.abs(flow) > UNKNOWN_FLOW_THRESHOLD).any(0)
