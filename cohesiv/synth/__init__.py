"""Synthetic egocentric clips with exact ground truth (labels, flow, hand keypoints).

Layered scenes (textured background with distractors, optional camera motion, one or two hands
with forearms entering from the bottom edge, held objects under the fingers) rendered with exact
per-layer homographies, so that labels, forward flow (any pair of frames) and hand keypoints are
exact. See :func:`generate_clip` (in memory), :func:`generate_dataset` (files) and
:func:`exact_flow`.
"""

from cohesiv.synth.scene import (
    Scene,
    SynthClip,
    flow_between,
    generate_clip,
    iter_clip,
    motion_matrix,
    sample_scene,
)
from cohesiv.synth.writer import DatasetReport, clip_is_complete, exact_flow, generate_dataset, write_scene

__all__ = [
    "DatasetReport",
    "Scene",
    "SynthClip",
    "clip_is_complete",
    "exact_flow",
    "flow_between",
    "generate_clip",
    "generate_dataset",
    "iter_clip",
    "motion_matrix",
    "sample_scene",
    "write_scene",
]
