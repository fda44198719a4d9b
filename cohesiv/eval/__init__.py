"""Evaluation: Hand / Obj / Pair / All metrics, the Flow and Thresholded Responsibility baselines, the driver."""

from cohesiv.eval.metrics import (
    HOSMeter,
    ImageStats,
    image_stats,
    instance_scores,
    mask_stats,
    reduce_stats,
    resolve_side,
    summarize,
)

__all__ = [
    "HOSMeter",
    "ImageStats",
    "image_stats",
    "instance_scores",
    "mask_stats",
    "reduce_stats",
    "resolve_side",
    "summarize",
]
