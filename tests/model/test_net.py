import os

import pytest
import torch

from cohesiv.errors import CohesivError
from cohesiv.model import (
    CohesivNet,
    ModelConfig,
    build_model,
    normalize_images,
    pixel_to_grid,
    sample_at_points,
)
from cohesiv.model.net import query_scores


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return CohesivNet("resnet18", embed_dim=16, head_dim=8).eval()


def test_hub_offline_by_default(net):
    # building a network sets the hubs offline before segmentation_models_pytorch imports them
    assert os.environ.get("HF_HUB_OFFLINE") is not None


def test_forward_shapes_and_range(net):
    x = torch.randn(2, 3, 64, 96)
    pts = torch.tensor([[[10.0, 20.0], [50.0, 40.0], [0.0, 0.0]], [[95.0, 63.0], [3.0, 5.0], [7.0, 7.0]]])
    valid = torch.tensor([[True, True, False], [True, True, True]])
    out = net(x, pts, valid)
    assert out.z.shape == (2, 16, 64, 96)
    assert out.scores.shape == (2, 3, 64, 96)
    assert out.scores.min() >= 0 and out.scores.max() <= 1
    assert torch.all(out.scores[0, 2] == 0)  # invalid query -> zero scores
    assert net(x).scores is None


def test_invalid_points_may_hold_nan(net):
    x = torch.randn(1, 3, 32, 32)
    pts = torch.tensor([[[5.0, 5.0], [float("nan"), float("nan")]]])
    out = net(x, pts, torch.tensor([[True, False]]))
    assert torch.isfinite(out.scores).all()
    assert torch.all(out.scores[0, 1] == 0)


def test_several_hands_in_one_pass_equal_one_at_a_time(net):
    x = torch.randn(1, 3, 64, 64)
    pts = torch.tensor([[[10.0, 20.0], [40.5, 33.25]]])
    with torch.no_grad():
        both = net(x, pts).scores
        first = net(x, pts[:, :1]).scores
        second = net(x, pts[:, 1:]).scores
    torch.testing.assert_close(both, torch.cat([first, second], 1))


def test_size_not_multiple_of_32(net):
    with pytest.raises(ValueError, match="multiples of 32.*pad to 64x64"):
        net(torch.randn(1, 3, 50, 64))
    with pytest.raises(ValueError, match="images must have shape"):
        net(torch.randn(1, 4, 64, 64))


def test_points_shape_checked(net):
    with pytest.raises(ValueError, match="points"):
        net(torch.randn(1, 3, 32, 32), torch.zeros(1, 2, 3))


def test_unknown_encoder():
    with pytest.raises(CohesivError, match="unknown encoder 'nonet'"):
        CohesivNet("nonet")


def test_pixel_to_grid_pixel_centres():
    g = pixel_to_grid(torch.tensor([[0.0, 0.0], [9.0, 4.0], [4.5, 2.0]]), height=5, width=10)
    torch.testing.assert_close(g, torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]))


def test_sample_at_points_hand_values():
    f = torch.arange(12.0).view(1, 1, 3, 4)  # value = 4 y + x
    pts = torch.tensor([[[0.0, 0.0], [3.0, 2.0], [1.5, 0.0], [2.0, 1.5], [1.25, 1.0]]])
    out = sample_at_points(f, pts)
    assert out.shape == (1, 5, 1)
    torch.testing.assert_close(out[0, :, 0], torch.tensor([0.0, 11.0, 1.5, 8.0, 5.25]))


def test_query_scores_hand_values():
    q = torch.zeros(1, 2, 2, 2)
    q[0, :, 0, 0] = torch.tensor([1.0, 0.0])  # query at pixel (0, 0)
    q[0, :, 1, 1] = torch.tensor([0.5, 0.5])  # query at pixel (1, 1)
    k = torch.tensor([[[[0.3, 2.0], [-1.0, 0.0]], [[0.0, 0.0], [1.0, 0.4]]]])  # (1, 2, 2, 2)
    s = query_scores(q, k, torch.tensor([[[0.0, 0.0], [1.0, 1.0]]]))
    torch.testing.assert_close(s[0, 0], torch.tensor([[0.3, 1.0], [0.0, 0.0]]))
    torch.testing.assert_close(s[0, 1], torch.tensor([[0.15, 1.0], [0.0, 0.2]]))


def test_gradients_reach_encoder_and_heads():
    torch.manual_seed(0)
    m = CohesivNet("resnet18", embed_dim=8, head_dim=8)
    out = m(torch.randn(2, 3, 32, 32), torch.tensor([[[5.0, 5.0]], [[20.0, 9.0]]]))
    (out.scores.sum() + out.z.square().mean()).backward()
    for mod in (m.encoder, m.query_head, m.key_head, m.unet.decoder):
        grads = [p.grad for p in mod.parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads)


