"""Responsibility maps [COHESIV Eq. 1-2]: which hand (or the background) explains each pixel's flow.

For hand k with points P in frame t, a homography M_k is fitted from P to P + O(P) (O = flow
from t to t+k, sampled bilinearly). Each pixel x gets distances

- ``d_k(x) = ||x + O(x) - proj(M_k x~)||`` for every fitted hand,
- ``d_BG(x) = ||O(x)||`` (``background="static"``, the paper's model) or
  ``||x + O(x) - proj(M_cam x~)||`` (``background="homography"``: camera motion fitted robustly on
  pixels away from the hands),

and ``R = softmax(-d / t)`` over {background, hands} with temperature ``t`` (2 px by default).
The maps of several frame offsets (±1, ±2, ±3 by default) are averaged.

Conventions: flow ``(2, H, W)`` float32, pixels, channel 0 = dx (right), 1 = dy (down), from
frame t to frame t+k (negative k: flow from t to t-|k|). Points ``(x, y)`` pixels with the
origin at the centre of the top-left pixel. Responsibilities ``(N+1, H, W)`` float32, channel 0
= background, channel k = hand k, summing to 1 over channels. Masks ``(H, W)`` {0, 1}.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from cohesiv._checks import check_shape
from cohesiv.defaults import RESPONSIBILITY_TEMPERATURE
from cohesiv.flow.consistency import pixel_grid
from cohesiv.responsibility.homography import fit_homography_checked, usable_point_pairs
from cohesiv.responsibility.masks import hull_mask

if TYPE_CHECKING:
    import torch

BACKGROUNDS = ("static", "homography")
#: Distances are clamped to this many pixels (keeps softmax finite where a fit is wild).
MAX_DISTANCE = 1e4
#: Pixels sampled (at most) to fit the camera homography.
CAMERA_SAMPLES = 1500
#: Smallest number of background pixels for a camera fit.
CAMERA_MIN_POINTS = 50
#: Pixels per strip of the distance computation (5 float32 temporaries of this size).
STRIP_PIXELS = 20_000


def _strip_rows(h: int, w: int) -> int:
    """Rows per strip of about :data:`STRIP_PIXELS` pixels."""
    return max(1, min(h, STRIP_PIXELS // max(w, 1)))


def _safe_rows(mats: np.ndarray, h: int, w: int) -> list[bool]:
    """Per homography: is ``w(x) = M[2] x~`` positive on the whole image (no division check needed)?"""
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], np.float64)
    # w(x) is linear: positive at the four corners means positive on the whole image
    return [bool(((corners @ m[2]) > 1e-6).all()) for m in mats]


def _distance_rows(
    flow: np.ndarray,
    mats: np.ndarray,
    safe: Sequence[bool],
    r0: int,
    r1: int,
    out: np.ndarray,
    buf: np.ndarray,
    clamp: bool,
) -> None:
    """Distances of rows ``r0:r1`` into ``out`` ``(K, r1 - r0, W)``; ``buf`` ``(5, >= r1 - r0, W)`` scratch."""
    _, h, w = flow.shape
    gx, gy = pixel_grid(h, w)
    tx, ty, px, py, wz = buf[:, : r1 - r0]
    x, y = gx[r0:r1], gy[r0:r1]
    np.add(x, flow[0, r0:r1], out=tx)  # where the flow sends each pixel
    np.add(y, flow[1, r0:r1], out=ty)
    for k, m in enumerate(mats):
        # each row of M x~ is a x + b y + c: one OpenCV pass over the pixel grid
        cv2.addWeighted(x, m[2, 0], y, m[2, 1], m[2, 2], dst=wz)
        if not safe[k]:
            bad = wz <= 1e-8
            wz[bad] = 1.0
        cv2.addWeighted(x, m[0, 0], y, m[0, 1], m[0, 2], dst=px)
        np.divide(px, wz, out=px)
        np.subtract(tx, px, out=px)
        cv2.addWeighted(x, m[1, 0], y, m[1, 1], m[1, 2], dst=py)
        np.divide(py, wz, out=py)
        np.subtract(ty, py, out=py)
        px *= px  # not cv2.magnitude: its result depends on the buffers' alignment (1 ulp)
        py *= py
        px += py
        d = np.sqrt(px, out=out[k])
        if not safe[k]:
            d[bad] = MAX_DISTANCE
            np.nan_to_num(d, copy=False, nan=MAX_DISTANCE, posinf=MAX_DISTANCE)
        if clamp:
            np.minimum(d, MAX_DISTANCE, out=d)


def _distances_np(flow: np.ndarray, homographies: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``(K, H, W)`` float32 distances (see :func:`homography_distances`) into ``out``.

    Works on strips of about :data:`STRIP_PIXELS` pixels so that the temporaries stay in the
    CPU cache (on a shared machine whole-image temporaries made this ~1.7x slower).
    """
    _, h, w = flow.shape
    mats = np.asarray(homographies, np.float64)
    if out is None:
        out = np.empty((len(mats), h, w), np.float32)
    safe = _safe_rows(mats, h, w)
    rows = _strip_rows(h, w)
    buf = np.empty((5, rows, w), np.float32)
    for r0 in range(0, h, rows):
        r1 = min(r0 + rows, h)
        _distance_rows(flow, mats, safe, r0, r1, out[:, r0:r1], buf, clamp=True)
    return out


