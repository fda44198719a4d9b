"""separate_hands: inside one hand's hull, the hand responsibility goes to that hand."""

import numpy as np

from cohesiv.responsibility.labeler import PseudoLabelConfig, separate_hands
from cohesiv.responsibility.masks import hull_mask


def _square(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def test_two_hands_moving_together_are_split_by_their_hulls():
    h, w = 40, 60
    r = np.zeros((3, h, w), np.float32)
    r[0] = 0.2
    r[1] = 0.4  # both hands explain everything equally (they move together)
    r[2] = 0.4
    pts = [_square(5, 5, 15, 15), _square(40, 20, 50, 30)]
    out = separate_hands(r, pts, (w, h), [0, 1], dilation=0.2)
    h0 = hull_mask([pts[0]], (w, h), dilation=0.2).astype(bool)
    h1 = hull_mask([pts[1]], (w, h), dilation=0.2).astype(bool)
    np.testing.assert_allclose(out.sum(0), 1.0, atol=1e-6)
    np.testing.assert_allclose(out[1][h0], 0.8)
    np.testing.assert_allclose(out[2][h0], 0.0)
    np.testing.assert_allclose(out[2][h1], 0.8)
    np.testing.assert_array_equal(out[0], r[0])  # background untouched
    outside = ~(h0 | h1)
    np.testing.assert_array_equal(out[1:, outside], r[1:, outside])  # and the object pixels too


def test_overlapping_hulls_are_left_alone_and_off_by_default():
    h, w = 30, 30
    r = np.full((3, h, w), 1 / 3, np.float32)
    pts = [_square(5, 5, 15, 15), _square(10, 10, 20, 20)]
    out = separate_hands(r, pts, (w, h), [0, 1], dilation=0.2)
    both = hull_mask([pts[0]], (w, h)).astype(bool) & hull_mask([pts[1]], (w, h)).astype(bool)
    assert both.any()
    np.testing.assert_array_equal(out[:, both], r[:, both])
    assert PseudoLabelConfig().separate_hands is False
