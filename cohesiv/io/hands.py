"""Hand tracks files (``hands.json``): read, validate, write.

Schema (version 1)::

    {"version": 1, "image_size": [W, H],
     "frames": {"<frame index>": [{"id": "right", "side": "right" | "left" | null,
                                   "points": [[x, y], ...], "box": [x1, y1, x2, y2] | null,
                                   "query": [x, y] | null}, ...]}}

``points`` are hand keypoints or mesh vertices in frame t (at least 4), in pixels with the
origin at the centre of the top-left pixel. Degenerate (collinear) points are read as they are:
the responsibility stage drops such a hand for that frame and counts it, so one bad detection
in hours of video does not reject the whole file. If only ``box`` is given, points are a grid inside
it (:func:`box_grid_points`). ``query`` defaults to the mean of ``points``. ``id`` is stable across frames. ``side`` is as
seen in the (non-mirrored) image.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cohesiv.errors import InputError
from cohesiv.io.atomic import atomic_write_text

HANDS_VERSION = 1
SIDES = ("left", "right")
#: Points may lie this many pixels outside the image (keypoint detectors overshoot a little).
POINT_TOLERANCE = 2.0


@dataclass
class Hand:
    """One hand in one frame.

    Attributes:
        id: identifier, stable across frames (e.g. "left", "right", "hand0").
        side: "left", "right" or None (unknown), as seen in the image.
        points: ``(N, 2)`` float32 ``(x, y)`` pixels, N >= 4.
        box: ``(x1, y1, x2, y2)`` or None.
        query: ``(x, y)`` query point; the mean of ``points`` by default.
    """

    id: str
    side: str | None
    points: np.ndarray
    box: tuple[float, float, float, float] | None = None
    query: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        """Normalise types and default the query to the mean of the points."""
        self.points = np.asarray(self.points, dtype=np.float32).reshape(-1, 2)
        if self.query is None and len(self.points):
            m = self.points.mean(0)
            self.query = (float(m[0]), float(m[1]))

    def to_json(self) -> dict:
        """Return the JSON form of the schema."""
        return {
            "id": self.id,
            "side": self.side,
            "points": [[round(float(x), 3), round(float(y), 3)] for x, y in self.points],
            "box": None if self.box is None else [float(v) for v in self.box],
            "query": None if self.query is None else [float(v) for v in self.query],
        }


@dataclass
class HandTracks:
    """The contents of a ``hands.json`` file.

    Attributes:
        image_size: ``(W, H)`` of the clip's frames.
        frames: frame index -> hands in that frame (frames without hands may be absent).
    """

    image_size: tuple[int, int]
    frames: dict[int, list[Hand]] = field(default_factory=dict)

    def hands_at(self, t: int) -> list[Hand]:
        """Return the hands of frame ``t`` (an empty list when there are none)."""
        return self.frames.get(t, [])

    def to_json(self) -> dict:
        """Return the JSON form of the schema."""
        return {
            "version": HANDS_VERSION,
            "image_size": [int(v) for v in self.image_size],
            "frames": {str(t): [h.to_json() for h in hs] for t, hs in sorted(self.frames.items())},
        }


def box_grid_points(box, n: int = 5, margin: float = 0.15) -> np.ndarray:
    """Return an ``n*n`` grid of points inside ``box`` (the format's box-to-points rule).

    Args:
        box: ``(x1, y1, x2, y2)`` pixels (origin at the centre of the top-left pixel).
        n: points per side.
        margin: fraction of the box width/height left free at each border, so that points
            fall on the hand rather than on the box's corners.

    Returns:
        ``(n*n, 2)`` float32 ``(x, y)`` points.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    xs = np.linspace(x1 + margin * (x2 - x1), x2 - margin * (x2 - x1), n)
    ys = np.linspace(y1 + margin * (y2 - y1), y2 - margin * (y2 - y1), n)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32)


def _num(v, where: str, path) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise InputError(path, f"{where}: expected a finite number, got {v!r}")
    return float(v)


def _pair(v, where: str, path) -> tuple[float, float]:
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise InputError(path, f"{where}: expected [x, y], got {v!r}"[:300])
    return _num(v[0], where, path), _num(v[1], where, path)


