"""Hand / Obj / Pair / All segmentation metrics (COHESIV [C] section 4.1, EgoHOS [E] reductions).

Stats first, then reductions (as smp's ``get_stats`` -> ``iou_score``):

* :func:`mask_stats` counts true positives, false positives and false negatives per instance;
* :func:`reduce_stats` turns per-instance counts into ``{"mIoU", "IoU", "precision", "recall", "F1"}``.

Tasks, per queried hand with side ``s`` (labels are EgoHOS: 1 left hand, 2 right hand, 3 object of
the left hand, 4 object of the right hand, 5 object of both; 6-8 are background here):

* **Hand**: ground truth ``label == hand(s)`` (1 for left, 2 for right).
* **Obj**: ground truth = the labels of the object that hand holds (left -> 3 and 5, right -> 4 and 5).
  Scored only for hands whose object is non-empty in the label; for the other hands the
  ``false_object_rate`` is the fraction for which a non-empty object mask was predicted, and for the
  hands that hold one ``object_found_rate`` is that fraction (hand-level object recall).
* **Pair**: hand ∪ object, for both the ground truth and the prediction.
* **All** (one instance per image): labels 1-5 against the union of the predictions of every query.

Reductions (all in percent):

* ``mIoU`` = mean over instances of ``tp / (tp + fp + fn)``;
* ``IoU`` = pooled: ``sum tp / sum (tp + fp + fn)``;
* ``precision`` / ``recall`` / ``F1`` = **means over instances** of the per-instance values
  (EgoHOS's mPrec / mRec / mF1), with ``F1 = 2 tp / (2 tp + fp + fn)`` per instance.

Empty cases: an instance whose ground truth and prediction are both empty is a correct answer
(IoU = precision = recall = F1 = 1); a non-empty prediction against an empty ground truth, or an
empty prediction against a non-empty one, scores 0 on all four.

Hands without a side (``side=None`` in ``hands.json``) take the side of the ground-truth hand under
their query point (label 1 or 2 at the rounded query); when the query falls on no hand, the
nearest hand pixel of the label decides; when the label has no hand at all, the hand has empty
ground truth (see :func:`resolve_side`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from cohesiv._checks import check_shape
from cohesiv.io.labels import BOTH_OBJECT, HAND_LABEL, OBJECT_LABELS

TASKS = ("All", "Pair", "Hand", "Obj")
REDUCTION_KEYS = ("mIoU", "IoU", "precision", "recall", "F1")


def mask_stats(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Count true positives, false positives and false negatives per instance.

    Args:
        pred: predicted masks ``(..., H, W)`` with values {0, 1} (any dtype; non-zero = on).
        gt: ground-truth masks, same shape as ``pred``.

    Returns:
        ``(..., 3)`` int64 array of ``(tp, fp, fn)`` per instance (``(3,)`` for a single mask).

    Raises:
        ValueError: when the shapes differ.
    """
    pred = np.asarray(pred).astype(bool, copy=False)
    gt = np.asarray(gt).astype(bool, copy=False)
    if pred.shape != gt.shape or pred.ndim < 2:
        raise ValueError(
            f"pred and gt must be masks of the same shape (..., H, W); got {pred.shape} and {gt.shape}"
        )
    axes = (-2, -1)
    tp = np.count_nonzero(pred & gt, axis=axes)
    fp = np.count_nonzero(pred & ~gt, axis=axes)
    fn = np.count_nonzero(~pred & gt, axis=axes)
    return np.stack([tp, fp, fn], -1).astype(np.int64)


def instance_scores(stats: np.ndarray) -> dict[str, np.ndarray]:
    """Per-instance IoU, precision, recall and F1 (fractions in [0, 1]).

    Args:
        stats: ``(N, 3)`` counts ``(tp, fp, fn)`` from :func:`mask_stats`.

    Returns:
        ``{"IoU", "precision", "recall", "F1"}``, each ``(N,)`` float64. Empty prediction and
        empty ground truth score 1; see the module docstring for the other empty cases.
    """
    stats = np.asarray(stats, dtype=np.float64).reshape(-1, 3)
    tp, fp, fn = stats[:, 0], stats[:, 1], stats[:, 2]
    perfect_empty = (tp + fp + fn) == 0

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        out = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        return np.where(perfect_empty, 1.0, out)

    return {
        "IoU": ratio(tp, tp + fp + fn),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "F1": ratio(2 * tp, 2 * tp + fp + fn),
    }


