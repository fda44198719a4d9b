"""The read-out of COHESIV section 3.2 (with our extras): scores and prototype similarities -> masks.

One frozen :class:`Readout` holds the thresholds that ``cohesiv calibrate`` fits and that
``RUN/calibration.json`` stores under ``"thresholds"`` (keys :data:`THRESHOLD_NAMES` and, when that step
is on, :data:`OPTIONAL_THRESHOLD_NAMES`), and its :meth:`Readout.apply` is the one place they are
applied: :class:`cohesiv.model.Predictor` and the calibration (:mod:`cohesiv.eval.calibrate`) both
call it.

Per query k (``S_k`` the score map):

* "calibrated": hand_k = cos(Z, z_person) > tau_h AND S_k > tau_r; object_k = cos(Z, z_object) > tau_o
  AND S_k > tau_r AND NOT hand_k; then, when set, ``tau_g`` grows each hand into the connected
  person-like pixels it touches (:func:`grow_hands`) and ``open_o`` opens each object mask with a disc
  (:func:`open_objects`);
* "nearest-prototype" (prototypes, no thresholds): S_k > tau_r, split into hand and object by the
  closer prototype;
* "query-prototype" (no prototypes): hand_k = person_sim > tau_h AND S_k > tau_r; object_k: the rest
  of S_k > tau_r.

The threshold rule is written once with ``>``, ``&`` and ``~`` (:meth:`Readout.masks`), so it runs on
torch tensors and on numpy arrays alike, in the caller's library; the counting form of the same rule,
for every threshold triple at once, is :func:`cohesiv.eval.calibrate.readout_counts`. Growing and
opening are numpy (OpenCV).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

#: Thresholds every calibrated read-out has (keys of ``calibration.json``'s ``"thresholds"``).
THRESHOLD_NAMES = ("tau_h", "tau_o", "tau_r")
#: Optional thresholds (absent: that step of the read-out is off): ``tau_g`` grows hands through person
#: pixels; ``open_o`` opens the object masks (radius as a fraction of the image's longer side).
OPTIONAL_THRESHOLD_NAMES = ("tau_g", "open_o")
#: The read-out modes (module docstring).
MODES = ("calibrated", "nearest-prototype", "query-prototype")


def _numpy(x: Any) -> np.ndarray:
    """A torch tensor (float maps as float32) or array-like as a numpy array."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach()
        return (x.float() if x.dtype.is_floating_point else x).cpu().numpy()
    return np.asarray(x)


@dataclass(frozen=True)
class Readout:
    """Read-out thresholds and mode; :meth:`apply` turns maps into hand and object masks.

    Attributes:
        tau_h: person-similarity threshold of hand pixels.
        tau_o: object-similarity threshold of object pixels.
        tau_r: score threshold (pixels that move with the queried hand).
        tau_g: person-similarity threshold of hand growing (:func:`grow_hands`), or None (off).
        open_o: object opening radius as a fraction of the image's longer side (:func:`open_objects`),
            or None (off).
        mode: "calibrated", "nearest-prototype" or "query-prototype" (module docstring); growing and
            opening apply to "calibrated" only.
    """

    tau_h: float = 0.5
    tau_o: float = 0.5
    tau_r: float = 0.5
    tau_g: float | None = None
    open_o: float | None = None
    mode: str = "calibrated"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown read-out mode {self.mode!r}")

    @classmethod
    def from_thresholds(cls, thresholds: Mapping[str, float] | None, mode: str = "calibrated") -> Readout:
        """The read-out of a ``calibration.json`` ``"thresholds"`` dict (None: the defaults, 0.5)."""
        if thresholds is None:
            return cls(mode=mode)
        opt = {k: float(thresholds[k]) for k in OPTIONAL_THRESHOLD_NAMES if thresholds.get(k) is not None}
        return cls(**{k: float(thresholds[k]) for k in THRESHOLD_NAMES}, **opt, mode=mode)

    def thresholds(self) -> dict[str, float]:
        """The ``calibration.json`` form: ``{"tau_h", "tau_o", "tau_r"}`` plus the optional steps that are on."""
        out = {k: float(getattr(self, k)) for k in THRESHOLD_NAMES}
        out.update(
            {k: float(getattr(self, k)) for k in OPTIONAL_THRESHOLD_NAMES if getattr(self, k) is not None}
        )
        return out

    def summary(self) -> str:
        """The thresholds on one line, ``tau_h=0.9 tau_o=0.85 tau_r=0.35 tau_g=off open_o=off``."""
        values = ((k, getattr(self, k)) for k in THRESHOLD_NAMES + OPTIONAL_THRESHOLD_NAMES)
        return " ".join(f"{k}={'off' if v is None else format(v, 'g')}" for k, v in values)

    def masks(self, scores: Any, person_sim: Any, object_sim: Any) -> tuple[Any, Any]:
        """The threshold rule alone (no growing or opening), in the inputs' array library.

        Args:
            scores: ``(K, H, W)`` S_k in [0, 1] (torch tensor or numpy array).
            person_sim: ``(H, W)`` cosine similarity to the person prototype.
            object_sim: ``(H, W)`` cosine similarity to the object prototype.

        Returns:
            ``(hand (K, H, W) bool, object (K, H, W) bool)``, disjoint for each k.
        """
        moving = scores > self.tau_r
        if self.mode == "calibrated":
            hand = moving & (person_sim > self.tau_h)[None]
            obj = moving & (object_sim > self.tau_o)[None]
        elif self.mode == "nearest-prototype":
            hand = moving & (person_sim >= object_sim)[None]
            obj = moving
        else:  # query-prototype
            hand = moving & (person_sim > self.tau_h)[None]
            obj = moving
        return hand, obj & ~hand

    def apply(self, scores: Any, person_sim: Any, object_sim: Any) -> tuple[np.ndarray, np.ndarray]:
        """Hand and object masks: :meth:`masks`, then growing and opening when on ("calibrated" only).

        Args:
            scores: ``(K, H, W)`` S_k in [0, 1] (torch tensor or numpy array).
            person_sim: ``(H, W)`` cosine similarity to the person prototype.
            object_sim: ``(H, W)`` cosine similarity to the object prototype.

        Returns:
            ``(hand (K, H, W) bool, object (K, H, W) bool)`` numpy arrays, disjoint for each k.
        """
        hand, obj = (_numpy(m) for m in self.masks(scores, person_sim, object_sim))
        if self.mode != "calibrated":
            return hand, obj
        if self.tau_g is not None:
            hand, obj = grow_hands(hand, obj, _numpy(scores), _numpy(person_sim), self.tau_g)
        if self.open_o is not None:
            obj = open_objects(obj, opening_radius(self.open_o, np.shape(person_sim)))
        return hand, obj


