import numpy as np
import pytest
from eval_scene import SPEED, SceneFlow, scene_flow, scene_label

from cohesiv.eval.baselines import (
    FlowBaseline,
    ResponsibilityBaseline,
    available_offsets,
    components_under_points,
    evaluate_baseline,
    fit_threshold,
    flow_baseline_masks,
    motion_magnitude,
    split_by_person,
    threshold_responsibility,
)
from cohesiv.eval.driver import iter_scored_frames


def test_threshold_responsibility_hand_values():
    r = np.zeros((3, 2, 2), np.float32)
    r[1] = [[0.9, 0.6], [0.1, 0.0]]
    r[2] = [[0.0, 0.3], [0.8, 0.2]]
    r[0] = 1 - r[1] - r[2]
    person = np.array([[1, 0], [0, 0]])
    hand, obj = threshold_responsibility(r, person, 0.5)
    assert hand.tolist() == [[[1, 0], [0, 0]], [[0, 0], [0, 0]]]
    assert obj.tolist() == [[[0, 1], [0, 0]], [[0, 0], [1, 0]]]
    assert hand.dtype == np.uint8 and hand.shape == (2, 2, 2)


def test_split_by_person_shape_error():
    with pytest.raises(ValueError, match="person"):
        split_by_person(np.zeros((1, 2, 2)), np.zeros((3, 3)))


def test_components_under_points():
    mask = np.zeros((5, 7), np.uint8)
    mask[0:2, 0:2] = 1  # component A
    mask[3:5, 4:7] = 1  # component B
    mask[4, 2] = 1  # component C
    out = components_under_points(
        mask,
        [np.array([[0.4, 0.6]]), np.array([[5.0, 3.2], [0.0, 0.0]]), np.array([[3.0, 0.0], [100.0, 2.0]])],
    )
    assert out.shape == (3, 5, 7)
    assert out[0].sum() == 4 and out[0][0:2, 0:2].all()
    assert out[1].sum() == 4 + 6  # B and A
    assert out[2].sum() == 0  # on background / outside the image


def test_motion_magnitude_static_and_camera():
    flow = np.zeros((2, 4, 5), np.float32)
    flow[0], flow[1] = 3.0, 4.0
    assert np.allclose(motion_magnitude(flow), 5.0)
    cam = np.array([[1, 0, 3.0], [0, 1, 4.0], [0, 0, 1]])  # the camera explains the whole motion
    assert np.allclose(motion_magnitude(flow, cam), 0.0, atol=1e-5)


def test_flow_baseline_masks_perfect_on_scene():
    lab = scene_label(2)
    motion = np.linalg.norm(scene_flow(2, 3), axis=0)
    pts = [np.array([[13.0, 15.0]])]
    person = (lab == 1).astype(np.uint8)
    pred = flow_baseline_masks(motion, pts, person, threshold=1.0)
    assert (pred.all_mask == (lab > 0)).all()
    assert (pred.hand_masks[0] == (lab == 1)).all()
    assert (pred.object_masks[0] == (lab == 3)).all()
    # above the motion, nothing moves
    assert flow_baseline_masks(motion, pts, person, threshold=SPEED + 0.1).all_mask.sum() == 0


def test_available_offsets_near_clip_ends():
    assert available_offsets((-3, -2, -1, 1, 2, 3), 0, 10) == [1, 2, 3]
    assert available_offsets((-3, -2, -1, 1, 2, 3), 8, 10) == [-3, -2, -1, 1]
    assert available_offsets((1,), 9, 10) == [-1]  # last frame: the previous one
    assert available_offsets((1,), 0, 1) == []