def reduce_stats(stats: np.ndarray) -> dict[str, float]:
    """Reduce per-instance counts to the reported metrics, in percent.

    Args:
        stats: ``(N, 3)`` counts ``(tp, fp, fn)``, one row per instance.

    Returns:
        ``{"mIoU", "IoU", "precision", "recall", "F1", "n"}``: ``mIoU`` is the mean of the
        per-instance IoU, ``IoU`` the pooled ``sum tp / sum (tp + fp + fn)``, precision / recall
        / F1 the means over instances (EgoHOS mPrec / mRec / mF1); all in percent. ``n`` is the
        number of instances. With no instance every value is NaN (``n`` = 0).
    """
    stats = np.asarray(stats, dtype=np.int64).reshape(-1, 3)
    n = len(stats)
    if n == 0:
        return {k: float("nan") for k in REDUCTION_KEYS} | {"n": 0}
    per = instance_scores(stats)
    tp, fp, fn = stats.sum(0)
    pooled = 1.0 if tp + fp + fn == 0 else tp / (tp + fp + fn)
    return {
        "mIoU": 100.0 * float(per["IoU"].mean()),
        "IoU": 100.0 * float(pooled),
        "precision": 100.0 * float(per["precision"].mean()),
        "recall": 100.0 * float(per["recall"].mean()),
        "F1": 100.0 * float(per["F1"].mean()),
        "n": n,
    }


def resolve_side(label: np.ndarray, side: str | None, query: Sequence[float] | None) -> str | None:
    """Return the side a queried hand is scored as.

    A given side is returned as is. Without one, the hand takes the side of the ground-truth
    hand label (1 left, 2 right) under its query point, rounded to the nearest pixel; when the
    query lies on no hand pixel, the side of the nearest hand pixel; None when the label has no
    hand pixel at all (or there is no query), in which case the hand's ground truth is empty.

    Args:
        label: ``(H, W)`` EgoHOS labels.
        side: "left", "right" or None.
        query: ``(x, y)`` pixels, origin at the centre of the top-left pixel, or None.

    Returns:
        "left", "right" or None.
    """
    if side is not None:
        if side not in HAND_LABEL:
            raise ValueError(f"side must be 'left', 'right' or None, got {side!r}")
        return side
    if query is None:
        return None
    label = np.asarray(label)
    h, w = label.shape
    x = int(np.clip(np.rint(query[0]), 0, w - 1))
    y = int(np.clip(np.rint(query[1]), 0, h - 1))
    by_label = {v: s for s, v in HAND_LABEL.items()}
    if int(label[y, x]) in by_label:
        return by_label[int(label[y, x])]
    ys, xs = np.nonzero(np.isin(label, list(by_label)))
    if len(ys) == 0:
        return None
    k = int(np.argmin((xs - query[0]) ** 2 + (ys - query[1]) ** 2))
    return by_label[int(label[ys[k], xs[k]])]