def grow_hands(
    hand: np.ndarray, obj: np.ndarray, scores: np.ndarray, person_sim: np.ndarray, tau_g: float
) -> tuple[np.ndarray, np.ndarray]:
    """Grow each hand mask into the connected person-like pixels it touches (beyond [C]).

    The score S_k follows motion, so it is low on parts of the arm that move unlike the hand (a
    forearm turning about the elbow). The embedding knows them as person when training used a
    forearm-aware person mask. Each connected component (8-neighbourhood) of ``person_sim > tau_g``
    that touches ``hand_k`` is added to it; a pixel claimed by several hands goes to the one with
    the highest score there. Person pixels are then removed from every object mask.

    Args:
        hand: ``(K, H, W)`` bool/{0, 1} hand masks of :meth:`Readout.masks`.
        obj: ``(K, H, W)`` object masks.
        scores: ``(K, H, W)`` S_k.
        person_sim: ``(H, W)`` cosine similarity to the person prototype.
        tau_g: person-similarity threshold of the grown region.

    Returns:
        ``(hand, obj)`` ``(K, H, W)`` bool, disjoint for each k.
    """
    hand = np.asarray(hand, bool)
    obj = np.asarray(obj, bool)
    k = len(hand)
    if k == 0:
        return hand, obj
    region = (np.asarray(person_sim) > tau_g) | hand.any(0)
    n, comp = cv2.connectedComponents(region.astype(np.uint8), connectivity=8)
    claims = np.zeros((k, n), bool)  # claims[i, c]: hand i touches component c
    for i in range(k):
        claims[i, np.unique(comp[hand[i]])] = True
    claims[:, 0] = False  # label 0 is outside the region
    claimed = claims[:, comp]  # (K, H, W)
    contested = claimed.sum(0) > 1
    if contested.any():
        best = np.argmax(np.where(claimed, np.asarray(scores), -np.inf), axis=0)
        claimed &= ~contested[None] | (np.arange(k)[:, None, None] == best[None])
    grown = hand | claimed
    return grown, obj & ~grown.any(0)[None]


def open_objects(obj: np.ndarray, radius: float) -> np.ndarray:
    """Morphological opening of each object mask with a disc of ``radius`` pixels (beyond [C]).

    S_k blurs at the edges of a moving hand, so a hand that holds nothing still gets a rim of object
    pixels a few pixels wide around it (false objects). An opening removes every part of a mask that
    a disc of this radius does not fit in, and keeps the rest unchanged.

    Args:
        obj: ``(K, H, W)`` bool/{0, 1} object masks.
        radius: disc radius in pixels; below 0.5 nothing changes.

    Returns:
        ``(K, H, W)`` bool.
    """
    obj = np.asarray(obj, bool)
    r = int(round(float(radius)))
    if r < 1 or obj.size == 0:
        return obj
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return np.stack([cv2.morphologyEx(o.astype(np.uint8), cv2.MORPH_OPEN, disc) > 0 for o in obj])


def opening_radius(open_o: float, shape: Sequence[int]) -> float:
    """The opening radius in pixels of ``open_o`` (a fraction of the longer side of ``shape``)."""
    return float(open_o) * max(int(shape[-1]), int(shape[-2]))