def test_responsibility_baseline_on_scene(make_clip):
    clip = make_clip(n_frames=8, labeled=(0, 3, 7))
    flow = SceneFlow()
    base = ResponsibilityBaseline(flow, fb_check=False)  # [C]: no backward flows
    fr = next(iter_scored_frames([clip], progress=False))
    maps = base.maps(fr.image, fr.hands, fr.context)
    r = maps["responsibility"]
    assert r.shape == (2, 32, 40)
    assert np.allclose(r.sum(0), 1, atol=1e-5)
    assert sorted(flow.calls) == [(0, 1), (0, 2), (0, 3)]  # frame 0 has only forward offsets
    lab = scene_label(0)
    assert r[1][lab > 0].min() > 0.6 and r[1][lab == 0].max() < 0.4
    fit = fit_threshold(base, [clip], progress=False)
    assert fit.all_miou[fit.grid.index(fit.threshold)] == pytest.approx(100.0)
    assert fit.n_images == 3
    m = evaluate_baseline(base, [clip], fit.threshold, progress=False)
    assert m["All"]["mIoU"] == pytest.approx(100.0) and m["Pair"]["mIoU"] == pytest.approx(100.0)
    # the person mask (dilated hull of the hand points) splits the pair: Hand gets the hand, and a
    # margin of the object; the margin is what Obj misses
    assert 80 < m["Hand"]["mIoU"] < 100 and 50 < m["Obj"]["mIoU"] < 100


def test_responsibility_temperature_sharpens(make_clip):
    clip = make_clip(n_frames=8, labeled=(3,))
    fr = next(iter_scored_frames([clip], progress=False))
    lab = scene_label(3)
    soft = ResponsibilityBaseline(SceneFlow(), temperature=4.0).maps(fr.image, fr.hands, fr.context)
    sharp = ResponsibilityBaseline(SceneFlow(), temperature=1.0).maps(fr.image, fr.hands, fr.context)
    assert sharp["responsibility"][1][lab > 0].mean() > soft["responsibility"][1][lab > 0].mean()


def test_flow_baseline_fit_and_evaluate(make_clip):
    clip = make_clip(n_frames=6, labeled=(1, 5))
    base = FlowBaseline(SceneFlow())
    fit = fit_threshold(base, [clip], grid=[0.5, 1.0, 3.0], progress=False)
    assert fit.all_miou == pytest.approx([100.0, 100.0, 0.0])
    assert fit.threshold == 0.5  # ties go to the smallest
    m = evaluate_baseline(base, [clip], 1.0, progress=False)
    assert m["All"]["mIoU"] == pytest.approx(100.0) and m["Pair"]["mIoU"] == pytest.approx(100.0)


def test_flow_baseline_homography_background_cancels_camera(make_clip):
    clip = make_clip(n_frames=6, labeled=(2,))

    class PanningFlow(SceneFlow):
        def __call__(self, context, s):
            f = super().__call__(context, s)
            f[1] += 1.5 * (s - context.t)  # the whole image also moves down: camera pan
            return f

    static = FlowBaseline(PanningFlow())
    moving = FlowBaseline(PanningFlow(), background="homography")
    fs = fit_threshold(static, [clip], grid=[1.0], progress=False)
    fm = fit_threshold(moving, [clip], grid=[1.0], progress=False)
    assert fm.all_miou[0] == pytest.approx(100.0)
    assert fs.all_miou[0] < 50  # the pan makes the whole image "move"


def test_responsibility_fb_check_uses_backward_flows(make_clip):
    clip = make_clip(n_frames=8, labeled=(3,))
    flow = SceneFlow()
    base = ResponsibilityBaseline(flow, offsets=(-1, 2), fb_check=True)
    fr = next(iter_scored_frames([clip], progress=False))
    r = base.maps(fr.image, fr.hands, fr.context)["responsibility"]
    assert sorted(flow.calls) == [(2, 3), (3, 2), (3, 5), (5, 3)]
    plain = ResponsibilityBaseline(SceneFlow(), offsets=(-1, 2), fb_check=False)
    plain = plain.maps(fr.image, fr.hands, fr.context)
    plain = plain["responsibility"]
    assert np.allclose(r.sum(0), 1, atol=1e-5)
    # background that the pair covers by frame 5 (4 columns right of it) fails the check at +2
    # and takes the -1 maps alone; elsewhere both offsets are valid and nothing changes
    x_end = 6 + 2 * 3 + 14
    covered = np.s_[10:22, x_end : x_end + 4]
    e1 = np.exp(-1.0)  # offset -1: d_BG = 0, d_hand = 2 px, temperature 2 -> R_hand = e1 / (1 + e1)
    assert r[1][covered] == pytest.approx(e1 / (1 + e1), abs=1e-4)
    assert plain[1][covered].max() < r[1][covered].min()
    assert np.allclose(r[:, :, :4], plain[:, :, :4])