def homography_distances(
    flow: np.ndarray | torch.Tensor, homographies: np.ndarray | torch.Tensor
) -> np.ndarray | torch.Tensor:
    """Distance between where the flow sends each pixel and where each homography sends it.

    Args:
        flow: ``(2, H, W)`` float32 flow from frame t to frame t+k, pixels (NumPy or torch).
        homographies: ``(K, 3, 3)`` homographies from frame t to frame t+k.

    Returns:
        ``(K, H, W)`` float32 ``||x + O(x) - proj(M_k x~)||`` (a torch tensor on the CPU when
        ``flow`` is a tensor, else NumPy), clamped to ``[0, MAX_DISTANCE]``; pixels that a
        homography sends to or behind the line at infinity get ``MAX_DISTANCE``.

    Convention:
        Pixel ``(row i, column j)`` has coordinates ``x = j, y = i`` (pixel centres).
        Computed in NumPy and OpenCV element-wise passes over a cached pixel grid (each row
        of ``M x~`` is one ``cv2.addWeighted``), single-threaded: on a shared CPU, torch's
        thread pool made this 5-10x slower.
    """
    check_shape(flow, "2,H,W", "flow")
    check_shape(homographies, "K,3,3", "homographies")
    is_torch = hasattr(flow, "detach")  # torch is imported only when it is used
    f = flow.detach().cpu().numpy() if is_torch else np.asarray(flow)
    m = homographies.detach().cpu().numpy() if hasattr(homographies, "detach") else homographies
    d = _distances_np(np.ascontiguousarray(f, dtype=np.float32), np.asarray(m))
    if is_torch:
        import torch

        return torch.from_numpy(d)
    return d


def _softmax_terms(distances: np.ndarray, temperature: float, clamp: bool) -> tuple[np.ndarray, np.ndarray]:
    """Unnormalised softmax of ``(C, H, W)`` float32 distances: ``(e (C, H, W), total (H, W))``.

    ``softmax(-d / t) = e / total``. Fast path: ``e = exp(-d / t)`` with OpenCV's vectorised exp
    and ``total = e.sum(0)``; pixels where every term underflows (``total < 1e-30``, all
    distances above ~70 t) are recomputed stabilised by their smallest distance (after clamping
    the distances to :data:`MAX_DISTANCE` when ``clamp``). One channel gives ones.
    """
    d = distances
    if d.shape[0] == 1:
        return np.ones_like(d), np.ones_like(d[0])
    e = np.multiply(d, np.float32(-1.0 / temperature))
    flat = e.reshape(1, -1)
    cv2.exp(flat, flat)
    total = np.add(e[0], e[1])
    for c in range(2, e.shape[0]):
        total += e[c]
    if total.min() < 1e-30:  # rare: one reduction instead of a mask on every call
        tiny = total < 1e-30
        dt = np.minimum(d[:, tiny], MAX_DISTANCE) if clamp else d[:, tiny]
        et = np.exp((dt.min(0) - dt) / np.float32(temperature))
        e[:, tiny] = et
        total[tiny] = et.sum(0)
    return e, total


