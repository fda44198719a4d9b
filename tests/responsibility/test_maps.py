import numpy as np
import pytest
import torch
from _resp_scene import HAND, OBJECT, H, W, flow_of, hand_points, homography, region_mask
from hypothesis import given, settings
from hypothesis import strategies as st

from cohesiv.responsibility import (
    averaged_responsibility,
    fit_homography,
    fit_homography_checked,
    homography_distances,
    responsibility_maps,
)


def _moving_hand_scene(m=None):
    m = homography() if m is None else m
    hand, obj = region_mask(HAND), region_mask(OBJECT)
    return flow_of(m, hand | obj), hand, obj


@pytest.mark.parametrize("method", ["magsac", "dlt"])
def test_fit_homography_recovers_known_homography(method):
    m = homography(tx=3, ty=-2, angle_deg=5, scale=1.05)
    src = hand_points()
    q = np.c_[src, np.ones(len(src))] @ m.T
    dst = q[:, :2] / q[:, 2:]
    est = fit_homography(src, dst, method=method)
    assert est is not None
    np.testing.assert_allclose(est, m, atol=1e-3)


def test_fit_homography_refuses_degenerate_inputs():
    src = hand_points()
    assert fit_homography_checked(src[:3], src[:3] + 1)[1] == "too_few_points"
    line = np.stack([np.arange(10.0), 2 * np.arange(10.0) + 1], 1)
    assert fit_homography_checked(line, line + 1) == (None, "collinear")
    # a fit that squashes the hand to a tenth of its area is refused as distorting
    c = src.mean(0)
    assert fit_homography_checked(src, c + (src - c) * 0.3, method="dlt") == (None, "distorting")
    with pytest.raises(ValueError, match="method"):
        fit_homography(src, src, method="ransac9")


def test_homography_distances_identity_is_flow_magnitude_and_exact_fit_is_zero():
    m = homography()
    flow, hand, _ = _moving_hand_scene(m)
    d = homography_distances(torch.from_numpy(flow), torch.from_numpy(np.stack([np.eye(3), m])).float())
    np.testing.assert_allclose(d[0].numpy(), np.linalg.norm(flow, axis=0), atol=1e-4)
    assert d[1].numpy()[hand].max() < 1e-3
    assert d.shape == (2, H, W)


def test_hand_and_held_object_get_the_hand_static_background_gets_background():
    flow, hand, obj = _moving_hand_scene()
    r, info = responsibility_maps(flow, [hand_points()], temperature=2.0)
    assert r.shape == (2, H, W) and r.dtype == np.float32
    np.testing.assert_allclose(r.sum(0), 1.0, atol=1e-5)
    assert info["fitted"] == [True] and info["dropped"] == {}
    assert r[1][hand].mean() > 0.98 and r[1][hand].min() > 0.95
    assert r[1][obj].mean() > 0.98  # the held object moves with the hand: the hand's responsibility
    rest = ~(hand | obj)
    assert r[1][rest].mean() < 0.02 and r[0][rest].min() > 0.5


def test_two_hands_split_responsibility_and_sum_to_one():
    m1 = homography(tx=8, ty=4)
    box2 = (60, 44, 80, 64)
    m2 = homography(tx=-8, ty=7, angle_deg=-4, centre=(70, 54))
    h1, h2 = region_mask(HAND), region_mask(box2)
    flow = flow_of(m1, h1)
    flow = np.where(h2[None], flow_of(m2, h2), flow)
    r, info = responsibility_maps(flow, [hand_points(), hand_points(box2)])
    np.testing.assert_allclose(r.sum(0), 1.0, atol=1e-5)
    assert r[1][h1].mean() > 0.98 and r[2][h1].mean() < 0.02
    assert r[2][h2].mean() > 0.98 and r[1][h2].mean() < 0.02
    assert (r >= 0).all() and (r <= 1).all()


def test_collinear_hand_is_dropped_and_counted_not_a_crash():
    flow, hand, _ = _moving_hand_scene()
    line = np.stack([np.linspace(25, 40, 8), np.linspace(22, 37, 8)], 1)
    r, info = responsibility_maps(flow, [line, hand_points()])
    assert info["fitted"] == [False, True]
    assert info["dropped"] == {"collinear": 1}
    assert info["reasons"][0] == "collinear"
    assert np.all(r[1] == 0)
    np.testing.assert_allclose(r.sum(0), 1.0, atol=1e-5)
    assert r[2][hand].mean() > 0.98


def test_all_hands_dropped_gives_background_everywhere():
    flow, _, _ = _moving_hand_scene()
    outside = np.array([[-5.0, -5], [-3, -9], [-8, -2], [-1, -1]])
    r, info = responsibility_maps(flow, [outside])
    assert info["dropped"] == {"too_few_points": 1}
    np.testing.assert_array_equal(r[0], 1.0)
    np.testing.assert_array_equal(r[1], 0.0)


