"""Ground truth of synthetic clips, checked in memory: flow, labels, keypoints, determinism."""

import cv2
import numpy as np
import pytest

from cohesiv.synth import flow_between, generate_clip, motion_matrix, sample_scene
from cohesiv.synth.scene import apply_homography

SIZE = (128, 96)


def _photometric(a, b, la, lb, flow):
    """Mean |I_t+1 - I_t| and |warp(I_t+1, flow) - I_t| over non-occluded pixels, and their count.

    Non-occluded: the target x + flow(x) lies inside the image and the label at t+1 at the
    (nearest) target pixel is the label at t.
    """
    h, w = la.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    mx, my = xs + flow[0], ys + flow[1]
    warped = cv2.remap(b.astype(np.float32), mx, my, cv2.INTER_LINEAR)
    inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    ix = np.clip(np.rint(mx), 0, w - 1).astype(int)
    iy = np.clip(np.rint(my), 0, h - 1).astype(int)
    ok = inside & (lb[iy, ix] == la)
    before = np.abs(b.astype(np.float32) - a).mean(2)[ok].sum()
    after = np.abs(warped - a).mean(2)[ok].sum()
    return before, after, ok.sum()


@pytest.fixture(scope="module")
def clips():
    # two static-camera and two moving-camera clips
    return [
        generate_clip([7, i], frames=4, size=SIZE, camera=cam)
        for i, cam in enumerate(["static", "moving"] * 2)
    ]


def test_shapes_and_types(clips):
    c = clips[0]
    w, h = SIZE
    assert c.frames.shape == (4, h, w, 3) and c.frames.dtype == np.uint8
    assert c.labels.shape == (4, h, w) and c.labels.dtype == np.uint8
    assert c.flows.shape == (3, 2, h, w) and c.flows.dtype == np.float32
    assert set(c.hands.frames) == {0, 1, 2, 3}
    assert c.labels.max() <= 5


def test_gt_flow_removes_photometric_error(clips):
    tot = np.zeros(3)
    shifted = np.zeros(3)
    for c in clips:
        for t in range(3):
            args = (c.frames[t], c.frames[t + 1], c.labels[t], c.labels[t + 1])
            tot += _photometric(*args, c.flows[t])
            shifted += _photometric(*args, c.flows[t] + np.array([0.7, 0.0], np.float32)[:, None, None])
    before, after = tot[0] / tot[2], tot[1] / tot[2]
    assert before > 2.0  # things do move
    assert after < 0.2 * before
    assert after < 1.5  # gray levels out of 255
    # a flow wrong by 0.7 px leaves much more error: the check is sensitive
    assert shifted[1] / shifted[2] > 2 * after


def test_gt_flow_any_pair_and_backwards(clips):
    c = clips[1]  # moving camera
    scene = sample_scene([7, 1], 4, SIZE, "moving")
    for t, s in ((0, 2), (0, 3), (3, 1)):
        flow = scene.flow(c.labels[t], t, s)
        before, after, n = _photometric(c.frames[t], c.frames[s], c.labels[t], c.labels[s], flow)
        assert after / n < 0.3 * before / n


def test_flow_between_is_exact_on_a_known_homography():
    h, w = 5, 6
    motion_map = np.zeros((h, w), int)
    motion_map[:, 3:] = 1
    eye = np.eye(3)
    shift = np.array([[1.0, 0, 2.5], [0, 1.0, -1.0], [0, 0, 1.0]])
    zoom = np.diag([2.0, 2.0, 1.0])  # about the origin: x -> 2x
    flow = flow_between(motion_map, [eye, eye], [shift, zoom])
    np.testing.assert_allclose(flow[0][:, :3], 2.5)
    np.testing.assert_allclose(flow[1][:, :3], -1.0)
    ys, xs = np.mgrid[0:h, 0:w]
    np.testing.assert_allclose(flow[0][:, 3:], xs[:, 3:])  # 2x - x
    np.testing.assert_allclose(flow[1][:, 3:], ys[:, 3:])


def test_motion_matrix_is_identity_offset_at_frame_zero():
    p = {c: [0.3, 2.0, 10.0, 0.5] for c in ("x", "y", "angle", "scale", "px", "py")}
    p.update(anchor=[10.0, 20.0], angle0=0.0, frame_centre=[0.0, 0.0])
    np.testing.assert_allclose(apply_homography(motion_matrix(p, 0), np.array([[0.0, 0.0]])), [[10.0, 20.0]])
    # frame 1 differs (it moves)
    assert not np.allclose(motion_matrix(p, 1), motion_matrix(p, 0))


