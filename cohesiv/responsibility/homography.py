"""Homography fitting from hand points and flow, with explicit degeneracy checks.

Convention: points are ``(x, y)`` pixels with the origin at the centre of the top-left pixel;
flow is ``(2, H, W)`` float32 (channel 0 = dx to the right, channel 1 = dy down) from frame t to
frame t+k. A homography ``M`` maps homogeneous points of frame t to frame t+k:
``x' = proj(M [x, y, 1]^T)``.
"""

from __future__ import annotations

import math

import numpy as np

from cohesiv._checks import check_shape

#: Methods accepted by :func:`fit_homography`.
METHODS = ("magsac", "dlt")

#: Reasons a fit is refused (the keys of the ``dropped`` counters in the info dicts).
TOO_FEW_POINTS = "too_few_points"
COLLINEAR = "collinear"
FIT_FAILED = "fit_failed"
DISTORTING = "distorting"

#: Smallest spread (pixels, standard deviation along the minor axis) of usable points.
MIN_SPREAD_PX = 0.5
#: Smallest ratio of minor to major spread of usable points (below: collinear).
MIN_SPREAD_RATIO = 0.02
#: Largest local area change (and its inverse) a hand may show between two frames.
MAX_AREA_CHANGE = 4.0
#: Largest anisotropy (ratio of the local Jacobian's singular values) of an accepted fit.
MAX_ANISOTROPY = 4.0


