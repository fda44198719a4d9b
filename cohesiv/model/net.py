"""The COHESIV network: a U-Net giving a per-pixel embedding Z, and query/key heads giving per-hand scores.

For an image and K query points (one per hand), the network returns

* ``z``: the embedding ``(B, F, H, W)`` (the output of a segmentation_models_pytorch ``Unet`` with
  ``classes=F``), used by the embedding loss and, at inference, compared with the person/object
  prototypes;
* ``scores``: ``S_k = clamp(q_kᵀ K, 0, 1)`` ``(B, K, H, W)``, where ``K = key_head(z)`` and ``q_k`` is
  ``query_head(z)`` sampled (bilinearly) at the query point of hand k. ``S_k`` is trained to match the
  responsibility map of hand k.

Convention:
    Query points are ``(x, y)`` in pixels of the network input, with the origin at the centre of the
    top-left pixel (x to the right, y down). They are sampled with ``grid_sample(...,
    align_corners=True)``: normalised -1 and +1 are the centres of the first and last pixels, so
    ``x_norm = 2 x / (W - 1) - 1``. Points outside the image take the value at the border.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from cohesiv._checks import check_shape
from cohesiv.errors import CohesivError
from cohesiv.model.weights import (
    BUNDLED_WEIGHTS,
    IMAGENET,
    NO_WEIGHTS,
    check_bundled,
    hub_offline,
    load_encoder_weights,
    resolve_encoder_weights,
)

#: The input height and width must be multiples of this (the U-Net downsamples 5 times).
SIZE_MULTIPLE = 32

#: ImageNet normalisation of the network input (RGB in [0, 1], then (x - mean) / std).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: How an encoder's weights expect their input, as (mean, std) of RGB in [0, 1]. "imagenet" is the
#: torchvision/timm convention; "inception" is (x - 127.5) / 127.5, as TensorFlow's EfficientNet(-Lite)
#: and Inception weights were trained.
INPUT_NORMS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "inception": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}
#: Encoder name prefixes whose weights expect the "inception" normalisation; every other encoder
#: expects "imagenet".
_INCEPTION_NORM_PREFIXES = ("timm-tf_efficientnet_lite", "tu-tf_efficientnet", "tu-inception")

#: Named encoders: the CPU default (EfficientNet-Lite0, with the ImageNet weights that an installed
#: package ships, see cohesiv.model.weights.BUNDLED_WEIGHTS) and the paper's encoder. Any other smp
#: encoder name also works.
DEFAULT_ENCODER = "timm-tf_efficientnet_lite0"
PAPER_ENCODER = "se_resnext50_32x4d"

#: ``ModelConfig`` fields resolved from the encoder when left at this value.
AUTO = "auto"


def encoder_input_norm(encoder_name: str) -> str:
    """The input normalisation (a key of :data:`INPUT_NORMS`) that an encoder's ImageNet weights expect."""
    return "inception" if encoder_name.startswith(_INCEPTION_NORM_PREFIXES) else "imagenet"


