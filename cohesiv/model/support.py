"""Hand support: keep a predicted hand mask where the hand's own points say a hand can be.

The network learns "hand" from motion: everything that moves with the hand, the forearm included,
and on real photos its mask spills onto what looks like a hand (the face a hand touches, a bare
arm). The hand masks of real-image labels (EgoHOS, 100DOH, HOF) stop at the wrist. Given the points
the hand was queried with, :func:`support_masks` is the region a hand mask may occupy:

- the hand's convex hull dilated by ``dilation`` times the hand's size (the pseudo-labels' own hull,
  :data:`cohesiv.responsibility.masks.HULL_DILATION`); and
- for 21 MediaPipe keypoints, the fingers' side of the wrist: pixels at most ``wrist_margin`` hand
  lengths beyond the wrist towards the elbow (:func:`cohesiv.responsibility.masks.forearm_direction`).

:func:`restrict_to_support` intersects each hand mask with its hand's support; object masks are
left as they are (a held object reaches beyond the hand). A hand without points keeps its mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cohesiv.io import Hand
from cohesiv.io.predictions import HOSPrediction
from cohesiv.responsibility.masks import HULL_DILATION, WRIST, forearm_direction, hull_mask

#: How far past the wrist (towards the elbow) a hand mask may reach, in hand lengths (the wrist's
#: distance to its farthest keypoint): the wrist crease and a little of the wrist itself.
WRIST_MARGIN = 0.15
#: Names of the supports :func:`restrict_to_support` knows: the dilated hull and the wrist cut
#: ("points"), or none.
SUPPORTS = ("points", "none")


def wrist_side(points: np.ndarray, size: tuple[int, int], margin: float = WRIST_MARGIN) -> np.ndarray | None:
    """The fingers' side of the wrist line, up to ``margin`` hand lengths past it.

    Args:
        points: ``(21, 2)`` MediaPipe keypoints ``(x, y)``.
        size: ``(W, H)`` of the image.
        margin: reach past the wrist towards the elbow, in hand lengths.

    Returns:
        ``(H, W)`` uint8 {0, 1}, or None when the points are not 21 finite keypoints or are degenerate.
    """
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if len(pts) != 21 or not np.isfinite(pts).all():
        return None
    u = forearm_direction(pts)
    wrist = pts[WRIST]
    length = float(np.hypot(*(pts - wrist).T).max())
    if u is None or length < 1e-3:
        return None
    w, h = size
    along = (np.arange(w) - wrist[0])[None, :] * u[0] + (np.arange(h) - wrist[1])[:, None] * u[1]
    return (along <= margin * length).astype(np.uint8)


def support_masks(
    hands: Sequence[Hand],
    size: tuple[int, int],
    *,
    dilation: float = HULL_DILATION,
    wrist_margin: float = WRIST_MARGIN,
) -> np.ndarray:
    """Each hand's support (see the module docstring): ``(K, H, W)`` uint8 {0, 1}.

    A hand without finite points gets an all-ones support (nothing is removed).
    """
    w, h = size
    out = np.ones((len(hands), h, w), np.uint8)
    for k, hd in enumerate(hands):
        pts = np.asarray(hd.points, np.float64).reshape(-1, 2)
        pts = pts[np.isfinite(pts).all(1)]
        if not len(pts):
            continue
        out[k] = hull_mask([pts], size, dilation=dilation)
        side = wrist_side(pts, size, wrist_margin)
        if side is not None:
            out[k] &= side
    return out


def restrict_to_support(
    prediction: HOSPrediction,
    hands: Sequence[Hand],
    *,
    dilation: float = HULL_DILATION,
    wrist_margin: float = WRIST_MARGIN,
) -> HOSPrediction:
    """The prediction with each hand mask kept inside its hand's support; object masks unchanged.

    Args:
        prediction: ``(K, H, W)`` hand and object masks, one per hand of ``hands``.
        hands: the hands the prediction was queried with, in the same order.
        dilation: hull dilation, a fraction of the hand's size.
        wrist_margin: reach past the wrist, in hand lengths.

    Raises:
        ValueError: the prediction does not have one mask per hand.
    """
    hm = np.asarray(prediction.hand_masks)
    if hm.shape[0] != len(hands):
        raise ValueError(f"{hm.shape[0]} hand masks for {len(hands)} hands")
    size = (hm.shape[2], hm.shape[1])
    sup = support_masks(hands, size, dilation=dilation, wrist_margin=wrist_margin)
    return HOSPrediction((hm.astype(np.uint8) & sup), np.asarray(prediction.object_masks))
