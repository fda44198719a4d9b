import math

import pytest
import torch

from cohesiv.model import (
    CohesivLoss,
    EmbeddingLoss,
    NetOutput,
    ResponsibilityLoss,
    embedding_loss,
    object_from_responsibility,
    responsibility_loss,
    total_loss,
)

# ------------------------------------------------------------------------------- responsibility


def test_responsibility_zero_at_perfect_prediction():
    r = torch.rand(2, 3, 5, 4)
    assert responsibility_loss(r.clone(), r).item() == 0.0


def test_responsibility_hand_values():
    s = torch.tensor([[[[0.2, 1.0], [0.5, 0.0]]]])
    r = torch.tensor([[[[0.0, 0.0], [0.5, 0.3]]]])
    # |d| = 0.2 -> 0.5 * 0.04 / 0.5 = 0.04; |d| = 1 -> 1 - 0.25 = 0.75; 0 -> 0; 0.3 -> 0.09
    assert responsibility_loss(s, r).item() == pytest.approx((0.04 + 0.75 + 0 + 0.09) / 4)
    valid = torch.tensor([[[1, 0], [1, 1]]])
    assert responsibility_loss(s, r, valid).item() == pytest.approx((0.04 + 0 + 0.09) / 3)


def test_responsibility_masks_hands_and_pixels():
    s = torch.zeros(1, 2, 2, 2)
    r = torch.stack([torch.zeros(2, 2), torch.ones(2, 2)])[None]
    assert responsibility_loss(s, r, hand_valid=torch.tensor([[True, False]])).item() == 0.0
    assert responsibility_loss(s, r, hand_valid=torch.tensor([[False, True]])).item() == pytest.approx(0.75)
    s.requires_grad_(True)
    loss = responsibility_loss(s, r, valid=torch.zeros(1, 1, 2, 2))
    loss.backward()
    assert loss.item() == 0.0 and torch.all(s.grad == 0)


def test_responsibility_ordering():
    r = (torch.rand(1, 2, 8, 8) > 0.5).float()
    good = 0.9 * r + 0.05
    bad = 1 - good
    assert (
        responsibility_loss(good, r)
        < responsibility_loss(0.5 * torch.ones_like(r), r)
        < responsibility_loss(bad, r)
    )


