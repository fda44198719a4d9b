"""Pseudo-labels whose hands stop at the wrist: the forearm band past the wrist becomes background."""

import sys
from pathlib import Path

import numpy as np
import pytest

from cohesiv.responsibility.masks import forearm_cut, stop_at_wrist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hand_shapes import hand_up  # noqa: E402

W, H = 120, 110


def _hand_up():
    return hand_up(wrist=(60.0, 60.0))


def _labels():
    """Hand 1 (a hand pointing up, its forearm below it) moves: R_1 = 0.9 on a whole column band."""
    r = np.zeros((3, H, W), np.float32)
    r[0] = 1.0
    r[0, :, 40:80], r[1, :, 40:80] = 0.1, 0.9
    r[0, 5:15, 100:110], r[2, 5:15, 100:110] = 0.2, 0.8  # hand 2, far away, has no keypoints
    person = np.zeros((H, W), np.uint8)
    person[:, 45:75] = 1
    return r, person


def test_the_forearm_past_the_wrist_becomes_background_and_the_hand_stays():
    kp = _hand_up()
    r, person = _labels()
    out_r, out_p = stop_at_wrist(r, person, [kp, None])
    length = float(np.hypot(*(kp - kp[0]).T).max())
    below = int(60 + 0.15 * length) + 3  # past the wrist and its margin, on the forearm
    assert out_r[1, below:, 60].max() == 0 and out_r[0, below:, 60].min() == pytest.approx(1.0)
    assert out_p[below:, 60].max() == 0
    # the hand (wrist and above) and the pixels beside the band keep their labels
    np.testing.assert_array_equal(
        out_r[:, : int(60 + 0.15 * length) - 1], r[:, : int(60 + 0.15 * length) - 1]
    )
    cut = forearm_cut(kp, (W, H))
    np.testing.assert_array_equal(out_r[:, ~cut], r[:, ~cut])
    np.testing.assert_array_equal(out_p[~cut], person[~cut])
    assert cut[below:, 60].all() and not cut[:, :30].any()  # a band, not a half-plane
    np.testing.assert_allclose(out_r.sum(0), 1.0, atol=1e-6)
    np.testing.assert_array_equal(out_r[2], r[2])  # the hand without keypoints is untouched
    assert r[1, H - 1, 60] == pytest.approx(0.9) and person[H - 1, 60] == 1  # inputs not modified


def test_hands_without_21_keypoints_are_left_as_they_are():
    r, person = _labels()
    out_r, out_p = stop_at_wrist(r, person, [_hand_up()[:20], None])
    np.testing.assert_array_equal(out_r, r)
    np.testing.assert_array_equal(out_p, person)
    assert forearm_cut(_hand_up()[:20], (W, H)) is None


def test_one_entry_per_hand_channel():
    r, person = _labels()
    with pytest.raises(ValueError, match="1 hands for 2"):
        stop_at_wrist(r, person, [_hand_up()])
