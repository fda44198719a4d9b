"""Stable hand ids across frames: link per-frame detections into tracks, then name the tracks.

Pure functions (no I/O). Linking: frame by frame, detections are matched to the tracks seen in
the last ``max_gap`` processed frames by an optimal assignment (Hungarian) on a cost made of
the box-centre distance (in units of the box size) plus a penalty when the sides differ;
pairs farther apart than ``max_jump`` are never matched. Naming: each track gets the side
most of its detections report (weighted by their confidence); then, confident tracks first and
longest first among them, a
track is called ``"left"`` / ``"right"`` unless a track already called so overlaps it in time
(tracks of one side that follow each other share the name). A track in such a conflict whose side
MediaPipe was unsure of (mean confidence below ``unsure``, and below the named track's) takes the
other side when that one is free over its frames (seen on FPHA clips: the left hand holding a
carton reported as "right" at 0.5-0.6 beside the true right hand at 0.9+); the others are
``"hand0"``, ``"hand1"``, ... in order of first appearance.

Rejection (:func:`rejected_tracks`, optional): a "hand" seen in fewer than ``min_frames`` processed
frames, or one that never moves like a hand over at least ``still_frames`` frames (its box centre
stays within ``still_motion`` of its size and its keypoints never change shape beyond
``still_shape`` of its size after a similarity fit: a rigid, motionless thing), is dropped.
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


def _shape_change(a: np.ndarray, b: np.ndarray) -> float:
    """RMS keypoint distance after the best similarity from ``a`` to ``b`` (same points), pixels."""
    pa, pb = a - a.mean(0), b - b.mean(0)
    u, sv, vt = np.linalg.svd(pa.T @ pb)
    d = np.sign(np.linalg.det(u @ vt))  # a rotation, not a reflection
    sv[-1] *= d
    u[:, -1] *= d
    scale = sv.sum() / max(float((pa**2).sum()), 1e-9)
    return float(np.sqrt((((pa @ (u @ vt)) * scale - pb) ** 2).sum(1).mean()))


def rejected_tracks(
    frames: dict[int, list[Detection]],
    links: dict[int, list[int]],
    *,
    min_frames: int = 2,
    still_frames: int = 5,
    still_motion: float = 0.1,
    still_shape: float = 0.02,
) -> set[int]:
    """Tracks that are not hands: too short, or never moving like a hand.

    Args:
        frames: frame index -> detections.
        links: :func:`link_detections` of ``frames``.
        min_frames: tracks seen in fewer processed frames are rejected (1: keep all).
        still_frames: the stillness test needs a track of at least this many frames.
        still_motion: largest box-centre displacement from the track's first box, in units of
            the box size, below which the track never moved.
        still_shape: largest change of the keypoints' shape between consecutive frames (RMS
            after a similarity fit, in units of the box size) below which it never articulated.

    Returns:
        Track numbers to drop.
    """
    dets: dict[int, list[Detection]] = {}
    for t in sorted(links):
        for k, d in zip(links[t], frames[t]):
            dets.setdefault(k, []).append(d)
    out = set()
    for k, ds in dets.items():
        if len(ds) < min_frames:
            out.add(k)
            continue
        if len(ds) < still_frames:
            continue
        c0, _ = _centre_size(ds[0].box)
        size = float(np.median([_centre_size(d.box)[1] for d in ds]))
        moved = max(float(np.linalg.norm(_centre_size(d.box)[0] - c0)) for d in ds) / size
        shapes = [
            _shape_change(a.points, b.points) / size
            for a, b in zip(ds, ds[1:])
            if len(a.points) == len(b.points) and len(a.points) >= 3
        ]
        if moved < still_motion and shapes and max(shapes) < still_shape:
            out.add(k)
    return out


def track_hands(
    frames: dict[int, list[Detection]],
    *,
    max_jump: float = 1.5,
    max_gap: int = 5,
    side_penalty: float = 0.5,
    min_frames: int = 1,
    reject_still: bool = False,
    unsure: float = 0.75,
) -> dict[int, list[Hand]]:
    """Give every detection an id that is stable across frames, and a smoothed side.

    Args:
        frames: frame index -> detections; frames without hands may be absent or empty
            (an empty frame stays in the output as an empty list).
        max_jump: see :func:`link_detections`.
        max_gap: see :func:`link_detections`.
        side_penalty: see :func:`link_detections`.
        min_frames: drop tracks seen in fewer processed frames (1: keep all; see :func:`rejected_tracks`).
        reject_still: drop tracks that never move like a hand (see :func:`rejected_tracks`).
        unsure: mean side confidence below which a track that conflicts with a named track of
            the same side takes the other side (when free).

    Returns:
        frame index -> :class:`cohesiv.io.Hand` list, sorted by id. ``side`` is the track's
        majority side (confidence-weighted), so a one-frame handedness flicker does not flip
        it; ``id`` is that side when unambiguous, else ``"hand<k>"``.
    """
    links = link_detections(frames, max_jump=max_jump, max_gap=max_gap, side_penalty=side_penalty)
    if min_frames > 1 or reject_still:
        drop = rejected_tracks(
            frames, links, min_frames=min_frames, still_frames=5 if reject_still else 10**9
        )
        frames = {t: [d for k, d in zip(links[t], frames[t]) if k not in drop] for t in frames}
        links = {t: [k for k in links[t] if k not in drop] for t in links}
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
    confidence = {k: max(v.values()) / len(span[k]) for k, v in votes.items()}  # mean score of its side
    names: dict[int, str] = {}
    unnamed = []
    _other = {"left": "right", "right": "left"}

    def taken(name: str, k: int) -> list[int]:
        return [o for o in names if names[o] == name and span[o] & span[k]]

    # confident tracks first, then the longest: a track takes its side as id unless a track already
    # named so overlaps it in time (e.g. a one-frame duplicate must not rename a whole clip's hand)
    for k in sorted(votes, key=lambda k: (confidence[k] < unsure, -len(span[k]), k)):
        s = side[k]
        if s is not None and taken(s, k):
            rivals = taken(s, k)
            if all(confidence[k] < min(unsure, confidence[o]) for o in rivals) and not taken(_other[s], k):
                side[k] = s = _other[s]  # MediaPipe was unsure; the other hand is free
        if s is None or taken(s, k):
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
