"""Hand points from a hand box: a regular grid inside it."""

from __future__ import annotations

import numpy as np


def box_grid_points(box, n: int = 5, margin: float = 0.15) -> np.ndarray:
    """Return an ``n*n`` grid of points inside ``box``.

    Args:
        box: ``(x1, y1, x2, y2)`` pixels (origin at the centre of the top-left pixel).
        n: points per side.
        margin: fraction of the box width/height left free at each border, so that points
            fall on the hand rather than on the box's corners.

    Returns:
        ``(n*n, 2)`` float32 ``(x, y)`` points.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    xs = np.linspace(x1 + margin * (x2 - x1), x2 - margin * (x2 - x1), n)
    ys = np.linspace(y1 + margin * (y2 - y1), y2 - margin * (y2 - y1), n)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32)