def soft_assignment(distances: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(-d / t)`` over the first axis of ``(C, H, W)`` float32 distances.

    Fast path: ``exp(-d / t)`` with OpenCV's vectorised exp, normalised; pixels where every term
    underflows (all distances above ~70 t) are recomputed stabilised by their minimum distance.
    """
    d = np.ascontiguousarray(distances, dtype=np.float32)
    e, total = _softmax_terms(d, temperature, clamp=False)
    np.reciprocal(total, out=total)
    e *= total
    return e


@functools.lru_cache(maxsize=4)
def _camera_grid(h: int, w: int, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns ``(h', w')`` int of the regular grid the camera fit samples (built once per size)."""
    step = max(1, int(np.sqrt(h * w / max_points)))
    ys, xs = np.mgrid[step // 2 : h : step, step // 2 : w : step]
    ys.flags.writeable = False
    xs.flags.writeable = False
    return ys, xs


def fit_camera_homography(
    flow: np.ndarray,
    exclude: np.ndarray | None = None,
    valid: np.ndarray | None = None,
    method: str = "magsac",
    threshold: float = 1.0,
    max_points: int = CAMERA_SAMPLES,
) -> tuple[np.ndarray | None, str | None]:
    """Fit the camera's motion as one homography on pixels away from the hands.

    Args:
        flow: ``(2, H, W)`` float32 flow from frame t to frame t+k.
        exclude: optional ``(H, W)`` {0, 1} mask of pixels not to use (dilated hand regions).
        valid: optional ``(H, W)`` {0, 1} forward–backward validity; invalid pixels are not used.
        method: ``"magsac"`` or ``"dlt"`` (see :func:`fit_homography_checked`).
        threshold: MAGSAC inlier threshold, pixels.
        max_points: pixels sampled on a regular grid (at most).

    Returns:
        ``(M (3, 3) float64, None)`` or ``(None, reason)``.
    """
    check_shape(flow, "2,H,W", "flow")
    _, h, w = flow.shape
    ys, xs = _camera_grid(h, w, max_points)
    keep = np.ones(ys.shape, bool)
    if exclude is not None:
        keep &= np.asarray(exclude)[ys, xs] == 0
    if valid is not None:
        keep &= np.asarray(valid)[ys, xs] != 0
    xs, ys = xs[keep], ys[keep]
    if len(xs) < CAMERA_MIN_POINTS:
        return None, "too_few_points"
    src = np.stack([xs, ys], 1).astype(np.float64)
    dst = src + flow[:, ys, xs].T.astype(np.float64)
    # fit_homography_checked already ran check_homography on these points
    return fit_homography_checked(src, dst, method=method, threshold=threshold)


def responsibility_maps(
    flow: np.ndarray,
    hand_points: Sequence[np.ndarray],
    temperature: float = RESPONSIBILITY_TEMPERATURE,
    background: str = "static",
    valid: np.ndarray | None = None,
    method: str = "magsac",
    threshold: float = 1.5,
    hand_regions: np.ndarray | None = None,
) -> tuple[np.ndarray, dict]:
    """Responsibility of each hand and of the background for every pixel's flow (one offset).

    Args:
        flow: ``(2, H, W)`` float32 flow from frame t to frame t+k (pixels).
        hand_points: N arrays ``(N_k, 2)`` of ``(x, y)`` hand points in frame t.
        temperature: softmax temperature ``t`` in pixels (2 in [C]).
        background: ``"static"`` (``d_BG = ||O(x)||``, [C]) or ``"homography"`` (camera motion
            fitted with MAGSAC on pixels outside ``hand_regions``; falls back to static,
            counted as ``info["camera_fallback"]``, when that fit fails).
        valid: optional ``(H, W)`` {0, 1} forward–backward validity of ``flow``: points on
            invalid pixels are not used for fitting. The maps are computed everywhere.
        method: homography fit, ``"magsac"`` (default) or ``"dlt"``.
        threshold: MAGSAC inlier threshold for the hand fits, pixels.
        hand_regions: ``(H, W)`` {0, 1} pixels excluded from the camera fit; by default the
            convex hulls of the hand points, dilated (see :func:`hull_mask`).

    Returns:
        ``(R, info)``: ``R`` ``(N+1, H, W)`` float32, channel 0 background, channel k hand k,
        summing to 1; a hand whose fit is refused gets an all-zero channel. ``info`` holds
        ``"fitted"`` (list of bool per hand), ``"reasons"`` (None or the drop reason per hand),
        ``"dropped"`` (``{reason: count}``), ``"homographies"`` (``(3, 3)`` or None per hand),
        ``"camera"`` (camera homography or None) and ``"camera_fallback"`` (bool).

    Raises:
        ValueError: bad shapes, ``temperature <= 0`` or unknown ``background``/``method``.
    """
    flow_np, (h, w) = _check_args(flow, valid, temperature, background)
    mats, channels, info = _offset_fits(
        flow_np, hand_points, background, valid, method, threshold, hand_regions
    )
    r = np.zeros((len(hand_points) + 1, h, w), dtype=np.float32)
    for r0, r1, e, total in _softmax_strips(flow_np, mats, info["camera"] is not None, temperature):
        np.reciprocal(total, out=total)
        e *= total
        r[channels, r0:r1] = e
    return r, info


def _check_args(flow, valid, temperature: float, background: str) -> tuple[np.ndarray, tuple[int, int]]:
    """Validate the arguments of one offset; return the flow as contiguous float32 NumPy and ``(H, W)``."""
    if background not in BACKGROUNDS:
        raise ValueError(f"background must be one of {BACKGROUNDS}, got {background!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    flow_np = flow.detach().cpu().numpy() if hasattr(flow, "detach") else np.asarray(flow)
    flow_np = np.ascontiguousarray(flow_np, dtype=np.float32)
    sizes = check_shape(flow_np, "2,H,W", "flow")
    h, w = sizes["H"], sizes["W"]
    if valid is not None:
        check_shape(valid, f"{h},{w}", "valid")
    return flow_np, (h, w)


def _offset_fits(
    flow_np: np.ndarray,
    hand_points: Sequence[np.ndarray],
    background: str,
    valid: np.ndarray | None,
    method: str,
    threshold: float,
    hand_regions: np.ndarray | None,
) -> tuple[np.ndarray, list[int], dict]:
    """The homography fits of one offset (see :func:`responsibility_maps`).

    Returns:
        ``(mats, channels, info)``: ``mats`` ``(M, 3, 3)`` float64, the camera homography (if
        fitted) then those of the fitted hands; ``channels`` the channel numbers in ``R`` of
        the softmax terms (0 for the background, ``k + 1`` for hand k); ``info`` as
        :func:`responsibility_maps` returns it.
    """
    _, h, w = flow_np.shape
    homs: list[np.ndarray | None] = []
    reasons: list[str | None] = []
    # the points of all hands sampled at once, then split by hand
    pts_all = [np.asarray(p, np.float64).reshape(-1, 2) for p in hand_points]
    hand_of = np.repeat(np.arange(len(pts_all)), [len(p) for p in pts_all])
    src_all, dst_all, index = usable_point_pairs(
        np.concatenate(pts_all) if pts_all else np.zeros((0, 2)), flow_np, valid, return_index=True
    )
    hand_of = hand_of[index]
    for k in range(len(pts_all)):
        mine = hand_of == k
        src, dst = src_all[mine], dst_all[mine]
        m, reason = fit_homography_checked(src, dst, method=method, threshold=threshold)
        homs.append(m)
        reasons.append(reason)

    camera, camera_fallback = None, False
    if background == "homography":
        if hand_regions is None:
            hand_regions = hull_mask(hand_points, (w, h))
        camera, _ = fit_camera_homography(flow_np, hand_regions, valid, method=method)
        camera_fallback = camera is None

    fitted = [m is not None for m in homs]
    mats = [camera] if camera is not None else []
    mats += [m for m in homs if m is not None]
    channels = [0] + [k + 1 for k, f in enumerate(fitted) if f]
    info = {
        "fitted": fitted,
        "reasons": reasons,
        "dropped": dict(Counter(x for x in reasons if x is not None)),
        "homographies": homs,
        "camera": camera,
        "camera_fallback": camera_fallback,
    }
    return np.asarray(mats, np.float64).reshape(-1, 3, 3), channels, info


def _softmax_strips(
    flow_np: np.ndarray, mats: np.ndarray, camera: bool, temperature: float
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Distances and unnormalised softmax of one offset, strip by strip (temporaries stay in cache).

    Yields:
        ``(r0, r1, e, total)`` for rows ``r0:r1``: ``e`` ``(C, r1 - r0, W)`` float32 with
        ``e / total`` the responsibilities of the background (``||O(x)||``, or the camera
        homography ``mats[0]`` when ``camera``) and of the other homographies of ``mats``.
    """
    _, h, w = flow_np.shape
    rows = _strip_rows(h, w)
    safe = _safe_rows(mats, h, w)
    d = np.empty((len(mats) + (0 if camera else 1), rows, w), np.float32)
    buf = np.empty((5, rows, w), np.float32)
    for r0 in range(0, h, rows):
        r1 = min(r0 + rows, h)
        ds = d[:, : r1 - r0]  # background, then the fitted hands
        # distances above MAX_DISTANCE are clamped only where the softmax needs it (_softmax_terms)
        if camera:
            _distance_rows(flow_np, mats, safe, r0, r1, ds, buf, clamp=False)
        else:
            fx, fy = flow_np[0, r0:r1], flow_np[1, r0:r1]
            np.multiply(fx, fx, out=ds[0])
            ds[0] += np.multiply(fy, fy, out=buf[0, : r1 - r0])
            np.sqrt(ds[0], out=ds[0])
            if len(mats):
                _distance_rows(flow_np, mats, safe, r0, r1, ds[1:], buf, clamp=False)
        yield (r0, r1, *_softmax_terms(ds, temperature, clamp=True))


def averaged_responsibility(
    flows: Mapping[int, np.ndarray],
    hand_points: Sequence[np.ndarray],
    valids: Mapping[int, np.ndarray] | None = None,
    temperature: float = RESPONSIBILITY_TEMPERATURE,
    background: str = "static",
    method: str = "magsac",
    threshold: float = 1.5,
    hand_regions: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Responsibility maps averaged over frame offsets ([C]: ±1, ±2, ±3).

    Frames near the ends of a clip pass only the offsets they have. Averaging is per pixel,
    weighted by forward–backward validity: ``R(x) = sum_o v_o(x) R_o(x) / sum_o v_o(x)``,
    with the plain mean where no offset is valid (and everywhere when ``valids`` is None, which
    is exactly [C]). A hand whose fit is refused at an offset contributes an all-zero channel
    for that offset (its mass goes to the background and the other hands), so every map still
    sums to 1.

    Args:
        flows: offset k -> ``(2, H, W)`` float32 flow from frame t to frame t+k.
        hand_points: N arrays ``(N_k, 2)`` of ``(x, y)`` hand points in frame t.
        valids: optional offset k -> ``(H, W)`` {0, 1} forward–backward validity of ``flows[k]``.
        temperature: softmax temperature, pixels.
        background: ``"static"`` or ``"homography"`` (see :func:`responsibility_maps`).
        method: homography fit, ``"magsac"`` or ``"dlt"``.
        threshold: MAGSAC inlier threshold, pixels.
        hand_regions: see :func:`responsibility_maps`.

    Returns:
        ``(R, valid, info)``: ``R`` ``(N+1, H, W)`` float32 summing to 1 over channels;
        ``valid`` ``(H, W)`` uint8, 1 where the pixel's flow is forward–backward consistent in at
        least half of the offsets (all ones when ``valids`` is None); ``info`` with
        ``"offsets"`` (offsets used), ``"fitted_offsets"`` (per hand, the offsets at which it
        was fitted), ``"dropped"`` (``{reason: count}`` over hands x offsets),
        ``"camera_fallbacks"`` (offsets where the camera fit fell back to static).

    Raises:
        ValueError: no flows, more than 255, or bad shapes.
    """
    if not flows:
        raise ValueError("averaged_responsibility needs at least one offset's flow")
    if len(flows) > 255:
        raise ValueError(f"averaged_responsibility takes at most 255 offsets, got {len(flows)}")
    offsets = sorted(flows)
    h, w = np.asarray(flows[offsets[0]]).shape[-2:]
    if hand_regions is None and background == "homography":
        hand_regions = hull_mask(hand_points, (w, h))
    n_off = len(offsets)
    # weight of offset k at each pixel: 1 / n_off ([C]), or 1 / (number of valid offsets) where
    # the flow is valid (uint8 mask; the plain mean where no offset is valid)
    inv: np.ndarray | np.float32 = np.float32(1.0 / n_off)
    masks: dict[int, np.ndarray | None] = {k: None for k in offsets}
    valid_out = np.ones((h, w), np.uint8)
    if valids is not None:
        vs = {k: (np.asarray(valids[k]) != 0).view(np.uint8) for k in offsets}
        count = np.zeros((h, w), np.uint8)  # valid offsets per pixel (at most 255 offsets)
        for k in offsets:
            count += vs[k]
        none = (count == 0).view(np.uint8)  # no valid offset: plain mean there
        table = np.zeros(256, np.float32)  # count -> 1 / count (1 / n_off for count 0)
        table[1 : n_off + 1] = np.float32(1.0) / np.arange(1, n_off + 1, dtype=np.float32)
        table[0] = np.float32(1.0) / np.float32(n_off)
        inv = cv2.LUT(count, table)
        masks = {k: vs[k] | none for k in offsets}
        valid_out = (count >= (n_off + 1) // 2).view(np.uint8)  # 2 count >= n_off
    acc = np.zeros((len(hand_points) + 1, h, w), np.float32)
    fitted_offsets: list[list[int]] = [[] for _ in hand_points]
    dropped: Counter = Counter()
    fallbacks = []
    for k in offsets:
        valid = None if valids is None else valids[k]
        flow_np, _ = _check_args(flows[k], valid, temperature, background)
        mats, channels, info = _offset_fits(
            flow_np, hand_points, background, valid, method, threshold, hand_regions
        )
        mask = masks[k]
        for r0, r1, e, total in _softmax_strips(flow_np, mats, info["camera"] is not None, temperature):
            inv_rows = inv if np.ndim(inv) == 0 else inv[r0:r1]
            scale = np.divide(inv_rows, total, out=total)  # weight / sum of the exp terms
            for c, ch in enumerate(channels):  # acc[ch] += e[c] * scale where the mask allows
                if mask is None:
                    cv2.accumulateProduct(e[c], scale, acc[ch, r0:r1])
                else:
                    cv2.accumulateProduct(e[c], scale, acc[ch, r0:r1], mask=mask[r0:r1])
        for j, f in enumerate(info["fitted"]):
            if f:
                fitted_offsets[j].append(k)
        dropped.update(info["dropped"])
        if info["camera_fallback"]:
            fallbacks.append(k)
    info = {
        "offsets": offsets,
        "fitted_offsets": fitted_offsets,
        "dropped": dict(dropped),
        "camera_fallbacks": fallbacks,
    }
    return acc, valid_out, info