def test_responsibility_gradcheck():
    torch.manual_seed(0)
    s = torch.rand(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    r = torch.rand(1, 2, 3, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda a: responsibility_loss(a, r, hand_valid=torch.tensor([[True, False]])), (s,)
    )


def test_responsibility_module_agrees_and_shape_errors():
    s, r = torch.rand(2, 2, 4, 4), torch.rand(2, 2, 4, 4)
    v = torch.rand(2, 1, 4, 4) > 0.3
    assert ResponsibilityLoss(beta=0.5)(s, r, v) == responsibility_loss(s, r, v, beta=0.5)
    with pytest.raises(ValueError, match="target must have shape"):
        responsibility_loss(s, r[:, :1])
    with pytest.raises(ValueError, match="valid"):
        responsibility_loss(s, r, torch.ones(2, 3, 4))


# ------------------------------------------------------------------------------- embedding


def _masks(h=4, w=6):
    person = torch.zeros(1, 1, h, w)
    obj = torch.zeros(1, 1, h, w)
    person[..., :, :2] = 1
    obj[..., :, 2:4] = 1
    return person, obj  # background: columns 4-5


def _embedding_from_masks(person, obj, scale=1.0):
    # three unit vectors 120 degrees apart in the first two channels
    dirs = torch.tensor([[1.0, 0.0], [-0.5, math.sqrt(3) / 2], [-0.5, -math.sqrt(3) / 2]])
    lab = torch.where(person > 0, 0, torch.where(obj > 0, 1, 2))[:, 0]  # (B, H, W)
    z = torch.zeros(lab.shape[0], 3, *lab.shape[1:])
    z[:, :2] = dirs[lab].permute(0, 3, 1, 2) * scale
    return z


def _reference(z, person, obj, valid, normalize, tau, eps=1e-3):
    """Loops over images and pixels, straight from the formula."""
    total, n = 0.0, 0
    for b in range(z.shape[0]):
        zb = z[b].flatten(1).T  # (N, F)
        if normalize:
            zb = torch.nn.functional.normalize(zb, dim=1)
        p, o, v = person[b].flatten() > 0, obj[b].flatten() > 0, valid[b].flatten() > 0
        masks = [p & v, o & v & ~p, v & ~p & ~o]
        protos = []
        for m in masks:
            if m.any():
                c = zb[m].mean(0)
                protos.append(torch.nn.functional.normalize(c, dim=0) if normalize else c)
            else:
                protos.append(None)
        for mi, m in enumerate(masks):
            for i in torch.nonzero(m).flatten():
                e = [torch.exp(pr @ zb[i] / tau) for pr in protos if pr is not None]
                total += -torch.log((torch.exp(protos[mi] @ zb[i] / tau) + eps) / (sum(e) + eps))
                n += 1
    return total / max(n, 1)


def test_embedding_near_zero_at_perfect_separation():
    person, obj = _masks()
    z = _embedding_from_masks(person, obj)
    # cos between prototypes is -0.5: loss = -log(e^10 / (e^10 + 2 e^-5)) ~ 2 e^-15
    assert embedding_loss(z, person, obj).item() < 1e-5
    # the paper's plain form with large embeddings: -> 0 as well
    zp = _embedding_from_masks(person, obj, scale=10.0)
    assert embedding_loss(zp, person, obj, normalize=False, temperature=1.0).item() < 1e-5


def test_embedding_matches_reference_loops():
    torch.manual_seed(0)
    z = torch.randn(2, 3, 4, 5)
    person = (torch.rand(2, 1, 4, 5) > 0.6).float()
    obj = (torch.rand(2, 1, 4, 5) > 0.5).float()
    valid = (torch.rand(2, 1, 4, 5) > 0.2).float()
    obj[1] = 0  # no object in image 1: left out of its sums
    for normalize, tau in ((True, 0.1), (False, 1.0), (True, 0.5)):
        got = embedding_loss(z, person, obj, valid, normalize=normalize, temperature=tau)
        ref = _reference(z, person, obj, valid, normalize, tau)
        assert got.item() == pytest.approx(float(ref), rel=1e-5)


def test_embedding_ordering():
    person, obj = _masks()
    good = _embedding_from_masks(person, obj)
    torch.manual_seed(0)
    noisy = good + 0.8 * torch.randn_like(good)
    # object pixels embedded like person pixels: the two cannot be told apart
    merged = _embedding_from_masks(person + obj, torch.zeros_like(obj))
    lg, ln, lm = (embedding_loss(z, person, obj).item() for z in (good, noisy, merged))
    assert lg < ln and lg < lm
    assert lm == pytest.approx(2 / 3 * math.log(2), rel=1e-3)  # person/object pixels: log 2 each
    # prototypes are per-image means: swapping the class directions changes nothing
    swapped = _embedding_from_masks(obj, person)
    assert embedding_loss(swapped, person, obj).item() == pytest.approx(lg, abs=1e-6)


def test_embedding_empty_masks_no_nan():
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    zero = torch.zeros(2, 1, 3, 3)
    loss = embedding_loss(z, zero, zero)  # only background: a single class, loss 0
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    assert torch.isfinite(z.grad).all()
    z.grad = None
    loss = embedding_loss(z, torch.ones(2, 1, 3, 3), zero, valid=zero)  # nothing valid
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(z.grad).all()


def test_embedding_plain_form_does_not_overflow():
    person, obj = _masks()
    z = _embedding_from_masks(person, obj, scale=100.0)  # dot products of 1e4
    z = z + torch.randn_like(z)
    loss = embedding_loss(z, person, obj, normalize=False, temperature=1.0)
    assert torch.isfinite(loss)


@pytest.mark.parametrize("normalize,tau", [(True, 0.1), (False, 1.0)])
def test_embedding_gradcheck(normalize, tau):
    torch.manual_seed(0)
    z = (0.3 * torch.randn(1, 3, 3, 3, dtype=torch.float64)).requires_grad_(True)
    person = torch.zeros(1, 1, 3, 3)
    person[..., 0, :] = 1
    obj = torch.zeros(1, 1, 3, 3)
    obj[..., 1, :2] = 1
    assert torch.autograd.gradcheck(
        lambda a: embedding_loss(a, person, obj, normalize=normalize, temperature=tau), (z,)
    )


def test_embedding_module_agrees():
    torch.manual_seed(0)
    z = torch.randn(2, 4, 5, 5)
    p, o = (torch.rand(2, 1, 5, 5) > 0.5), (torch.rand(2, 5, 5) > 0.5)
    assert EmbeddingLoss(False, 1.0)(z, p, o) == embedding_loss(z, p, o, normalize=False, temperature=1.0)
    assert EmbeddingLoss()(z, p, o) == embedding_loss(z, p, o)


# ------------------------------------------------------------------------------- total


def _batch(b=2, k=2, h=4, w=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    resp = torch.softmax(torch.randn(b, k + 1, h, w, generator=g) * 3, 1)
    person = (torch.rand(b, 1, h, w, generator=g) > 0.7).float()
    return {
        "responsibility": resp,
        "person": person,
        "valid": (torch.rand(b, 1, h, w, generator=g) > 0.1).float(),
        "point_valid": torch.tensor([[True, True], [True, False]]),
    }


def test_object_from_responsibility():
    r = torch.zeros(1, 3, 2, 2)
    r[0, 1, 0, 0] = 0.9  # hand 1 moves pixel (0, 0)
    r[0, 2, 0, 1] = 0.9  # hand 2 (invalid) moves (0, 1)
    r[0, 1, 1, 1] = 0.9  # but (1, 1) is person
    person = torch.tensor([[[0, 0], [0, 1]]])
    o = object_from_responsibility(r, person, torch.tensor([[True, False]]))
    assert o.tolist() == [[[[True, False], [False, False]]]]


def test_total_loss_weights_and_forms():
    batch = _batch()
    torch.manual_seed(1)
    out = NetOutput(torch.randn(2, 5, 4, 4), torch.rand(2, 2, 4, 4))
    loss, parts = total_loss(out, batch)
    hv, v = batch["point_valid"], batch["valid"]
    resp = responsibility_loss(out.scores, batch["responsibility"][:, 1:], v, hv)
    obj = object_from_responsibility(batch["responsibility"], batch["person"], hv)
    emb = embedding_loss(out.z, batch["person"], obj, v)
    assert loss.item() == pytest.approx(10 * resp.item() + emb.item(), rel=1e-6)
    assert parts["resp"].item() == pytest.approx(resp.item()) and parts["emb"].item() == pytest.approx(
        emb.item()
    )
    # trainer's Batch form: hand channels only, object given
    hands_only = dict(batch, responsibility=batch["responsibility"][:, 1:], object=obj.float())
    loss2, _ = total_loss(out, hands_only)
    assert loss2.item() == pytest.approx(loss.item(), rel=1e-6)
    loss3, _ = CohesivLoss(w_resp=1.0, w_emb=0.0)(out, batch)
    assert loss3.item() == pytest.approx(resp.item(), rel=1e-6)
    with pytest.raises(ValueError, match="responsibility has 4 channels for 2 query points"):
        total_loss(out, dict(batch, responsibility=torch.rand(2, 4, 4, 4)))


def test_total_loss_backward_through_network():
    from cohesiv.model import CohesivNet

    torch.manual_seed(0)
    net = CohesivNet("resnet18", embed_dim=8, head_dim=8)
    batch = _batch(h=32, w=32)
    pts = torch.tensor([[[5.0, 5.0], [20.0, 20.0]], [[10.0, 3.0], [0.0, 0.0]]])
    out = net(torch.randn(2, 3, 32, 32), pts, batch["point_valid"])
    loss, parts = total_loss(out, batch)
    loss.backward()
    assert torch.isfinite(loss) and parts["resp"] > 0 and parts["emb"] > 0
    assert net.query_head[0].weight.grad.abs().sum() > 0


def test_pooled_targets_and_reduced_resolution_loss():
    from cohesiv.model.losses import pool_targets

    r = torch.rand(2, 3, 8, 12)
    valid = torch.ones(2, 1, 8, 12)
    valid[0, 0, :2, :2] = 0  # one 2x2 cell fully invalid, its neighbour half
    valid[0, 0, :2, 2] = 0
    t, w = pool_targets(r, valid, 2)
    assert t.shape == (2, 3, 4, 6) and w.shape == (2, 1, 4, 6)
    assert w[0, 0, 0, 0] == 0 and w[0, 0, 0, 1] == 0.5 and w[1].eq(1).all()
    torch.testing.assert_close(t[0, :, 0, 1], r[0, :, :2, 3].mean(-1))
    torch.testing.assert_close(t[1], torch.nn.functional.avg_pool2d(r[1], 2))
    # total_loss on scores at half resolution == the responsibility loss against the pooled targets
    z = torch.randn(2, 4, 8, 12)
    s = torch.rand(2, 2, 4, 6)
    batch = {"responsibility": torch.softmax(torch.randn(2, 3, 8, 12), 1), "person": torch.zeros(2, 1, 8, 12)}
    batch["valid"] = valid
    loss, parts = total_loss(NetOutput(z, s), batch, w_resp=1.0, w_emb=0.0)
    t, w = pool_targets(batch["responsibility"][:, 1:], valid, 2)
    ref = (torch.nn.functional.smooth_l1_loss(s, t, reduction="none", beta=0.5) * w).sum() / (w.sum() * 2)
    torch.testing.assert_close(loss, ref)
    with pytest.raises(ValueError):
        total_loss(NetOutput(z, torch.rand(2, 2, 4, 5)), batch)
