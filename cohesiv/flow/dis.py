"""DIS optical flow (OpenCV ``DISOpticalFlow``): fast, no weights, the default flow method.

Kroeger et al., "Fast Optical Flow using Dense Inverse Search", ECCV 2016. OpenCV ships three
presets; on this project's shared 2-core CPU a 480x360 pair takes about 2.5 ms (ultrafast),
9-12 ms (fast) and 20-40 ms (medium, depending on load); ``bench/flow.py`` measures speed and
accuracy and picks the default (``fast``: the most accurate within 15 ms).
"""

from __future__ import annotations

import cv2
import numpy as np

from cohesiv.flow.defaults import DEFAULT_DIS_PRESET, DIS_PRESET_NAMES

#: Preset name -> OpenCV constant (``cv2.DISOPTICAL_FLOW_PRESET_<NAME>``).
DIS_PRESETS = {name: getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{name.upper()}") for name in DIS_PRESET_NAMES}

__all__ = ["DEFAULT_DIS_PRESET", "DIS_PRESETS", "DISFlow", "to_grey"]


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
        preset: ``"ultrafast"``, ``"fast"`` or ``"medium"``.

    Example:
        >>> dis = DISFlow("fast")                     # doctest: +SKIP
        >>> flow = dis(frame_a, frame_b)              # (2, H, W) float32, a -> b
    """

    def __init__(self, preset: str = DEFAULT_DIS_PRESET) -> None:
        if preset not in DIS_PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r}; choose one of {', '.join(DIS_PRESETS)}")
        self.preset = preset
        self._dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
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
        flow = self._dis.calc(grey_a, grey_b, None)
        return flow.transpose(2, 0, 1)