def parse_hands(data, path: str | Path | None = None) -> HandTracks:
    """Validate parsed JSON against the schema and return :class:`HandTracks`.

    Raises:
        InputError: naming ``path`` and the first violation found.
    """
    if not isinstance(data, dict):
        raise InputError(path, "hands file must hold a JSON object")
    if data.get("version", HANDS_VERSION) != HANDS_VERSION:
        raise InputError(path, f"unsupported hands file version {data.get('version')!r} (expected 1)")
    size = data.get("image_size")
    if (
        not isinstance(size, (list, tuple))
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise InputError(path, f"image_size must be [W, H] with positive integers, got {size!r}")
    w, h = int(size[0]), int(size[1])
    frames_in = data.get("frames")
    if not isinstance(frames_in, dict):
        raise InputError(path, "'frames' must be an object mapping frame index to a list of hands")
    frames: dict[int, list[Hand]] = {}
    for key, hands in frames_in.items():
        try:
            t = int(key)
        except (TypeError, ValueError):
            raise InputError(path, f"frame key {key!r} is not an integer frame index") from None
        if t < 0:
            raise InputError(path, f"frame index {t} is negative")
        if not isinstance(hands, list):
            raise InputError(path, f"frame {t}: expected a list of hands")
        out: list[Hand] = []
        ids: set[str] = set()
        for j, hd in enumerate(hands):
            where = f"frame {t}, hand {j}"
            if not isinstance(hd, dict):
                raise InputError(path, f"{where}: expected an object")
            hid = hd.get("id", str(j))
            if not isinstance(hid, (str, int)) or isinstance(hid, bool):
                raise InputError(path, f"{where}: id must be a string")
            hid = str(hid)
            if hid in ids:
                raise InputError(path, f"{where}: duplicate id {hid!r} in one frame")
            ids.add(hid)
            side = hd.get("side")
            if side not in (None, *SIDES):
                raise InputError(path, f"{where}: side must be 'left', 'right' or null, got {side!r}")
            box = hd.get("box")
            if box is not None:
                if not isinstance(box, (list, tuple)) or len(box) != 4:
                    raise InputError(path, f"{where}: box must be [x1, y1, x2, y2], got {box!r}")
                box = tuple(_num(v, f"{where} box", path) for v in box)
                if box[2] <= box[0] or box[3] <= box[1]:
                    raise InputError(path, f"{where}: box {list(box)} has x2 <= x1 or y2 <= y1")
            pts = hd.get("points")
            if pts is None or (isinstance(pts, list) and not pts and box is not None):
                if box is None:
                    raise InputError(path, f"{where}: needs 'points' (>= 4) or a 'box'")
                points = box_grid_points(box)
            else:
                if not isinstance(pts, list):
                    raise InputError(path, f"{where}: points must be a list of [x, y]")
                points = np.array(
                    [_pair(p, f"{where} point {k}", path) for k, p in enumerate(pts)], np.float32
                )
                if len(points) < 4:
                    raise InputError(path, f"{where}: {len(points)} points; a homography needs at least 4")
            tol = POINT_TOLERANCE
            outside = (
                (points[:, 0] < -0.5 - tol)
                | (points[:, 0] > w - 0.5 + tol)
                | (points[:, 1] < -0.5 - tol)
                | (points[:, 1] > h - 0.5 + tol)
            )
            if outside.any():
                k = int(np.argmax(outside))
                raise InputError(
                    path,
                    f"{where}: point {k} {points[k].tolist()} lies outside the {w}x{h} image",
                )
            q = hd.get("query")
            query = None if q is None else _pair(q, f"{where} query", path)
            out.append(Hand(id=hid, side=side, points=points, box=box, query=query))
        frames[t] = out
    return HandTracks(image_size=(w, h), frames=frames)


def read_hands(path: str | Path) -> HandTracks:
    """Read and validate a ``hands.json`` file.

    Raises:
        InputError: missing file, invalid JSON, or a schema violation (named in the message).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(path, "no such hands file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(path, f"cannot read hands file ({e})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(path, f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    return parse_hands(data, path)


def write_hands(path: str | Path, tracks: HandTracks) -> None:
    """Write ``tracks`` to ``path`` as JSON, atomically."""
    atomic_write_text(path, json.dumps(tracks.to_json(), separators=(",", ":")))


def check_tracks_match_clip(
    tracks: HandTracks, image_size: tuple[int, int], n_frames: int | None, path: str | Path
) -> None:
    """Raise InputError when a hands file does not fit its clip (image size, frame indices)."""
    if tuple(tracks.image_size) != tuple(image_size):
        raise InputError(
            path,
            f"hands file is for {tracks.image_size[0]}x{tracks.image_size[1]} images "
            f"but the clip's frames are {image_size[0]}x{image_size[1]}",
        )
    if n_frames is not None and tracks.frames:
        last = max(tracks.frames)
        if last >= n_frames:
            raise InputError(path, f"hands file has frame {last} but the clip has {n_frames} frames")