@dataclass(frozen=True)
class ModelConfig:
    """Configuration of the network and of its embedding loss.

    Attributes:
        encoder_name: any segmentation_models_pytorch encoder, e.g. ``"resnet18"`` (CPU default) or
            ``"se_resnext50_32x4d"`` (the paper's), or a timm encoder as ``"tu-<name>"``.
        embed_dim: F, channels of the embedding Z (CPU default 32; 64 in the paper and ``--preset paper``).
        head_dim: A, channels of the query and key heads (CPU default 32; 64 with ``--preset paper``;
            not published).
        head_stride: the query and key heads run on Z average-pooled by this factor (CPU default 4:
            the same test mIoU in less time than 1, bench/time_to_beat.py; 1, 2, 4, ...; 1 is
            the paper's full resolution); the scores are upsampled bilinearly to the input size where a
            full-resolution map is needed (prediction), and training compares them with pooled
            responsibilities (see :func:`cohesiv.model.total_loss`). Runs saved without this field
            had full-resolution heads: :meth:`from_dict` reads them as 1.
        encoder_weights: ``"imagenet"`` (the ImageNet weights bundled with an installed package, see
            :data:`cohesiv.model.weights.BUNDLED_WEIGHTS`), the path of a local ImageNet checkpoint
            (``.pth`` or ``.safetensors``), or None for random initialisation; loaded into the encoder by
            :func:`build_model`. Never a hub name. ``"auto"`` (the default) becomes ``"imagenet"`` when
            the encoder has bundled weights, else None.
        input_norm: how the encoder expects its input (a key of :data:`INPUT_NORMS`); ``"auto"`` takes
            :func:`encoder_input_norm`. Recorded in the run; the network converts its ImageNet-normalised
            input to it (see :class:`CohesivNet`).
        normalize_embedding: the embedding loss L2-normalises Z and the prototypes (ours; False is the
            paper's plain dot product).
        embedding_temperature: the embedding loss divides the dot products by this (ours 0.1; 1.0 with
            ``normalize_embedding=False`` is the paper's form).
        query_locality: the query head also gives each query a locality weight lambda_k >= 0 and
            ``S_k = clamp(q_k . K - lambda_k |x - p_k|^2, 0, 1)`` (beyond [C]; see :class:`CohesivNet`).
            On by default: at 300 steps it lifted the demo's test Pair from 50.0 to 69.6 (the plain dot
            product gave a hand's pixels the same score from both hands). Runs saved without this
            field had none: :meth:`from_dict` reads them as False.
    """

    encoder_name: str = DEFAULT_ENCODER
    embed_dim: int = 32
    head_dim: int = 32
    head_stride: int = 4
    encoder_weights: str | None = AUTO
    input_norm: str = AUTO
    normalize_embedding: bool = True
    embedding_temperature: float = 0.1
    query_locality: bool = True

    def __post_init__(self) -> None:
        weights = self.encoder_weights
        if weights == AUTO:
            weights = IMAGENET if self.encoder_name in BUNDLED_WEIGHTS else None
        elif weights is not None and str(weights).lower() == NO_WEIGHTS:
            weights = None
        elif weights is not None and str(weights).lower() == IMAGENET:
            weights = IMAGENET
            check_bundled(self.encoder_name)
        norm = encoder_input_norm(self.encoder_name) if self.input_norm == AUTO else self.input_norm
        if norm not in INPUT_NORMS:
            raise CohesivError(f"unknown input_norm {norm!r}; known: {sorted(INPUT_NORMS)} or {AUTO!r}")
        object.__setattr__(self, "encoder_weights", weights)
        object.__setattr__(self, "input_norm", norm)

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a plain dict (the saved YAML/JSON form)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, strict: bool = True) -> ModelConfig:
        """Build a config from a dict; unknown keys raise CohesivError when ``strict``, else are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown and strict:
            raise CohesivError(f"unknown model config keys {unknown}; known: {sorted(names)}")
        # saved before the fields existed: full-resolution heads, no locality term
        data = {"head_stride": 1, "query_locality": False, **data}
        return cls(**{k: v for k, v in data.items() if k in names})


class NetOutput(NamedTuple):
    """What :class:`CohesivNet` returns.

    Attributes:
        z: ``(B, F, H, W)`` per-pixel embedding (not normalised).
        scores: ``(B, K, H, W)`` in [0, 1], the score of every pixel for each query; channels of
            invalid queries are 0. None when the forward pass had no points. With
            ``full_resolution=False`` and a head stride s > 1: ``(B, K, H / s, W / s)``.
    """

    z: torch.Tensor
    scores: torch.Tensor | None


#: Unit of the query locality term's distances, in input pixels (:class:`CohesivNet`).
LOCALITY_UNIT = 32.0
#: Initial bias of the locality channel: lambda = softplus(-4) ~ 0.018, a penalty of ~0.07 at two
#: units (64 px), so training starts close to the plain dot product.
LOCALITY_INIT = -4.0


def _head(in_ch: int, out_ch: int, extra: int = 0) -> nn.Sequential:
    """Conv3x3 -> ReLU -> Conv3x3 with ``out_ch`` hidden and ``out_ch + extra`` output channels."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch + extra, 3, padding=1),
    )