def test_invalid_pixels_are_not_used_for_fitting():
    flow, hand, _ = _moving_hand_scene()
    bad = flow.copy()
    bad[:, 20:30, 24:44] += 15.0  # upper half of the hand: corrupted flow ...
    valid = np.ones((H, W), np.uint8)
    valid[19:31, :] = 0  # ... marked invalid by the forward-backward check
    r_dlt_all, _ = responsibility_maps(bad, [hand_points()], method="dlt")
    r_dlt_valid, _ = responsibility_maps(bad, [hand_points()], method="dlt", valid=valid)
    lower = hand & (np.arange(H)[:, None] >= 31)
    assert r_dlt_valid[1][lower].mean() > 0.98
    assert r_dlt_all[1][lower].mean() < r_dlt_valid[1][lower].mean() - 0.1


def test_homography_background_follows_a_moving_camera():
    cam = homography(tx=5, ty=-3, angle_deg=1, centre=(48, 36))
    hand_m = homography(tx=14, ty=-5, angle_deg=-3)  # moves like the camera, only faster
    hand = region_mask(HAND)
    flow = flow_of(hand_m, hand, base=cam)
    r_static, _ = responsibility_maps(flow, [hand_points()], background="static")
    r_cam, info = responsibility_maps(flow, [hand_points()], background="homography")
    assert info["camera"] is not None and not info["camera_fallback"]
    rest = ~hand
    assert r_cam[0][rest].mean() > 0.98 and r_cam[1][hand].mean() > 0.98
    # the paper's static model takes part of the camera's motion for the hand's
    assert r_static[1][rest].mean() > 0.1


def test_constant_flow_offset_does_not_change_homography_background_maps():
    # A constant (dx, dy) added everywhere composes every motion with the same translation:
    # all distances, hence the maps, are unchanged with background=homography.
    # (With the static background it does not hold: d_BG = |O| changes.)
    cam = homography(tx=2, ty=1, angle_deg=0.5, centre=(48, 36))
    flow = flow_of(homography(), region_mask(HAND), base=cam)
    r0, _ = responsibility_maps(flow, [hand_points()], background="homography")
    r1, _ = responsibility_maps(
        flow + np.array([3.0, -7.0], np.float32)[:, None, None], [hand_points()], background="homography"
    )
    np.testing.assert_allclose(r1, r0, atol=2e-3)


@pytest.mark.parametrize("shift", [(5, 3), (-4, 2), (0, -6)])
def test_integer_shift_of_content_and_points_shifts_the_maps(shift):
    sx, sy = shift
    flow, _, _ = _moving_hand_scene()
    pts = hand_points()
    r0, _ = responsibility_maps(flow, [pts])
    shifted = np.zeros_like(flow)
    # content moved by (sx, sy); uncovered border is static (zero flow)
    ys = slice(max(sy, 0), H + min(sy, 0))
    xs = slice(max(sx, 0), W + min(sx, 0))
    ys0 = slice(max(-sy, 0), H + min(-sy, 0))
    xs0 = slice(max(-sx, 0), W + min(-sx, 0))
    shifted[:, ys, xs] = flow[:, ys0, xs0]
    r1, _ = responsibility_maps(shifted, [pts + np.array([sx, sy], np.float32)])
    np.testing.assert_allclose(r1[:, ys, xs], r0[:, ys0, xs0], atol=1e-3)


def test_averaged_over_offsets_uses_the_offsets_given_and_sums_to_one():
    flows = {}
    for k in (-2, -1, 1, 2, 3):
        m = homography(tx=4.0 * k, ty=2.0 * k, angle_deg=1.0 * k)
        flows[k] = flow_of(m, region_mask(HAND) | region_mask(OBJECT))
    r, valid, info = averaged_responsibility(flows, [hand_points()])
    assert info["offsets"] == [-2, -1, 1, 2, 3]
    assert info["fitted_offsets"] == [[-2, -1, 1, 2, 3]]
    np.testing.assert_allclose(r.sum(0), 1.0, atol=1e-5)
    assert valid.dtype == np.uint8 and valid.all()
    hand = region_mask(HAND)
    assert r[1][hand].mean() > 0.95


