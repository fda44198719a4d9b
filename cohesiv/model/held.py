"""Held objects ("holds nothing"): a per-hand held-object probability, and the decision it drives (beyond [C]).

The read-out gives every queried hand an object mask, and a moving hand that holds nothing still
gets a few object pixels (a rim where S_k blurs, a forearm). Strong hand-object systems decide
contact before they draw the object. Here the decision comes from the read-out itself: for hand k,

* ``log1p(|object_k| / |hand_k|)``: how much object there is for the hand's size;
* the mean score S_k over ``object_k``: how surely those pixels move with the hand;
* the mean object similarity cos(Z, z_object) over ``object_k``: how object-like they look;

(each 0 when the object mask is empty), combined by a logistic regression fitted on the labeled
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

FEATURES = ("log_area_ratio", "mean_score", "mean_object_sim")


def held_features(
    hand: np.ndarray, obj: np.ndarray, scores: np.ndarray, object_sim: np.ndarray
) -> np.ndarray:
    """The features of each hand (see the module docstring).

    Args:
        hand: ``(K, H, W)`` {0, 1} hand masks of the read-out.
        obj: ``(K, H, W)`` {0, 1} object masks of the read-out.
        scores: ``(K, H, W)`` S_k in [0, 1].
        object_sim: ``(H, W)`` cosine similarity to the object prototype.

    Returns:
        ``(K, 3)`` float64, columns :data:`FEATURES`.
    """
    hand = np.asarray(hand, bool)
    obj = np.asarray(obj, bool)
    k = len(hand)
    out = np.zeros((k, len(FEATURES)))
    for i in range(k):
        n_o = int(obj[i].sum())
        if n_o == 0:
            continue
        out[i, 0] = np.log1p(n_o / max(int(hand[i].sum()), 1))
        out[i, 1] = float(np.asarray(scores[i])[obj[i]].mean())
        out[i, 2] = float(np.asarray(object_sim)[obj[i]].mean())
    return out


@dataclass(frozen=True)
class HeldObjectModel:
    """Logistic model of "this hand holds an object", with its decision threshold.

    Attributes:
        coef: ``(3,)`` weights of :data:`FEATURES`.
        intercept: bias.
        threshold: a hand with probability below it holds nothing (0: never drop).
    """

    coef: tuple[float, ...]
    intercept: float
    threshold: float = 0.5

    def probability(self, features: np.ndarray) -> np.ndarray:
        """``(K,)`` probabilities of ``(K, 3)`` features."""
        z = np.asarray(features, np.float64) @ np.asarray(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def to_json(self) -> dict[str, Any]:
        """The ``"held_object"`` entry of ``calibration.json``."""
        return {
            "features": list(FEATURES),
            "coef": [float(c) for c in self.coef],
            "intercept": float(self.intercept),
            "threshold": float(self.threshold),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any] | None) -> HeldObjectModel | None:
        """Read the ``"held_object"`` entry (None when absent); ValueError when malformed."""
        if doc is None:
            return None
        if list(doc.get("features", [])) != list(FEATURES):
            raise ValueError(f"held_object.features must be {list(FEATURES)}")
        coef = tuple(float(c) for c in doc["coef"])
        if len(coef) != len(FEATURES) or not np.isfinite(coef).all():
            raise ValueError("held_object.coef must be 3 finite numbers")
        return cls(coef, float(doc["intercept"]), float(doc.get("threshold", 0.5)))


def apply_held(
    hand: np.ndarray,
    obj: np.ndarray,
    scores: np.ndarray,
    object_sim: np.ndarray,
    model: HeldObjectModel | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Held-object probability and decision per hand; drop the object mask of a hand that holds nothing.

    Args:
        hand: ``(K, H, W)`` hand masks.
        obj: ``(K, H, W)`` object masks.
        scores: ``(K, H, W)`` S_k.
        object_sim: ``(H, W)``.
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
    p = model.probability(held_features(hand, obj, scores, object_sim)).astype(np.float32)
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