def locality_penalty(
    lam: torch.Tensor, points: torch.Tensor, height: int, width: int, unit: float
) -> torch.Tensor:
    """``lambda_k |x - p_k|^2`` on a ``(height, width)`` grid, distances in ``unit`` grid pixels.

    Args:
        lam: ``(B, K)`` locality weights (>= 0).
        points: ``(B, K, 2)`` ``(x, y)`` grid pixels of the queries.
        height: rows of the grid.
        width: columns of the grid.
        unit: grid pixels per distance unit.

    Returns:
        ``(B, K, height, width)``.
    """
    xs = torch.arange(width, device=points.device, dtype=lam.dtype) / unit
    ys = torch.arange(height, device=points.device, dtype=lam.dtype) / unit
    p = points.to(lam.dtype) / unit
    dx2 = (xs[None, None, :] - p[..., 0:1]) ** 2  # (B, K, W)
    dy2 = (ys[None, None, :] - p[..., 1:2]) ** 2  # (B, K, H)
    return lam[..., None, None] * (dy2[..., :, None] + dx2[..., None, :])


def pixel_to_grid(points: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Convert pixel coordinates to ``grid_sample`` coordinates (``align_corners=True``).

    Args:
        points: ``(..., 2)`` ``(x, y)`` pixels, origin at the centre of the top-left pixel.
        height: image height H (> 1).
        width: image width W (> 1).

    Returns:
        ``(..., 2)`` in [-1, 1] for points inside the image: ``2 x / (W - 1) - 1``, ``2 y / (H - 1) - 1``.
    """
    scale = points.new_tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)])
    return points * scale - 1.0


def sample_at_points(features: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Sample a feature map bilinearly at K points per image.

    Args:
        features: ``(B, C, H, W)``.
        points: ``(B, K, 2)`` ``(x, y)`` pixels (origin at the centre of the top-left pixel).

    Returns:
        ``(B, K, C)``. Points outside the image take the border value.

    Convention:
        ``align_corners=True``; integer coordinates return the pixel values exactly.
    """
    _, _, h, w = features.shape
    grid = pixel_to_grid(points.to(features.dtype), h, w).unsqueeze(2)  # (B, K, 1, 2)
    out = F.grid_sample(features, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.squeeze(3).transpose(1, 2)  # (B, C, K, 1) -> (B, K, C)


def query_scores(
    query_map: torch.Tensor,
    key_map: torch.Tensor,
    points: torch.Tensor,
    point_valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Score every pixel for each query point: ``S_k = clamp(q_kᵀ K, 0, 1)``.

    Args:
        query_map: ``(B, A, H, W)`` output of the query head.
        key_map: ``(B, A, H, W)`` output of the key head.
        points: ``(B, K, 2)`` ``(x, y)`` pixels of the query points.
        point_valid: ``(B, K)`` bool, or None (all valid). Scores of invalid points are 0.

    Returns:
        ``(B, K, H, W)`` scores in [0, 1].
    """
    return scores_from_queries(sample_at_points(query_map, points), key_map, point_valid)


def head_at_points(head: nn.Sequential, z: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Evaluate a Conv3x3-ReLU-Conv3x3 head only where it is sampled: ``sample_at_points(head(z), points)``.

    The query vector of a point needs the head's output at the 2x2 pixels around it, which depend
    on a 6x6 window of ``head[0]``'s output and an 8x8 window of ``z``. Evaluating the head on those
    windows gives exactly (up to float rounding) the full-map result, including the zero padding at
    the image border and the border clamping of :func:`sample_at_points`, at a fraction of the cost:
    the query head is never run over the whole image (half the head FLOPs of the network).

    Args:
        head: ``Sequential(Conv2d(F, A, 3, padding=1), ReLU, Conv2d(A, A, 3, padding=1))``.
        z: ``(B, F, H, W)``.
        points: ``(B, K, 2)`` ``(x, y)`` pixels (finite).

    Returns:
        ``(B, K, A)``.
    """
    conv1, conv2 = head[0], head[2]
    b, f, h, w = z.shape
    k = points.shape[1]
    if k == 0:
        return z.new_zeros(b, 0, conv2.out_channels)
    # border clamping as grid_sample(padding_mode="border") does
    x = points[..., 0].to(z.dtype).clamp(0, w - 1)
    y = points[..., 1].to(z.dtype).clamp(0, h - 1)
    x0, y0 = x.detach().floor().long(), y.detach().floor().long()  # (B, K)
    r = torch.arange(-3, 5, device=z.device)  # 8 offsets: x0-3 .. x0+4
    zp = F.pad(z, (4, 4, 4, 4)).permute(0, 2, 3, 1)  # (B, H+8, W+8, F), zeros outside
    bi = torch.arange(b, device=z.device)[:, None, None, None]
    rows = (y0[..., None] + 4 + r)[:, :, :, None]  # (B, K, 8, 1)
    cols = (x0[..., None] + 4 + r)[:, :, None, :]  # (B, K, 1, 8)
    patch = zp[bi, rows, cols].reshape(b * k, 8, 8, f).permute(0, 3, 1, 2)  # (BK, F, 8, 8)
    hid = F.relu(F.conv2d(patch, conv1.weight, conv1.bias))  # (BK, A, 6, 6): rows y0-2 .. y0+3
    r6 = torch.arange(-2, 4, device=z.device)
    inside_y = ((y0[..., None] + r6) >= 0) & ((y0[..., None] + r6) < h)  # (B, K, 6)
    inside_x = ((x0[..., None] + r6) >= 0) & ((x0[..., None] + r6) < w)
    inside = (inside_y[..., :, None] & inside_x[..., None, :]).reshape(b * k, 1, 6, 6)
    hid = hid * inside.to(hid.dtype)  # the second conv zero-pads the hidden map at the border
    out = F.conv2d(hid, conv2.weight, conv2.bias)  # (BK, A, 4, 4): rows y0-1 .. y0+2
    # bilinear sample at the local position (x - (x0 - 1), y - (y0 - 1)) in [1, 2]^2 of the 4x4 patch
    lx = (x - x0.to(z.dtype) + 1.0).reshape(b * k, 1, 1, 1)
    ly = (y - y0.to(z.dtype) + 1.0).reshape(b * k, 1, 1, 1)
    grid = torch.cat([lx, ly], -1) * (2.0 / 3.0) - 1.0  # align_corners=True on a 4x4 patch
    q = F.grid_sample(out, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return q.reshape(b, k, -1)


def scores_from_queries(
    q: torch.Tensor,
    key_map: torch.Tensor,
    point_valid: torch.Tensor | None = None,
    penalty: torch.Tensor | None = None,
) -> torch.Tensor:
    """``S_k = clamp(q_kᵀ K - penalty_k, 0, 1)`` from query vectors ``q (B, K, A)`` and keys ``(B, A, H, W)``.

    ``penalty``: ``(B, K, H, W)`` subtracted before the clamp (:func:`locality_penalty`), or None.
    """
    s = torch.einsum("bka,bahw->bkhw", q, key_map)
    if penalty is not None:
        s = s - penalty
    s = s.clamp(0.0, 1.0)
    if point_valid is not None:
        s = s * point_valid.to(s.dtype)[:, :, None, None]
    return s


class CohesivNet(nn.Module):
    """U-Net embedding plus query/key heads (COHESIV, Shan et al. 2021, section 3.2).

    Args:
        encoder_name: segmentation_models_pytorch encoder name (``"resnet18"``, ``"se_resnext50_32x4d"``,
            ``"tu-<timm name>"``, ...). The smp model is always built with ``encoder_weights=None``;
            load local ImageNet weights with :func:`cohesiv.model.load_encoder_weights`.
        embed_dim: F, channels of the embedding Z.
        head_dim: A, channels of the query and key heads (Conv3x3 -> ReLU -> Conv3x3 each).
        head_stride: s, the heads run on ``avg_pool2d(Z, s)`` (a power of 2 up to 32; 1 = full
            resolution, the paper's). The key head's cost falls by s²; S is computed at ``(H/s, W/s)``
            and upsampled bilinearly (``align_corners=False``) when a full-resolution map is asked for.
        query_locality: the query head has one more output channel, ``lambda_k = softplus`` of it
            at the query point, and ``S_k = clamp(q_kᵀ K - lambda_k |x - p_k|², 0, 1)`` with distances
            in units of :data:`LOCALITY_UNIT` input pixels (beyond [C]). The dot product alone is
            blind to where a pixel is, so two hands that look alike get the same scores; the term
            lets each query fade with distance, as far as training finds it useful (lambda is learned
            per query from Z, starting near 0).
        encoder_weights: optional encoder weights loaded at construction: ``"imagenet"`` (bundled with an
            installed package) or the path of a local checkpoint; None (or ``"none"``) for random weights.
        input_norm: the normalisation the encoder expects (a key of :data:`INPUT_NORMS`), None for
            :func:`encoder_input_norm`. The network's input is always ImageNet-normalised; for another
            normalisation the network converts it (a per-channel affine map) before the encoder.

    Shape:
        - images: ``(B, 3, H, W)`` float, ImageNet-normalised RGB; H and W multiples of 32.
        - points: ``(B, K, 2)`` ``(x, y)`` pixels of the input; ``point_valid``: ``(B, K)`` bool.
        - output: :class:`NetOutput` with ``z (B, F, H, W)`` and ``scores (B, K, H, W)`` in [0, 1]
          (``(B, K, H/s, W/s)`` with ``full_resolution=False``).

    Convention:
        Points are sampled with ``align_corners=True`` (pixel centres, see :func:`pixel_to_grid`). On
        the pooled grid, input pixel ``x`` is at ``(x + 0.5) / s - 0.5`` (the pixel-centre rule of a
        resize by 1/s).
    """

    def __init__(
        self,
        encoder_name: str = DEFAULT_ENCODER,
        embed_dim: int = 64,
        head_dim: int = 64,
        encoder_weights: str | os.PathLike | None = None,
        input_norm: str | None = None,
        head_stride: int = 1,
        query_locality: bool = False,
    ) -> None:
        super().__init__()
        if head_stride < 1 or head_stride > SIZE_MULTIPLE or head_stride & (head_stride - 1):
            raise CohesivError(
                f"head_stride must be a power of 2 from 1 to {SIZE_MULTIPLE}, got {head_stride}"
            )
        hub_offline()  # before segmentation_models_pytorch imports the hub libraries
        import segmentation_models_pytorch as smp

        try:
            with warnings.catch_warnings():  # smp 0.5+ flags its timm- encoders deprecated (still built)
                warnings.filterwarnings("ignore", "`timm-` encoders are deprecated", DeprecationWarning)
                self.unet = smp.Unet(encoder_name=encoder_name, encoder_weights=None, classes=embed_dim)
        except KeyError as e:
            names = ", ".join(sorted(smp.encoders.get_encoder_names())[:12])
            raise CohesivError(
                f"unknown encoder {encoder_name!r} (segmentation_models_pytorch knows e.g. {names}, ...; "
                f"timm encoders as 'tu-<name>'): {e}"
            ) from None
        self.encoder_name = encoder_name
        self.embed_dim = embed_dim
        self.head_dim = head_dim
        self.head_stride = head_stride
        self.query_locality = query_locality
        self.query_head = _head(embed_dim, head_dim, extra=1 if query_locality else 0)
        self.key_head = _head(embed_dim, head_dim)
        if query_locality:
            with torch.no_grad():
                self.query_head[2].weight[head_dim:].mul_(0.1)
                self.query_head[2].bias[head_dim:].fill_(LOCALITY_INIT)
        self.input_norm = input_norm or encoder_input_norm(encoder_name)
        if self.input_norm not in INPUT_NORMS:
            raise CohesivError(f"unknown input_norm {self.input_norm!r}; known: {sorted(INPUT_NORMS)}")
        # ImageNet-normalised x -> (x * std_in + mean_in - mean) / std = x * a + b (not saved: derived).
        mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in INPUT_NORMS[self.input_norm])
        mean_in, std_in = (torch.tensor(v).view(1, 3, 1, 1) for v in INPUT_NORMS["imagenet"])
        self.register_buffer("_norm_scale", std_in / std, persistent=False)
        self.register_buffer("_norm_shift", (mean_in - mean) / std, persistent=False)
        path = resolve_encoder_weights(encoder_name, encoder_weights)
        if path is not None:
            load_encoder_weights(self, path)

    @property
    def encoder(self) -> nn.Module:
        """The smp encoder (where ImageNet weights go)."""
        return self.unet.encoder

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Return the embedding Z ``(B, F, H, W)`` of ImageNet-normalised ``(B, 3, H, W)`` images."""
        dims = check_shape(images, "B,3,H,W", "images")
        h, w = dims["H"], dims["W"]
        if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
            ph, pw = -(-h // SIZE_MULTIPLE) * SIZE_MULTIPLE, -(-w // SIZE_MULTIPLE) * SIZE_MULTIPLE
            raise ValueError(
                f"images height and width must be multiples of {SIZE_MULTIPLE}, got {h}x{w} (HxW); "
                f"pad to {ph}x{pw} (cohesiv.model.Predictor pads for you) or crop"
            )
        if self.input_norm != "imagenet":
            images = images * self._norm_scale + self._norm_shift
        return self.unet(images)

    def score(
        self,
        z: torch.Tensor,
        points: torch.Tensor,
        point_valid: torch.Tensor | None = None,
        *,
        full_resolution: bool = True,
    ) -> torch.Tensor:
        """Scores ``(B, K, H, W)`` of every pixel for each query point, from an embedding ``z``.

        Args:
            z: ``(B, F, H, W)`` embedding from :meth:`embed`.
            points: ``(B, K, 2)`` ``(x, y)`` pixels.
            point_valid: ``(B, K)`` bool or None (all valid); invalid queries get all-zero scores.
            full_resolution: with a head stride s > 1, upsample the scores to ``(H, W)`` (bilinear,
                ``align_corners=False``); False returns them at ``(H/s, W/s)`` (what training uses).
        """
        dims = check_shape(z, "B,F,H,W", "z")
        check_shape(points, f"{dims['B']},K,2", "points")
        if point_valid is not None:
            check_shape(point_valid, f"{dims['B']},{points.shape[1]}", "point_valid")
            # Invalid points may hold garbage (NaN padding): sample them at the origin instead.
            points = torch.where(point_valid[..., None], points, torch.zeros_like(points))
        s = self.head_stride
        if s > 1:
            z = F.avg_pool2d(z, s)
            points = (points + 0.5) / s - 0.5  # pixel centres on the pooled grid
        q = head_at_points(self.query_head, z, points)  # == sample_at_points(self.query_head(z), points)
        penalty = None
        if self.query_locality:
            q, lam = q[..., :-1], F.softplus(q[..., -1])
            penalty = locality_penalty(lam, points, z.shape[2], z.shape[3], LOCALITY_UNIT / s)
        scores = scores_from_queries(q, self.key_head(z), point_valid, penalty)
        if s > 1 and full_resolution:
            # a convex combination of values in [0, 1] (and of zeros for invalid queries)
            scores = F.interpolate(scores, scale_factor=s, mode="bilinear", align_corners=False)
        return scores

    def forward(
        self,
        images: torch.Tensor,
        points: torch.Tensor | None = None,
        point_valid: torch.Tensor | None = None,
        *,
        full_resolution: bool = True,
    ) -> NetOutput:
        """Embed the images and score every pixel for each query point.

        Args:
            images: ``(B, 3, H, W)`` ImageNet-normalised RGB, H and W multiples of 32.
            points: ``(B, K, 2)`` ``(x, y)`` pixels of the input (origin at the centre of the top-left
                pixel), or None to compute only ``z``.
            point_valid: ``(B, K)`` bool (False for padding entries when images have fewer than K
                hands), or None (all valid).
            full_resolution: see :meth:`score`.

        Returns:
            :class:`NetOutput` ``(z (B, F, H, W), scores (B, K, H, W) or None)``.
        """
        z = self.embed(images)
        if points is None:
            return NetOutput(z, None)
        return NetOutput(z, self.score(z, points, point_valid, full_resolution=full_resolution))


def build_model(cfg: ModelConfig) -> CohesivNet:
    """Build the network of a :class:`ModelConfig` (and load its local encoder weights, if any)."""
    return CohesivNet(
        encoder_name=cfg.encoder_name,
        embed_dim=cfg.embed_dim,
        head_dim=cfg.head_dim,
        encoder_weights=cfg.encoder_weights,
        input_norm=cfg.input_norm,
        head_stride=cfg.head_stride,
        query_locality=cfg.query_locality,
    )


def normalize_images(images: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalise ``(B, 3, H, W)`` RGB images.

    Args:
        images: uint8 in [0, 255] or float in [0, 1], ``(B, 3, H, W)``.

    Returns:
        float32 ``(images / 255 - mean) / std`` (uint8) or ``(images - mean) / std`` (float).
    """
    check_shape(images, "B,3,H,W", "images")
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    mean = x.new_tensor(IMAGENET_MEAN)[None, :, None, None]
    std = x.new_tensor(IMAGENET_STD)[None, :, None, None]
    return (x - mean) / std
