"""Masks for the embedding loss [COHESIV §3.3]: person (hand/arm) and held object.

Conventions: points ``(x, y)`` pixels, origin at the centre of the top-left pixel; sizes
``(W, H)``; masks ``(H, W)`` uint8 with values {0, 1}; responsibilities ``(N+1, H, W)``, channel 0
background.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from cohesiv._checks import check_shape

#: Dilation radius of a hand's hull, as a fraction of the hand's size (largest side of the
#: points' bounding box). 0.2 recovers a whole box from the default box grid (15 % margins).
HULL_DILATION = 0.2


def hull_mask(
    hand_points: Sequence[np.ndarray],
    size: tuple[int, int],
    dilation: float = HULL_DILATION,
    min_radius: int = 1,
) -> np.ndarray:
    """Union of the hands' convex hulls, each dilated in proportion to the hand's size.

    Args:
        hand_points: arrays ``(N_k, 2)`` of ``(x, y)`` pixels, one per hand.
        size: ``(W, H)`` of the image.
        dilation: radius of the dilation as a fraction of the hand's size (largest side of
            its points' bounding box).
        min_radius: smallest dilation radius, pixels.

    Returns:
        ``(H, W)`` uint8 {0, 1}.
    """
    w, h = size
    out = np.zeros((h, w), np.uint8)
    for pts in hand_points:
        pts = np.asarray(pts, np.float64).reshape(-1, 2)
        pts = pts[np.isfinite(pts).all(1)]
        if not len(pts):
            continue
        one = np.zeros((h, w), np.uint8)
        hull = cv2.convexHull(np.round(pts).astype(np.int32))
        cv2.fillConvexPoly(one, hull, 1)
        extent = float((pts.max(0) - pts.min(0)).max())
        r = max(int(round(dilation * extent)), min_radius)
        if r > 0:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
            one = cv2.dilate(one, kernel)
        out |= one
    return out


def person_mask(
    hand_points: Sequence[np.ndarray],
    size: tuple[int, int],
    given: np.ndarray | None = None,
    dilation: float = HULL_DILATION,
) -> np.ndarray:
    """Person (hand/arm) mask: a given mask if there is one, else the dilated hulls of the hands.

    Args:
        hand_points: arrays ``(N_k, 2)`` of ``(x, y)`` pixels, one per hand.
        size: ``(W, H)`` of the image.
        given: optional ``(H, W)`` mask (any non-zero value is person), e.g. read from a
            person-mask folder.
        dilation: see :func:`hull_mask`.

    Returns:
        ``(H, W)`` uint8 {0, 1}.

    Raises:
        ValueError: ``given`` does not have shape ``(H, W)``.
    """
    w, h = size
    if given is not None:
        check_shape(given, f"{h},{w}", "person mask")
        return (np.asarray(given) != 0).astype(np.uint8)
    return hull_mask(hand_points, size, dilation=dilation)


def object_mask(responsibility: np.ndarray, person: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Held-object mask: the union over hands of ``R_k > threshold``, minus the person.

    Args:
        responsibility: ``(N+1, H, W)`` responsibilities, channel 0 background.
        person: ``(H, W)`` {0, 1} person mask.
        threshold: responsibility threshold (0.5 by default; not published in [C]).

    Returns:
        ``(H, W)`` uint8 {0, 1}.
    """
    s = check_shape(responsibility, "C,H,W", "responsibility")
    check_shape(person, f"{s['H']},{s['W']}", "person")
    r = np.asarray(responsibility)
    if r.shape[0] < 2:
        return np.zeros(r.shape[1:], np.uint8)
    hands = (r[1:].astype(np.float32) > threshold).any(0)
    return (hands & (np.asarray(person) == 0)).astype(np.uint8)
