"""Evaluation driver: iterate labeled clips, call a predict function per scored frame, accumulate.

A **labeled clip** is a folder with ``frames/`` (the clip), ``labels/`` (EgoHOS label PNGs) and
``hands.json`` (as ``cohesiv synth`` writes it). A clip may carry labels for only some of its
frames: exactly the frames that have a label file are scored; the other frames are only motion
context (a baseline may read them through :class:`FrameContext`).

A label file is matched to its frame by file stem (``labels/000012.png`` scores
``frames/000012.png``); when no frame has that stem, an integer stem is taken as the frame index.
The hands of a scored frame are those of ``hands.json`` for that frame; when ``hands.json`` is
absent or lists no hand there, each hand label present in the image (1 left, 2 right) becomes a
query at the centroid of its mask (DESIGN.md section 3), with no hand points.

The predict function has the signature ``predict(image, hands, context) -> prediction`` with
``image`` ``(H, W, 3)`` uint8 RGB, ``hands`` a list of :class:`cohesiv.io.Hand` and ``context`` a
:class:`FrameContext`; the prediction is anything with ``hand_masks`` and ``object_masks``
``(K, H, W)`` {0, 1} (one per hand, in order) and, optionally, ``all_mask`` ``(H, W)``
(:class:`HOSPrediction`, or the model's ``Prediction``).
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from cohesiv.errors import InputError
from cohesiv.eval.metrics import TASKS, HOSMeter, ImageStats
from cohesiv.io import FrameReader, Hand, HandTracks, atomic_write_text, read_hands, read_label, task_labels
from cohesiv.io.images import IMAGE_SUFFIXES
from cohesiv.io.labels import HAND_LABEL
from cohesiv.io.predictions import HOSPrediction, PredictionLike  # noqa: F401  (re-exported: the old path)


@dataclass
class LabeledClip:
    """A clip folder with labels for some of its frames.

    Attributes:
        path: the clip folder.
        reader: its frames.
        labels: frame index -> label PNG path, sorted by frame index.
        tracks: the contents of ``hands.json``, or None when the folder has none.
    """

    path: Path
    reader: FrameReader
    labels: dict[int, Path]
    tracks: HandTracks | None

    def hands_at(self, t: int, label: np.ndarray) -> list[Hand]:
        """The hands queried in frame ``t``: from ``hands.json``, else from the hand labels (centroids)."""
        hands = self.tracks.hands_at(t) if self.tracks is not None else []
        return list(hands) if hands else hands_from_label(label)

    def __len__(self) -> int:
        """Number of frames of the clip."""
        return len(self.reader)


def hands_from_label(label: np.ndarray) -> list[Hand]:
    """One query per hand label present in ``label``: side from the label, query = mask centroid.

    Args:
        label: ``(H, W)`` EgoHOS labels.

    Returns:
        Hands with ``id`` = ``side``, no points (``(0, 2)``) and ``query`` = ``(x, y)`` centroid.
    """
    out = []
    for side, value in HAND_LABEL.items():
        ys, xs = np.nonzero(label == value)
        if len(xs):
            out.append(
                Hand(id=side, side=side, points=np.zeros((0, 2)), query=(float(xs.mean()), float(ys.mean())))
            )
    return out


def open_labeled_clip(path: str | Path) -> LabeledClip:
    """Open a labeled clip folder (``frames/``, ``labels/``, ``hands.json``).

    Raises:
        InputError: the folder, its ``labels/`` or a label file is missing or does not fit the clip.
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(path, "not a labeled clip folder (expected frames/, labels/ and hands.json)")
    label_dir = path / "labels"
    if not label_dir.is_dir():
        raise InputError(path, "labeled clip has no labels/ folder")
    reader = FrameReader(path)
    stems = {p.stem: i for i, p in enumerate(reader.files)}
    labels: dict[int, Path] = {}
    for p in sorted(label_dir.iterdir()):
        if p.name.startswith(".") or p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if p.stem in stems:
            t = stems[p.stem]
        else:
            try:
                t = int(p.stem)
            except ValueError:
                raise InputError(p, "label file matches no frame (by name or frame index)") from None
        if not 0 <= t < len(reader):
            raise InputError(p, f"label for frame {t} but the clip has {len(reader)} frames")
        labels[t] = p
    if not labels:
        raise InputError(label_dir, "no label files (.png)")
    hands_path = path / "hands.json"
    tracks = read_hands(hands_path) if hands_path.exists() else None
    if tracks is not None and tuple(tracks.image_size) != tuple(reader.size):
        raise InputError(
            hands_path,
            f"hands file is for {tracks.image_size[0]}x{tracks.image_size[1]} images "
            f"but the clip's frames are {reader.size[0]}x{reader.size[1]}",
        )
    return LabeledClip(path=path, reader=reader, labels=dict(sorted(labels.items())), tracks=tracks)


@dataclass
class FrameContext:
    """Where the scored frame lies in its clip, with access to the other frames (motion context).

    Attributes:
        clip: the labeled clip.
        t: index of the scored frame.
    """

    clip: LabeledClip
    t: int
    _cache: OrderedDict = field(default_factory=OrderedDict, repr=False)

    @property
    def n_frames(self) -> int:
        """Number of frames of the clip."""
        return len(self.clip)

    def frame(self, s: int) -> np.ndarray:
        """Frame ``s`` of the clip, ``(H, W, 3)`` uint8 RGB (a few recent frames are cached)."""
        if s not in self._cache:
            self._cache[s] = self.clip.reader.frame(s)
            while len(self._cache) > 16:
                self._cache.popitem(last=False)
        self._cache.move_to_end(s)
        return self._cache[s]


