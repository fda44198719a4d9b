"""DIS optical flow (OpenCV ``DISOpticalFlow``): fast, no weights, the default flow method.

Kroeger et al., "Fast Optical Flow using Dense Inverse Search", ECCV 2016. OpenCV ships three
presets; on this project's shared 2-core CPU a 480x360 pair takes about 2.5 ms (ultrafast),
9-12 ms (fast) and 20-40 ms (medium, depending on load); ``bench/flow.py`` measures their speed
and end-point error. The default, ``ultrafast-fs1`` (:data:`DIS_TUNED`), is chosen by
``bench/flow_labels.py``: the best pseudo-labels at a labelling speed close to ``fast``'s.
"""

from __future__ import annotations

import cv2
import numpy as np

from cohesiv.config import DEFAULT_DIS_PRESET, DIS_PRESET_NAMES

#: OpenCV's preset name -> OpenCV constant (``cv2.DISOPTICAL_FLOW_PRESET_<NAME>``).
DIS_PRESETS = {
    name: getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{name.upper()}") for name in ("ultrafast", "fast", "medium")
}

#: Setters of the DIS parameters that :class:`DISFlow` takes by keyword.
DIS_PARAMS = {
    "finest_scale": "setFinestScale",
    "patch_size": "setPatchSize",
    "patch_stride": "setPatchStride",
    "grad_descent_iters": "setGradientDescentIterations",
    "var_refine_iters": "setVariationalRefinementIterations",
    "spatial_propagation": "setUseSpatialPropagation",
    "mean_normalization": "setUseMeanNormalization",
}

#: Named parameter sets beyond OpenCV's three presets (``base`` preset, then overrides; ``scale``
#: < 1 computes the flow on frames resized by that factor). Chosen by ``bench/flow_labels.py``.
DIS_TUNED: dict[str, dict] = {
    # OpenCV's ultrafast / fast, but down to half resolution (finest scale 1) instead of a quarter:
    # on synthetic clips the pseudo-labels' All mIoU rises by ~10 points (bench/flow_labels.py)
    "ultrafast-fs1": {"base": "ultrafast", "finest_scale": 1},
    "fast-fs1": {"base": "fast", "finest_scale": 1},
}

__all__ = ["DEFAULT_DIS_PRESET", "DIS_PARAMS", "DIS_PRESETS", "DIS_TUNED", "DISFlow", "to_grey"]


def to_grey(image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Return a ``(H, W)`` uint8 grey image from ``(H, W, 3)`` uint8 RGB (``(H, W)`` is returned as is).

    ``out``, when given with the right shape, receives the result (no allocation).
    """
    if image.ndim == 2:
        return image
    if out is not None and out.shape == image.shape[:2]:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY, dst=out)
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


class DISFlow:
    """A reusable DIS flow estimator (the OpenCV object is created once and kept).

    Args:
        preset: ``"ultrafast"``, ``"fast"``, ``"medium"`` or a name in :data:`DIS_TUNED`.
        scale: compute the flow on frames resized by this factor (``(0, 1]``), then resize it back
            to full size (bilinear) and multiply it by ``1 / scale``.
        **params: DIS parameters overriding the preset's (keys of :data:`DIS_PARAMS`, e.g.
            ``finest_scale=1``, ``var_refine_iters=10``).

    Example:
        >>> dis = DISFlow("fast")                     # doctest: +SKIP
        >>> flow = dis(frame_a, frame_b)              # (2, H, W) float32, a -> b
    """

    def __init__(self, preset: str = DEFAULT_DIS_PRESET, *, scale: float = 1.0, **params) -> None:
        if preset not in DIS_PRESET_NAMES:
            raise ValueError(f"unknown DIS preset {preset!r}; choose one of {', '.join(DIS_PRESET_NAMES)}")
        tuned = dict(DIS_TUNED.get(preset, {}))
        base = tuned.pop("base", preset)
        scale = float(tuned.pop("scale", 1.0)) * float(scale)
        if not 0 < scale <= 1:
            raise ValueError(f"scale must be in (0, 1], got {scale}")
        params = {**tuned, **params}
        bad = sorted(set(params) - set(DIS_PARAMS))
        if bad:
            raise ValueError(f"unknown DIS parameter {bad[0]!r}; choose among {', '.join(DIS_PARAMS)}")
        self.preset = preset
        self.scale = scale
        self.params = params
        self._dis = cv2.DISOpticalFlow_create(DIS_PRESETS[base])
        for k, v in params.items():
            getattr(self._dis, DIS_PARAMS[k])(v)
        # grey buffers reused from call to call: a fresh 480x360 array is above glibc's mmap
        # threshold, so allocating one per call costs page faults (measurable next to ultrafast DIS)
        self._grey: list[np.ndarray | None] = [None, None]

    def __call__(self, frame_a: np.ndarray, frame_b: np.ndarray) -> np.ndarray:
        """Flow from ``frame_a`` to ``frame_b``.

        Args:
            frame_a: ``(H, W, 3)`` uint8 RGB (or ``(H, W)`` uint8 grey).
            frame_b: same shape as ``frame_a``.

        Returns:
            ``(2, H, W)`` float32 in pixels: channel 0 = dx (right), channel 1 = dy (down), such
            that ``frame_a[y, x] ~ frame_b[y + dy, x + dx]``. The array is a channel-first view of
            OpenCV's ``(H, W, 2)`` output (no copy); call ``np.ascontiguousarray`` if you need one.
        """
        grey_a = self._grey[0] = to_grey(frame_a, self._grey[0])
        grey_b = self._grey[1] = to_grey(frame_b, self._grey[1])
        if self.scale == 1.0:
            return self._dis.calc(grey_a, grey_b, None).transpose(2, 0, 1)
        h, w = grey_a.shape
        small = (max(8, round(w * self.scale)), max(8, round(h * self.scale)))
        sa = cv2.resize(grey_a, small, interpolation=cv2.INTER_AREA)
        sb = cv2.resize(grey_b, small, interpolation=cv2.INTER_AREA)
        flow = self._dis.calc(sa, sb, None)
        # pixel centres: x_full = (x_small + 0.5) / s - 0.5, so displacements scale by 1 / s per axis
        flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
        flow[..., 0] *= np.float32(w / small[0])
        flow[..., 1] *= np.float32(h / small[1])
        return flow.transpose(2, 0, 1)
