"""COHESIV losses (Shan et al. 2021, section 3.3): responsibility loss and prototype embedding loss.

Each loss is a pure function plus a thin ``nn.Module``; :func:`total_loss` combines them as
``w_resp * L_resp + w_emb * L_emb`` (10 : 1 as in the paper).

Masks are ``(B, 1, H, W)`` or ``(B, H, W)`` with values in {0, 1} (bool, integer or float);
``valid`` marks the pixels whose pseudo-label is trusted (e.g. forward-backward consistent flow).

Scores at a reduced resolution (a network with a head stride s > 1, run with ``full_resolution=False``)
are compared with responsibilities average-pooled over the valid pixels of each s x s cell, each cell
weighted by its share of valid pixels (:func:`pool_targets`); the embedding loss stays at the
resolution of Z.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cohesiv._checks import check_shape


def _mask(m: torch.Tensor | None, like: torch.Tensor, name: str) -> torch.Tensor:
    """Return a ``(B, H, W)`` bool mask (all True when ``m`` is None)."""
    b, _, h, w = like.shape
    if m is None:
        return torch.ones(b, h, w, dtype=torch.bool, device=like.device)
    if m.dim() == 4:
        check_shape(m, f"{b},1,{h},{w}", name)
        m = m[:, 0]
    else:
        check_shape(m, f"{b},{h},{w}", name)
    return m.to(like.device) > 0.5 if m.is_floating_point() else m.to(like.device).bool()


def responsibility_loss(
    scores: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor | None = None,
    hand_valid: torch.Tensor | None = None,
    beta: float = 0.5,
) -> torch.Tensor:
    """Smooth-L1 between the scores S_k and the responsibility maps R_k, averaged over valid entries.

    ``L = mean over (b, k, i, j) with valid[b, i, j] and hand_valid[b, k] of smooth_l1(S - R; beta)``,
    where ``smooth_l1(d) = 0.5 d² / beta`` if ``|d| < beta`` else ``|d| - 0.5 beta``.

    Args:
        scores: ``(B, K, H, W)`` network scores in [0, 1].
        target: ``(B, K, H, W)`` responsibility of each hand (channels 1..K of the stored
            ``(K+1, H, W)`` maps; channel 0, the background, is not a target).
        valid: ``(B, 1, H, W)`` or ``(B, H, W)`` {0, 1} pixels to use (bool or integer), or float
            per-pixel weights in [0, 1] (e.g. the valid share of a pooled cell), or None (all).
        hand_valid: ``(B, K)`` bool, False for padding hands, or None (all).
        beta: Smooth-L1 transition point (0.5 in the paper).

    Returns:
        Scalar loss; 0 (still differentiable) when nothing is valid.
    """
    dims = check_shape(scores, "B,K,H,W", "scores")
    check_shape(target, ",".join(str(dims[k]) for k in "BKHW"), "target")
    if valid is not None and valid.is_floating_point():  # weights
        b, _, h, wd = scores.shape
        check_shape(valid, f"{b},1,{h},{wd}" if valid.dim() == 4 else f"{b},{h},{wd}", "valid")
        w = valid.reshape(b, 1, h, wd).to(scores.device, scores.dtype)
    else:
        w = _mask(valid, scores, "valid")[:, None].to(scores.dtype)
    if hand_valid is not None:
        check_shape(hand_valid, f"{dims['B']},{dims['K']}", "hand_valid")
        w = w * hand_valid.to(scores.device, scores.dtype)[:, :, None, None]
    w = w.expand_as(scores)
    per_pixel = F.smooth_l1_loss(scores, target.to(scores.dtype), reduction="none", beta=beta)
    return (per_pixel * w).sum() / w.sum().clamp_min(1.0)


def pool_targets(
    target: torch.Tensor, valid: torch.Tensor | None, stride: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Responsibility targets and pixel weights for scores computed at 1/``stride`` resolution.

    Args:
        target: ``(B, K, H, W)`` responsibilities (H and W multiples of ``stride``).
        valid: ``(B, 1, H, W)`` or ``(B, H, W)`` {0, 1} valid pixels, or None (all).
        stride: s, the pooling factor.

    Returns:
        ``(target (B, K, H/s, W/s), weight (B, 1, H/s, W/s))``: the mean responsibility over the valid
        pixels of each s x s cell (0 where none is valid), and the share of valid pixels of the cell.
        With every pixel valid, the target is ``avg_pool2d(target, s)`` and the weights are 1.
    """
    b, _, h, w = target.shape
    v = _mask(valid, target, "valid")[:, None].to(target.dtype)
    weight = F.avg_pool2d(v, stride)
    pooled = F.avg_pool2d(target * v, stride) / weight.clamp_min(1.0 / stride**2)
    return pooled, weight