def sample_bilinear(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Sample a ``(C, H, W)`` array at sub-pixel points with bilinear interpolation.

    Args:
        image: ``(C, H, W)`` array (e.g. flow, ``C = 2``).
        points: ``(N, 2)`` ``(x, y)`` pixels; must lie inside ``[0, W-1] x [0, H-1]``
            (callers drop the others first).

    Returns:
        ``(N, C)`` float32 samples.

    Convention:
        Pixel centres are at integer coordinates (``align_corners=True`` in torch terms).
    """
    _, h, w = image.shape
    return _interpolate(image, *_neighbours(points, h, w))


def _neighbours(points: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear neighbours of ``(N, 2)`` points: rows ``(4, N)``, columns ``(4, N)``, ``fx``, ``fy``."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    x = np.clip(pts[:, 0], 0, w - 1)
    y = np.clip(pts[:, 1], 0, h - 1)
    x0 = np.minimum(np.floor(x).astype(np.int64), max(w - 2, 0))
    y0 = np.minimum(np.floor(y).astype(np.int64), max(h - 2, 0))
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    return np.stack([y0, y0, y1, y1]), np.stack([x0, x1, x0, x1]), x - x0, y - y0


def _interpolate(image: np.ndarray, rows: np.ndarray, cols: np.ndarray, fx: np.ndarray, fy: np.ndarray):
    """``(N, C)`` float32 bilinear samples of ``(C, H, W)`` ``image`` from :func:`_neighbours`."""
    # the four neighbours in one gather: (C, 4, N), cast to float64 like the weights
    v = np.asarray(image)[:, rows, cols].astype(np.float64)
    gx = 1 - fx
    out = (v[:, 0] * gx + v[:, 1] * fx) * (1 - fy) + (v[:, 2] * gx + v[:, 3] * fx) * fy
    return out.T.astype(np.float32)


def usable_point_pairs(
    points: np.ndarray, flow: np.ndarray, valid: np.ndarray | None = None, return_index: bool = False
) -> tuple[np.ndarray, ...]:
    """Return the point correspondences ``P -> P + O(P)`` usable for a homography fit.

    Points outside the image, or on pixels where ``valid`` is 0 at any of the four bilinear
    neighbours, are dropped.

    Args:
        points: ``(N, 2)`` ``(x, y)`` pixels in frame t.
        flow: ``(2, H, W)`` float32 flow from frame t to frame t+k.
        valid: optional ``(H, W)`` bool/{0, 1} forward–backward validity of ``flow``.
        return_index: also return the indices in ``points`` of the ``M`` kept points (callers
            pass the points of several hands at once and split the pairs by these).

    Returns:
        ``(src (M, 2), dst (M, 2))`` float64 with ``M <= N`` (in the order of ``points``), and
        ``index (M,)`` int64 with ``return_index``.
    """
    check_shape(flow, "2,H,W", "flow")
    _, h, w = flow.shape
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    # inside the image (NaN and inf fail the comparisons)
    index = np.flatnonzero((pts >= 0).all(1) & (pts <= (w - 1, h - 1)).all(1))
    rows, cols, fx, fy = _neighbours(pts[index], h, w)
    if valid is not None and len(index):
        v = _interpolate(np.asarray(valid)[None], rows, cols, fx, fy)[:, 0]  # gathers 4N values only
        keep = v > 0.999  # all four neighbours valid
        index, rows, cols, fx, fy = index[keep], rows[:, keep], cols[:, keep], fx[keep], fy[keep]
    if not len(index):
        empty = (np.zeros((0, 2)), np.zeros((0, 2)))
        return (*empty, index) if return_index else empty
    o = _interpolate(flow, rows, cols, fx, fy).astype(np.float64)
    ok = np.isfinite(o).all(1)
    src, index = pts[index[ok]], index[ok]
    pairs = (src, src + o[ok])
    return (*pairs, index) if return_index else pairs


def point_spread(points: np.ndarray) -> tuple[float, float]:
    """Return the standard deviations of ``(N, 2)`` points along their major and minor axes."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) < 2:
        return 0.0, 0.0
    # eigenvalues of the 2x2 covariance in closed form (the squared singular values / N)
    d = pts - pts.mean(0)
    (a, b), (_, c) = (d.T @ d / len(pts)).tolist()
    major = (a + c) / 2 + math.hypot((a - c) / 2, b)
    minor = (a * c - b * b) / major if major > 0 else 0.0
    return math.sqrt(max(major, 0.0)), math.sqrt(max(minor, 0.0))


def _apply(m: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q = pts @ m[:, :2].T + m[:, 2]
    return q[:, :2] / q[:, 2:], q[:, 2]


def _singular_values_2x2(m: np.ndarray) -> tuple[float, float]:
    """Singular values (largest first) of a 2x2 matrix in closed form (no LAPACK call)."""
    (a, b), (c, d) = m.tolist()
    q = math.hypot((a + d) / 2, (c - b) / 2)
    r = math.hypot((a - d) / 2, (c + b) / 2)
    return q + r, abs(q - r)


def check_homography(m: np.ndarray | None, src: np.ndarray) -> str | None:
    """Return why a fitted homography is unusable for the hand with points ``src``, or None.

    A fit is refused when it is missing or non-finite (:data:`FIT_FAILED`), maps a hand point
    to or behind the line at infinity, or changes the local area by more than
    :data:`MAX_AREA_CHANGE` (either way) or the aspect by more than :data:`MAX_ANISOTROPY`
    at the centroid of the points (:data:`DISTORTING`).
    """
    if m is None or not np.isfinite(m).all() or abs(m[2, 2]) < 1e-12:
        return FIT_FAILED
    m = m / m[2, 2]
    _, wq = _apply(m, src)
    if (wq <= 1e-6).any():
        return DISTORTING
    c = src.mean(0)
    wc = m[2, 0] * c[0] + m[2, 1] * c[1] + 1.0
    pc = (m[:2, :2] @ c + m[:2, 2]) / wc
    jac = (m[:2, :2] - np.outer(pc, m[2, :2])) / wc  # d proj / d x at the centroid
    s0, s1 = _singular_values_2x2(jac)
    det = s0 * s1
    if not (math.isfinite(s0) and math.isfinite(s1)) or s1 <= 1e-9:
        return DISTORTING
    if det > MAX_AREA_CHANGE or det < 1.0 / MAX_AREA_CHANGE or s0 / s1 > MAX_ANISOTROPY:
        return DISTORTING
    return None


def fit_homography_checked(
    src: np.ndarray, dst: np.ndarray, method: str = "magsac", threshold: float = 1.5
) -> tuple[np.ndarray | None, str | None]:
    """Fit a homography ``src -> dst`` and say why not when it cannot be trusted.

    Args:
        src: ``(N, 2)`` ``(x, y)`` pixels in frame t.
        dst: ``(N, 2)`` the same points in frame t+k.
        method: ``"magsac"`` (OpenCV USAC-MAGSAC++, robust, default) or ``"dlt"``
            (kornia's least-squares DLT on all points, not robust).
        threshold: inlier threshold in pixels for ``"magsac"``.

    Returns:
        ``(M, None)`` with ``M`` ``(3, 3)`` float64 normalised to ``M[2, 2] = 1``, or
        ``(None, reason)`` with reason one of :data:`TOO_FEW_POINTS`, :data:`COLLINEAR`,
        :data:`FIT_FAILED`, :data:`DISTORTING`.

    Raises:
        ValueError: unknown ``method`` or mismatched shapes.
    """
    if method not in METHODS:
        raise ValueError(f"homography method must be one of {METHODS}, got {method!r}")
    src = np.asarray(src, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    if src.shape != dst.shape:
        raise ValueError(f"src and dst must have the same shape, got {src.shape} and {dst.shape}")
    if len(src) < 4:
        return None, TOO_FEW_POINTS
    for p in (src, dst):
        major, minor = point_spread(p)
        if minor < MIN_SPREAD_PX or minor < MIN_SPREAD_RATIO * major:
            return None, COLLINEAR
    if method == "magsac":
        import cv2

        m, inl = cv2.findHomography(
            src.astype(np.float32), dst.astype(np.float32), cv2.USAC_MAGSAC, threshold, maxIters=1000
        )
        if m is None or inl is None or int(inl.sum()) < 4:
            return None, FIT_FAILED
    else:
        import torch
        from kornia.geometry import find_homography_dlt

        with torch.no_grad():
            m = (
                find_homography_dlt(torch.from_numpy(src)[None], torch.from_numpy(dst)[None])[0]
                .double()
                .numpy()
            )
    reason = check_homography(m, src)
    if reason is not None:
        return None, reason
    return m / m[2, 2], None


def fit_homography(
    src: np.ndarray, dst: np.ndarray, method: str = "magsac", threshold: float = 1.5
) -> np.ndarray | None:
    """Fit a homography mapping ``src`` points to ``dst`` points; None when degenerate.

    See :func:`fit_homography_checked` (same arguments) for the reasons a fit is refused
    (fewer than 4 points, collinear points, failed, singular or wildly distorting fit).

    Args:
        src: ``(N, 2)`` ``(x, y)`` pixels in frame t.
        dst: ``(N, 2)`` the same points in frame t+k.
        method: ``"magsac"`` (OpenCV USAC-MAGSAC++, default) or ``"dlt"`` (kornia DLT).
        threshold: inlier threshold in pixels for ``"magsac"``.

    Returns:
        ``(3, 3)`` float64 with ``M[2, 2] = 1``, or None.
    """
    return fit_homography_checked(src, dst, method=method, threshold=threshold)[0]
