import numpy as np
import pytest
from flow_util import textured

from cohesiv.flow import FlowEstimator, forward_backward_valid, warp_backward

H, W = 48, 64


def occluder_flows(x0=20, x1=36, y0=10, y1=30, d=4):
    """Exact flows for a square [y0:y1, x0:x1] moving right by d px over a static background."""
    fw = np.zeros((2, H, W), np.float32)
    fw[0, y0:y1, x0:x1] = d  # square pixels of frame a go to x + d in b
    bw = np.zeros((2, H, W), np.float32)
    bw[0, y0:y1, x0 + d : x1 + d] = -d  # square pixels of frame b come from x - d in a
    return fw, bw


def test_zero_flow_is_valid_everywhere():
    z = np.zeros((2, H, W), np.float32)
    ok = forward_backward_valid(z, z)
    assert ok.shape == (H, W) and ok.dtype == bool and ok.all()


def test_exact_occluder_flags_exactly_the_occluded_and_uncovered_strips():
    x0, x1, y0, y1, d = 20, 36, 10, 30, 4
    fw, bw = occluder_flows(x0, x1, y0, y1, d)
    # frame a pixels hidden in b: background the square moves onto, [x1, x1 + d)
    expected_fw = np.ones((H, W), bool)
    expected_fw[y0:y1, x1 : x1 + d] = False
    np.testing.assert_array_equal(forward_backward_valid(fw, bw), expected_fw)
    # frame b pixels that the square uncovers (not visible in a): [x0, x0 + d)
    expected_bw = np.ones((H, W), bool)
    expected_bw[y0:y1, x0 : x0 + d] = False
    np.testing.assert_array_equal(forward_backward_valid(bw, fw), expected_bw)


def test_flow_leaving_the_image_is_invalid():
    fw = np.zeros((2, H, W), np.float32)
    fw[0] = 3.0
    bw = -fw
    ok = forward_backward_valid(fw, bw)
    assert ok[:, : W - 3].all()  # targets x + 3 <= W - 1: inside
    assert not ok[:, W - 3 :].any()  # targets beyond the last pixel centre + 0.5


def test_alpha_beta_tolerances():
    fw = np.zeros((2, H, W), np.float32)
    fw[0] = 10.0
    bw = np.zeros((2, H, W), np.float32)
    bw[0] = -9.0  # round trip misses by 1 px: |.|^2 = 1
    inner = np.s_[:, : W - 12]
    assert not forward_backward_valid(fw, bw, alpha=0.0, beta=0.5)[inner].any()
    assert forward_backward_valid(fw, bw, alpha=0.0, beta=1.5)[inner].all()
    # alpha * (100 + 81) = 1.81 > 1 with alpha = 0.01
    assert forward_backward_valid(fw, bw, alpha=0.01, beta=0.0)[inner].all()


def test_warp_backward_samples_at_the_forward_target():
    fw = np.zeros((2, H, W), np.float32)
    fw[0] = 2.5
    bw = np.zeros((2, H, W), np.float32)
    bw[1] = np.arange(W, dtype=np.float32)[None, :]  # dy value = x coordinate
    out = warp_backward(bw, fw)
    np.testing.assert_allclose(
        out[1, :, : W - 3], np.broadcast_to(np.arange(W - 3) + 2.5, (H, W - 3)), atol=1e-4
    )


def test_batched_form_and_shape_errors():
    fw, bw = occluder_flows()
    ok = forward_backward_valid(np.stack([fw, bw]), np.stack([bw, fw]))
    assert ok.shape == (2, H, W)
    np.testing.assert_array_equal(ok[0], forward_backward_valid(fw, bw))
    with pytest.raises(ValueError, match="flow_bw must have shape"):
        forward_backward_valid(fw, bw[:, :-1])
    with pytest.raises(ValueError, match="flow_fw must have shape"):
        forward_backward_valid(fw[0], bw[0])


def test_valid_mask_flags_region_uncovered_by_a_moving_occluder_with_dis():
    h, w, d = 120, 160, 6
    bg = textured(h, w, seed=1)
    patch = textured(40, 40, seed=2, sigma=1.5)
    y0, x0 = 40, 50
    a, b = bg.copy(), bg.copy()
    a[y0 : y0 + 40, x0 : x0 + 40] = patch
    b[y0 : y0 + 40, x0 + d : x0 + 40 + d] = patch
    est = FlowEstimator(preset="medium")
    fw, bw = est(a, b), est(b, a)
    valid_b = forward_backward_valid(bw, fw)  # for frame b's pixels
    uncovered = np.zeros((h, w), bool)
    uncovered[y0 + 4 : y0 + 36, x0 : x0 + d] = True  # background in b, hidden under the square in a
    far = np.ones((h, w), bool)
    far[y0 - 20 : y0 + 60, x0 - 20 : x0 + 60 + d] = False
    far[:10], far[-10:], far[:, :10], far[:, -10:] = False, False, False, False
    assert (~valid_b[uncovered]).mean() > 0.6
    assert valid_b[far].mean() > 0.95


def _valid_whole_image(flow_fw, flow_bw, alpha=0.01, beta=0.5):
    """The check on whole images, as before the strips (the formula's operations in its order)."""
    _, h, w = flow_fw.shape
    fx, fy = flow_fw
    bx, by = warp_backward(flow_bw, flow_fw)
    bound = fx * fx + fy * fy
    bound += bx * bx
    bound += by * by
    bound = bound * np.float32(alpha) + np.float32(beta)
    ex, ey = bx + fx, by + fy
    ok = ex * ex + ey * ey < bound
    xs = fx + np.arange(w, dtype=np.float32)
    ys = fy + np.arange(h, dtype=np.float32)[:, None]
    return ok & (xs >= -0.5) & (xs <= w - 0.5) & (ys >= -0.5) & (ys <= h - 0.5)


@pytest.mark.parametrize("size", [(37, 23), (240, 320), (61, 700)])
def test_strip_wise_check_equals_the_whole_image_formula(size):
    # strips of rows (cache-friendly) must not change a single pixel, for sizes that do not
    # divide into whole strips and for rows longer than a strip
    h, w = size
    rng = np.random.default_rng(h * w)
    shift = np.array([2.3, -1.6], np.float32)[:, None, None]  # a translation, plus noise
    flow_fw = (shift + rng.normal(0, 0.4, (2, h, w))).astype(np.float32)
    flow_bw = (-shift + rng.normal(0, 0.4, (2, h, w))).astype(np.float32)
    got = forward_backward_valid(flow_fw, flow_bw)
    np.testing.assert_array_equal(got, _valid_whole_image(flow_fw, flow_bw))
    assert 0.05 < got.mean() < 0.95  # both outcomes occur
    # a channel-first view (as DIS returns) gives the same mask
    view = np.ascontiguousarray(flow_bw.transpose(1, 2, 0)).transpose(2, 0, 1)
    np.testing.assert_array_equal(forward_backward_valid(flow_fw, view), got)
