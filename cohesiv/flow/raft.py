"""RAFT optical flow through ``torchvision.models.optical_flow``, with weights from a local file.

RAFT (Teed & Deng, ECCV 2020) is what COHESIV uses. Weights are never downloaded here: pass the
path of a checkpoint you have, either

- torchvision's (``raft_small_C_T_V2-01064c6d.pth`` / ``raft_large_C_T_SKHT_V2-ff5fadd5.pth``,
  from https://download.pytorch.org/models/), or
- the original princeton-vl one (``raft-small.pth``, ``raft-things.pth``, ... from
  https://github.com/princeton-vl/RAFT, ``download_models.sh``), saved from ``DataParallel`` with
  ``module.`` prefixes and the original module names (``fnet``, ``cnet``, ``update_block.gru``...),
  which :func:`convert_raft_state_dict` maps onto torchvision's names.

Inputs are padded (edge replication) to multiples of 8 (and at least 128 pixels, the size
torchvision's 4-level correlation pyramid needs) and the flow is cropped back: RAFT's most common user trap.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cohesiv.config import DEFAULT_RAFT_ITERS, RAFT_MODELS
from cohesiv.errors import CohesivError, InputError
from cohesiv.io.tensors import load_tensor_file

#: Where users get weights (printed in errors).
RAFT_WEIGHTS_HELP = (
    "RAFT needs a local weights file (--raft-weights PATH): torchvision's "
    "raft_small_C_T_V2-01064c6d.pth or raft_large_C_T_SKHT_V2-ff5fadd5.pth from "
    "https://download.pytorch.org/models/, or princeton-vl's raft-small.pth / raft-things.pth "
    "from https://github.com/princeton-vl/RAFT (download_models.sh); cohesiv never downloads weights"
)

# princeton-vl name -> torchvision name, applied in order to each key (after "module." is stripped).
_PRINCETON_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), r)
    for p, r in [
        (r"^fnet\.", "feature_encoder."),
        (r"^cnet\.", "context_encoder."),
        (r"^(feature_encoder|context_encoder)\.conv1\.", r"\1.convnormrelu.0."),
        (r"^(feature_encoder|context_encoder)\.norm1\.", r"\1.convnormrelu.1."),
        (r"^(feature_encoder|context_encoder)\.conv2\.", r"\1.conv."),
        (r"^(\w+_encoder\.layer\d\.\d)\.conv(\d)\.", r"\1.convnormrelu\2.0."),
        (r"^(\w+_encoder\.layer\d\.\d)\.norm(\d)\.", r"\1.convnormrelu\2.1."),
        (r"^update_block\.encoder\.convc(\d)\.", r"update_block.motion_encoder.convcorr\1.0."),
        (r"^update_block\.encoder\.convf(\d)\.", r"update_block.motion_encoder.convflow\1.0."),
        (r"^update_block\.encoder\.conv\.", "update_block.motion_encoder.conv.0."),
        (r"^update_block\.gru\.conv([zrq])(\d)\.", r"update_block.recurrent_block.convgru\2.conv\1."),
        (r"^update_block\.gru\.conv([zrq])\.", r"update_block.recurrent_block.convgru1.conv\1."),
        (r"^update_block\.mask\.0\.", "mask_predictor.convrelu.0."),
        (r"^update_block\.mask\.2\.", "mask_predictor.conv."),
    ]
]
_PRINCETON_KEY = re.compile(r"^(fnet|cnet|update_block\.(encoder|gru|mask))\.")
_BLOCK_NORM = re.compile(r"^(\w+_encoder\.layer\d\.\d)\.convnormrelu(\d)\.1\.(\w+)$")


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """Find the state dict inside a checkpoint (plain, or under "state_dict"/"model"/...)."""
    for _ in range(3):
        if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        if isinstance(obj, Mapping):
            inner = next(
                (obj[k] for k in ("state_dict", "model", "model_state_dict", "net") if k in obj), None
            )
            if inner is not None:
                obj = inner
                continue
        break
    raise InputError(path, "not a RAFT checkpoint: expected a state dict (parameter name -> tensor)")


def convert_raft_state_dict(
    state: Mapping[str, torch.Tensor], target_keys: Sequence[str]
) -> tuple[dict[str, torch.Tensor], str]:
    """Map a RAFT state dict onto torchvision's parameter names.

    Handles ``module.`` prefixes (``DataParallel`` checkpoints) and princeton-vl's module
    names (``fnet.layer1.0.conv1`` -> ``feature_encoder.layer1.0.convnormrelu1.0``,
    ``update_block.gru.convz1`` -> ``update_block.recurrent_block.convgru1.convz``, ...). In
    princeton-vl's residual blocks the shortcut's norm is stored twice (``normN`` and
    ``downsample.1``); the duplicate is dropped.

    Args:
        state: the checkpoint's parameter name -> tensor.
        target_keys: torchvision's parameter names (``model.state_dict().keys()``).

    Returns:
        ``(mapped state dict, layout)`` with layout ``"torchvision"`` or ``"princeton-vl"``.
        Keys that cannot be mapped are kept under their (prefix-stripped) names, so that
        loading reports them.
    """
    stripped = {}
    for k, v in state.items():
        while k.startswith("module."):
            k = k[len("module.") :]
        stripped[k] = v
    targets = set(target_keys)
    if not any(_PRINCETON_KEY.match(k) for k in stripped):
        return stripped, "torchvision"
    out: dict[str, torch.Tensor] = {}
    for k, v in stripped.items():
        new = k
        for pattern, repl in _PRINCETON_RULES:
            new = pattern.sub(repl, new)
        m = _BLOCK_NORM.match(new)
        if m and new not in targets:
            block, n, leaf = m.groups()
            if f"{block}.convnormrelu{n}.0.weight" not in targets:
                # the shortcut's norm (norm3 of a residual block, norm4 of a bottleneck),
                # also stored as downsample.1
                new = f"{block}.downsample.1.{leaf}"
        out.setdefault(new, v)
    return out, "princeton-vl"


def read_raft_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a RAFT checkpoint (``.pth``/``.pt`` with ``weights_only=True``, or ``.safetensors``).

    Raises:
        InputError: missing or unreadable file, or not a state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"no such RAFT weights file. {RAFT_WEIGHTS_HELP}")
    obj = load_tensor_file(path, "RAFT weights")
    return _unwrap(obj, path)


def _build_raft(model: str) -> torch.nn.Module:
    from torchvision.models.optical_flow import raft_large, raft_small

    if model not in RAFT_MODELS:
        raise ValueError(f"unknown RAFT model {model!r}; choose 'small' or 'large'")
    return (raft_small if model == "small" else raft_large)(weights=None, progress=False)


def load_raft(path: str | Path, model: str = "small", device: str | torch.device = "cpu") -> torch.nn.Module:
    """Build torchvision's RAFT and load local weights in either key layout.

    Args:
        path: checkpoint file (torchvision or princeton-vl layout).
        model: ``"small"`` or ``"large"``.
        device: where the model goes.

    Returns:
        The model in eval mode on ``device``.

    Raises:
        InputError: unreadable file, keys that do not match (listed, with a hint when the
            checkpoint is for the other model size), or shapes that do not match.
    """
    path = Path(path)
    net = _build_raft(model)
    target = net.state_dict()
    raw = read_raft_checkpoint(path)
    state, layout = convert_raft_state_dict(raw, list(target))
    missing = [k for k in target if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in target]
    if missing or unexpected:
        other = "large" if model == "small" else "small"
        other_keys = list(_build_raft(other).state_dict())
        hint = ""
        if set(convert_raft_state_dict(raw, other_keys)[0]) <= set(other_keys):
            hint = f" This looks like a raft_{other} checkpoint: use raft_model='{other}' (--raft-model {other})."
        raise InputError(
            path,
            f"RAFT weights ({layout} layout) do not fit raft_{model}: "
            f"{len(unexpected)} unmatched checkpoint keys {_few(unexpected)}, "
            f"{len(missing)} model keys missing {_few(missing)}.{hint}",
        )
    bad = [
        f"{k} {tuple(v.shape)} vs {tuple(target[k].shape)}"
        for k, v in state.items()
        if v.shape != target[k].shape
    ]
    if bad:
        raise InputError(path, f"RAFT weights do not fit raft_{model}: shape mismatch in {_few(bad)}")
    for k in target:  # old checkpoints lack BatchNorm's num_batches_tracked
        state.setdefault(k, target[k])
    net.load_state_dict(state, strict=True)
    return net.eval().to(device)


def _few(items: Sequence[str], n: int = 8) -> str:
    return "[" + ", ".join(items[:n]) + (", ..." if len(items) > n else "") + "]"


def pad_to_multiple(
    images: torch.Tensor, multiple: int = 8, minimum: int = 128
) -> tuple[torch.Tensor, tuple]:
    """Pad ``(B, C, H, W)`` by edge replication so H and W are multiples of ``multiple`` (>= ``minimum``).

    The padding is split evenly between the two sides (as princeton-vl's ``InputPadder``).

    Returns:
        ``(padded, pad)`` with ``pad = (left, right, top, bottom)``; :func:`unpad` undoes it.
    """
    h, w = images.shape[-2:]
    ph = max(-(-h // multiple) * multiple, minimum) - h
    pw = max(-(-w // multiple) * multiple, minimum) - w
    pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    if ph == 0 and pw == 0:
        return images, pad
    return F.pad(images, pad, mode="replicate"), pad


def unpad(x: torch.Tensor, pad: tuple) -> torch.Tensor:
    """Crop ``(..., H', W')`` back to the size before :func:`pad_to_multiple`."""
    left, right, top, bottom = pad
    h, w = x.shape[-2:]
    return x[..., top : h - bottom, left : w - right]


class RAFTFlow:
    """RAFT inference wrapper: uint8 frames in, ``(2, H, W)`` flow out (pads, normalises, unpads).

    Args:
        weights: local checkpoint path (torchvision or princeton-vl layout), or None to raise
            the error that explains where weights come from. ``weights`` may also be an
            already-built ``torch.nn.Module`` (used as is, put in eval mode by the caller).
        model: ``"small"`` or ``"large"``.
        device: torch device; default ``"cuda"`` when available, else ``"cpu"``.
        iters: refinement iterations.
    """

    def __init__(
        self,
        weights: str | Path | torch.nn.Module | None,
        model: str = "small",
        device: str | torch.device | None = None,
        iters: int = DEFAULT_RAFT_ITERS,
    ) -> None:
        if weights is None:
            raise CohesivError(f"method 'raft' needs weights. {RAFT_WEIGHTS_HELP}")
        self.device = torch.device(
            device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
        )
        if isinstance(weights, torch.nn.Module):
            self.net = weights.to(self.device)
        else:
            self.net = load_raft(weights, model, self.device)
        self.model = model
        self.iters = int(iters)

    def _to_tensor(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        x = torch.from_numpy(np.stack(frames)).to(self.device)
        return x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)  # torchvision RAFT: [-1, 1]

    @torch.inference_mode()
    def batch(self, frames_a: Sequence[np.ndarray], frames_b: Sequence[np.ndarray]) -> np.ndarray:
        """Flow for B pairs at once: lists of ``(H, W, 3)`` uint8 RGB -> ``(B, 2, H, W)`` float32."""
        a, pad = pad_to_multiple(self._to_tensor(frames_a))
        b, _ = pad_to_multiple(self._to_tensor(frames_b))
        flow = self.net(a, b, num_flow_updates=self.iters)[-1]
        return unpad(flow, pad).float().cpu().numpy()

    def __call__(self, frame_a: np.ndarray, frame_b: np.ndarray) -> np.ndarray:
        """Flow from ``frame_a`` to ``frame_b`` (``(H, W, 3)`` uint8 RGB each) -> ``(2, H, W)`` float32."""
        return self.batch([frame_a], [frame_b])[0]
