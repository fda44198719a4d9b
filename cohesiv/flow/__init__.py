"""Optical flow: DIS (default, OpenCV), RAFT (torchvision, local weights), consistency, cache.

Flow convention: ``(2, H, W)`` float32 in pixels (``(B, 2, H, W)`` batched), channel 0 = dx
(right), channel 1 = dy (down), from frame t to frame s: pixel ``(x, y)`` of t is at
``(x + dx, y + dy)`` in s, with the origin at the centre of the top-left pixel.
"""

from cohesiv.flow.cache import CacheStats, FlowCache, StreamingFrames
from cohesiv.flow.consistency import forward_backward_valid, warp_backward
from cohesiv.flow.dis import DEFAULT_DIS_PRESET, DIS_PRESETS, DISFlow
from cohesiv.flow.estimator import FLOW_METHODS, FlowConfig, FlowEstimator, estimate_flow, flow_to_color

_LAZY = {"RAFTFlow", "convert_raft_state_dict", "load_raft"}  # need torch: imported on first use


def __getattr__(name: str):
    if name in _LAZY:
        from cohesiv.flow import raft

        return getattr(raft, name)
    raise AttributeError(f"module 'cohesiv.flow' has no attribute {name!r}")


__all__ = [
    "DEFAULT_DIS_PRESET",
    "DISFlow",
    "DIS_PRESETS",
    "FLOW_METHODS",
    "CacheStats",
    "FlowCache",
    "FlowConfig",
    "FlowEstimator",
    "RAFTFlow",
    "StreamingFrames",
    "convert_raft_state_dict",
    "estimate_flow",
    "flow_to_color",
    "forward_backward_valid",
    "load_raft",
    "warp_backward",
]
