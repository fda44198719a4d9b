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


#: MediaPipe hand keypoints used by the forearm heuristic: wrist, index / middle / pinky MCP.
WRIST, INDEX_MCP, MIDDLE_MCP, PINKY_MCP = 0, 5, 9, 17


def forearm_polygon(points: np.ndarray, size: tuple[int, int], widen: float = 1.3) -> np.ndarray | None:
    """A band from the wrist away from the fingers to beyond the image border (the forearm).

    Only for 21 keypoints in MediaPipe order (0 wrist, 5 index MCP, 9 middle MCP, 17 pinky MCP);
    the band starts as wide as the palm (index-to-pinky MCP distance) at the wrist and widens by
    ``widen`` at the image border.

    Args:
        points: ``(21, 2)`` ``(x, y)`` keypoints.
        size: ``(W, H)`` of the image.
        widen: width at the far end relative to the palm width.

    Returns:
        ``(4, 2)`` int32 polygon, or None when the points are not 21 keypoints or degenerate.
    """
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if len(pts) != 21 or not np.isfinite(pts).all():
        return None
    wrist = pts[WRIST]
    axis = wrist - pts[MIDDLE_MCP]
    length = float(np.hypot(*axis))
    palm = float(np.hypot(*(pts[INDEX_MCP] - pts[PINKY_MCP])))
    if length < 1e-3 or palm < 1e-3:
        return None
    u = axis / length
    n = np.array([-u[1], u[0]])
    far = wrist + u * float(np.hypot(*size))
    poly = [
        wrist + n * palm / 2,
        far + n * widen * palm / 2,
        far - n * widen * palm / 2,
        wrist - n * palm / 2,
    ]
    return np.round(np.array(poly)).astype(np.int32)


def hull_mask(
    hand_points: Sequence[np.ndarray],
    size: tuple[int, int],
    dilation: float = HULL_DILATION,
    min_radius: int = 1,
    forearm: bool = False,
) -> np.ndarray:
    """Union of the hands' convex hulls, each dilated in proportion to the hand's size.

    Args:
        hand_points: arrays ``(N_k, 2)`` of ``(x, y)`` pixels, one per hand.
        size: ``(W, H)`` of the image.
        dilation: radius of the dilation as a fraction of the hand's size (largest side of
            its points' bounding box).
        min_radius: smallest dilation radius, pixels.
        forearm: also fill :func:`forearm_polygon` for hands given as 21 MediaPipe keypoints
            (beyond [C]; off by default).

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
        hull = cv2.convexHull(np.round(pts).astype(np.int32)).reshape(-1, 2)
        poly = forearm_polygon(pts, size) if forearm else None
        extent = float((pts.max(0) - pts.min(0)).max())
        r = max(int(round(dilation * extent)), min_radius, 0)
        # fill and dilate only the box around the shapes plus r (the dilation's reach; outside
        # the image counts as empty): the same pixels as on the whole image, 2-5x faster
        corners = np.concatenate([hull] + ([] if poly is None else [poly]))
        x0, y0 = np.maximum(corners.min(0) - r, 0)
        x1, y1 = np.minimum(corners.max(0) + r + 1, (w, h))
        if x1 <= x0 or y1 <= y0:
            continue
        one = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillConvexPoly(one, (hull - (x0, y0)).astype(np.int32), 1)
        if poly is not None:
            cv2.fillConvexPoly(one, (poly - (x0, y0)).astype(np.int32), 1)
        if r > 0:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
            one = cv2.dilate(one, kernel)
        out[y0:y1, x0:x1] |= one
    return out


def person_mask(
    hand_points: Sequence[np.ndarray],
    size: tuple[int, int],
    given: np.ndarray | None = None,
    dilation: float = HULL_DILATION,
    forearm: bool = False,
) -> np.ndarray:
    """Person (hand/arm) mask: a given mask if there is one, else the dilated hulls of the hands.

    Args:
        hand_points: arrays ``(N_k, 2)`` of ``(x, y)`` pixels, one per hand.
        size: ``(W, H)`` of the image.
        given: optional ``(H, W)`` mask (any non-zero value is person), e.g. read from a
            person-mask folder.
        dilation: see :func:`hull_mask`.
        forearm: see :func:`hull_mask`.

    Returns:
        ``(H, W)`` uint8 {0, 1}.

    Raises:
        ValueError: ``given`` does not have shape ``(H, W)``.
    """
    w, h = size
    if given is not None:
        check_shape(given, f"{h},{w}", "person mask")
        return (np.asarray(given) != 0).astype(np.uint8)
    return hull_mask(hand_points, size, dilation=dilation, forearm=forearm)


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
