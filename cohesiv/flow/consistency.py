"""Forward-backward consistency: where is a flow field trustworthy?

The standard check (Sundaram, Brox & Keutzer ECCV 2010; UnFlow, Meister et al. AAAI 2018):
a pixel ``x`` of frame t is valid when following the forward flow and then the backward flow
comes back to ``x``,

    |F_fw(x) + F_bw(x + F_fw(x))|^2 < alpha * (|F_fw(x)|^2 + |F_bw(x + F_fw(x))|^2) + beta,

and ``x + F_fw(x)`` lies inside frame s. It fails at occlusions (pixels of t hidden in s) and
where either flow is wrong.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from cohesiv._checks import check_shape


def warp_backward(flow_bw: np.ndarray, flow_fw: np.ndarray) -> np.ndarray:
    """Sample ``flow_bw`` at ``x + flow_fw(x)`` (bilinear, edge-replicated).

    Args:
        flow_bw: ``(2, H, W)`` float32, flow from frame s to frame t.
        flow_fw: ``(2, H, W)`` float32, flow from frame t to frame s.

    Returns:
        ``(2, H, W)`` float32, ``flow_bw(x + flow_fw(x))`` for every pixel ``x`` of frame t.

    Convention:
        Pixel ``(x, y)`` has its origin at the centre of the top-left pixel (OpenCV's ``remap``).
    """
    _, h, w = flow_fw.shape
    map_x, map_y = _target_maps(flow_fw)
    return np.stack([_remap(flow_bw[c], map_x, map_y) for c in range(2)])


@functools.lru_cache(maxsize=4)
def pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(x, y)``, each ``(H, W)`` float32, read-only, built once per size.

    ``x[i, j] = j`` and ``y[i, j] = i`` (origin at the centre of the top-left pixel). Adding a
    flow to them is one contiguous pass, several times faster than broadcasting a row and a
    column.
    """
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    xs.flags.writeable = False
    ys.flags.writeable = False
    return xs, ys


def _target_maps(flow_fw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x + dx`` and ``y + dy`` per pixel, float32 ``(H, W)`` each."""
    _, h, w = flow_fw.shape
    gx, gy = pixel_grid(h, w)
    return np.add(flow_fw[0], gx), np.add(flow_fw[1], gy)


def _remap(channel: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    # One channel at a time: OpenCV's single-channel float remap is exact bilinear, while its
    # 2-channel path was seen to be off by up to 0.3 px here (and is slower).
    src = np.ascontiguousarray(channel, dtype=np.float32)
    return cv2.remap(src, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def forward_backward_valid(
    flow_fw: np.ndarray, flow_bw: np.ndarray, alpha: float = 0.01, beta: float = 0.5
) -> np.ndarray:
    """Valid mask of a forward flow from the forward-backward consistency check.

    Args:
        flow_fw: ``(2, H, W)`` or ``(B, 2, H, W)`` float32, flow t -> s (channel 0 = dx, 1 = dy).
        flow_bw: same shape, flow s -> t.
        alpha: relative tolerance (fraction of the squared flow magnitudes).
        beta: absolute tolerance in squared pixels.

    Returns:
        ``(H, W)`` (or ``(B, H, W)``) bool, True where the forward flow passes
        ``|F_fw(x) + F_bw(x + F_fw(x))|^2 < alpha (|F_fw(x)|^2 + |F_bw(x + F_fw(x))|^2) + beta``
        and ``x + F_fw(x)`` lies inside the image (within half a pixel of the border pixels'
        centres). False marks occlusions (pixels of t not visible in s) and flow failures.

    Raises:
        ValueError: shapes do not match.
    """
    flow_fw = np.asarray(flow_fw, dtype=np.float32)
    flow_bw = np.asarray(flow_bw, dtype=np.float32)
    if flow_fw.ndim == 4:
        check_shape(flow_fw, "B,2,H,W", "flow_fw")
        check_shape(flow_bw, f"{flow_fw.shape[0]},2,{flow_fw.shape[2]},{flow_fw.shape[3]}", "flow_bw")
        return np.stack([forward_backward_valid(f, b, alpha, beta) for f, b in zip(flow_fw, flow_bw)])
    size = check_shape(flow_fw, "2,H,W", "flow_fw")
    check_shape(flow_bw, f"2,{size['H']},{size['W']}", "flow_bw")
    h, w = size["H"], size["W"]
    fx, fy = flow_fw[0], flow_fw[1]
    map_x, map_y = _target_maps(flow_fw)
    bx = _remap(flow_bw[0], map_x, map_y)
    by = _remap(flow_bw[1], map_x, map_y)
    # element-wise, in place and without temporaries: this runs for every frame pair of
    # pseudo-labelling (the same operations in the same order as the formula above)
    tmp = np.multiply(fx, fx)
    bound = np.multiply(fy, fy)
    bound += tmp
    np.multiply(bx, bx, out=tmp)
    bound += tmp
    np.multiply(by, by, out=tmp)
    bound += tmp
    bound *= np.float32(alpha)
    bound += np.float32(beta)
    bx += fx  # bx, by become the round-trip error
    by += fy
    bx *= bx
    by *= by
    bx += by
    ok = np.less(bx, bound)
    ok &= map_x >= -0.5
    ok &= map_x <= w - 0.5
    ok &= map_y >= -0.5
    ok &= map_y <= h - 0.5
    return ok
