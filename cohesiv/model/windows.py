"""Prediction in a window around each hand: the hand at the scale the network was trained at.

The network sees a whole image resized so that its longer side is the calibrated size (e.g. 256).
A hand that fills a quarter of a 320x240 training frame then spans ~60 pixels; the same hand in a
1920x1080 photo, resized the same way, spans ~15 and the network finds almost nothing. Given the
hand's points, :func:`predict_in_hand_windows` predicts each hand in a square window of ``factor``
times the hand's size (the larger side of its points' bounding box) centred on them, clipped to the
image, and pastes the masks back: the hand is then about ``1 / factor`` of the network's input, as
in training, whatever the photo's resolution. A held object larger than the window is cut at its
edge. Hands without points are predicted on the whole image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cohesiv.config import DEFAULT_WINDOW_FACTOR  # window side / the hand's size
from cohesiv.io import Hand
from cohesiv.io.predictions import HOSPrediction

#: Smallest window side, pixels.
MIN_WINDOW = 64


def hand_window(
    points: np.ndarray, size: tuple[int, int], factor: float = DEFAULT_WINDOW_FACTOR
) -> tuple[int, int, int, int]:
    """The window ``(x0, y0, x1, y1)`` (end exclusive) of a hand, clipped to a ``(W, H)`` image.

    Args:
        points: ``(N, 2)`` ``(x, y)`` pixels of the hand (finite, N >= 1).
        size: ``(W, H)`` of the image.
        factor: window side over the hand's size.
    """
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    w, h = size
    lo, hi = pts.min(0), pts.max(0)
    c = (lo + hi) / 2
    side = max(float((hi - lo).max()) * factor, MIN_WINDOW)
    x0, y0 = int(max(0, np.floor(c[0] - side / 2))), int(max(0, np.floor(c[1] - side / 2)))
    x1, y1 = int(min(w, np.ceil(c[0] + side / 2))), int(min(h, np.ceil(c[1] + side / 2)))
    return x0, y0, x1, y1


def predict_in_hand_windows(
    predictor, image: np.ndarray, hands: Sequence[Hand], factor: float = DEFAULT_WINDOW_FACTOR
) -> HOSPrediction:
    """Predict each hand and its object in a window around its points (see the module docstring).

    Args:
        predictor: a :class:`cohesiv.model.Predictor` (anything with ``predict(image, queries, sides)``).
        image: ``(H, W, 3)`` uint8 RGB.
        hands: the hands, with points (a hand without points is predicted on the whole image).
        factor: window side over the hand's size.

    Returns:
        :class:`cohesiv.io.predictions.HOSPrediction` with ``(K, H, W)`` {0, 1} hand and object masks.
    """
    h, w = image.shape[:2]
    hm = np.zeros((len(hands), h, w), np.uint8)
    om = np.zeros_like(hm)
    whole = [k for k, hd in enumerate(hands) if len(np.asarray(hd.points).reshape(-1, 2)) == 0]
    if whole:
        p = predictor.predict(image, [hands[k].query for k in whole], [hands[k].side for k in whole])
        hm[whole], om[whole] = p.hand_masks, p.object_masks
    for k, hd in enumerate(hands):
        if k in whole:
            continue
        x0, y0, x1, y1 = hand_window(hd.points, (w, h), factor)
        crop = np.ascontiguousarray(image[y0:y1, x0:x1])
        q = np.asarray(hd.query, np.float64) - (x0, y0)
        p = predictor.predict(crop, [q], [hd.side])
        hm[k, y0:y1, x0:x1] = p.hand_masks[0]
        om[k, y0:y1, x0:x1] = p.object_masks[0]
    return HOSPrediction(hm, om)