def test_averaging_is_weighted_by_validity():
    hand = region_mask(HAND)
    good = flow_of(homography(tx=8, ty=4), hand)
    bad = np.zeros_like(good)  # at offset 2 the hand's flow failed (looks static) ...
    v_bad = np.where(hand, 0, 1).astype(np.uint8)  # ... and fwd-bwd says so
    v_good = np.ones((H, W), np.uint8)
    pts = hand_points()
    # the hand's fit at offset 2 uses no valid point -> dropped there; its pixels come from offset 1
    r, valid, info = averaged_responsibility({1: good, 2: bad}, [pts], valids={1: v_good, 2: v_bad})
    assert info["fitted_offsets"] == [[1]] and info["dropped"] == {"too_few_points": 1}
    assert r[1][hand].mean() > 0.98
    assert valid[hand].all()  # valid in 1 of 2 offsets = half: kept as valid
    r_plain, valid_plain, info_plain = averaged_responsibility({1: good, 2: bad}, [pts])
    # without validity the failed offset is averaged in: hand ~ (0.99 + 0.5) / 2
    assert info_plain["fitted_offsets"] == [[1, 2]]
    assert 0.7 < r_plain[1][hand].mean() < 0.8
    assert valid_plain.all()


def test_bad_arguments_raise():
    flow, _, _ = _moving_hand_scene()
    with pytest.raises(ValueError, match="background"):
        responsibility_maps(flow, [hand_points()], background="moving")
    with pytest.raises(ValueError, match="temperature"):
        responsibility_maps(flow, [hand_points()], temperature=0)
    with pytest.raises(ValueError, match=r"flow must have shape \(2,H,W\)"):
        responsibility_maps(flow[0], [hand_points()])
    with pytest.raises(ValueError, match="at least one"):
        averaged_responsibility({}, [hand_points()])


def test_soft_assignment_equals_softmax_and_survives_huge_distances():
    from cohesiv.responsibility.maps import soft_assignment

    rng = np.random.default_rng(0)
    d = rng.uniform(0, 30, (4, 5, 6)).astype(np.float32)
    d[:, 0, 0] = [1e4, 1e4, 1e4, 1e4]  # all clamped: uniform, not NaN
    d[:, 0, 1] = [1e4, 0.5, 1e4, 3.0]
    ref = torch.softmax(-torch.from_numpy(d) / 2.0, 0).numpy()
    got = soft_assignment(d, 2.0)
    np.testing.assert_allclose(got, ref, atol=1e-6)
    np.testing.assert_allclose(got[:, 0, 0], 0.25)


def test_homography_distances_numpy_and_torch_agree():
    m = homography()
    flow, _, _ = _moving_hand_scene(m)
    mats = np.stack(
        [np.eye(3), m, np.array([[1, 0, 0], [0, 1, 0], [0, -0.05, 1.0]])]
    )  # last: horizon at y=20
    d_np = homography_distances(flow, mats)
    d_t = homography_distances(torch.from_numpy(flow), torch.from_numpy(mats))
    assert isinstance(d_np, np.ndarray) and isinstance(d_t, torch.Tensor)
    np.testing.assert_allclose(d_t.numpy(), d_np)
    assert (d_np[2][21:] == 1e4).all() and np.isfinite(d_np).all()


def test_camera_fit_falls_back_to_static_when_the_hands_cover_the_image():
    flow, hand, _ = _moving_hand_scene()
    everything = np.ones((H, W), np.uint8)
    r, info = responsibility_maps(flow, [hand_points()], background="homography", hand_regions=everything)
    assert info["camera"] is None and info["camera_fallback"]
    r_static, _ = responsibility_maps(flow, [hand_points()], background="static")
    np.testing.assert_allclose(r, r_static, atol=1e-6)
    _, _, ainfo = averaged_responsibility(
        {1: flow, 2: flow}, [hand_points()], background="homography", hand_regions=everything
    )
    assert ainfo["camera_fallbacks"] == [1, 2]


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_hands=st.integers(0, 3),
    temperature=st.floats(0.05, 50.0),
    scale=st.floats(0.0, 200.0),
    background=st.sampled_from(["static", "homography"]),
)
def test_maps_are_probabilities_for_any_flow_and_hands(seed, n_hands, temperature, scale, background):
    rng = np.random.default_rng(seed)
    flow = (rng.normal(0, 1, (2, 24, 32)) * scale).astype(np.float32)
    hands = []
    for _ in range(n_hands):
        n = int(rng.integers(2, 12))
        pts = rng.uniform(-5, 36, (n, 2))
        if rng.random() < 0.3:
            pts[:, 1] = 2 * pts[:, 0] + 1  # collinear
        hands.append(pts)
    valid = (rng.random((24, 32)) > 0.2).astype(np.uint8)
    r, info = responsibility_maps(flow, hands, temperature=temperature, background=background, valid=valid)
    assert r.shape == (n_hands + 1, 24, 32) and np.isfinite(r).all()
    assert (r >= 0).all() and (r <= 1 + 1e-6).all()
    np.testing.assert_allclose(r.sum(0), 1.0, atol=1e-5)
    for k, f in enumerate(info["fitted"]):
        assert f or not r[k + 1].any()


