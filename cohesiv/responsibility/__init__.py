"""Responsibility maps (which hand moves each pixel) and the pseudo-label dataset built from them.

Pure cores: :func:`fit_homography`, :func:`responsibility_maps`, :func:`averaged_responsibility`,
:func:`person_mask`, :func:`object_mask` (NumPy, single-threaded); :func:`label_frame`, the
one labelling function per frame that the dataset writer, the baseline and the demo share. I/O layer:
:func:`write_dataset` (the ``cohesiv pseudolabel`` command) and :func:`read_manifest`.
"""

from cohesiv.responsibility.dataset import (
    ClipSource,
    PseudoLabelConfig,
    Summary,
    read_manifest,
    write_dataset,
)
from cohesiv.responsibility.homography import fit_homography, fit_homography_checked
from cohesiv.responsibility.labeler import FrameLabels, label_frame
from cohesiv.responsibility.maps import (
    averaged_responsibility,
    fit_camera_homography,
    homography_distances,
    responsibility_maps,
)
from cohesiv.responsibility.masks import hull_mask, object_mask, person_mask

__all__ = [
    "ClipSource",
    "FrameLabels",
    "PseudoLabelConfig",
    "Summary",
    "averaged_responsibility",
    "fit_camera_homography",
    "fit_homography",
    "fit_homography_checked",
    "homography_distances",
    "hull_mask",
    "label_frame",
    "object_mask",
    "person_mask",
    "read_manifest",
    "responsibility_maps",
    "write_dataset",
]
