"""Prediction in hand windows: windows clip to the image, masks land back where the hand is."""

import numpy as np
import pytest

from cohesiv.io import Hand
from cohesiv.model.windows import MIN_WINDOW, hand_window, predict_in_hand_windows


class _DotPredictor:
    """Marks a 3x3 hand square at the query and the pixel right of it as object; records crop sizes."""

    def __init__(self):
        self.inputs = []

    def predict(self, image, queries, sides=None):
        h, w = image.shape[:2]
        self.inputs.append((h, w))
        hm = np.zeros((len(queries), h, w), np.uint8)
        om = np.zeros_like(hm)
        for k, (x, y) in enumerate(queries):
            x, y = int(round(x)), int(round(y))
            hm[k, max(0, y - 1) : y + 2, max(0, x - 1) : x + 2] = 1
            if x + 2 < w:
                om[k, y, x + 2] = 1
        return type("P", (), {"hand_masks": hm, "object_masks": om})()


def _hand(x0, y0, x1, y1):
    pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
    return Hand(id="h", side="right", points=pts)


def test_window_is_factor_times_the_hand_and_clipped():
    assert hand_window(np.array([[100, 100], [140, 120]]), (1000, 1000), factor=4) == (40, 30, 200, 190)
    assert hand_window(np.array([[0, 0], [40, 20]]), (1000, 1000), factor=4) == (0, 0, 100, 90)
    x0, y0, x1, y1 = hand_window(np.array([[500, 500], [502, 501]]), (1000, 1000), factor=4)
    assert MIN_WINDOW <= x1 - x0 <= MIN_WINDOW + 1 and MIN_WINDOW <= y1 - y0 <= MIN_WINDOW + 1


def test_masks_land_back_at_the_hand():
    image = np.zeros((300, 400, 3), np.uint8)
    hands = [_hand(200, 100, 240, 140), Hand(id="q", side=None, points=np.zeros((0, 2)), query=(50.0, 60.0))]
    pred = _DotPredictor()
    out = predict_in_hand_windows(pred, image, hands, factor=3)
    assert out.hand_masks.shape == (2, 300, 400)
    ys, xs = np.nonzero(out.hand_masks[0])
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (219, 221, 119, 121)  # around the query (220, 120)
    assert out.object_masks[0, 120, 222] == 1 and out.object_masks[0].sum() == 1
    assert out.hand_masks[1, 60, 50] == 1  # no points: the whole image
    assert (300, 400) in pred.inputs and (120, 120) in pred.inputs


def test_no_hands():
    out = predict_in_hand_windows(_DotPredictor(), np.zeros((10, 12, 3), np.uint8), [])
    assert out.hand_masks.shape == (0, 10, 12)


@pytest.mark.parametrize("factor", [2.0, 4.0])
def test_window_contains_the_hand(factor):
    pts = np.random.default_rng(0).uniform(0, 300, (21, 2))
    x0, y0, x1, y1 = hand_window(pts, (300, 300), factor)
    assert x0 <= pts[:, 0].min() and pts[:, 0].max() < x1 and y0 <= pts[:, 1].min() and pts[:, 1].max() < y1
