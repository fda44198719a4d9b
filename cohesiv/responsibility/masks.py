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
from cohesiv.config import HULL_DILATION  # the hull's dilation, a fraction of the hand's size

#: MediaPipe hand keypoints used by the forearm heuristic: wrist, the four finger MCPs, the five fingertips.
WRIST, INDEX_MCP, MIDDLE_MCP, RING_MCP, PINKY_MCP = 0, 5, 9, 13, 17
FINGERTIPS = (4, 8, 12, 16, 20)
#: Forearm band length in hand lengths (a forearm is ~1.4 hand lengths; a little of the upper arm too).
FOREARM_REACH = 2.0
#: The bones of MediaPipe's 21-keypoint hand (its HAND_CONNECTIONS), drawn as GrabCut's sure foreground.
HAND_BONES = (
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11),
    (11, 12), (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19), (19, 20),
)  # fmt: skip
#: GrabCut's reach around a hand: pixels beyond its hull dilated by this fraction of the hand's size
#: are sure background (measured on the real image sets: 0.3 scored above 0.6).
GRABCUT_REACH = 0.3
#: GrabCut iterations.
GRABCUT_ITERATIONS = 5
#: A GrabCut mask smaller than this fraction of the hand's (undilated) hull is a failure (the hand's
#: colours are the background's): the dilated hull is used instead.
GRABCUT_MIN_FRACTION = 0.25


def forearm_direction(points: np.ndarray) -> np.ndarray | None:
    """Unit vector ``(2,)`` from the wrist towards the elbow: away from the palm and the fingers.

    The mean of the wrist -> MCP directions (the palm's axis, stable when the fingers curl) and
    the wrist -> fingertip directions (stable when the palm is foreshortened), negated; when the
    two disagree (fingers folded back past the wrist), the palm's axis alone.

    Args:
        points: ``(21, 2)`` MediaPipe keypoints ``(x, y)``.

    Returns:
        The direction, or None when the keypoints are degenerate.
    """
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    wrist = pts[WRIST]

    def unit(v: np.ndarray) -> np.ndarray | None:
        n = float(np.hypot(*v))
        return v / n if n > 1e-3 else None

    palm = unit(wrist - pts[[INDEX_MCP, MIDDLE_MCP, RING_MCP, PINKY_MCP]].mean(0))
    tips = unit(wrist - pts[list(FINGERTIPS)].mean(0))
    if palm is None:
        return tips
    if tips is None or float(palm @ tips) < 0:
        return palm
    return unit(palm + tips)


def forearm_polygon(
    points: np.ndarray, size: tuple[int, int], widen: float = 1.3, reach: float = FOREARM_REACH
) -> np.ndarray | None:
    """A band from the wrist towards the elbow (away from the fingers), clipped to the image.

    Only for 21 keypoints in MediaPipe order (0 wrist, 5/9/13/17 MCPs, 4/8/12/16/20 fingertips).
    The band starts as wide as the palm (index-to-pinky MCP distance) at the wrist, is ``reach``
    hand lengths long (hand length: the wrist's distance to its farthest keypoint), widens by
    ``widen`` at its far end (see :func:`forearm_direction` for the direction), and is clipped
    to the image rectangle.

    Args:
        points: ``(21, 2)`` ``(x, y)`` keypoints.
        size: ``(W, H)`` of the image.
        widen: width at the far end relative to the palm width.
        reach: length in hand lengths.

    Returns:
        ``(M, 2)`` int32 convex polygon inside the image, or None when the points are not 21
        keypoints, are degenerate, or the band lies outside the image.
    """
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if len(pts) != 21 or not np.isfinite(pts).all():
        return None
    wrist = pts[WRIST]
    u = forearm_direction(pts)
    palm = float(np.hypot(*(pts[INDEX_MCP] - pts[PINKY_MCP])))
    length = reach * float(np.hypot(*(pts - wrist).T).max())
    if u is None or palm < 1e-3 or length < 1e-3:
        return None
    n = np.array([-u[1], u[0]])
    far = wrist + u * length
    band = np.array(
        [wrist + n * palm / 2, far + n * widen * palm / 2, far - n * widen * palm / 2, wrist - n * palm / 2],
        np.float32,
    )
    w, h = size
    rect = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float32)  # pixel centres
    e1, e2 = band[1] - band[0], band[2] - band[1]
    if float(e1[0] * e2[1] - e1[1] * e2[0]) < 0:
        band = band[::-1].copy()  # both convex, same orientation as rect (clockwise in image coordinates)
    area, clipped = cv2.intersectConvexConvex(band, rect)
    if area <= 0 or clipped is None:
        return None
    return np.round(clipped.reshape(-1, 2)).astype(np.int32)


#: How far past the wrist (towards the elbow) a hand may reach, in hand lengths (the wrist's distance to its
#: farthest keypoint): the wrist crease and a little of the wrist itself.
WRIST_MARGIN = 0.15


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


