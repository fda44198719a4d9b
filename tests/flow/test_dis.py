import cv2
import numpy as np
import pytest
from flow_util import epe, textured, translate

from cohesiv.flow import DIS_PRESETS, FlowEstimator, estimate_flow


def interior(h, w, margin=12):
    m = np.zeros((h, w), bool)
    m[margin:-margin, margin:-margin] = True
    return m


@pytest.mark.parametrize("dx,dy", [(3.0, -2.0), (-1.5, 0.75)])
def test_translation_recovered_by_dis_medium(texture, dx, dy):
    moved = translate(texture, dx, dy)
    flow = estimate_flow(texture, moved, preset="medium")
    assert flow.shape == (2, 120, 160) and flow.dtype == np.float32
    gt = np.stack([np.full((120, 160), dx), np.full((120, 160), dy)]).astype(np.float32)
    assert epe(flow, gt, interior(120, 160)) < 0.5


def test_homography_recovered_by_dis_medium():
    h, w = 160, 200
    img = textured(h, w, seed=3)
    hom = np.array([[1.02, 0.01, 2.0], [-0.015, 0.99, 1.0], [4e-5, -3e-5, 1.0]])
    moved = cv2.warpPerspective(img, hom, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    p = hom @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    gt = np.stack([(p[0] / p[2]).reshape(h, w) - xs, (p[1] / p[2]).reshape(h, w) - ys]).astype(np.float32)
    assert np.abs(gt).max() > 3  # a real motion, not nearly identity
    flow = FlowEstimator(preset="medium")(img, moved)
    assert epe(flow, gt, interior(h, w)) < 0.5


def test_zero_motion_gives_zero_flow(texture):
    flow = estimate_flow(texture, texture.copy())
    assert np.abs(flow).max() < 0.05


def test_batch_equals_single_calls(texture):
    est = FlowEstimator(preset="fast")
    b1, b2 = translate(texture, 1, 0), translate(texture, 0, 2)
    batch = est.batch([texture, texture], [b1, b2])
    assert batch.shape == (2, 2, 120, 160)
    np.testing.assert_array_equal(batch[0], est(texture, b1))
    np.testing.assert_array_equal(batch[1], est(texture, b2))


def test_presets_all_run_and_default_is_a_preset(texture):
    from cohesiv.flow.defaults import DIS_PRESET_NAMES

    est = FlowEstimator()
    assert est.config.preset in DIS_PRESET_NAMES and set(DIS_PRESETS) < set(DIS_PRESET_NAMES)
    for p in DIS_PRESET_NAMES:
        f = FlowEstimator(preset=p)(texture, translate(texture, 2, 0))
        assert f.shape == (2, 120, 160)
        assert abs(float(np.median(f[0])) - 2.0) < 0.5


def test_errors_name_the_problem(texture):
    with pytest.raises(ValueError, match="unknown DIS preset 'slow'"):
        FlowEstimator(preset="slow")
    with pytest.raises(ValueError, match="unknown flow method"):
        FlowEstimator(method="farneback")
    with pytest.raises(ValueError, match=r"\(120, 160, 3\) and \(60, 80, 3\)"):
        FlowEstimator()(texture, texture[::2, ::2])
    with pytest.raises(ValueError, match="uint8"):
        FlowEstimator()(texture.astype(np.float32), texture.astype(np.float32))
    with pytest.raises(ValueError, match="preset applies to method 'dis' only"):
        FlowEstimator(method="raft", preset="fast")
    with pytest.raises(ValueError, match="got 2 first frames but 1"):
        FlowEstimator().batch([texture, texture], [texture])


def test_tuned_presets_parameters_and_downscaling():
    from cohesiv.flow.dis import DISFlow

    rng = np.random.default_rng(0)
    a = (rng.random((60, 80, 3)) * 255).astype(np.uint8)
    a = np.ascontiguousarray(np.repeat(np.repeat(a[::4, ::4], 4, 0), 4, 1))  # blocky texture DIS can follow
    b = np.roll(a, 2, axis=1)  # everything moves 2 px right
    fs1 = DISFlow("ultrafast-fs1")
    assert fs1._dis.getFinestScale() == 1 and fs1._dis.getVariationalRefinementIterations() == 0
    for est in (fs1, DISFlow("medium", scale=0.5), DISFlow("fast", var_refine_iters=10)):
        f = est(a, b)
        assert f.shape == (2, 60, 80)
        assert np.median(f[0, 10:50, 10:70]) == pytest.approx(2.0, abs=0.3)
    with pytest.raises(ValueError, match="unknown DIS parameter"):
        DISFlow("fast", stride=3)
    with pytest.raises(ValueError, match="scale"):
        DISFlow("fast", scale=1.5)
