"""Load local ImageNet weights into the encoder (never from a model hub).

Accepted files: ``.pth``/``.pt``/``.bin`` (read with ``torch.load(weights_only=True)``, never full
pickle) and ``.safetensors``. Accepted layouts: a bare state dict or one under ``"state_dict"`` /
``"model"``; keys with ``module.`` / ``model.`` / ``encoder.`` / ``unet.`` / ``backbone.`` prefixes;
torchvision/timm ResNet keys (identical to smp's); the pretrainedmodels (Cadene) SE-ResNet(X)t
layout (identical to smp's) and timm's ``seresnext*`` layout (``conv1`` -> ``layer0.conv1``,
``.se.`` -> ``.se_module.``); the smp ``tu-`` (timm universal) encoders, whose keys carry a
``model.`` prefix. Classifier keys (``fc.``, ``last_linear.``, ``classifier.``, ``head.fc.``) are ignored.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from cohesiv.errors import CohesivError, InputError
from cohesiv.io.tensors import load_tensor_file

#: Prefixes stripped from checkpoint keys (DataParallel, wrappers, whole-model checkpoints).
STRIP_PREFIXES = ("module.", "model.", "encoder.", "unet.", "backbone.")
#: Classifier heads of ImageNet checkpoints: not part of a segmentation encoder.
CLASSIFIER_PREFIXES = ("fc.", "last_linear.", "classifier.", "head.fc.", "head.")
#: Buffers that old checkpoints lack; missing ones keep the encoder's value.
OPTIONAL_SUFFIXES = ("num_batches_tracked",)

_TIMM_SENET_RULES = (
    (re.compile(r"^conv1\."), "layer0.conv1."),
    (re.compile(r"^bn1\."), "layer0.bn1."),
    (re.compile(r"\.se\."), ".se_module."),
)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a checkpoint file as a flat ``{name: tensor}`` dict.

    Args:
        path: ``.safetensors`` (read with safetensors) or a torch file (``.pth``, ``.pt``, ``.bin``, read
            with ``torch.load(weights_only=True)``). A dict nested under ``"state_dict"`` or ``"model"``
            is unwrapped.

    Raises:
        InputError: missing or unreadable file, or no tensors in it.
    """
    path = Path(path)
    data = load_tensor_file(path, "weights")
    for _ in range(3):
        if isinstance(data, Mapping) and not any(isinstance(v, torch.Tensor) for v in data.values()):
            for key in ("state_dict", "model", "model_state", "net"):
                if isinstance(data.get(key), Mapping):
                    data = data[key]
                    break
            else:
                break
    if not isinstance(data, Mapping):
        raise InputError(path, f"expected a state dict, found {type(data).__name__}")
    tensors = {str(k): v for k, v in data.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise InputError(path, "no tensors found (expected a state dict, or one under 'state_dict'/'model')")
    return tensors


def _strip(sd: Mapping[str, torch.Tensor], prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        changed = True
        while changed:
            changed = False
            for p in prefixes:
                if k.startswith(p):
                    k, changed = k[len(p) :], True
        out[k] = v
    return out


def _timm_senet(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        for pat, rep in _TIMM_SENET_RULES:
            k = pat.sub(rep, k)
        out[k] = v
    return out


def _candidates(sd: Mapping[str, torch.Tensor]) -> list[tuple[str, dict[str, torch.Tensor]]]:
    """Key layouts to try, each as (name, renamed state dict)."""
    plain = _strip(sd, ("module.",))
    stripped = _strip(sd, STRIP_PREFIXES)
    layouts: list[tuple[str, Callable[[Mapping[str, torch.Tensor]], dict[str, torch.Tensor]]]] = [
        ("as is", dict),
        ("timm SE-ResNet", _timm_senet),
        ("timm universal", lambda d: {"model." + k: v for k, v in d.items()}),
    ]
    # A whole-model checkpoint (e.g. an smp Unet or a CohesivNet): keep only its encoder part.
    enc_part = {k.rsplit("encoder.", 1)[1]: v for k, v in plain.items() if "encoder." in k}
    bases = [("without module.", plain), ("without prefixes", stripped)]
    if enc_part:
        bases.append(("encoder part", enc_part))
    out = []
    for base_name, base in bases:
        for name, fn in layouts:
            out.append((f"{base_name}, {name}", fn(base)))
    return out


def _is_classifier(key: str) -> bool:
    k = key[len("model.") :] if key.startswith("model.") else key
    return k.startswith(CLASSIFIER_PREFIXES)


def match_encoder_state_dict(
    encoder: nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str | os.PathLike = "weights"
) -> dict[str, torch.Tensor]:
    """Rename a checkpoint's keys to the encoder's layout and check that everything matches.

    Args:
        encoder: the smp encoder (``model.encoder``).
        state_dict: the checkpoint's tensors, in any supported layout (see the module docstring).
        source: how to name the checkpoint in error messages.

    Returns:
        A state dict with exactly the encoder's keys (missing ``num_batches_tracked`` buffers are taken
        from the encoder), ready for ``encoder.load_state_dict(..., strict=True)``.

    Raises:
        CohesivError: keys or shapes that do not match; lists the first few missing and unexpected keys.
    """
    target = encoder.state_dict()
    best_name, best, best_hits, best_score = "", {}, -1, (-1, 0)
    for name, cand in _candidates(state_dict):
        cand = {k: v for k, v in cand.items() if k in target or not _is_classifier(k)}
        hits = sum(1 for k in cand if k in target)
        score = (hits, hits - len(cand))  # most keys matched, then fewest left over
        if score > best_score:
            best_name, best, best_hits, best_score = name, cand, hits, score
    missing = [k for k in target if k not in best and not k.endswith(OPTIONAL_SUFFIXES)]
    unexpected = [k for k in best if k not in target]
    wrong_shape = [
        f"{k} {tuple(best[k].shape)} vs {tuple(target[k].shape)}"
        for k in best
        if k in target and tuple(best[k].shape) != tuple(target[k].shape)
    ]
    if missing or unexpected or wrong_shape:
        parts = [f"{source}: does not match the {type(encoder).__name__} encoder ({len(target)} tensors)"]
        parts.append(f"best key layout '{best_name}' matched {best_hits} of {len(best)} keys")
        if missing:
            parts.append(f"{len(missing)} missing, e.g. {missing[:4]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected, e.g. {unexpected[:4]}")
        if wrong_shape:
            parts.append(f"{len(wrong_shape)} with another shape, e.g. {wrong_shape[:3]}")
        parts.append("is it a checkpoint of the same architecture (--encoder)?")
        raise CohesivError("; ".join(parts))
    out = {k: best.get(k, target[k]).to(dtype=target[k].dtype) for k in target}
    return out


def load_encoder_weights(model_or_encoder: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a local ImageNet checkpoint into the encoder of a model.

    Args:
        model_or_encoder: a :class:`~cohesiv.model.CohesivNet`, an smp model (anything with an
            ``encoder`` attribute) or the encoder itself. Modified in place.
        path: ``.pth``/``.pt``/``.bin`` or ``.safetensors`` file, in any layout listed in the module
            docstring. Never downloaded.

    Returns:
        The encoder that was loaded.

    Raises:
        InputError: unreadable file.
        CohesivError: keys or shapes do not match the encoder (names the first few).
    """
    encoder = getattr(model_or_encoder, "encoder", model_or_encoder)
    if not isinstance(encoder, nn.Module):
        raise TypeError(f"expected a model or an encoder module, got {type(model_or_encoder).__name__}")
    sd = match_encoder_state_dict(encoder, read_state_dict(path), source=path)
    encoder.load_state_dict(sd, strict=True)
    return encoder