def test_forearm_band_extends_from_the_wrist_away_from_the_fingers():
    from cohesiv.responsibility.masks import forearm_polygon, hull_mask

    # a hand pointing up: wrist at the bottom (40, 40), fingers above; the band must reach y = H - 1
    kp = np.zeros((21, 2))
    kp[0] = (40, 40)
    kp[1:] = np.stack([np.linspace(30, 50, 20), np.linspace(20, 36, 20)], 1)
    kp[5], kp[9], kp[17] = (33, 30), (40, 30), (47, 30)
    m0 = hull_mask([kp], (W, H))
    m1 = hull_mask([kp], (W, H), forearm=True)
    assert (m1 >= m0).all() and m1[H - 1, 40] == 1 and m0[H - 1, 40] == 0
    assert m1[H - 1, 5] == 0 and m1[10, 40] == 0  # not sideways, not above the fingers
    assert forearm_polygon(kp[:20], (W, H)) is None  # only for 21 MediaPipe keypoints


def _mediapipe_hand(wrist, angle_deg, size=30.0, curl=0.0):
    """21 keypoints: wrist, then 5 fingers (MCP first, tip last) pointing at ``angle_deg`` (0 = right, 90 = down)."""
    a = np.deg2rad(angle_deg)
    fwd, side = np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])
    pts = [np.asarray(wrist, float)]
    for f in range(5):
        base = pts[0] + fwd * 0.45 * size + side * (f - 2) * 0.15 * size
        for j in range(1, 5):  # curl folds the finger back towards the palm
            pts.append(base + fwd * 0.13 * size * (j - 1) * (1 - curl) - fwd * 0.1 * size * curl * (j - 1))
    return np.array(pts)


@pytest.mark.parametrize("angle", [-90, -30, 0, 45, 90, 150, 180, 250])
@pytest.mark.parametrize("curl", [0.0, 0.8])
def test_forearm_band_points_away_from_the_fingers_and_stays_in_the_image(angle, curl):
    from cohesiv.responsibility.masks import forearm_direction, forearm_polygon

    size = (120, 90)
    kp = _mediapipe_hand((60, 45), angle, curl=curl)
    u = forearm_direction(kp)
    fingers = kp[1:].mean(0) - kp[0]
    assert float(u @ fingers) < 0  # away from the fingers
    a = np.deg2rad(angle)
    assert float(u @ -np.array([np.cos(a), np.sin(a)])) > 0.95  # along the hand's axis, wrist -> elbow
    poly = forearm_polygon(kp, size)
    assert poly is not None
    assert (poly >= 0).all() and (poly[:, 0] <= size[0] - 1).all() and (poly[:, 1] <= size[1] - 1).all()
    centre = poly.mean(0) - kp[0]
    assert float(centre @ fingers) < 0
    # a hand near the edge whose forearm leaves the image: clipped, not dropped
    edge = _mediapipe_hand((10, 45), 0)  # fingers point right, forearm goes left out of the image
    p = forearm_polygon(edge, size)
    assert p is not None and p[:, 0].min() == 0


def _hull_mask_whole_image(hand_points, size, dilation, min_radius, forearm):
    """hull_mask as first written, filling and dilating the whole image (finite points only)."""
    import cv2

    from cohesiv.responsibility.masks import forearm_polygon

    out = np.zeros(size[::-1], np.uint8)
    for pts in hand_points:
        one = cv2.fillConvexPoly(np.zeros_like(out), cv2.convexHull(np.round(pts).astype(np.int32)), 1)
        poly = forearm_polygon(pts, size) if forearm else None
        one = one if poly is None else cv2.fillConvexPoly(one, poly, 1)
        r = max(int(round(dilation * float(np.ptp(pts, 0).max()))), min_radius)
        ellipse = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        out |= cv2.dilate(one, ellipse) if r > 0 else one
    return out


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n_points=st.sampled_from([1, 2, 3, 7, 21]), forearm=st.booleans())
def test_hull_mask_on_the_hands_box_equals_the_whole_image_version(seed, n_points, forearm):
    from cohesiv.responsibility.masks import hull_mask

    rng = np.random.default_rng(seed)
    w, h = int(rng.integers(8, 90)), int(rng.integers(8, 90))
    hands = []
    for _ in range(int(rng.integers(1, 3))):  # centres may lie outside the image
        centre = rng.uniform(-15, [w + 15, h + 15])
        hands.append(centre + rng.normal(0, rng.uniform(0.5, 25), (n_points, 2)))
    dilation, min_radius = float(rng.choice([0.0, 0.2, 0.5])), int(rng.integers(0, 3))
    got = hull_mask(hands, (w, h), dilation=dilation, min_radius=min_radius, forearm=forearm)
    want = _hull_mask_whole_image(hands, (w, h), dilation, min_radius, forearm)
    np.testing.assert_array_equal(got, want)