@dataclass
class ScoredFrame:
    """One scored frame: its label, hands and context, for functions that need more than masks."""

    label: np.ndarray
    hands: list[Hand]
    context: FrameContext

    @property
    def image(self) -> np.ndarray:
        """The frame, ``(H, W, 3)`` uint8 RGB."""
        return self.context.frame(self.context.t)


def expand_clips(paths: Sequence[str | Path]) -> list[Path]:
    """Expand folders of labeled clips into clip folders.

    A path with ``labels/`` is a clip; otherwise its sorted subfolders that have ``labels/``
    are (e.g. the output folder of ``cohesiv synth``).

    Raises:
        InputError: a path is neither a labeled clip nor a folder holding some.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir() and not (p / "labels").is_dir():
            subs = sorted(c for c in p.iterdir() if c.is_dir() and (c / "labels").is_dir())
            if subs:
                out.extend(subs)
                continue
        out.append(p)  # checked by open_labeled_clip
    return out


def iter_scored_frames(
    clips: Sequence[str | Path], *, progress: bool = True, desc: str = "eval"
) -> Iterator[ScoredFrame]:
    """Yield every labeled frame of every clip, in order.

    Args:
        clips: labeled clip folders, or folders of them (see :func:`expand_clips`).
        progress: show a tqdm bar (stderr) over the labeled frames.
        desc: label of the progress bar.

    Raises:
        InputError: a clip folder is malformed, or a label does not fit its frame.
    """
    opened = [open_labeled_clip(c) for c in expand_clips(clips)]
    total = sum(len(c.labels) for c in opened)
    with tqdm(total=total, desc=desc, disable=None if progress else True, leave=False) as bar:
        for clip in opened:
            cache: OrderedDict = OrderedDict()  # frames shared by the contexts of one clip
            w, h = clip.reader.size
            for t, label_path in clip.labels.items():
                label = task_labels(read_label(label_path))
                if label.shape != (h, w):
                    raise InputError(
                        label_path, f"label is {label.shape[1]}x{label.shape[0]} but frames are {w}x{h}"
                    )
                yield ScoredFrame(
                    label=label, hands=clip.hands_at(t, label), context=FrameContext(clip, t, cache)
                )
                bar.update(1)


def score_frame(meter: HOSMeter, frame: ScoredFrame, prediction: PredictionLike) -> ImageStats:
    """Add one prediction to ``meter`` (checks the number of masks against the hands)."""
    k = len(frame.hands)
    hm = np.asarray(prediction.hand_masks)
    om = np.asarray(prediction.object_masks)
    if len(hm) != k or len(om) != k:
        raise ValueError(
            f"{frame.context.clip.path} frame {frame.context.t}: prediction has {len(hm)} hand / "
            f"{len(om)} object masks for {k} hands"
        )
    return meter.add(
        frame.label,
        [hd.side for hd in frame.hands],
        [hd.query for hd in frame.hands],
        hm,
        om,
        getattr(prediction, "all_mask", None),
    )


def evaluate_clips(
    clips: Sequence[str | Path],
    predict: Callable[[np.ndarray, list[Hand], FrameContext], PredictionLike],
    *,
    progress: bool = True,
) -> dict:
    """Score ``predict`` on every labeled frame of ``clips``.

    Args:
        clips: labeled clip folders (``frames/``, ``labels/``, ``hands.json``).
        predict: ``(image (H, W, 3) uint8, hands, context) -> prediction`` (see the module docstring).
        progress: show a progress bar on stderr.

    Returns:
        The ``metrics.json`` dictionary (:func:`cohesiv.eval.metrics.summarize`).
    """
    meter = HOSMeter()
    for fr in iter_scored_frames(clips, progress=progress):
        score_frame(meter, fr, predict(fr.image, fr.hands, fr.context))
    return meter.result()


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.floating, float)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, Path):
        return str(v)
    return v


def write_metrics(path: str | Path, metrics: dict) -> None:
    """Write ``metrics`` as JSON (indent 2) atomically; NaN (no instance) is written as null."""
    atomic_write_text(path, json.dumps(_jsonable(metrics), indent=2) + "\n")


def format_table(metrics: dict, title: str | None = None) -> str:
    """Format the metrics as a plain-text table: one row per task, values in percent."""
    cols = ("mIoU", "IoU", "precision", "recall", "F1", "n")
    lines = [] if title is None else [title]
    lines.append(f"{'task':<6}" + "".join(f"{c:>11}" for c in cols))
    for task in TASKS:
        row = metrics.get(task, {})
        cells = []
        for c in cols:
            v = row.get(c)
            if c == "n":
                cells.append(f"{v if v is not None else '-':>11}")
            else:
                cells.append(f"{'-':>11}" if v is None or not math.isfinite(v) else f"{v:>11.1f}")
        lines.append(f"{task:<6}" + "".join(cells))
    fo = metrics.get("Obj", {}).get("false_object_rate")
    extra = f"images {metrics.get('n_images', 0)}, hands {metrics.get('n_hands', 0)}"
    if fo is not None and math.isfinite(fo):
        extra += f", false-object rate {fo:.1f}% of {metrics['Obj'].get('n_without_object', 0)} hands without object"
    found = metrics.get("Obj", {}).get("object_found_rate")
    if found is not None and math.isfinite(found):
        extra += f", object found for {found:.1f}% of {metrics['Obj'].get('n', 0)} hands holding one"
    lines.append(extra)
    return "\n".join(lines)