def forearm_cut(points: np.ndarray, size: tuple[int, int], margin: float = WRIST_MARGIN) -> np.ndarray | None:
    """A hand's forearm past its wrist: :func:`forearm_polygon` minus :func:`wrist_side`.

    Returns:
        ``(H, W)`` bool, or None when the points are not 21 usable keypoints (nothing to cut).
    """
    band = forearm_polygon(points, size)
    side = wrist_side(points, size, margin)
    if band is None or side is None:
        return None
    w, h = size
    cut = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(cut, band, 1)
    return (cut > 0) & (side == 0)


def stop_at_wrist(
    responsibility: np.ndarray,
    person: np.ndarray,
    hand_points: Sequence[np.ndarray | None],
    margin: float = WRIST_MARGIN,
) -> tuple[np.ndarray, np.ndarray]:
    """Pseudo-labels whose hands stop at the wrist, as human hand masks do (beyond [C]).

    Everything that moves with a hand is its responsibility, the forearm included; the hand masks of
    real-image labels (EgoHOS, 100DOH, HOF) stop at the wrist. For each hand given as 21 MediaPipe
    keypoints, its :func:`forearm_cut` (the forearm band past the wrist, ``margin`` hand lengths
    beyond it) becomes background: the hand's responsibility there moves to channel 0 and the person
    mask is cleared there. Other hands' channels and hands without keypoints are left as they are.

    Args:
        responsibility: ``(N+1, H, W)`` float responsibilities, channel 0 background, summing to 1.
        person: ``(H, W)`` {0, 1} person mask.
        hand_points: ``N`` arrays ``(21, 2)`` of ``(x, y)`` keypoints; None (or other points) for a hand
            left as it is.
        margin: reach past the wrist, in hand lengths.

    Returns:
        ``(responsibility float32, person uint8)``, new arrays (the inputs themselves, unchecked, when
        no hand has points); the responsibilities still sum to 1.

    Raises:
        ValueError: shapes that do not match, or not one entry of ``hand_points`` per hand channel.
    """
    if all(p is None for p in hand_points):  # the common case when loading: no hand is marked
        return responsibility, person
    s = check_shape(responsibility, "C,H,W", "responsibility")
    check_shape(person, f"{s['H']},{s['W']}", "person")
    if len(hand_points) != s["C"] - 1:
        raise ValueError(f"{len(hand_points)} hands for {s['C'] - 1} responsibility channels")
    r = np.array(responsibility, np.float32)
    out = (np.asarray(person) != 0).astype(np.uint8)
    size = (s["W"], s["H"])
    for k, pts in enumerate(hand_points):
        cut = None if pts is None else forearm_cut(pts, size, margin)
        if cut is None:
            continue
        r[0][cut] += r[k + 1][cut]
        r[k + 1][cut] = 0
        out[cut] = 0
    return r, out


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


