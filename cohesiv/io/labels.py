"""EgoHOS segmentation label PNGs.

uint8 values: 0 background, 1 left hand, 2 right hand, 3 object of the left hand,
4 object of the right hand, 5 object of both hands; 6-8 (second-order interacting objects)
are read and, for cohesiv's tasks, treated as background (:func:`task_labels`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cohesiv.errors import InputError
from cohesiv.io.images import open_image, write_image

BACKGROUND, LEFT_HAND, RIGHT_HAND, LEFT_OBJECT, RIGHT_OBJECT, BOTH_OBJECT = range(6)
MAX_LABEL = 8
HAND_LABEL = {"left": LEFT_HAND, "right": RIGHT_HAND}
OBJECT_LABELS = {"left": (LEFT_OBJECT, BOTH_OBJECT), "right": (RIGHT_OBJECT, BOTH_OBJECT)}


def read_label(path: str | Path) -> np.ndarray:
    """Read an EgoHOS label PNG as ``(H, W)`` uint8 with values 0-8.

    Raises:
        InputError: missing/unreadable file, colour image, values above 8.
    """
    img = open_image(path)
    if img.mode not in ("L", "P", "I", "I;16"):
        raise InputError(path, f"label image must be single-channel (mode L or P), got mode {img.mode}")
    lab = np.asarray(img)
    if lab.ndim != 2:
        raise InputError(path, f"label image must be 2-D, got shape {lab.shape}")
    mx = int(lab.max()) if lab.size else 0
    if mx > MAX_LABEL or int(lab.min()) < 0:
        bad = sorted({int(v) for v in np.unique(lab) if v > MAX_LABEL or v < 0})[:5]
        raise InputError(path, f"label values {bad} out of range 0..{MAX_LABEL} (EgoHOS labels)")
    return lab.astype(np.uint8)


def write_label(path: str | Path, label: np.ndarray) -> None:
    """Write ``(H, W)`` labels (values 0-8) as a single-channel PNG, atomically."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"label must be (H, W), got {label.shape}")
    if label.size and (label.min() < 0 or label.max() > MAX_LABEL):
        raise ValueError(f"label values must be in 0..{MAX_LABEL}")
    write_image(path, label.astype(np.uint8))


def task_labels(label: np.ndarray) -> np.ndarray:
    """Map second-order object labels 6-8 to background (0); return a copy."""
    out = np.asarray(label).astype(np.uint8, copy=True)
    out[out > BOTH_OBJECT] = BACKGROUND
    return out


def hand_mask(label: np.ndarray, side: str) -> np.ndarray:
    """Return the ``(H, W)`` {0, 1} mask of the hand on ``side`` ("left" or "right")."""
    return (np.asarray(label) == HAND_LABEL[side]).astype(np.uint8)


def object_mask(label: np.ndarray, side: str) -> np.ndarray:
    """Return the ``(H, W)`` {0, 1} mask of the object held by the hand on ``side`` (incl. label 5)."""
    return np.isin(label, OBJECT_LABELS[side]).astype(np.uint8)
