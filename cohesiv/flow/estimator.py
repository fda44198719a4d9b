"""One interface to every flow method: :class:`FlowEstimator`, :func:`estimate_flow`, :func:`flow_to_color`."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cohesiv.config import (
    DEFAULT_DIS_PRESET,
    DEFAULT_RAFT_ITERS,
    DEFAULT_RAFT_MODEL,
    DIS_PRESET_NAMES,
    FLOW_METHODS,
    RAFT_MODELS,
    FlowConfig,
)
from cohesiv.flow.dis import DISFlow

__all__ = ["FLOW_METHODS", "FlowConfig", "FlowEstimator", "estimate_flow", "flow_to_color"]


def _check_pair(frame_a: np.ndarray, frame_b: np.ndarray) -> None:
    if not (isinstance(frame_a, np.ndarray) and isinstance(frame_b, np.ndarray)):
        raise TypeError("frames must be NumPy arrays of shape (H, W, 3), dtype uint8")
    if frame_a.dtype != np.uint8 or frame_b.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (H, W, 3) RGB, got {frame_a.dtype} and {frame_b.dtype}")
    if frame_a.shape != frame_b.shape or frame_a.ndim != 3 or frame_a.shape[2] != 3:
        raise ValueError(f"frames must both have shape (H, W, 3), got {frame_a.shape} and {frame_b.shape}")


class FlowEstimator:
    """Optical flow between two frames, by DIS (default) or RAFT; cheap to call repeatedly.

    The DIS object / RAFT network is built once, here, and reused by every call.

    Args:
        method: ``"dis"`` or ``"raft"``.
        preset: DIS preset, a name of ``DIS_PRESET_NAMES`` (default
            :data:`cohesiv.flow.dis.DEFAULT_DIS_PRESET`, chosen by ``bench/flow_labels.py``). Not used by RAFT.
        raft_weights: RAFT checkpoint path (torchvision or princeton-vl key layout); required
            for ``method="raft"``.
        raft_model: ``"small"`` or ``"large"``.
        device: torch device for RAFT; default cuda when available, else cpu.
        raft_iters: RAFT refinement iterations.

    Example:
        >>> est = FlowEstimator()                         # doctest: +SKIP
        >>> flow = est(frame_t, frame_t1)                 # (2, H, W) float32, t -> t+1

    Raises:
        ValueError: unknown method / preset / model.
        CohesivError: RAFT without weights (the message says where weights come from).
        InputError: unreadable or non-matching RAFT weights.
    """

    def __init__(
        self,
        method: str = "dis",
        preset: str | None = None,
        raft_weights: str | Path | None = None,
        raft_model: str = DEFAULT_RAFT_MODEL,
        device: str | None = None,
        raft_iters: int = DEFAULT_RAFT_ITERS,
    ) -> None:
        if method not in FLOW_METHODS:
            raise ValueError(f"unknown flow method {method!r}; choose one of {', '.join(FLOW_METHODS)}")
        self.method = method
        if method == "dis":
            preset = DEFAULT_DIS_PRESET if preset is None else preset
            if preset not in DIS_PRESET_NAMES:
                raise ValueError(
                    f"unknown DIS preset {preset!r}; choose one of {', '.join(DIS_PRESET_NAMES)}"
                )
            self._impl = DISFlow(preset)
            self.config = FlowConfig(method="dis", preset=preset)
        else:
            if preset is not None:
                raise ValueError("preset applies to method 'dis' only (RAFT has raft_model and raft_iters)")
            if raft_model not in RAFT_MODELS:
                raise ValueError(f"unknown RAFT model {raft_model!r}; choose 'small' or 'large'")
            from cohesiv.flow.raft import RAFTFlow

            self._impl = RAFTFlow(raft_weights, raft_model, device=device, iters=raft_iters)
            self.config = FlowConfig(
                method="raft",
                preset=None,
                raft_model=raft_model,
                raft_weights=None if raft_weights is None else str(raft_weights),
                raft_iters=int(raft_iters),
            )

    def __repr__(self) -> str:
        c = self.config
        detail = f"preset={c.preset!r}" if c.method == "dis" else f"raft_model={c.raft_model!r}"
        return f"FlowEstimator(method={c.method!r}, {detail})"

    def __call__(self, frame_a: np.ndarray, frame_b: np.ndarray) -> np.ndarray:
        """Flow from ``frame_a`` to ``frame_b``.

        Args:
            frame_a: ``(H, W, 3)`` uint8 RGB, frame t.
            frame_b: ``(H, W, 3)`` uint8 RGB, frame s.

        Returns:
            ``(2, H, W)`` float32 in pixels, channel 0 = dx (right), channel 1 = dy (down):
            pixel ``(x, y)`` of frame t moves to ``(x + dx, y + dy)`` in frame s. (For DIS this
            is a channel-first view of OpenCV's output, not necessarily C-contiguous.)
        """
        _check_pair(frame_a, frame_b)
        return self._impl(frame_a, frame_b)

    def batch(self, frames_a: Sequence[np.ndarray], frames_b: Sequence[np.ndarray]) -> np.ndarray:
        """Flow for B pairs: ``frames_a[i] -> frames_b[i]``, each ``(H, W, 3)`` uint8 RGB.

        Returns:
            ``(B, 2, H, W)`` float32 (same convention as :meth:`__call__`). RAFT runs the pairs
            as one batch; DIS runs them one by one.
        """
        if len(frames_a) != len(frames_b):
            raise ValueError(f"got {len(frames_a)} first frames but {len(frames_b)} second frames")
        if not len(frames_a):
            raise ValueError("batch needs at least one pair")
        for a, b in zip(frames_a, frames_b):
            _check_pair(a, b)
            if a.shape != frames_a[0].shape:
                raise ValueError(
                    f"all frames of a batch must have one size, got {a.shape} and {frames_a[0].shape}"
                )
        if self.method == "raft":
            return self._impl.batch(frames_a, frames_b)
        return np.stack([self._impl(a, b) for a, b in zip(frames_a, frames_b)])


@functools.lru_cache(maxsize=4)
def _estimator(method, preset, raft_weights, raft_model, device, raft_iters) -> FlowEstimator:
    return FlowEstimator(method, preset, raft_weights, raft_model, device, raft_iters)


def estimate_flow(
    frame_a: np.ndarray,
    frame_b: np.ndarray,
    method: str = "dis",
    preset: str | None = None,
    raft_weights: str | Path | None = None,
    raft_model: str = DEFAULT_RAFT_MODEL,
    device: str | None = None,
    raft_iters: int = DEFAULT_RAFT_ITERS,
) -> np.ndarray:
    """Flow from ``frame_a`` to ``frame_b`` (one-shot form of :class:`FlowEstimator`).

    The estimator for a given set of arguments is built once and kept (the last 4 are cached),
    so calling this in a loop does not reload RAFT weights.

    Args:
        frame_a: ``(H, W, 3)`` uint8 RGB, frame t.
        frame_b: ``(H, W, 3)`` uint8 RGB, frame s.
        method: ``"dis"`` or ``"raft"``.
        preset: DIS preset (default: the measured default).
        raft_weights: RAFT checkpoint path.
        raft_model: ``"small"`` or ``"large"``.
        device: torch device for RAFT.
        raft_iters: RAFT refinement iterations.

    Returns:
        ``(2, H, W)`` float32, channel 0 = dx (right), channel 1 = dy (down), t -> s.
    """
    weights = None if raft_weights is None else str(raft_weights)
    est = _estimator(method, preset, weights, raft_model, device, raft_iters)
    return est(frame_a, frame_b)


def flow_to_color(flow) -> np.ndarray:
    """Colour-code a flow field (Middlebury colour wheel, via ``torchvision.utils.flow_to_image``).

    Hue is the direction, saturation the magnitude relative to the largest in the image.
    Unknown (> 1e9) and non-finite values are drawn as zero flow (white).

    Args:
        flow: ``(2, H, W)`` or ``(B, 2, H, W)`` float, NumPy array or torch tensor
            (channel 0 = dx, 1 = dy).

    Returns:
        ``(H, W, 3)`` (or ``(B, H, W, 3)``) uint8 RGB NumPy array.
    """
    import torch
    from torchvision.utils import flow_to_image

    if not isinstance(flow, torch.Tensor):
        flow = np.asarray(flow)
        flow = flow if flow.flags.writeable else flow.copy()  # e.g. a FlowCache flow (read-only)
    f = torch.as_tensor(flow).float().cpu()
    if f.ndim not in (3, 4) or f.shape[-3] != 2:
        raise ValueError(f"flow must have shape (2, H, W) or (B, 2, H, W), got {tuple(f.shape)}")
    bad = ~torch.isfinite(f).all(-3, keepdim=True) | (f.abs() > 1e9).any(-3, keepdim=True)
    f = torch.where(bad, torch.zeros((), dtype=f.dtype), f)
    img = flow_to_image(f)
    return img.movedim(-3, -1).numpy()
