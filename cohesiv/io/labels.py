"""EgoHOS segmentation label PNGs.

uint8 values: 0 background, 1 left hand, 2 right hand, 3 object of the left hand,
4 object of the right hand, 5 object of both hands; 6-8 (second-order interacting objects)
are read and, for cohesiv's tasks, treated as background (:func:`task_labels`).

Label PNGs are written as palette (mode P) images: the stored pixel values are still the labels
0-8, which PIL returns (``np.asarray(Image.open(f))``, as mmsegmentation's pillow backend and
:func:`read_label` read them), and an image viewer shows the classes in colour
(:data:`LABEL_PALETTE`) instead of an almost black picture. OpenCV's ``cv2.imread`` expands a
palette to colour even with ``IMREAD_UNCHANGED``: read labels with PIL.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from cohesiv.errors import InputError
from cohesiv.io.atomic import atomic_path
from cohesiv.io.images import open_image

BACKGROUND, LEFT_HAND, RIGHT_HAND, LEFT_OBJECT, RIGHT_OBJECT, BOTH_OBJECT = range(6)
MAX_LABEL = 8
HAND_LABEL = {"left": LEFT_HAND, "right": RIGHT_HAND}
OBJECT_LABELS = {"left": (LEFT_OBJECT, BOTH_OBJECT), "right": (RIGHT_OBJECT, BOTH_OBJECT)}
#: RGB colour of each label value in written PNGs (the colours of :func:`cohesiv.viz.label_overlay`);
#: 6-8 (second-order objects) in muted tones.
LABEL_PALETTE = (
    (0, 0, 0),  # 0 background
    (230, 25, 75),  # 1 left hand: red
    (0, 130, 200),  # 2 right hand: blue
    (255, 200, 0),  # 3 object of the left hand: yellow
    (60, 220, 75),  # 4 object of the right hand: green
    (245, 130, 48),  # 5 object of both hands: orange
    (128, 100, 40),  # 6-8 second-order objects
    (40, 110, 60),
    (130, 70, 30),
)


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


def write_label(path: str | Path, label: np.ndarray, *, compress_level: int = 6) -> None:
    """Write ``(H, W)`` labels (values 0-8) as a palette PNG (:data:`LABEL_PALETTE`), atomically.

    The stored pixel values are the labels; :func:`read_label` returns them unchanged.
    """
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"label must be (H, W), got {label.shape}")
    if label.size and (label.min() < 0 or label.max() > MAX_LABEL):
        raise ValueError(f"label values must be in 0..{MAX_LABEL}")
    img = Image.fromarray(label.astype(np.uint8), mode="P")
    img.putpalette([c for rgb in LABEL_PALETTE for c in rgb])
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG", compress_level=compress_level)


def compose_label(hand_masks: np.ndarray, object_masks: np.ndarray, sides: Sequence[str]) -> np.ndarray:
    """Compose the EgoHOS label image of per-hand masks (predictions and converted ground truth alike).

    Objects of left hands are 3, of right hands 4, claimed by both sides 5; hands (1 left, 2 right)
    are drawn over objects.

    Args:
        hand_masks: ``(K, H, W)`` {0, 1}.
        object_masks: ``(K, H, W)`` {0, 1}, the object held by each hand (empty: holds nothing).
        sides: K entries "left" or "right".

    Returns:
        ``(H, W)`` uint8 label.
    """
    k, h, w = hand_masks.shape
    if object_masks.shape != hand_masks.shape or len(sides) != k:
        raise ValueError(
            f"hand_masks {hand_masks.shape}, object_masks {object_masks.shape} and {len(sides)} sides disagree"
        )
    label = np.zeros((h, w), np.uint8)
    hm, om = hand_masks.astype(bool), object_masks.astype(bool)
    left = np.array([s == "left" for s in sides], bool)
    obj_l = om[left].any(0) if left.any() else np.zeros((h, w), bool)
    obj_r = om[~left].any(0) if (~left).any() else np.zeros((h, w), bool)
    label[obj_l] = LEFT_OBJECT
    label[obj_r] = RIGHT_OBJECT
    label[obj_l & obj_r] = BOTH_OBJECT
    for i in range(k):
        label[hm[i]] = LEFT_HAND if left[i] else RIGHT_HAND
    return label


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