def test_static_camera_background_does_not_move(clips):
    c = clips[0]
    scene = sample_scene([7, 0], 4, SIZE, "static")
    assert scene.info["camera"] == "static"
    bg = c.labels[0] == 0
    assert np.all(c.flows[0][:, bg] == 0)
    both_bg = (c.labels[0] == 0) & (c.labels[1] == 0)
    both_bg = cv2.erode(both_bg.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # not the anti-aliased edges
    assert both_bg.sum() > 1000
    assert np.array_equal(c.frames[0][both_bg], c.frames[1][both_bg])


def test_moving_camera_moves_background(clips):
    c = clips[1]
    bg = c.labels[0] == 0
    assert np.abs(c.flows[0][:, bg]).max() > 0.2


def test_keypoints_lie_on_their_hand_label(clips):
    for c in clips:
        for t, hands in c.hands.frames.items():
            for hand in hands:
                p = np.rint(hand.points).astype(int)
                lab = c.labels[t][p[:, 1], p[:, 0]]
                assert np.all(lab == {"left": 1, "right": 2}[hand.side]), (t, hand.id, lab)
                np.testing.assert_allclose(hand.query, hand.points.mean(0), atol=1e-4)


def test_labels_consistent_with_hands(clips):
    for c in clips:
        for t, hands in c.hands.frames.items():
            present = set(np.unique(c.labels[t]).tolist())
            ids = {h.id for h in hands}
            assert ids <= {"left", "right"}
            assert all(h.id == h.side for h in hands)
            assert ("left" in ids) == (1 in present)
            assert ("right" in ids) == (2 in present)
            if 3 in present:
                assert "left" in ids
            if 4 in present:
                assert "right" in ids
            if 5 in present:
                assert ids == {"left", "right"}
            assert len(hands[0].points) == 21
        # every held object is in view (not hidden under the hands) in every frame
        for layer in c.scene["layers"]:
            if layer["label"] >= 3:
                assert all((lab == layer["label"]).sum() >= 10 for lab in c.labels), layer["name"]


def test_same_seed_same_clip_other_seed_other_clip():
    a = generate_clip([3, 1], frames=2, size=(64, 48))
    b = generate_clip([3, 1], frames=2, size=(64, 48))
    c = generate_clip([3, 2], frames=2, size=(64, 48))
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.flows, b.flows)
    assert a.scene == b.scene
    assert not np.array_equal(a.frames, c.frames)


def test_scenes_vary_with_the_seed():
    seen = {"n_hands": set(), "labels": set(), "camera": set(), "styles": set(), "empty_hand": False}
    for i in range(24):
        s = sample_scene([11, i], 2, (96, 72), "mixed").to_json()
        seen["n_hands"].add(len(s["hands"]))
        seen["camera"].add(s["camera"])
        seen["styles"].add(s["background_style"])
        labels = {ly["label"] for ly in s["layers"]}
        seen["labels"] |= labels
        hand_labels = {1: 3, 2: 4}
        if any(lh in labels and hand_labels[lh] not in labels and 5 not in labels for lh in (1, 2)):
            seen["empty_hand"] = True
    assert seen["n_hands"] == {1, 2}
    assert seen["camera"] == {"static", "moving"}
    assert seen["labels"] == {1, 2, 3, 4, 5}
    assert len(seen["styles"]) >= 2
    assert seen["empty_hand"]


def test_left_hand_on_the_left_right_on_the_right():
    for i in range(8):
        c = generate_clip([5, i], frames=2, size=(96, 72))
        for hand in c.hands.frames[0]:
            x = hand.points[:, 0].mean()
            if len(c.hands.frames[0]) == 2:
                assert (x < 48) == (hand.side == "left")
        rows = np.nonzero(np.isin(c.labels[0], (1, 2)).any(1))[0]
        assert rows.max() == 71  # forearms enter from the bottom edge


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"frames": 1}, "at least 2 frames"),
        ({"size": (20, 20)}, "size must be between"),
        ({"camera": "shaky"}, "camera must be one of"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = {"frames": 3, "size": (64, 48), "camera": "mixed"} | kwargs
    with pytest.raises(ValueError, match=match):
        sample_scene(0, args["frames"], args["size"], args["camera"])