def hand_object_gt(label: np.ndarray, side: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth hand and object masks of the hand on ``side``.

    Args:
        label: ``(H, W)`` EgoHOS labels (6-8 count as background).
        side: "left", "right" or None (None gives two empty masks).

    Returns:
        ``(hand, object)``, each ``(H, W)`` bool.
    """
    label = np.asarray(label)
    if side is None:
        empty = np.zeros(label.shape, bool)
        return empty, empty.copy()
    return label == HAND_LABEL[side], np.isin(label, OBJECT_LABELS[side])


def all_gt(label: np.ndarray) -> np.ndarray:
    """Ground truth of the All task: every hand and held object (labels 1-5), ``(H, W)`` bool."""
    label = np.asarray(label)
    return (label >= 1) & (label <= BOTH_OBJECT)


@dataclass
class ImageStats:
    """Counts of one image, ready to be accumulated.

    Attributes:
        all: ``(3,)`` ``(tp, fp, fn)`` of the All task.
        pair: ``(K, 3)`` per queried hand.
        hand: ``(K, 3)`` per queried hand.
        obj: ``(M, 3)`` for the M hands that hold an object.
        false_objects: ``(K - M,)`` bool, for the hands without an object: was a non-empty object
            mask predicted?
        found_objects: ``(M,)`` bool, for the hands that hold an object: was a non-empty object mask
            predicted (hand-level object recall)?
    """

    all: np.ndarray
    pair: np.ndarray
    hand: np.ndarray
    obj: np.ndarray
    false_objects: np.ndarray
    found_objects: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))


def image_stats(
    label: np.ndarray,
    sides: Sequence[str | None],
    queries: Sequence[Sequence[float] | None],
    hand_masks: np.ndarray,
    object_masks: np.ndarray,
    all_mask: np.ndarray | None = None,
) -> ImageStats:
    """Score one image's predictions against its EgoHOS label.

    Args:
        label: ``(H, W)`` uint8 EgoHOS labels (6-8 count as background).
        sides: side of each of the K queried hands ("left", "right" or None, see :func:`resolve_side`).
        queries: ``(x, y)`` query point of each hand (used only when its side is None).
        hand_masks: ``(K, H, W)`` predicted hand masks, values {0, 1}.
        object_masks: ``(K, H, W)`` predicted masks of the object each hand holds, values {0, 1}.
        all_mask: ``(H, W)`` prediction for the All task; default: the union of every hand
            and object mask (a baseline such as Flow predicts All directly).

    Returns:
        The :class:`ImageStats` of the image.

    Raises:
        ValueError: on mismatched shapes or counts.
    """
    label = np.asarray(label)
    h, w = check_shape(label, "H,W", "label").values()
    k = len(sides)
    if len(queries) != k:
        raise ValueError(f"got {k} sides but {len(queries)} queries")
    if k:
        check_shape(hand_masks, f"{k},{h},{w}", "hand_masks")
        check_shape(object_masks, f"{k},{h},{w}", "object_masks")
    hand_masks = np.asarray(hand_masks).astype(bool) if k else np.zeros((0, h, w), bool)
    object_masks = np.asarray(object_masks).astype(bool) if k else np.zeros((0, h, w), bool)
    if all_mask is None:
        all_pred = (hand_masks | object_masks).any(0)
    else:
        all_pred = np.asarray(all_mask).astype(bool)
        check_shape(all_pred, f"{h},{w}", "all_mask")

    gts = [hand_object_gt(label, resolve_side(label, s, q)) for s, q in zip(sides, queries)]
    gt_hand = np.stack([g[0] for g in gts]) if k else np.zeros((0, h, w), bool)
    gt_obj = np.stack([g[1] for g in gts]) if k else np.zeros((0, h, w), bool)
    holds = gt_obj.any((1, 2)) if k else np.zeros(0, bool)
    return ImageStats(
        all=mask_stats(all_pred, all_gt(label)),
        pair=mask_stats(hand_masks | object_masks, gt_hand | gt_obj).reshape(-1, 3),
        hand=mask_stats(hand_masks, gt_hand).reshape(-1, 3),
        obj=mask_stats(object_masks[holds], gt_obj[holds]).reshape(-1, 3),
        false_objects=object_masks[~holds].any((1, 2)) if k else np.zeros(0, bool),
        found_objects=object_masks[holds].any((1, 2)) if k else np.zeros(0, bool),
    )


def summarize(stats: Sequence[ImageStats]) -> dict:
    """Reduce the stats of many images to the ``metrics.json`` dictionary.

    Args:
        stats: one :class:`ImageStats` per scored image.

    Returns:
        ``{"All": {...}, "Pair": {...}, "Hand": {...}, "Obj": {..., "false_object_rate"},
        "n_images", "n_hands"}``; each task holds ``mIoU, IoU, precision, recall, F1`` in percent
        (see :func:`reduce_stats`) and ``n``, its number of instances. ``false_object_rate`` and
        ``object_found_rate`` are in percent too (NaN when no hand is of their kind).
    """

    def cat(name: str) -> np.ndarray:
        parts = [np.asarray(getattr(s, name)).reshape(-1, 3) for s in stats]
        return np.concatenate(parts) if parts else np.zeros((0, 3), np.int64)

    false_obj = np.concatenate([s.false_objects for s in stats]) if stats else np.zeros(0, bool)
    out: dict = {
        "All": reduce_stats(cat("all")),
        "Pair": reduce_stats(cat("pair")),
        "Hand": reduce_stats(cat("hand")),
        "Obj": reduce_stats(cat("obj")),
    }
    out["Obj"]["false_object_rate"] = 100.0 * float(false_obj.mean()) if len(false_obj) else float("nan")
    out["Obj"]["n_without_object"] = int(len(false_obj))
    found = np.concatenate([s.found_objects for s in stats]) if stats else np.zeros(0, bool)
    out["Obj"]["object_found_rate"] = 100.0 * float(found.mean()) if len(found) else float("nan")
    out["n_images"] = len(stats)
    out["n_hands"] = int(len(cat("pair")))
    return out


@dataclass
class HOSMeter:
    """Accumulate Hand / Obj / Pair / All statistics image by image.

    Example:
        >>> meter = HOSMeter()
        >>> meter.add(label, ["left"], [(10.0, 12.0)], hand_masks, object_masks)  # doctest: +SKIP
        >>> meter.result()["Pair"]["mIoU"]                                          # doctest: +SKIP
    """

    images: list[ImageStats] = field(default_factory=list)

    def add(
        self,
        label: np.ndarray,
        sides: Sequence[str | None],
        queries: Sequence[Sequence[float] | None],
        hand_masks: np.ndarray,
        object_masks: np.ndarray,
        all_mask: np.ndarray | None = None,
    ) -> ImageStats:
        """Score one image (arguments as :func:`image_stats`) and keep its counts; return them."""
        s = image_stats(label, sides, queries, hand_masks, object_masks, all_mask)
        self.images.append(s)
        return s

    def result(self) -> dict:
        """Return the metrics of every image added so far (see :func:`summarize`)."""
        return summarize(self.images)

    def __len__(self) -> int:
        """Number of images added."""
        return len(self.images)
