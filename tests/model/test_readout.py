"""The read-out object (cohesiv.model.readout): one rule for torch and numpy, calibration.json keys."""

import numpy as np
import pytest
import torch

from cohesiv.model.readout import MODES, OPTIONAL_THRESHOLD_NAMES, THRESHOLD_NAMES, Readout


def _maps(k=2, h=9, w=7, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.random((k, h, w)).astype(np.float32),
        rng.uniform(-1, 1, (h, w)).astype(np.float32),
        rng.uniform(-1, 1, (h, w)).astype(np.float32),
    )


@pytest.mark.parametrize("mode", MODES)
def test_torch_and_numpy_give_the_same_disjoint_masks(mode):
    s, ps, os_ = _maps()
    ro = Readout(tau_h=0.1, tau_o=-0.2, tau_r=0.4, mode=mode)
    hand_n, obj_n = ro.masks(s, ps, os_)
    hand_t, obj_t = ro.masks(torch.from_numpy(s), torch.from_numpy(ps), torch.from_numpy(os_))
    assert isinstance(hand_n, np.ndarray) and isinstance(hand_t, torch.Tensor)
    assert np.array_equal(hand_n, hand_t.numpy()) and np.array_equal(obj_n, obj_t.numpy())
    assert not (hand_n & obj_n).any() and not ((hand_n | obj_n) & ~(s > 0.4)).any()
    a_n = ro.apply(s, ps, os_)
    a_t = ro.apply(torch.from_numpy(s), torch.from_numpy(ps), torch.from_numpy(os_))
    assert all(np.array_equal(x, y) for x, y in zip(a_n, a_t))


def test_calibrated_rule_by_hand():
    s = np.array([[[0.9, 0.9, 0.9, 0.1]]], np.float32)
    ps = np.array([[0.8, 0.0, 0.0, 0.8]], np.float32)
    os_ = np.array([[0.0, 0.8, 0.0, 0.0]], np.float32)
    hand, obj = Readout(tau_h=0.5, tau_o=0.5, tau_r=0.5).apply(s, ps, os_)
    assert hand.tolist() == [[[True, False, False, False]]]
    assert obj.tolist() == [[[False, True, False, False]]]


def test_thresholds_round_trip_keeps_the_calibration_keys():
    th = {"tau_h": 0.1, "tau_o": 0.2, "tau_r": 0.3}
    assert Readout.from_thresholds(th).thresholds() == th
    full = dict(th, tau_g=0.6, open_o=0.01)
    assert Readout.from_thresholds(full).thresholds() == full
    assert list(Readout.from_thresholds(full).thresholds()) == [*THRESHOLD_NAMES, *OPTIONAL_THRESHOLD_NAMES]
    assert Readout.from_thresholds(None) == Readout()


def test_growing_and_opening_apply_to_the_calibrated_mode_only():
    s, ps, os_ = _maps(seed=1)
    grown = Readout(tau_r=0.3, tau_g=-1.0).apply(s, ps, os_)[0]
    assert grown.any(0).all()
    plain = Readout(tau_r=0.3, tau_g=-1.0, mode="query-prototype").apply(s, ps, os_)[0]
    assert np.array_equal(plain, Readout(tau_r=0.3, mode="query-prototype").apply(s, ps, os_)[0])


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown read-out mode"):
        Readout(mode="nearest")


def test_summary_is_the_line_calibrate_prints():
    assert Readout(0.9, 0.85, 0.35).summary() == "tau_h=0.9 tau_o=0.85 tau_r=0.35 tau_g=off open_o=off"
    assert Readout(0.1, 0.2, 0.3, tau_g=0.6, open_o=0.01).summary().endswith("tau_g=0.6 open_o=0.01")
