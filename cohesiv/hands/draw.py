"""Draw hand tracks on a frame (for ``cohesiv hands --viz``)."""

from __future__ import annotations

import cv2
import numpy as np

from cohesiv.io.hands import Hand

#: RGB colour per side: left blue, right red, unknown green.
SIDE_COLOURS = {"left": (40, 120, 255), "right": (255, 60, 40), None: (40, 200, 40)}
#: MediaPipe's 21-landmark skeleton (wrist 0; thumb 1-4, index 5-8, middle 9-12, ring 13-16, pinky 17-20).
SKELETON = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11)]
SKELETON += [(11, 12), (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19), (19, 20)]


def draw_hands(image: np.ndarray, hands: list[Hand]) -> np.ndarray:
    """Return a copy of ``image`` with each hand's points, box, query and ``"id (side)"`` label.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        hands: hands of this frame (points in pixels, origin at the centre of the top-left pixel).

    Returns:
        ``(H, W, 3)`` uint8 RGB. The skeleton is drawn when a hand has all 21 landmarks.
    """
    out = np.ascontiguousarray(image, dtype=np.uint8).copy()
    scale = max(1, round(max(out.shape[:2]) / 400))
    for h in hands:
        colour = SIDE_COLOURS.get(h.side, SIDE_COLOURS[None])
        pts = np.round(np.asarray(h.points)).astype(np.int32)
        if len(pts) == 21:
            for a, b in SKELETON:
                cv2.line(out, tuple(map(int, pts[a])), tuple(map(int, pts[b])), colour, scale, cv2.LINE_AA)
        for p in pts:
            cv2.circle(out, tuple(map(int, p)), 2 * scale, (255, 255, 255), -1, cv2.LINE_AA)
            cv2.circle(out, tuple(map(int, p)), 2 * scale, colour, 1, cv2.LINE_AA)
        if h.box is not None:
            x1, y1, x2, y2 = (round(v) for v in h.box)
            cv2.rectangle(out, (x1, y1), (x2, y2), colour, 1, cv2.LINE_AA)
            label = h.id if h.side in (None, h.id) else f"{h.id} ({h.side})"
            y = y1 - 4 if y1 > 14 * scale else y2 + 12 * scale
            cv2.putText(
                out, label, (x1, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * scale, colour, scale, cv2.LINE_AA
            )
        if h.query is not None:
            q = (round(h.query[0]), round(h.query[1]))
            cv2.drawMarker(out, q, colour, cv2.MARKER_CROSS, 8 * scale, scale)
    return out