def test_build_model_and_config_roundtrip():
    cfg = ModelConfig(encoder_name="resnet18", embed_dim=8, head_dim=4)
    m = build_model(cfg)
    assert (m.embed_dim, m.head_dim) == (8, 4)
    assert m.query_head[2].out_channels == 4 + 1  # A query channels and the locality weight
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(CohesivError, match="unknown model config keys \\['embed'\\]"):
        ModelConfig.from_dict({"embed": 3})
    assert ModelConfig.from_dict({"embed": 3, "head_dim": 5}, strict=False).head_dim == 5


def test_normalize_images():
    x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    y = normalize_images(x)
    torch.testing.assert_close(
        y[0, :, 0, 0], torch.tensor([(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225])
    )
    torch.testing.assert_close(normalize_images(x.float() / 255), y)


@pytest.mark.parametrize("h,w", [(9, 11), (32, 32)])
def test_head_at_points_equals_full_map(h, w):
    from cohesiv.model.net import _head, head_at_points

    torch.manual_seed(0)
    head = _head(5, 4).double()
    z = torch.randn(2, 5, h, w, dtype=torch.float64)
    pts = torch.tensor(
        [
            [[0.0, 0.0], [w - 1.0, h - 1.0], [3.3, 4.7], [w - 1.2, 0.4]],
            [[-3.0, 2.0], [w + 5.0, h + 0.5], [1.0, h - 1.0], [w / 2, h / 2]],  # outside: border values
        ],
        dtype=torch.float64,
    )
    full = sample_at_points(head(z), pts)
    torch.testing.assert_close(head_at_points(head, z, pts), full)
    # gradients agree too (w.r.t. z, the head weights and the points)
    zr = z.clone().requires_grad_(True)
    pr = pts.clone().requires_grad_(True)
    g1 = torch.autograd.grad(sample_at_points(head(zr), pr).sum(), (zr, pr, head[0].weight))
    g2 = torch.autograd.grad(head_at_points(head, zr, pr).sum(), (zr, pr, head[0].weight))
    for a, b in zip(g1[:1] + g1[2:], g2[:1] + g2[2:]):
        torch.testing.assert_close(a, b)
    inside = (pts[..., 0] > 0) & (pts[..., 0] < w - 1) & (pts[..., 1] > 0) & (pts[..., 1] < h - 1)
    torch.testing.assert_close(g1[1][inside], g2[1][inside])


def test_network_scores_equal_full_map_heads(net):
    x = torch.randn(1, 3, 32, 64)
    pts = torch.tensor([[[0.0, 0.0], [63.0, 31.0], [20.4, 7.9]]])
    with torch.no_grad():
        z = net.embed(x)
        ref = query_scores(net.query_head(z), net.key_head(z), pts)
        torch.testing.assert_close(net.score(z, pts), ref)


@pytest.mark.parametrize("stride", [2, 4])
def test_reduced_resolution_heads_same_scores_on_constant_input(stride):
    """On a constant embedding, heads at 1/2 or 1/4 resolution give the full-resolution S.

    Away from the image border (where the heads' zero padding reaches, 2 pooled pixels) the key map
    is the same constant at every resolution, and so is S after upsampling.
    """
    torch.manual_seed(0)
    full = CohesivNet("resnet18", embed_dim=8, head_dim=8).eval()
    full.key_head.load_state_dict(full.query_head.state_dict())  # q = k inside: S = |k|^2 > 0
    low = CohesivNet("resnet18", embed_dim=8, head_dim=8, head_stride=stride).eval()
    low.load_state_dict(full.state_dict())
    z = torch.randn(1, 8, 1, 1).expand(2, 8, 64, 96).contiguous() * 0.3
    pts = torch.tensor([[[40.0, 30.0], [55.5, 20.25]], [[48.0, 32.0], [30.0, 40.0]]])
    valid = torch.tensor([[True, True], [True, False]])
    with torch.no_grad():
        ref = full.score(z, pts, valid)
        s_full = low.score(z, pts, valid)
        s_low = low.score(z, pts, valid, full_resolution=False)
    assert s_full.shape == ref.shape == (2, 2, 64, 96)
    assert s_low.shape == (2, 2, 64 // stride, 96 // stride)
    assert ref[0, :, 10:-10, 10:-10].std() < 1e-6 and 0 < ref[0, 0, 32, 48] < 1  # a non-trivial constant
    m = 3 * stride
    torch.testing.assert_close(s_full[..., m:-m, m:-m], ref[..., m:-m, m:-m])
    torch.testing.assert_close(s_low[..., 3:-3, 3:-3], ref[..., ::stride, ::stride][..., 3:-3, 3:-3])
    assert (s_full[1, 1] == 0).all()  # invalid queries stay 0


def test_reduced_resolution_network_forward_and_config():
    from cohesiv.errors import CohesivError
    from cohesiv.model import ModelConfig, build_model

    net = build_model(ModelConfig(encoder_name="resnet18", embed_dim=8, head_dim=8, head_stride=4)).eval()
    x = torch.randn(1, 3, 64, 64)
    pts = torch.tensor([[[10.0, 20.0]]])
    with torch.no_grad():
        out = net(x, pts)
        low = net(x, pts, full_resolution=False)
    assert out.scores.shape == (1, 1, 64, 64) and low.scores.shape == (1, 1, 16, 16)
    assert out.z.shape == (1, 8, 64, 64) and 0 <= out.scores.min() and out.scores.max() <= 1
    # runs saved before head_stride existed had full-resolution heads
    assert ModelConfig.from_dict({"encoder_name": "resnet18"}).head_stride == 1
    with pytest.raises(CohesivError, match="head_stride"):
        CohesivNet("resnet18", head_stride=3)


def test_locality_penalty_is_lambda_times_squared_distance():
    from cohesiv.model.net import locality_penalty

    lam = torch.tensor([[2.0, 0.5]])
    pts = torch.tensor([[[3.0, 1.0], [0.0, 0.0]]])
    pen = locality_penalty(lam, pts, 4, 6, unit=2.0)
    assert pen.shape == (1, 2, 4, 6)
    assert pen[0, 0, 1, 3] == 0 and pen[0, 0, 3, 5] == pytest.approx(2.0 * ((2 / 2) ** 2 + (2 / 2) ** 2))
    assert pen[0, 1, 2, 4] == pytest.approx(0.5 * ((4 / 2) ** 2 + (2 / 2) ** 2))


@pytest.mark.parametrize("stride", [1, 4])
def test_query_locality_fades_scores_with_distance(stride):
    from cohesiv.model.net import LOCALITY_UNIT

    torch.manual_seed(0)
    net = CohesivNet("resnet18", embed_dim=8, head_dim=8, head_stride=stride, query_locality=True).eval()
    plain = CohesivNet("resnet18", embed_dim=8, head_dim=8, head_stride=stride).eval()
    state = {k: v for k, v in net.state_dict().items() if not k.startswith("query_head.2")}
    plain.load_state_dict(state, strict=False)  # same encoder, key head and first query conv
    with torch.no_grad():
        # q = (1/8, ..., 1/8) and constant keys K = 1: the dot product is 1 everywhere, so the
        # distance alone shapes S
        for head in (net.query_head, plain.query_head, net.key_head, plain.key_head):
            head[2].weight.zero_()
            head[2].bias[:8].fill_(1.0 if head in (net.key_head, plain.key_head) else 1 / 8)
        # lambda = softplus(bias): a large one first, then one so small that the term vanishes
        net.query_head[2].bias[8:].fill_(3.0)
        x = torch.randn(1, 3, 128, 128)
        pts = torch.tensor([[[40.0, 40.0]]])
        s = net(x, pts).scores[0, 0]
        base = plain(x, pts).scores[0, 0]
        assert float(base.min()) == pytest.approx(1.0) and float(s[40, 40]) == pytest.approx(1.0, abs=0.05)
        assert float(s[127, 127]) == 0.0 < float(base[127, 127])  # far away: faded out
        d = torch.tensor(2 * LOCALITY_UNIT)
        assert float(s[40, 40 + int(d)]) < float(s[40, 40 + int(d) // 4])  # monotone in distance
        net.query_head[2].bias[8:].fill_(-30.0)
        assert torch.allclose(net(x, pts).scores, plain(x, pts).scores, atol=1e-5)  # lambda ~ 0: plain


def test_query_locality_config_roundtrip_and_old_runs():
    cfg = ModelConfig(encoder_name="resnet18", embed_dim=8, head_dim=8, query_locality=True)
    assert ModelConfig.from_dict(cfg.to_dict()).query_locality is True
    assert build_model(cfg).query_head[2].out_channels == 9
    old = ModelConfig.from_dict({"encoder_name": "resnet18"})  # a run saved before the field existed
    assert old.query_locality is False and ModelConfig().query_locality is True
