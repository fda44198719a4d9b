"""Hand support: keep a predicted hand mask where the hand's own points say a hand can be.

The network learns "hand" from motion: everything that moves with the hand, the forearm included,
and on real photos its mask spills onto what looks like a hand (the face a hand touches, a bare
arm). The hand masks of real-image labels (EgoHOS, 100DOH, HOF) stop at the wrist. Given the points
the hand was queried with, :func:`support_masks` is the region a hand mask may occupy:

- the hand's convex hull dilated by ``dilation`` times the hand's size (the pseudo-labels' own hull,
  :data:`cohesiv.responsibility.masks.HULL_DILATION`); and
- for 21 MediaPipe keypoints, the fingers' side of the wrist: pixels at most ``wrist_margin`` hand
  lengths beyond the wrist towards the elbow (:func:`cohesiv.responsibility.masks.wrist_side`).

:func:`restrict_to_support` intersects each hand mask with its hand's support; object masks are
left as they are (a held object reaches beyond the hand). A hand without points keeps its mask.

:func:`refine_with_grabcut` goes one step further on still images: the supported mask seeds GrabCut
on the image (:func:`cohesiv.responsibility.masks.grabcut_hand_mask`: the bones between the
keypoints sure hand, the hull and the network's mask probable hand, a ring around them probable
background), whose colour models move the edge to the hand's outline. It is the points-only GrabCut
of ``eval --images`` with the network's mask as one more seed, so the two rows differ by what the
network adds. The network says roughly which pixels move with the hand; GrabCut knows where the
colours change. On the real image sets this scores far above the network and the hull, but only level
with GrabCut of the points alone: the network's seed does not yet add anything (README, "Results").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cohesiv.config import SUPPORTS
from cohesiv.io import Hand
from cohesiv.io.predictions import HOSPrediction
from cohesiv.responsibility.masks import (
    HULL_DILATION,
    WRIST_MARGIN,
    grabcut_hand_mask,
    hull_mask,
    wrist_side,
)


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


def refine_with_grabcut(
    prediction: HOSPrediction,
    image: np.ndarray,
    hands: Sequence[Hand],
    *,
    dilation: float = HULL_DILATION,
    wrist_margin: float = WRIST_MARGIN,
) -> HOSPrediction:
    """Each hand mask kept inside its support, then refined by GrabCut on the image (module docstring).

    The support seeds GrabCut; its result is not cut at the wrist again (GrabCut of the points is
    not either): within the reach around the points, the colours decide. A hand without finite
    points keeps its mask. Object pixels that the refined hands cover are
    taken out of the object masks (a pixel is hand or object, not both).

    Args:
        prediction: ``(K, H, W)`` hand and object masks, one per hand of ``hands``.
        image: ``(H, W, 3)`` uint8 RGB, the image the prediction is of.
        hands: the hands the prediction was queried with, in the same order.
        dilation: the support's hull dilation, a fraction of the hand's size.
        wrist_margin: reach past the wrist, in hand lengths.

    Raises:
        ValueError: the prediction does not have one mask per hand, or the image is not ``(H, W, 3)``
            uint8 of the masks' size.
    """
    kept = restrict_to_support(prediction, hands, dilation=dilation, wrist_margin=wrist_margin)
    hm = np.asarray(kept.hand_masks, np.uint8).copy()
    if np.asarray(image).shape[:2] != hm.shape[1:]:
        raise ValueError(f"image of shape {np.asarray(image).shape} for masks of {hm.shape[1:]}")
    for k, hd in enumerate(hands):
        pts = np.asarray(hd.points, np.float64).reshape(-1, 2)
        if not np.isfinite(pts).all(1).any():
            continue
        hm[k] = grabcut_hand_mask(image, pts, fallback_dilation=dilation, prior=hm[k])
    obj = np.asarray(kept.object_masks, np.uint8) & (1 - hm.max(0, initial=0))[None]
    return HOSPrediction(hm, obj)


def apply_support(
    prediction: HOSPrediction, hands: Sequence[Hand], support: str, image: np.ndarray | None = None
) -> HOSPrediction:
    """The prediction under one of :data:`SUPPORTS` ("grabcut" needs the image).

    Raises:
        ValueError: an unknown support, or "grabcut" without the image.
    """
    if support == "none":
        return prediction
    if support == "points":
        return restrict_to_support(prediction, hands)
    if support == "grabcut":
        if image is None:
            raise ValueError("the grabcut support needs the image")
        return refine_with_grabcut(prediction, image, hands)
    raise ValueError(f"unknown support {support!r}; choose from {', '.join(SUPPORTS)}")