def grabcut_hand_mask(
    image: np.ndarray,
    points: np.ndarray,
    reach: float = GRABCUT_REACH,
    iterations: int = GRABCUT_ITERATIONS,
    fallback_dilation: float = HULL_DILATION,
    prior: np.ndarray | None = None,
) -> np.ndarray:
    """One hand's mask by GrabCut on the frame, seeded by the hand's points (beyond [C]).

    Seeds: sure hand on the points (for 21 MediaPipe keypoints, on the bones between them:
    :data:`HAND_BONES`), probably hand inside the points' convex hull, probably background in
    the hull dilated by ``reach`` of the hand's size, sure background beyond. GrabCut's colour
    models then move the edge to where the colours change, so the mask follows the hand's outline
    instead of the hull's (on the real image sets it scores far above the hull: README). It runs
    on the box around the reach only. When GrabCut fails or keeps less than
    :data:`GRABCUT_MIN_FRACTION` of the hull (hand and background alike in colour), the hull
    dilated by ``fallback_dilation`` is returned, as :func:`hull_mask` gives it.

    Args:
        image: ``(H, W, 3)`` uint8 RGB frame.
        points: ``(N, 2)`` ``(x, y)`` points of one hand (non-finite rows ignored).
        reach: the probably-background ring, fraction of the hand's size.
        iterations: GrabCut iterations.
        fallback_dilation: the hull's dilation when GrabCut fails.
        prior: ``(H, W)`` a mask that says where the hand probably is (e.g. a network's hand mask,
            :func:`cohesiv.model.support.refine_with_grabcut`); inside the reach it joins the hull as
            probable hand. None: the hull alone.

    Returns:
        ``(H, W)`` uint8 {0, 1}; empty for a hand without points.

    Raises:
        ValueError: ``image`` is not ``(H, W, 3)`` uint8.
    """
    check_shape(image, "H,W,3", "image")
    if np.asarray(image).dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {np.asarray(image).dtype}")
    h, w = image.shape[:2]
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    keypoints = len(pts) == 21 and np.isfinite(pts).all()
    pts = pts[np.isfinite(pts).all(1)]
    out = np.zeros((h, w), np.uint8)
    if not len(pts):
        return out
    outer = hull_mask([pts], (w, h), dilation=reach)
    ys, xs = np.nonzero(outer)
    if not len(xs):
        return out
    pad = 2  # a ring of sure background around the reach, inside the image
    x0, y0 = max(int(xs.min()) - pad, 0), max(int(ys.min()) - pad, 0)
    x1, y1 = min(int(xs.max()) + pad + 1, w), min(int(ys.max()) + pad + 1, h)
    size = (x1 - x0, y1 - y0)
    local = pts - (x0, y0)
    seeds = np.full((size[1], size[0]), cv2.GC_BGD, np.uint8)
    seeds[outer[y0:y1, x0:x1] > 0] = cv2.GC_PR_BGD
    hull = hull_mask([local], size, dilation=0.0, min_radius=0)
    seeds[hull > 0] = cv2.GC_PR_FGD
    if prior is not None:
        check_shape(prior, f"{h},{w}", "prior")
        seeds[(np.asarray(prior)[y0:y1, x0:x1] > 0) & (outer[y0:y1, x0:x1] > 0)] = cv2.GC_PR_FGD
    extent = float((pts.max(0) - pts.min(0)).max())
    sure = np.zeros_like(seeds)
    p = np.round(local).astype(np.int32)
    if keypoints:
        thick = max(1, int(round(0.03 * extent)))
        for a, b in HAND_BONES:
            cv2.line(sure, tuple(int(v) for v in p[a]), tuple(int(v) for v in p[b]), 1, thick)
    else:
        for q in p:
            cv2.circle(sure, (int(q[0]), int(q[1])), max(1, int(round(0.02 * extent))), 1, -1)
    seeds[sure > 0] = cv2.GC_FGD
    bgr = np.ascontiguousarray(np.asarray(image)[y0:y1, x0:x1, ::-1])
    ok = (seeds == cv2.GC_BGD).any() or (seeds == cv2.GC_PR_BGD).any()
    if ok:
        try:
            bg, fg = np.zeros((1, 65)), np.zeros((1, 65))
            cv2.grabCut(bgr, seeds, None, bg, fg, iterations, cv2.GC_INIT_WITH_MASK)
        except cv2.error:  # e.g. too few pixels of one kind for its colour model
            ok = False
    cut = ((seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)).astype(np.uint8)
    if not ok or cut.sum() < GRABCUT_MIN_FRACTION * max(int(hull.sum()), 1):
        return hull_mask([pts], (w, h), dilation=fallback_dilation)
    out[y0:y1, x0:x1] = cut
    return out


def person_mask(
    hand_points: Sequence[np.ndarray],
    size: tuple[int, int],
    given: np.ndarray | None = None,
    dilation: float = HULL_DILATION,
    forearm: bool = False,
    rule: str = "hull",
    image: np.ndarray | None = None,
) -> np.ndarray:
    """Person (hand/arm) mask: a given mask if there is one, else from the hands' points.

    Args:
        hand_points: arrays ``(N_k, 2)`` of ``(x, y)`` pixels, one per hand.
        size: ``(W, H)`` of the image.
        given: optional ``(H, W)`` mask (any non-zero value is person), e.g. read from a
            person-mask folder.
        dilation: see :func:`hull_mask` (with ``rule="grabcut"``: its fallback).
        forearm: see :func:`hull_mask` (the band is added to either rule's hands).
        rule: ``"hull"``: the dilated hulls of the hands ([C]); ``"grabcut"``: each hand cut out of
            ``image`` by :func:`grabcut_hand_mask`, seeded by its points.
        image: ``(H, W, 3)`` uint8 RGB frame, needed by ``rule="grabcut"``.

    Returns:
        ``(H, W)`` uint8 {0, 1}.

    Raises:
        ValueError: ``given`` does not have shape ``(H, W)``, an unknown ``rule``, or
            ``rule="grabcut"`` without an ``(H, W, 3)`` image.
    """
    w, h = size
    if given is not None:
        check_shape(given, f"{h},{w}", "person mask")
        return (np.asarray(given) != 0).astype(np.uint8)
    if rule == "hull":
        return hull_mask(hand_points, size, dilation=dilation, forearm=forearm)
    if rule != "grabcut":
        raise ValueError(f"person-mask rule must be 'hull' or 'grabcut', got {rule!r}")
    if image is None:
        raise ValueError("the grabcut person mask needs the frame (image=)")
    check_shape(image, f"{h},{w},3", "image")
    out = np.zeros((h, w), np.uint8)
    for pts in hand_points:
        out |= grabcut_hand_mask(image, pts, fallback_dilation=dilation)
        band = forearm_polygon(pts, size) if forearm else None
        if band is not None:
            cv2.fillConvexPoly(out, band, 1)
    return out


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
