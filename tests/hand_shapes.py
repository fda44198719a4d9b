"""Hand keypoints with known geometry, shared by the tests of the wrist cut and the hand support."""

from __future__ import annotations

import numpy as np


def hand_up(wrist=(60.0, 70.0), size=40.0) -> np.ndarray:
    """21 MediaPipe-ordered keypoints ``(21, 2)`` of a hand pointing up: wrist at the bottom, fingers above it."""
    pts = [np.asarray(wrist, np.float64)]
    for f in range(5):
        base = pts[0] + (0.0, -0.45 * size) + ((f - 2) * 0.15 * size, 0.0)
        for j in range(1, 5):
            pts.append(base + (0.0, -0.13 * size * (j - 1)))
    return np.array(pts)
