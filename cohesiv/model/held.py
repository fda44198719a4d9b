"""Held objects ("holds nothing"): a per-hand held-object probability, and the decision it drives (beyond [C]).

The read-out gives every queried hand an object mask, and a moving hand that holds nothing still
gets a few object pixels (a rim where S_k blurs, a forearm). Strong hand-object systems decide
contact before they draw the object. Here the decision comes from the read-out itself: for hand k,

* ``log1p(|object_k| / |hand_k|)``: how much object there is for the hand's size;
* the mean score S_k over ``object_k``: how surely those pixels move with the hand;
* the mean object similarity cos(Z, z_object) over ``object_k``: how object-like they look;
* over the pixels that move with the hand but are not hand (``S_k > tau_r``, not ``hand_k``): the
  fraction closer to the object prototype than to the person prototype, their mean score, and
  ``log1p`` of their number over the hand's;

(each 0 when its mask is empty), standardised and combined by a logistic regression fitted on the labeled
validation clips (``cohesiv calibrate``: a hand holds something when its label has object pixels),
so ``p`` is a calibrated probability. A hand with ``p < threshold`` (the threshold chosen on the same
clips, like tau_h / tau_o / tau_r) holds nothing: its object mask is dropped. The model is stored in
``calibration.json`` under ``"held_object"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

FEATURES = (
    "log_area_ratio",
    "mean_score",
    "mean_object_sim",
    "moving_object_fraction",
    "moving_mean_score",
    "log_moving_ratio",
)


def held_features(
    hand: np.ndarray,
    obj: np.ndarray,
    scores: np.ndarray,
    person_sim: np.ndarray,
    object_sim: np.ndarray,
    tau_r: float,
) -> np.ndarray:
    """The features of each hand (see the module docstring).

    Args:
        hand: ``(K, H, W)`` {0, 1} hand masks of the read-out.
        obj: ``(K, H, W)`` {0, 1} object masks of the read-out.
        scores: ``(K, H, W)`` S_k in [0, 1].
        person_sim: ``(H, W)`` cosine similarity to the person prototype.
        object_sim: ``(H, W)`` cosine similarity to the object prototype.
        tau_r: the read-out's score threshold ("moving with the hand": ``S_k > tau_r``).

    Returns:
        ``(K, 6)`` float64, columns :data:`FEATURES` (0 where a mask is empty).
    """
    hand = np.asarray(hand, bool)
    obj = np.asarray(obj, bool)
    scores = np.asarray(scores)
    closer_to_object = np.asarray(object_sim) > np.asarray(person_sim)
    out = np.zeros((len(hand), len(FEATURES)))
    for i in range(len(hand)):
        n_h = max(int(hand[i].sum()), 1)
        n_o = int(obj[i].sum())
        if n_o:
            out[i, 0] = np.log1p(n_o / n_h)
            out[i, 1] = float(scores[i][obj[i]].mean())
            out[i, 2] = float(np.asarray(object_sim)[obj[i]].mean())
        moving = (scores[i] > tau_r) & ~hand[i]
        n_m = int(moving.sum())
        if n_m:
            out[i, 3] = float(closer_to_object[moving].mean())
            out[i, 4] = float(scores[i][moving].mean())
            out[i, 5] = np.log1p(n_m / n_h)
    return out


@dataclass(frozen=True)
class HeldObjectModel:
    """Logistic model of "this hand holds an object", with its decision threshold.

    Attributes:
        coef: weights of the standardised :data:`FEATURES`.
        intercept: bias.
        threshold: a hand with probability below it holds nothing (0: never drop).
        mean: feature means (standardisation).
        std: feature standard deviations.
    """

    coef: tuple[float, ...]
    intercept: float
    threshold: float = 0.5
    mean: tuple[float, ...] = (0.0,) * len(FEATURES)
    std: tuple[float, ...] = (1.0,) * len(FEATURES)

    def probability(self, features: np.ndarray) -> np.ndarray:
        """``(K,)`` probabilities of ``(K, 6)`` features."""
        x = (np.asarray(features, np.float64) - np.asarray(self.mean)) / np.asarray(self.std)
        z = x @ np.asarray(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def to_json(self) -> dict[str, Any]:
        """The ``"held_object"`` entry of ``calibration.json``."""
        return {
            "features": list(FEATURES),
            "coef": [float(c) for c in self.coef],
            "intercept": float(self.intercept),
            "threshold": float(self.threshold),
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any] | None) -> HeldObjectModel | None:
        """Read the ``"held_object"`` entry (None when absent); ValueError when malformed."""
        if doc is None:
            return None
        if list(doc.get("features", [])) != list(FEATURES):
            raise ValueError(f"held_object.features must be {list(FEATURES)}")
        vec = {k: tuple(float(c) for c in doc[k]) for k in ("coef", "mean", "std")}
        for k, v in vec.items():
            if len(v) != len(FEATURES) or not np.isfinite(v).all():
                raise ValueError(f"held_object.{k} must be {len(FEATURES)} finite numbers")
        if min(vec["std"]) <= 0:
            raise ValueError("held_object.std must be positive")
        return cls(
            vec["coef"], float(doc["intercept"]), float(doc.get("threshold", 0.5)), vec["mean"], vec["std"]
        )

    @classmethod
    def fit(cls, features: np.ndarray, holds: np.ndarray, threshold: float = 0.5) -> HeldObjectModel:
        """Fit on ``(N, 6)`` features and ``(N,)`` {0, 1} "holds an object" labels (standardised, :func:`fit_logistic`)."""
        x = np.asarray(features, np.float64)
        mean, std = x.mean(0), x.std(0)
        std = np.where(std > 1e-9, std, 1.0)
        coef, intercept = fit_logistic((x - mean) / std, holds)
        return cls(
            tuple(map(float, coef)),
            intercept,
            float(threshold),
            tuple(map(float, mean)),
            tuple(map(float, std)),
        )


def apply_held(
    hand: np.ndarray,
    obj: np.ndarray,
    scores: np.ndarray,
    person_sim: np.ndarray,
    object_sim: np.ndarray,
    tau_r: float,
    model: HeldObjectModel | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Held-object probability and decision per hand; drop the object mask of a hand that holds nothing.

    Args:
        hand: ``(K, H, W)`` hand masks.
        obj: ``(K, H, W)`` object masks.
        scores: ``(K, H, W)`` S_k.
        person_sim: ``(H, W)``.
        object_sim: ``(H, W)``.
        tau_r: the read-out's score threshold.
        model: the fitted model, or None (probability NaN; a hand holds something when its object
            mask is non-empty).

    Returns:
        ``(obj (K, H, W) bool, p (K,) float32, holds (K,) bool)``; ``holds`` is ``p >= threshold``
        and a non-empty object mask.
    """
    obj = np.asarray(obj, bool).copy()
    nonempty = obj.reshape(len(obj), -1).any(1) if len(obj) else np.zeros(0, bool)
    if model is None:
        return obj, np.full(len(obj), np.nan, np.float32), nonempty
    p = model.probability(held_features(hand, obj, scores, person_sim, object_sim, tau_r)).astype(np.float32)
    holds = nonempty & (p >= model.threshold)
    obj[~holds] = False
    return obj, p, holds


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 50) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression by Newton steps (the intercept is not penalised).

    Args:
        x: ``(N, D)`` features.
        y: ``(N,)`` {0, 1} labels.
        l2: ridge weight on the coefficients, relative to N.
        steps: Newton iterations (it converges in a handful).

    Returns:
        ``(coef (D,), intercept)``.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    n, d = x.shape
    a = np.hstack([x, np.ones((n, 1))])
    w = np.zeros(d + 1)
    reg = np.diag([l2 * n] * d + [0.0])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(a @ w, -50, 50)))
        grad = a.T @ (p - y) + reg @ w
        hess = a.T @ (a * (p * (1 - p))[:, None]) + reg + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:d], float(w[d])
