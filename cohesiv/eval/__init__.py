"""Evaluation: Hand / Obj / Pair / All metrics, the Flow and Thresholded Responsibility baselines, the driver.

* :mod:`cohesiv.eval.metrics`: pure metric functions (stats, then reductions) and :class:`HOSMeter`.
* :mod:`cohesiv.eval.driver`: labeled clips (partial labels), :func:`evaluate_clips`, metrics.json.
* :mod:`cohesiv.eval.baselines`: the baselines of [C] and the validation threshold fit.
* :mod:`cohesiv.eval.runner`: what ``cohesiv eval`` calls (baselines and trained runs).
"""

from cohesiv.eval.baselines import (
    EstimatedFlow,
    ExactFlow,
    FlowBaseline,
    ResponsibilityBaseline,
    ThresholdFit,
    evaluate_baseline,
    fit_threshold,
    flow_baseline_masks,
    threshold_responsibility,
)
from cohesiv.eval.driver import (
    FrameContext,
    HOSPrediction,
    LabeledClip,
    evaluate_clips,
    expand_clips,
    format_table,
    iter_scored_frames,
    open_labeled_clip,
    write_metrics,
)
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
    "EstimatedFlow",
    "ExactFlow",
    "FlowBaseline",
    "FrameContext",
    "HOSMeter",
    "HOSPrediction",
    "ImageStats",
    "LabeledClip",
    "ResponsibilityBaseline",
    "ThresholdFit",
    "evaluate_baseline",
    "evaluate_clips",
    "expand_clips",
    "fit_threshold",
    "flow_baseline_masks",
    "format_table",
    "image_stats",
    "instance_scores",
    "iter_scored_frames",
    "mask_stats",
    "open_labeled_clip",
    "reduce_stats",
    "resolve_side",
    "summarize",
    "threshold_responsibility",
    "write_metrics",
]
