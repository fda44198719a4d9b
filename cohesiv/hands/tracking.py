"""Stable hand ids across frames: link per-frame detections into tracks, then name the tracks.

Pure functions (no I/O). Linking: frame by frame, detections are matched to the tracks seen in
the last ``max_gap`` processed frames by an optimal assignment (Hungarian) on a cost made of
the box-centre distance (in units of the box size) plus a penalty when the sides differ;
pairs farther apart than ``max_jump`` are never matched. Naming: each track gets the side
most of its detections report (weighted by their confidence); then, longest track first, a
track is called ``"left"`` / ``"right"`` unless a track already called so overlaps it in time
(tracks of one side that follow each other share the name); the others are ``"hand0"``,
``"hand1"``, ... in order of first appearance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from cohesiv.io.hands import Hand


@dataclass
class Detection:
    """One hand found in one frame, before tracking.

    Attributes:
        points: ``(N, 2)`` float32 ``(x, y)`` pixels (origin at the centre of the top-left pixel).
        box: ``(x1, y1, x2, y2)`` pixels, x2 > x1 and y2 > y1.
        side: ``"left"``, ``"right"`` (as seen in a non-mirrored image) or None.
        score: confidence of ``side`` in [0, 1].
    """

    points: np.ndarray
    box: tuple[float, float, float, float]
    side: str | None = None
    score: float = 1.0


def _centre_size(box) -> tuple[np.ndarray, float]:
    x1, y1, x2, y2 = box
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2]), max(float(np.sqrt((x2 - x1) * (y2 - y1))), 1.0)


def link_detections(
    frames: dict[int, list[Detection]],
    *,
    max_jump: float = 1.5,
    max_gap: int = 5,
    side_penalty: float = 0.5,
) -> dict[int, list[int]]:
    """Link detections into tracks.

    Args:
        frames: frame index -> detections (processed in increasing frame order).
        max_jump: largest centre displacement, in units of the larger box size
            (``sqrt(w*h)``), for a detection to continue a track.
        max_gap: a track not seen for more than this many processed frames is closed.
        side_penalty: cost added when a detection's side differs from the track's last side.

    Returns:
        frame index -> track number of each detection (same order as ``frames[t]``);
        tracks are numbered 0, 1, ... in order of first appearance.
    """
    active: dict[int, tuple[Detection, int]] = {}  # track -> (last detection, processed-frame count)
    out: dict[int, list[int]] = {}
    n_tracks = 0
    for step, t in enumerate(sorted(frames)):
        dets = frames[t]
        active = {k: v for k, v in active.items() if step - v[1] <= max_gap}
        keys = list(active)
        ids = [-1] * len(dets)
        if keys and dets:
            cost = np.full((len(keys), len(dets)), np.inf)
            for i, k in enumerate(keys):
                prev = active[k][0]
                pc, ps = _centre_size(prev.box)
                for j, d in enumerate(dets):
                    dc, ds = _centre_size(d.box)
                    jump = float(np.linalg.norm(dc - pc)) / max(ps, ds)
                    if jump <= max_jump:
                        differ = prev.side is not None and d.side is not None and prev.side != d.side
                        cost[i, j] = jump + (side_penalty if differ else 0.0)
            big = 1e6
            rows, cols = linear_sum_assignment(np.where(np.isfinite(cost), cost, big))
            for i, j in zip(rows, cols):
                if np.isfinite(cost[i, j]):
                    ids[j] = keys[i]
        for j, d in enumerate(dets):
            if ids[j] < 0:
                ids[j] = n_tracks
                n_tracks += 1
            active[ids[j]] = (d, step)
        out[t] = ids
    return out


def track_hands(
    frames: dict[int, list[Detection]],
    *,
    max_jump: float = 1.5,
    max_gap: int = 5,
    side_penalty: float = 0.5,
) -> dict[int, list[Hand]]:
    """Give every detection an id that is stable across frames, and a smoothed side.

    Args:
        frames: frame index -> detections; frames without hands may be absent or empty
            (an empty frame stays in the output as an empty list).
        max_jump: see :func:`link_detections`.
        max_gap: see :func:`link_detections`.
        side_penalty: see :func:`link_detections`.

    Returns:
        frame index -> :class:`cohesiv.io.Hand` list, sorted by id. ``side`` is the track's
        majority side (confidence-weighted), so a one-frame handedness flicker does not flip
        it; ``id`` is that side when unambiguous, else ``"hand<k>"``.
    """
    links = link_detections(frames, max_jump=max_jump, max_gap=max_gap, side_penalty=side_penalty)
    votes: dict[int, dict[str, float]] = {}
    span: dict[int, set[int]] = {}
    for t, ids in links.items():
        for k, d in zip(ids, frames[t]):
            v = votes.setdefault(k, {"left": 0.0, "right": 0.0})
            if d.side in v:
                v[d.side] += float(d.score)
            span.setdefault(k, set()).add(t)
    side = {}
    for k, v in votes.items():
        side[k] = None if v["left"] == v["right"] else max(v, key=v.get)
    names: dict[int, str] = {}
    unnamed = []
    # longest tracks first: a track takes its side as id unless a track already named so
    # overlaps it in time (e.g. a one-frame duplicate must not rename a whole clip's hand)
    for k in sorted(votes, key=lambda k: (-len(span[k]), k)):
        s = side[k]
        if s is None or any(names.get(o) == s and span[o] & span[k] for o in names):
            unnamed.append(k)
        else:
            names[k] = s
    for n, k in enumerate(sorted(unnamed)):
        names[k] = f"hand{n}"
    result: dict[int, list[Hand]] = {}
    for t in sorted(frames):
        hands = [
            Hand(id=names[k], side=side[k], points=d.points, box=tuple(float(v) for v in d.box))
            for k, d in zip(links[t], frames[t])
        ]
        result[t] = sorted(hands, key=lambda h: h.id)
    return result
