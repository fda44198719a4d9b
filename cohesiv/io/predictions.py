"""The masks a predictor gives for the hands of one image: the contract between prediction and scoring.

:class:`HOSPrediction` is what :func:`cohesiv.model.windows.predict_in_hand_windows`, the baselines and
the hull floor return, and what :mod:`cohesiv.eval.driver` scores (it also accepts the model's own
:class:`cohesiv.model.Prediction`: anything with these fields, :class:`PredictionLike`). It lives
here, below ``model/`` and ``eval/``, so that neither has to import the other for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass
class HOSPrediction:
    """Predicted masks for the K queried hands of one image.

    Attributes:
        hand_masks: ``(K, H, W)`` uint8 {0, 1}, the mask of each hand.
        object_masks: ``(K, H, W)`` uint8 {0, 1}, the mask of the object each hand holds.
        all_mask: ``(H, W)`` uint8 {0, 1} prediction for the All task, or None for the union
            of every hand and object mask.
    """

    hand_masks: np.ndarray
    object_masks: np.ndarray
    all_mask: np.ndarray | None = None


class PredictionLike(Protocol):
    """Anything with per-hand ``hand_masks`` / ``object_masks`` ``(K, H, W)`` {0, 1}."""

    hand_masks: np.ndarray
    object_masks: np.ndarray
