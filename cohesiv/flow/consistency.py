"""Forward-backward consistency: where is a flow field trustworthy?

The standard check (Sundaram, Brox & Keutzer ECCV 2010; UnFlow, Meister et al. AAAI 2018):
a pixel ``x`` of frame t is valid when following the forward flow and then the backward flow
comes back to ``x``,

    |F_fw(x) + F_bw(x + F_fw(x))|^2 < alpha * (|F_fw(x)|^2 + |F_bw(x + F_fw(x))|^2) + beta,

and ``x + F_fw(x)`` lies inside frame s. It fails at occlusions (pixels of t hidden in s) and
where either flow is wrong.
"""

from __future__ import annotations

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
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x = gx + flow_fw[0]
    map_y = gy + flow_fw[1]
    bw = np.ascontiguousarray(flow_bw.transpose(1, 2, 0), dtype=np.float32)
    out = cv2.remap(bw, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.transpose(2, 0, 1)


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
    bw = warp_backward(flow_bw, flow_fw)
    diff = ((flow_fw + bw) ** 2).sum(0)
    bound = alpha * ((flow_fw**2).sum(0) + (bw**2).sum(0)) + beta
    xs = np.arange(w, dtype=np.float32)[None, :] + flow_fw[0]
    ys = np.arange(h, dtype=np.float32)[:, None] + flow_fw[1]
    inside = (xs >= -0.5) & (xs <= w - 0.5) & (ys >= -0.5) & (ys <= h - 0.5)
    return (diff < bound) & inside