def prototype_logits(
    z: torch.Tensor, masks: torch.Tensor, *, normalize: bool = True, temperature: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prototypes as masked means of the embedding, and each pixel's similarity to each prototype.

    Args:
        z: ``(B, F, H, W)`` embedding.
        masks: ``(B, M, H, W)`` float {0, 1} masks (e.g. person, object, background).
        normalize: L2-normalise the pixel embeddings and the prototypes (cosine similarities).
        temperature: divide the similarities by this.

    Returns:
        ``(prototypes (B, M, F), logits (B, M, H, W))``; prototypes of empty masks are 0.
    """
    b, f, h, w = z.shape
    zf = z.flatten(2)  # (B, F, N)
    mf = masks.flatten(2).to(z.dtype)  # (B, M, N)
    if normalize:
        # Same as F.normalize(zf, dim=1) first, but the 1/|z| factor is applied to the (B, M, N) masks
        # and logits instead of the (B, F, N) embedding: ~2x faster forward + backward at F = 64.
        inv = 1.0 / torch.linalg.vector_norm(zf, dim=1, keepdim=True).clamp_min(1e-12)  # (B, 1, N)
        protos = torch.einsum("bmn,bfn->bmf", mf * inv, zf) / mf.sum(2, keepdim=True).clamp_min(1.0)
        protos = F.normalize(protos, dim=2)
        logits = torch.einsum("bmf,bfn->bmn", protos, zf) * (inv / temperature)
    else:
        protos = torch.einsum("bmn,bfn->bmf", mf, zf) / mf.sum(2, keepdim=True).clamp_min(1.0)
        logits = torch.einsum("bmf,bfn->bmn", protos, zf) / temperature
    return protos, logits.view(b, -1, h, w)


def embedding_loss(
    z: torch.Tensor,
    person: torch.Tensor,
    object: torch.Tensor,  # noqa: A002 - the paper's name
    valid: torch.Tensor | None = None,
    *,
    normalize: bool = True,
    temperature: float = 0.1,
    eps: float = 1e-3,
) -> torch.Tensor:
    """3-way prototype contrastive loss on the embedding (person / object / background).

    For each image, prototypes ``z_m`` are the means of Z over the masks m ∈ {person, object,
    background} (background = valid pixels in neither). Every valid pixel ij of mask m costs
    ``-log((exp(s(z_m, Z_ij)) + eps) / (Σ_m' exp(s(z_m', Z_ij)) + eps))``, averaged over all valid
    pixels of the batch, with ``s(a, b) = aᵀb / temperature`` on L2-normalised vectors when
    ``normalize`` (ours) or the plain dot product (the paper: ``normalize=False, temperature=1``).
    A mask that is empty in an image is left out of that image's sum (no NaN). The prototypes are
    not detached: the gradient flows through them.

    Args:
        z: ``(B, F, H, W)`` embedding.
        person: ``(B, 1, H, W)`` or ``(B, H, W)`` {0, 1} hand/arm mask.
        object: same shape, held-object mask (pixels also in ``person`` count as person).
        valid: same shape, pixels to use, or None (all).
        normalize: cosine similarities (True) or plain dot products (False).
        temperature: divides the similarities (0.1 with ``normalize``; 1 for the paper's form).
        eps: the paper's ε = 1e-3.

    Returns:
        Scalar loss (0 when there is no valid pixel).
    """
    check_shape(z, "B,F,H,W", "z")
    v = _mask(valid, z, "valid")
    p = _mask(person, z, "person") & v
    o = _mask(object, z, "object") & v & ~p
    bg = v & ~p & ~o
    masks = torch.stack([p, o, bg], 1).to(z.dtype)  # (B, 3, H, W)
    _, logits = prototype_logits(z, masks, normalize=normalize, temperature=temperature)
    present = masks.flatten(2).sum(2) > 0  # (B, 3)
    # Leave absent masks out of the denominator with the most negative finite value (-inf would give
    # NaN gradients for images without any valid pixel).
    logits = logits.masked_fill(~present[:, :, None, None], torch.finfo(logits.dtype).min)
    log_eps = math.log(eps)
    log_num = torch.logaddexp(logits, logits.new_tensor(log_eps))  # (B, 3, H, W)
    log_den = torch.logaddexp(torch.logsumexp(logits, 1, keepdim=True), logits.new_tensor(log_eps))
    per_pixel = (log_den - log_num) * masks
    return per_pixel.sum() / masks.sum().clamp_min(1.0)


def object_from_responsibility(
    responsibility: torch.Tensor,
    person: torch.Tensor,
    hand_valid: torch.Tensor | None = None,
    threshold: float = 0.5,
) -> torch.Tensor:
    """Held-object mask from responsibilities: union over hands of ``R_k > threshold``, minus person.

    Args:
        responsibility: ``(B, K+1, H, W)``, channel 0 background, channel k hand k.
        person: ``(B, 1, H, W)`` or ``(B, H, W)`` {0, 1}.
        hand_valid: ``(B, K)`` bool or None (all).
        threshold: responsibility above which a pixel moves with a hand.

    Returns:
        ``(B, 1, H, W)`` bool.
    """
    r = responsibility[:, 1:] > threshold
    if hand_valid is not None:
        r = r & hand_valid.to(r.device).bool()[:, :, None, None]
    return (r.any(1) & ~_mask(person, responsibility, "person"))[:, None]


def _field(batch: Any, name: str, default: Any = None) -> Any:
    if isinstance(batch, Mapping):
        return batch.get(name, default)
    return getattr(batch, name, default)


def total_loss(
    out: Any,
    batch: Any,
    w_resp: float = 10.0,
    w_emb: float = 1.0,
    *,
    normalize: bool = True,
    temperature: float = 0.1,
    beta: float = 0.5,
    object_threshold: float = 0.5,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The training loss ``w_resp * L_resp + w_emb * L_emb`` of one batch.

    Args:
        out: the network output (:class:`~cohesiv.model.NetOutput` or anything with ``z`` and ``scores``).
            Scores of size ``(H/s, W/s)`` (a head stride s, ``full_resolution=False``) are compared
            with the pooled responsibilities (:func:`pool_targets`).
        batch: a mapping or an object (e.g. :class:`cohesiv.train.data.Batch`) with fields
            ``responsibility`` ``(B, K, H, W)`` (channel k-1 the hand of query k) or ``(B, K+1, H, W)``
            (channel 0 background, as stored), ``person (B, 1, H, W)``, optional ``valid``
            ``(B, 1, H, W)``, optional ``hand_valid`` (or ``point_valid``) ``(B, K)`` bool and optional
            ``object (B, 1, H, W)`` (else :func:`object_from_responsibility` at ``object_threshold``).
        w_resp: weight of the responsibility loss (10).
        w_emb: weight of the embedding loss (1).
        normalize: see :func:`embedding_loss`.
        temperature: see :func:`embedding_loss`.
        beta: see :func:`responsibility_loss`.
        object_threshold: see :func:`object_from_responsibility`.

    Returns:
        ``(loss, {"loss", "resp", "emb"})``: the scalar loss and its parts (detached).
    """
    z, scores = out.z, out.scores
    resp = _field(batch, "responsibility")
    person = _field(batch, "person")
    valid = _field(batch, "valid")
    hand_valid = _field(batch, "hand_valid", _field(batch, "point_valid"))
    if scores is None:
        raise ValueError("total_loss needs the scores: run the network with the query points")
    b, k, h, w = scores.shape
    rh = resp.shape[-2]
    stride = rh // h if h and rh % h == 0 else 1  # scores at 1/stride of the targets' size
    check_shape(resp, f"{b},C,{h * stride},{w * stride}", "responsibility")
    if resp.shape[1] == k + 1:  # stored form: channel 0 is the background
        resp = resp[:, 1:]
    elif resp.shape[1] != k:
        raise ValueError(
            f"responsibility has {resp.shape[1]} channels for {k} query points; expected {k} (hands) "
            f"or {k + 1} (background first)"
        )
    obj = _field(batch, "object")
    if obj is None:
        obj = object_from_responsibility(
            F.pad(resp, (0, 0, 0, 0, 1, 0)), person, hand_valid, object_threshold
        )
    if stride > 1:  # reduced-resolution scores: pooled targets, cells weighted by their valid share
        resp, resp_valid = pool_targets(resp.float(), valid, stride)
    else:
        resp_valid = valid
    l_resp = responsibility_loss(scores, resp, resp_valid, hand_valid, beta=beta)
    l_emb = embedding_loss(z, person, obj, valid, normalize=normalize, temperature=temperature)
    loss = w_resp * l_resp + w_emb * l_emb
    return loss, {"loss": loss.detach(), "resp": l_resp.detach(), "emb": l_emb.detach()}


class ResponsibilityLoss(nn.Module):
    """Module form of :func:`responsibility_loss` (Smooth-L1, ``beta`` = 0.5)."""

    def __init__(self, beta: float = 0.5) -> None:
        super().__init__()
        self.beta = beta

    def forward(
        self,
        scores: torch.Tensor,
        target: torch.Tensor,
        valid: torch.Tensor | None = None,
        hand_valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """See :func:`responsibility_loss`."""
        return responsibility_loss(scores, target, valid, hand_valid, beta=self.beta)


class EmbeddingLoss(nn.Module):
    """Module form of :func:`embedding_loss`."""

    def __init__(self, normalize: bool = True, temperature: float = 0.1, eps: float = 1e-3) -> None:
        super().__init__()
        self.normalize, self.temperature, self.eps = normalize, temperature, eps

    def forward(
        self,
        z: torch.Tensor,
        person: torch.Tensor,
        object: torch.Tensor,  # noqa: A002
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """See :func:`embedding_loss`."""
        return embedding_loss(
            z, person, object, valid, normalize=self.normalize, temperature=self.temperature, eps=self.eps
        )


class CohesivLoss(nn.Module):
    """Module form of :func:`total_loss`: ``forward(out, batch) -> (loss, parts)``."""

    def __init__(
        self,
        w_resp: float = 10.0,
        w_emb: float = 1.0,
        *,
        normalize: bool = True,
        temperature: float = 0.1,
        beta: float = 0.5,
        object_threshold: float = 0.5,
    ) -> None:
        super().__init__()
        self.w_resp, self.w_emb = w_resp, w_emb
        self.normalize, self.temperature = normalize, temperature
        self.beta, self.object_threshold = beta, object_threshold

    def forward(self, out: Any, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """See :func:`total_loss`."""
        return total_loss(
            out,
            batch,
            self.w_resp,
            self.w_emb,
            normalize=self.normalize,
            temperature=self.temperature,
            beta=self.beta,
            object_threshold=self.object_threshold,
        )


def build_loss(cfg: Any, w_resp: float = 10.0, w_emb: float = 1.0) -> CohesivLoss:
    """The loss of a :class:`~cohesiv.model.ModelConfig` (its embedding normalisation and temperature)."""
    return CohesivLoss(
        w_resp, w_emb, normalize=cfg.normalize_embedding, temperature=cfg.embedding_temperature
    )
