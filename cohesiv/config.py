"""The stage configs and their defaults, each written once, in a module without torch or OpenCV.

Every default a stage, its config and its command-line flag share is written here: the frozen
config dataclasses (:class:`FlowConfig`, :class:`FlowFolderOptions`, :class:`PseudoLabelConfig`,
:class:`TrainConfig` with its :class:`AugmentConfig` and presets, :class:`CalibrationOptions`, :class:`DemoConfig`) and the constants and choice
tuples they validate against. The network's ``ModelConfig`` stays in :mod:`cohesiv.model.net`
(its checks need the encoders' weights table); :class:`TrainConfig` builds it on first use.

The stage modules import the configs from here; their old paths
(``cohesiv.flow.estimator.FlowConfig``, ``cohesiv.responsibility.labeler.PseudoLabelConfig``,
``cohesiv.train.TrainConfig``, ...) still work for one release. The commands default their flags
to ``None``, take the dataclass value when a flag is not given, and show it in ``--help`` through
:func:`default_of` and :func:`help_default`, so ``cohesiv <command> --help`` stays fast
(``tests/test_config.py`` checks that importing this module loads neither torch nor OpenCV). Each
config checks its own values in ``__post_init__``: the one place a choice is validated.

``tools/structure.py`` counts the places each default is written.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cohesiv.errors import CohesivError, InputError

if TYPE_CHECKING:
    from cohesiv.model.net import ModelConfig

__all__ = [
    "BACKGROUNDS",
    "CAMERA_MODES",
    "COMPOSITE_SAMPLES",
    "COMPOSITE_SKIN",
    "DEFAULT_WINDOW_FACTOR",
    "EVAL_IMAGE_SUPPORT",
    "HANDS_EVERY",
    "MAX_HANDS",
    "MIN_HAND_CONFIDENCE",
    "MIN_TRACK_FRAMES",
    "PREDICT_CHUNK",
    "SUPPORTS",
    "CALIBRATION_OBJECTIVES",
    "CALIBRATION_TOLERANCE",
    "DEFAULT_DIS_PRESET",
    "DEFAULT_STEPS",
    "DEFAULT_RAFT_ITERS",
    "DIS_PRESET_NAMES",
    "FLAT_FLOW_KEYS",
    "FLOW_METHODS",
    "FLOW_SOURCES",
    "HOMOGRAPHY_METHODS",
    "HULL_DILATION",
    "RAFT_MODELS",
    "RESPONSIBILITY_TEMPERATURE",
    "SYNTH_CAMERA",
    "SYNTH_CLIPS",
    "SYNTH_FRAMES",
    "SYNTH_SIZE",
    "SMOOTHINGS",
    "PERSON_RULES",
    "MODEL_PRESETS",
    "PRESETS",
    "SCHEDULES",
    "AugmentConfig",
    "CalibrationOptions",
    "DemoConfig",
    "FlowConfig",
    "FlowFolderOptions",
    "PseudoLabelConfig",
    "TrainConfig",
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
#: Person-mask rules of the pseudo-labels (:func:`cohesiv.responsibility.masks.person_mask`).
PERSON_RULES = ("hull", "grabcut")

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


#: ``PseudoLabelConfig``'s flat flow names (its old keywords and attributes, and its keys in
#: ``dataset.json``) -> the fields of its :class:`FlowConfig`.
FLAT_FLOW_KEYS = {
    "flow": "method",
    "flow_preset": "preset",
    "raft_model": "raft_model",
    "raft_weights": "raft_weights",
}


def _label_flow() -> FlowConfig:
    """The pseudo-labels' flow when none is given: DIS at the flow module's default preset.

    The preset stays None (``FlowEstimator`` takes :data:`DEFAULT_DIS_PRESET`), as ``dataset.json``
    has always recorded it, so that datasets written before resume with the same config.
    """
    return FlowConfig(method="dis", preset=None, raft_model=DEFAULT_RAFT_MODEL)


def _accept_flat_flow_keywords(cls: type) -> type:
    """Let ``cls(flow=..., flow_preset=..., raft_model=..., raft_weights=...)`` still build the nested flow config.

    The flat keywords (kept for one release) replace those fields of ``flow_config`` (given, or the
    default); :func:`dataclasses.replace` goes through here too.
    """
    generated = cls.__init__

    @functools.wraps(generated)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        flat = {FLAT_FLOW_KEYS[k]: kwargs.pop(k) for k in list(kwargs) if k in FLAT_FLOW_KEYS}
        if flat:
            kwargs["flow_config"] = dataclasses.replace(kwargs.get("flow_config") or _label_flow(), **flat)
        generated(self, *args, **kwargs)

    cls.__init__ = __init__
    return cls


@_accept_flat_flow_keywords
@dataclass(frozen=True)
class PseudoLabelConfig:
    """Everything that determines the pseudo-labels (saved as ``dataset.json``).

    Attributes:
        offsets: frame offsets k (flow t -> t+k), e.g. ``(-3, -2, -1, 1, 2, 3)`` ([C]).
        temperature: softmax temperature in pixels (2 in [C]).
        background: ``"static"`` ([C]) or ``"homography"`` (camera motion fitted robustly).
        homography: hand fit method, ``"magsac"`` (OpenCV USAC-MAGSAC) or ``"dlt"`` (kornia).
        inlier_threshold: MAGSAC inlier threshold, pixels.
        flow_config: the flow of the pseudo-labels (:class:`FlowConfig`): ``method`` ``"dis"``,
            ``"raft"`` or ``"gt"`` (the exact flow of a ``cohesiv synth`` clip); ``preset``, the DIS
            preset (None: the flow module's default); ``raft_model`` ``"small"`` or ``"large"``;
            ``raft_weights``, a local RAFT checkpoint path; ``raft_iters`` stays None (the pseudo-labels
            run RAFT with its default iterations). Its old flat names are still read-only attributes
            (``flow``, ``flow_preset``, ``raft_model``, ``raft_weights``), constructor keywords, and
            the keys of ``dataset.json`` (:meth:`to_dict`).
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
        person_rule: the person mask from the hand points: ``"hull"``, their dilated hull ([C]), or
            ``"grabcut"``, each hand cut out of the frame by GrabCut seeded by its points (beyond [C];
            follows the hand's outline, so the hand targets stop at its edge;
            :func:`cohesiv.responsibility.masks.grabcut_hand_mask`). A person-mask folder wins over both.
        stop_at_wrist: mark every 21-keypoint hand of the written dataset ``"stop_at_wrist": true`` in
            the manifest, and training then labels its forearm past the wrist background
            (:func:`cohesiv.responsibility.masks.stop_at_wrist`), as human hand masks stop at the wrist
            (beyond [C]; off by default). The stored maps keep everything that moved with the hand, so
            ``cohesiv composite`` still pastes a hand with its forearm. ``cohesiv pseudolabel`` only.
    """

    offsets: tuple[int, ...] = (-3, -2, -1, 1, 2, 3)
    temperature: float = RESPONSIBILITY_TEMPERATURE
    background: str = "static"
    homography: str = "magsac"
    inlier_threshold: float = 1.5
    flow_config: FlowConfig = field(default_factory=_label_flow)
    fb_check: bool = True
    hull_dilation: float = HULL_DILATION
    forearm: bool = False
    object_threshold: float = 0.5
    smoothing: str = "none"
    smoothing_radius: float = 0.02
    separate_hands: bool = False
    person_rule: str = "hull"
    stop_at_wrist: bool = False

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
        flow = self.flow_config
        if flow.raft_model is None:  # a FlowConfig made for DIS: the pseudo-labels' RAFT default
            object.__setattr__(
                self, "flow_config", flow := dataclasses.replace(flow, raft_model=DEFAULT_RAFT_MODEL)
            )
        _choice("flow", flow.method, FLOW_SOURCES)
        if flow.preset is not None and flow.preset not in DIS_PRESET_NAMES:
            raise ValueError(f"DIS preset must be one of {DIS_PRESET_NAMES}, got {flow.preset!r}")
        _choice("raft_model", flow.raft_model, RAFT_MODELS)
        if flow.raft_iters is not None:
            raise ValueError("raft_iters is not a pseudo-label option (RAFT runs its default iterations)")
        _choice("smoothing", self.smoothing, SMOOTHINGS)
        _choice("person_rule", self.person_rule, PERSON_RULES)
        if not 0 < self.smoothing_radius < 1:
            raise ValueError(f"smoothing_radius must be in (0, 1), got {self.smoothing_radius}")

    @property
    def flow(self) -> str:
        """The flow source, ``flow_config.method`` (its old flat name)."""
        return self.flow_config.method

    @property
    def flow_preset(self) -> str | None:
        """The DIS preset, ``flow_config.preset`` (its old flat name)."""
        return self.flow_config.preset

    @property
    def raft_model(self) -> str:
        """The RAFT size, ``flow_config.raft_model`` (its old flat name)."""
        return self.flow_config.raft_model

    @property
    def raft_weights(self) -> str | None:
        """The RAFT checkpoint, ``flow_config.raft_weights`` (its old flat name)."""
        return self.flow_config.raft_weights

    def to_dict(self) -> dict:
        """JSON-serialisable form: flat, the flow config's fields under their :data:`FLAT_FLOW_KEYS` names.

        The keys and their order are those of ``dataset.json`` since it was written (the flow keys
        between ``inlier_threshold`` and ``fb_check``).
        """
        d: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "flow_config":
                d.update({flat: getattr(self.flow_config, name) for flat, name in FLAT_FLOW_KEYS.items()})
            else:
                d[f.name] = getattr(self, f.name)
        d["offsets"] = list(self.offsets)
        return d


# --------------------------------------------------------------------------------------- training

#: Learning-rate schedules of :class:`TrainConfig`.
SCHEDULES = ("constant", "cosine", "plateau")

#: Steps of a run given neither steps nor epochs (nor a preset's epochs).
DEFAULT_STEPS = 1000

#: Named presets: values that replace the defaults (explicit command-line values win over both).
PRESETS: dict[str, dict[str, Any]] = {
    # COHESIV section 4.1: AdamW, batch 10, lr 1e-2, halve the lr after 5 epochs without improvement
    # of the validation loss, stop after 10 epochs without improvement. "Validation" here is a
    # held-out 10 % of the pseudo-label samples (by sample id), scored by the training loss.
    "paper": {
        "batch": 10,
        "lr": 1e-2,
        "weight_decay": 1e-2,
        "schedule": "plateau",
        "warmup_steps": 0,
        "plateau_patience": 5,
        "plateau_factor": 0.5,
        "early_stop_patience": 10,
        "val_fraction": 0.1,
        "epochs": 100,
    },
}

#: Model values of the presets (``ModelConfig`` fields), applied unless given on the command line.
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    # the query/key heads at full resolution and F = 64, as in the paper (A = 64: not published)
    "paper": {"head_stride": 1, "embed_dim": 64, "head_dim": 64, "query_locality": False},
}


def _model_config() -> ModelConfig:
    """The default network config (:class:`cohesiv.model.ModelConfig`, imported here: it loads torch)."""
    from cohesiv.model.net import ModelConfig

    return ModelConfig()


@dataclass(frozen=True)
class AugmentConfig:
    """Parameters of the training augmentation.

    Attributes:
        scale: range of the crop area as a fraction of the image area.
        ratio: range of the crop aspect ratio (width / height).
        flip: probability of a horizontal flip (mirrors x, swaps left/right sides).
        brightness, contrast, saturation: colour jitter strength (factor drawn in ``[1-s, 1+s]``).
        hue: hue jitter in ``[-hue, hue]`` (fraction of the colour circle, at most 0.5).
        blur: probability of a Gaussian blur (real video is often out of focus or motion-blurred;
            synthetic clips are sharp).
        blur_sigma: range of the blur's standard deviation, pixels of the output crop.
        grayscale: probability of turning the crop grey (after the jitter). Real photos include
            black-and-white ones, and a network that has only seen colour takes "hand" to be a
            colour: on the grey photo of ``real-hand-masks-hof`` its person similarity was flat.
    """

    scale: tuple[float, float] = (0.35, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: float = 0.5
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    hue: float = 0.05
    blur: float = 0.25
    blur_sigma: tuple[float, float] = (0.3, 1.5)
    grayscale: float = 0.1


#: Augmentation fields added later, with the value that runs without them were trained with.
_AUGMENT_ADDED = {"grayscale": 0.0}


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (saved as ``RUN/config.yaml``).

    Attributes:
        data: pseudo-label dataset folders.
        out: run folder.
        model: network and embedding-loss configuration.
        size: side of the square training crops (a multiple of 32).
        batch: global batch size (split over the processes of a distributed run).
        steps: optimisation steps; None to use ``epochs``.
        epochs: passes over the training samples (incomplete last batches dropped); used when ``steps`` is None.
        lr: peak learning rate of AdamW.
        encoder_lr: the encoder's learning rate as a multiple of ``lr`` (1: one rate for the whole
            network; below 1 the ImageNet features of a pretrained encoder change more slowly than the
            decoder and heads, which start from random weights; 0 freezes the encoder's weights).
        weight_decay: AdamW weight decay.
        schedule: "constant", "cosine" (to 0 at the last step) or "plateau" (halve on a stalled
            validation loss; needs epochs).
        warmup_steps: linear warm-up from 0 (constant and cosine schedules).
        plateau_patience: epochs without improvement before the lr is multiplied by ``plateau_factor``.
        plateau_factor: lr multiplier on a plateau.
        early_stop_patience: stop after this many epochs without improvement (plateau schedule; 0 = never).
        val_fraction: share of samples held out for the plateau validation loss (0: use the epoch's
            mean training loss).
        grad_clip: clip the global gradient norm to this (None: no clipping).
        preset: name of the preset the config was built from, for the record.
        save_every: save a checkpoint every this many steps (and at the end).
        keep_every: also keep the weights of every this many steps as
            ``checkpoints/step-NNNNNN.safetensors`` (0: never), to evaluate a run along its length.
        log_every: log scalars every this many steps.
        image_every: log TensorBoard images every this many steps (0: never).
        seed: seeds the initialisation, the sample order and the augmentation.
        num_workers: DataLoader worker processes.
        object_threshold: object mask = some hand responsibility above this, minus person.
        w_resp: weight of the responsibility loss.
        w_emb: weight of the embedding loss.
        sync_bn: use SyncBatchNorm in distributed GPU runs (batch statistics over the global batch);
            PyTorch's SyncBatchNorm is GPU-only, so CPU runs normalise over each process' share.
        device: "cpu", "cuda", "cuda:1", ... or None (CUDA when available).
        channels_last: keep the network and its input in channels-last (NHWC) memory layout
            (0.76x the time of a training step on this project's CPU, bench/levers.py).
        augment: augmentation parameters.
    """

    data: tuple[str, ...]
    out: str
    model: ModelConfig = field(default_factory=_model_config)
    size: int = 128
    batch: int = 8
    steps: int | None = None
    epochs: int | None = None
    lr: float = 1e-3
    encoder_lr: float = 1.0
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_steps: int = 20
    plateau_patience: int = 5
    plateau_factor: float = 0.5
    early_stop_patience: int = 10
    val_fraction: float = 0.0
    grad_clip: float | None = 5.0
    preset: str | None = None
    save_every: int = 100
    keep_every: int = 0
    log_every: int = 10
    image_every: int = 100
    seed: int = 0
    num_workers: int = 0
    object_threshold: float = 0.5
    w_resp: float = 10.0
    w_emb: float = 1.0
    sync_bn: bool = True
    device: str | None = None
    channels_last: bool = True
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        """Check values the user can get wrong (raises CohesivError)."""
        if not self.data:
            raise CohesivError("no pseudo-label dataset given (--data)")
        if self.size <= 0 or self.size % 32:
            raise CohesivError(f"--size must be a positive multiple of 32, got {self.size}")
        if self.batch <= 0:
            raise CohesivError(f"--batch must be positive, got {self.batch}")
        if self.steps is not None and self.steps <= 0:
            raise CohesivError(f"--steps must be positive, got {self.steps}")
        if self.epochs is not None and self.epochs <= 0:
            raise CohesivError(f"--epochs must be positive, got {self.epochs}")
        if not 0.0 <= self.encoder_lr <= 1.0:
            raise CohesivError(f"--encoder-lr must be in [0, 1], got {self.encoder_lr}")
        if self.schedule not in SCHEDULES:
            raise CohesivError(f"unknown schedule {self.schedule!r}; choose from {', '.join(SCHEDULES)}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise CohesivError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.save_every <= 0 or self.log_every <= 0:
            raise CohesivError("save_every and log_every must be positive")
        if self.keep_every < 0:
            raise CohesivError(f"keep_every must be 0 (never) or positive, got {self.keep_every}")

    def to_dict(self) -> dict[str, Any]:
        """Return the plain-dict (YAML) form."""
        d = dataclasses.asdict(self)
        d["data"] = list(self.data)
        d["augment"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in d["augment"].items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build from the plain-dict form (unknown keys raise CohesivError)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise CohesivError(f"unknown training config keys {unknown}")
        d = dict(d)
        d["data"] = tuple(d.get("data", ()))
        if isinstance(d.get("model"), dict):
            from cohesiv.model.net import ModelConfig  # loads torch

            d["model"] = ModelConfig.from_dict(d["model"])
        if isinstance(d.get("augment"), dict):
            aug = {**_AUGMENT_ADDED, **d["augment"]}  # runs from before a field: its old value
            d["augment"] = AugmentConfig(
                **{k: (tuple(v) if isinstance(v, list) else v) for k, v in aug.items()}
            )
        return cls(**d)


# ------------------------------------------------------------------------------------ calibration

#: The mIoU a calibration maximises (``cohesiv calibrate --objective``).
CALIBRATION_OBJECTIVES = ("All", "Pair")

#: Default tolerance (mIoU points) of the threshold search: triples this close to the best
#: objective are told apart by the mean of the four tasks.
CALIBRATION_TOLERANCE = 0.5


@dataclass(frozen=True)
class CalibrationOptions:
    """The options of a calibration (:func:`cohesiv.eval.calibrate.calibrate_run` takes them by keyword).

    Attributes:
        samples: pixels per class for the prototypes (500 as in the paper).
        objective: ``"Pair"`` or ``"All"`` mIoU to maximise. Pair by default: All scores the union of
            every hand and object, so it cannot see a hand mask that takes its neighbour's pixels:
            maximising it picked, for 2 of 4 seeds of one recipe, hand masks far too large (validation
            Hand precision 59 % at recall 96 %, Pair 55; README "Results").
        seed: seeds the pixel draw.
        tolerance: threshold triples within this many points of the best objective are ranked by
            the mean mIoU of the four tasks.
        grow: also try the hand-growing read-out (``tau_g``).
        opening: also try opening the object masks (``open_o``).
        flip: also calibrate with the test-time flip.
        held: also fit the held-object model and its threshold.
        relative_scores: fit (and predict) on scores relative to the score at the query point.
        query_person: take each image's person prototype at its query points (fit and predict).
    """

    samples: int = 500
    objective: str = "Pair"
    seed: int = 0
    tolerance: float = CALIBRATION_TOLERANCE
    grow: bool = True
    opening: bool = True
    flip: bool = False
    held: bool = True
    relative_scores: bool = True
    query_person: bool = False

    def __post_init__(self) -> None:
        """Validate the values (CohesivError names the option)."""
        if self.samples <= 0:
            raise CohesivError(f"--samples must be positive, got {self.samples}")
        if self.objective not in CALIBRATION_OBJECTIVES:
            raise CohesivError(
                f"unknown objective {self.objective!r}; choose from {', '.join(CALIBRATION_OBJECTIVES)}"
            )
        if not self.tolerance >= 0:  # also refuses NaN
            raise CohesivError(f"--tolerance must be 0 or more, got {self.tolerance}")


# ------------------------------------------------------------------------------------------ hands

#: MediaPipe hand detection (``cohesiv hands``, :func:`cohesiv.hands.detect_hands`): process every
#: this many frames.
HANDS_EVERY = 1
#: Most hands found per frame.
MAX_HANDS = 2
#: Minimum palm-detection score.
MIN_HAND_CONFIDENCE = 0.5
#: Tracks seen in fewer processed frames are dropped (1: keep all).
MIN_TRACK_FRAMES = 2

# ------------------------------------------------------------------------------------- prediction

#: Frames per resumable part of a whole-clip prediction (``cohesiv predict`` on a clip).
PREDICT_CHUNK = 25

#: Window side, as a multiple of the hand's size (its points' bounding box), of a prediction in a
#: window around each hand (:func:`cohesiv.model.windows.predict_in_hand_windows`).
DEFAULT_WINDOW_FACTOR = 4.0

#: Hand supports of a prediction on a still image (:func:`cohesiv.model.support.apply_support`): the
#: points' dilated hull cut at the wrist ("points"), that mask refined by GrabCut ("grabcut"), or none.
SUPPORTS = ("points", "grabcut", "none")
#: The support ``cohesiv eval --images`` scores beside the network's read-out by default ("grabcut":
#: the "model+support" and "model+grabcut" rows).
EVAL_IMAGE_SUPPORT = "grabcut"

# ------------------------------------------------------------------------------------- composites

#: Composited samples that ``cohesiv composite`` writes.
COMPOSITE_SAMPLES = 500
#: Probability that a composited hand is pasted over a skin patch, a hard negative
#: (:class:`cohesiv.synth.composite.CompositeConfig`, ``skin``).
COMPOSITE_SKIN = 0.0

# ------------------------------------------------------------------------------------------- demo


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo; the defaults take a few minutes on 2 CPU cores.

    Attributes:
        out: output folder.
        video: real clip to run on (default: the embedded cup clip); None to skip.
        train_clips, val_clips, test_clips: synthetic clips per split.
        frames: frames per synthetic clip.
        size: ``(W, H)`` of the synthetic clips.
        steps: training steps.
        train_size: square training crop (multiple of 32).
        batch: training batch.
        embed_dim: channels F of the embedding.
        head_dim: channels A of the query/key heads (at full resolution they cost more than the
            U-Net: 32/32 trains about twice as fast as the 64/64 library default on a CPU).
        calibrate_sizes: network input sizes tried by the calibration (the best on the validation
            clips is kept); None: the training size and the clips' longer side.
        forearm: add the forearm band to the pseudo-labels' person mask (21-keypoint hands).
        calibrate_objective: the validation mIoU the read-out thresholds maximise ("Pair", as
            :class:`CalibrationOptions`, or "All").
        video_every: pseudo-label every this many frames of the real video.
        real_images: real image sets with masks to score the model on (None: those found by
            :func:`cohesiv.eval.images.find_image_sets`; empty: none).
        seed: seeds everything.
        grayscale: share of grey training crops (:class:`AugmentConfig`). 0 here, unlike the library
            default: the demo trains mostly on synthetic clips, whose hands colour tells apart, and
            with 0.1 its 300-step model fell below its pseudo-labels on Pair (66.3 against 66.7; All /
            Pair 71.1 / 66.3 against 76.9 / 73.5 without). The grey crops are for real photos.
    """

    out: Path
    video: Path | None = None
    train_clips: int = 12
    val_clips: int = 3
    test_clips: int = 5
    frames: int = 12
    size: tuple[int, int] = (192, 144)
    steps: int = 300
    train_size: int = 128
    batch: int = 8
    embed_dim: int = 32
    head_dim: int = 32
    forearm: bool = True
    calibrate_objective: str = CalibrationOptions.objective
    calibrate_sizes: tuple[int, ...] | None = None
    video_every: int = 2
    real_images: tuple[Path, ...] | None = None
    seed: int = 0
    grayscale: float = 0.0


# ---------------------------------------------------------------------------------- synthetic clips

#: Camera motion of a synthetic clip: static, moving, or mixed (chosen per clip).
CAMERA_MODES = ("static", "moving", "mixed")
#: ``cohesiv synth`` defaults: clips, frames per clip, frame size ``(W, H)``, camera motion.
SYNTH_CLIPS = 10
SYNTH_FRAMES = 24
SYNTH_SIZE = (320, 240)
SYNTH_CAMERA = "mixed"

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
