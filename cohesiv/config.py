"""The stage configs and their defaults, each written once, in a module without torch or OpenCV.

Every default a stage, its config and its command-line flag share is written here: the frozen
config dataclasses (:class:`FlowConfig`, :class:`FlowFolderOptions`, :class:`PseudoLabelConfig`)
and the constants and choice tuples they validate against. The stage modules import them from here
(their old paths, ``cohesiv.flow.estimator.FlowConfig``, ``cohesiv.responsibility.labeler.PseudoLabelConfig``,
..., still work); the commands default their flags to ``None``, take the dataclass value when a
flag is not given, and show it in ``--help`` through :func:`default_of` and :func:`help_default`,
so ``cohesiv <command> --help`` stays fast (``tests/test_config.py`` checks that importing this
module loads neither torch nor OpenCV). Each config checks its own values in ``__post_init__``
(the one place a choice is validated; ``ValueError`` names the field).

``tools/structure.py`` counts the places each default is written.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cohesiv.errors import InputError

__all__ = [
    "BACKGROUNDS",
    "DEFAULT_DIS_PRESET",
    "DEFAULT_RAFT_ITERS",
    "DIS_PRESET_NAMES",
    "FLOW_METHODS",
    "FLOW_SOURCES",
    "HOMOGRAPHY_METHODS",
    "HULL_DILATION",
    "RAFT_MODELS",
    "RESPONSIBILITY_TEMPERATURE",
    "SMOOTHINGS",
    "FlowConfig",
    "FlowFolderOptions",
    "PseudoLabelConfig",
    "default_of",
    "help_default",
]

# ------------------------------------------------------------------------------------------- flow

#: Flow methods of :class:`cohesiv.flow.FlowEstimator`.
FLOW_METHODS = ("dis", "raft")

#: DIS presets: OpenCV's (``DISOPTICAL_FLOW_PRESET_*``), fastest first, then the tuned ones of
#: ``cohesiv.flow.dis.DIS_TUNED``.
DIS_PRESET_NAMES = ("ultrafast", "fast", "medium", "ultrafast-fs1", "fast-fs1")

#: The preset used when none is given, chosen by what the flow does to the pseudo-labels per second
#: (``bench/flow_labels.py``, 30 synthetic test clips per camera mode at 320x240): OpenCV's
#: ultrafast preset down to finest scale 1. Thresholded-responsibility All mIoU 78.8 (static camera)
#: / 81.0 (moving) against 70.7 / 69.8 for "fast" (the default until 2026-12), at 0.8x its labeled
#: frames per second and 1.8x "medium"'s (``bench/pseudolabel.py --dis-presets``).
DEFAULT_DIS_PRESET = "ultrafast-fs1"

#: RAFT sizes (``torchvision.models.optical_flow.raft_small`` / ``raft_large``).
RAFT_MODELS = ("small", "large")

#: RAFT size used when none is given.
DEFAULT_RAFT_MODEL = "small"

#: RAFT refinement iterations (torchvision's default; princeton-vl's demo uses 20).
DEFAULT_RAFT_ITERS = 12

# ---------------------------------------------------------------------------------- pseudo-labels

#: Softmax temperature ``t`` of the responsibility, in pixels: ``R = softmax(-d / t)`` over
#: {background, hands} (COHESIV Eq. 1-2, t = 2).
RESPONSIBILITY_TEMPERATURE = 2.0

#: Where the pseudo-labels' flow comes from: a flow method, or ``"gt"``, the exact flow of a
#: ``cohesiv synth`` clip.
FLOW_SOURCES = (*FLOW_METHODS, "gt")

#: Background motion models of the responsibility: a static camera ([C]) or a camera homography.
BACKGROUNDS = ("static", "homography")

#: Hand fits: OpenCV USAC-MAGSAC (robust) or kornia DLT (least squares).
HOMOGRAPHY_METHODS = ("magsac", "dlt")

#: Edge-aware smoothing of the responsibility (``cohesiv.responsibility.labeler``).
SMOOTHINGS = ("none", "guided", "superpixel")

#: Dilation radius of a hand's hull, as a fraction of the hand's size (largest side of the
#: points' bounding box). 0.2 recovers a whole box from the default box grid (15 % margins).
HULL_DILATION = 0.2


def _choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


# ---------------------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class FlowConfig:
    """Everything that determines a flow field (saved beside written flows as ``flow.json``).

    Attributes:
        method: ``"dis"`` (default, OpenCV, no weights) or ``"raft"`` (torchvision, local weights).
        preset: DIS preset (a name of :data:`DIS_PRESET_NAMES`); None for RAFT.
        raft_model: ``"small"`` or ``"large"`` (RAFT only).
        raft_weights: local checkpoint path (RAFT only).
        raft_iters: RAFT refinement iterations.
    """

    method: str = "dis"
    preset: str | None = DEFAULT_DIS_PRESET
    raft_model: str | None = None
    raft_weights: str | None = None
    raft_iters: int | None = None

    def to_dict(self) -> dict:
        """Return a JSON-serialisable dict."""
        return dataclasses.asdict(self)

    def same_flow(self, other: FlowConfig) -> bool:
        """True when both configs give the same flow (the weights file is compared by name only)."""
        a, b = self.to_dict(), other.to_dict()
        for d in (a, b):
            d["raft_weights"] = Path(d["raft_weights"]).name if d["raft_weights"] else None
        return a == b


@dataclass(frozen=True)
class FlowFolderOptions:
    """What ``cohesiv flow`` writes besides the forward flows (the flow itself is a :class:`FlowConfig`).

    Attributes:
        offsets: frame offsets k >= 1: flows t -> t+k.
        backward: also the flows t+k -> t and the forward-backward valid masks.
        alpha: consistency check, relative tolerance (:func:`cohesiv.flow.forward_backward_valid`).
        beta: consistency check, absolute tolerance, px^2.
        color: write the colour images.
        overwrite: recompute every file, even those that exist.
    """

    offsets: tuple[int, ...] = (1,)
    backward: bool = False
    alpha: float = 0.01
    beta: float = 0.5
    color: bool = True
    overwrite: bool = False

    def __post_init__(self) -> None:
        """Refuse offsets < 1 and negative (or NaN) tolerances (InputError names the option)."""
        if not self.offsets or min(self.offsets) < 1:
            raise InputError(None, f"offsets must be positive integers, got {list(self.offsets)}")
        if not (self.alpha >= 0 and self.beta >= 0):  # also refuses NaN
            raise InputError(None, f"--alpha and --beta must be >= 0, got {self.alpha} and {self.beta}")


@dataclass(frozen=True)
class PseudoLabelConfig:
    """Everything that determines the pseudo-labels (saved as ``dataset.json``).

    Attributes:
        offsets: frame offsets k (flow t -> t+k), e.g. ``(-3, -2, -1, 1, 2, 3)`` ([C]).
        temperature: softmax temperature in pixels (2 in [C]).
        background: ``"static"`` ([C]) or ``"homography"`` (camera motion fitted robustly).
        homography: hand fit method, ``"magsac"`` (OpenCV USAC-MAGSAC) or ``"dlt"`` (kornia).
        inlier_threshold: MAGSAC inlier threshold, pixels.
        flow: ``"dis"``, ``"raft"`` or ``"gt"`` (exact flow of a ``cohesiv synth`` clip).
        flow_preset: DIS preset (None: the flow module's default).
        raft_model: ``"small"`` or ``"large"``.
        raft_weights: local RAFT checkpoint path.
        fb_check: compute the forward–backward ``valid`` mask (and use it to drop hand points
            and weight the offset average); without it ``valid`` is all ones.
        hull_dilation: person-mask dilation as a fraction of the hand's size.
        forearm: add a forearm band to the person mask for hands given as 21 MediaPipe
            keypoints (beyond [C]; see :func:`cohesiv.responsibility.masks.forearm_polygon`).
        object_threshold: responsibility threshold of the object mask (used by ``--viz`` only;
            training derives the object mask itself).
        smoothing: ``"none"``, ``"guided"`` or ``"superpixel"``: edge-aware smoothing of the
            responsibility on the frame (beyond [C]; meant to fill thin or textureless parts of held
            objects whose flow is unreliable): a guided filter
            (:func:`cohesiv.responsibility.labeler.guided_smoothing`) or the mean over SLIC
            superpixels (:func:`cohesiv.responsibility.labeler.superpixel_pooling`). Off by default:
            on synthetic clips both lowered Pair (bench/flow_labels.py --smoothing).
        smoothing_radius: guided-filter radius / superpixel size, fraction of the image diagonal.
        separate_hands: inside the dilated hull of exactly one hand, move every hand's responsibility
            to that hand (:func:`cohesiv.responsibility.labeler.separate_hands`; beyond [C], off by default).
    """

    offsets: tuple[int, ...] = (-3, -2, -1, 1, 2, 3)
    temperature: float = RESPONSIBILITY_TEMPERATURE
    background: str = "static"
    homography: str = "magsac"
    inlier_threshold: float = 1.5
    flow: str = "dis"
    flow_preset: str | None = None
    raft_model: str = DEFAULT_RAFT_MODEL
    raft_weights: str | None = None
    fb_check: bool = True
    hull_dilation: float = HULL_DILATION
    forearm: bool = False
    object_threshold: float = 0.5
    smoothing: str = "none"
    smoothing_radius: float = 0.02
    separate_hands: bool = False

    def __post_init__(self) -> None:
        """Validate the values (ValueError names the field)."""
        offs = tuple(int(k) for k in self.offsets)
        object.__setattr__(self, "offsets", tuple(sorted(set(offs))))
        if not self.offsets or 0 in self.offsets:
            raise ValueError(f"offsets must be non-zero frame offsets, got {offs}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        _choice("background", self.background, BACKGROUNDS)
        if self.homography not in HOMOGRAPHY_METHODS:
            raise ValueError(f"homography must be 'magsac' or 'dlt', got {self.homography!r}")
        _choice("flow", self.flow, FLOW_SOURCES)
        if self.flow_preset is not None and self.flow_preset not in DIS_PRESET_NAMES:
            raise ValueError(f"DIS preset must be one of {DIS_PRESET_NAMES}, got {self.flow_preset!r}")
        _choice("raft_model", self.raft_model, RAFT_MODELS)
        _choice("smoothing", self.smoothing, SMOOTHINGS)
        if not 0 < self.smoothing_radius < 1:
            raise ValueError(f"smoothing_radius must be in (0, 1), got {self.smoothing_radius}")

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        d = dataclasses.asdict(self)
        d["offsets"] = list(self.offsets)
        return d


# ------------------------------------------------------------------------------ defaults for --help


def default_of(config: type, name: str) -> Any:
    """The default of field ``name`` of the dataclass ``config`` (its factory's value for a factory).

    Raises:
        KeyError: ``config`` has no field ``name``, or it has no default.
    """
    for f in dataclasses.fields(config):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            break
    raise KeyError(f"{config.__name__} has no field {name!r} with a default")


def help_default(text: str, value: Any) -> str:
    """``text`` followed by ``" (default: VALUE)"``, for an ``argparse`` help string.

    Tuples and lists are written comma-separated; a ``%`` in the value is escaped for argparse.
    """
    if isinstance(value, (tuple, list)):
        value = ",".join(str(v) for v in value)
    return f"{text} (default: {str(value).replace('%', '%%')})"
