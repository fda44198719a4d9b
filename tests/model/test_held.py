"""Held-object probability ("holds nothing"): features, logistic fit, decision, calibration on val frames."""

import numpy as np
import pytest

from cohesiv.eval.calibrate import ValFrame, frame_metrics, search_held
from cohesiv.model.held import FEATURES, HeldObjectModel, apply_held, fit_logistic, held_features

H, W = 24, 40


def test_features_known_values():
    hand = np.zeros((2, H, W), bool)
    obj = np.zeros((2, H, W), bool)
    hand[0, :4, :5] = True  # 20 px
    obj[0, 10:12, :5] = True  # 10 px
    hand[1, :2, :2] = True
    scores = np.zeros((2, H, W), np.float32)
    scores[0, :12, :5] = 0.25  # hand (20 px) + 40 moving px outside it, 10 of them the object
    osim = np.full((H, W), 0.5, np.float32)
    psim = np.zeros((H, W), np.float32)
    psim[4:8, :5] = 0.9  # 20 of the 40 moving pixels look like person
    f = held_features(hand, obj, scores, psim, osim, tau_r=0.2)
    assert f.shape == (2, len(FEATURES))
    np.testing.assert_allclose(f[0], [np.log1p(0.5), 0.25, 0.5, 0.5, 0.25, np.log1p(2.0)], rtol=1e-6)
    np.testing.assert_array_equal(f[1], 0.0)  # nothing moves, no object pixel: all zero


def test_fit_logistic_is_calibrated_on_its_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 1))
    y = rng.random(400) < 1 / (1 + np.exp(-(2.0 * x[:, 0] - 0.5)))
    coef, b = fit_logistic(x, y, l2=0.0)
    assert coef[0] == pytest.approx(2.0, abs=0.5) and b == pytest.approx(-0.5, abs=0.35)
    p = HeldObjectModel((float(coef[0]),) + (0.0,) * 5, b).probability(np.hstack([x, np.zeros((400, 5))]))
    assert p.mean() == pytest.approx(y.mean(), abs=1e-6)  # the score equation of the intercept


def test_apply_held_drops_the_object_below_threshold():
    hand = np.zeros((2, H, W), bool)
    obj = np.zeros((2, H, W), bool)
    obj[:, 5:8, 5:8] = True
    scores = np.zeros((2, H, W), np.float32)
    scores[0] = 0.9
    scores[1] = 0.1
    model = HeldObjectModel(
        (0.0, 10.0, 0.0, 0.0, 0.0, 0.0), -5.0, threshold=0.5
    )  # sigmoid(10 mean_score - 5)
    z = np.zeros((H, W))
    out, p, holds = apply_held(hand, obj, scores, z, z, 0.5, model)
    assert holds.tolist() == [True, False] and p[0] > 0.95 > 0.05 > p[1]
    assert out[0].sum() == 9 and out[1].sum() == 0
    out, p, holds = apply_held(hand, obj, scores, z, z, 0.5, None)
    assert np.isnan(p).all() and holds.tolist() == [True, True] and out.sum() == 18
    assert HeldObjectModel.from_json(model.to_json()) == model
    with pytest.raises(ValueError, match="features"):
        HeldObjectModel.from_json({"features": ["x"], "coef": [1], "intercept": 0})


def _frame(holds: bool, rim: bool, seed: int) -> ValFrame:
    """A left hand at columns 4..11; it holds a 8x8 object (label 3) or nothing; S_k covers hand + object
    (holding) or hand + a 1-px rim (empty: the read-out's false object)."""
    rng = np.random.default_rng(seed)
    label = np.zeros((H, W), np.uint8)
    label[8:16, 4:12] = 1
    scores = np.zeros((1, H, W), np.float32)
    scores[0, 8:16, 4:12] = 0.9
    person = np.full((H, W), -1.0, np.float32)
    person[8:16, 4:12] = 0.9
    objsim = np.full((H, W), -1.0, np.float32)
    if holds:
        label[8:16, 12:20] = 3
        scores[0, 8:16, 12:20] = 0.8 + 0.1 * rng.random()
        objsim[8:16, 12:20] = 0.8
    if rim:
        scores[0, 8:16, 12] = 0.5 + 0.2 * rng.random()
        objsim[8:16, 12] = 0.3
    return ValFrame(label, scores, person, objsim, ["left"], [(7.5, 11.5)])


def test_search_held_removes_false_objects_and_keeps_held_ones():
    frames = [_frame(True, False, i) for i in range(4)] + [_frame(False, True, 10 + i) for i in range(4)]
    th = {"tau_h": 0.5, "tau_o": 0.0, "tau_r": 0.3}
    model, report = search_held(frames, th)
    assert model is not None and report["hands"] == 8 and report["holding"] == 4
    assert report["before"]["false_object_rate"] == 100.0 and report["after"]["false_object_rate"] == 0.0
    assert report["after"]["Obj_recall"] == pytest.approx(report["before"]["Obj_recall"])
    m = frame_metrics(frames, th, model)
    assert m["Obj"]["false_object_rate"] == 0.0 and m["Obj"]["mIoU"] == pytest.approx(100.0)
    # all hands hold something: nothing to learn, no model
    assert search_held(frames[:4], th)[0] is None
