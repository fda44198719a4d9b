"""Whole-clip prediction: stream a video or frame folder through the predictor, resumably.

Writes into ``OUT``:

* ``labels/<t>.png``: EgoHOS label PNG of frame t (palette, :func:`cohesiv.io.write_label`);
* ``predictions.json``: the clip's COCO-style file (:mod:`cohesiv.io.coco`): one image per
  predicted frame, one annotation per hand and per held object, with side, score and the held-object
  probability and decision; ``info`` gives the clip, the run, the read-out and the frame counts
  (expected, predicted, skipped with their reasons);
* ``overlay.mp4``: the labels in colour over the frames with each hand's id and held-object
  probability, H.264 (PyAV/libx264), one video frame per predicted frame, at the clip's frame rate.

Frames are decoded one at a time; the per-frame results are written in chunks of ``chunk`` frames
(``OUT/.parts/<first frame>.jsonl``, atomically) and the label PNGs one by one (atomically), so memory
stays flat in the clip's length and a run stopped at any point (even by ``kill -9``) resumes from
its last finished chunk. The overlay and ``predictions.json`` are then made from the parts in a
second streamed pass (the clip is decoded again), and the parts removed. A frame that fails to
decode, or whose size differs from the first frame's, is skipped and counted; a video with fewer
frames than its container lists is reported as ended early. A hands file that does not fit the clip
(size, frame indices) is refused before anything is written.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cohesiv.config import PREDICT_CHUNK
from cohesiv.errors import CohesivError, InputError
from cohesiv.io import FrameReader, HandTracks, atomic_write_text, write_label
from cohesiv.io.atomic import atomic_path
from cohesiv.io.coco import hand_annotations, write_coco
from cohesiv.io.images import read_image

PARTS = ".parts"
STATE = "state.json"
#: Annotation ids of frame t are ``t * ANN_STRIDE + 1, ...`` (unique across the clip, stable on resume).
ANN_STRIDE = 1000


@dataclass
class DecodedFrame:
    """One frame of a clip as the tolerant reader yields it.

    Attributes:
        t: frame index.
        image: ``(H, W, 3)`` uint8 RGB, or None when the frame could not be used.
        error: why it could not (None when ``image`` is given).
    """

    t: int
    image: np.ndarray | None
    error: str | None = None


def iter_frames_tolerant(reader: FrameReader) -> Iterator[DecodedFrame]:
    """Yield every frame of a clip, with a frame that fails to decode (or changes size) as an error.

    A video is decoded packet by packet so that one corrupt packet costs one frame, not the clip.

    Args:
        reader: the opened clip.
    """
    w, h = reader.size
    if reader.is_folder:
        for t, f in enumerate(reader.files):
            try:
                img = read_image(f)
            except InputError as e:
                yield DecodedFrame(t, None, str(e))
                continue
            yield _checked(t, img, w, h)
        return
    from cohesiv.io.frames import _av

    av = _av()
    container = reader._open_container()
    t = 0
    try:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError as e:
                if packet.size > 0:
                    yield DecodedFrame(t, None, f"frame {t} does not decode ({str(e).splitlines()[0][:120]})")
                    t += 1
                continue
            for fr in frames:
                yield _checked(t, fr.to_ndarray(format="rgb24"), w, h)
                t += 1
    except av.error.FFmpegError as e:
        raise InputError(reader.path, f"video stops being readable after frame {t} ({e})") from None
    finally:
        container.close()


def _checked(t: int, img: np.ndarray, w: int, h: int) -> DecodedFrame:
    if img.shape[:2] != (h, w):
        return DecodedFrame(t, None, f"frame {t} is {img.shape[1]}x{img.shape[0]}, the clip is {w}x{h}")
    return DecodedFrame(t, img)


def _frames_with_bar(reader: FrameReader, desc: str, progress: bool) -> Iterator[DecodedFrame]:
    from tqdm import tqdm

    bar = tqdm(
        total=len(reader), desc=desc, unit="frame", disable=None if progress else True, file=sys.stderr
    )
    with bar:
        for fr in iter_frames_tolerant(reader):
            bar.update(1)
            yield fr


def detect_and_track(reader: FrameReader, detector: Any, progress: bool = True) -> HandTracks:
    """MediaPipe over every decodable frame of a clip, then stable ids and sides (:func:`cohesiv.hands.track_hands`).

    Args:
        reader: the clip.
        detector: a video-mode :class:`cohesiv.hands.HandDetector` (not closed here).
        progress: progress bar on stderr.

    Returns:
        Hand tracks of the clip (frames that fail to decode have no entry).
    """
    from cohesiv.hands.detector import FRAME_STEP_MS
    from cohesiv.hands.tracking import track_hands

    found = {}
    for fr in _frames_with_bar(reader, "hands", progress):
        if fr.image is not None:
            found[fr.t] = detector.detect_raw(fr.image, timestamp_ms=fr.t * FRAME_STEP_MS)
    return HandTracks(image_size=reader.size, frames=track_hands(found))


def frame_record(t: int, pred: Any, hand_ids: list[str], file_name: str | None = None) -> dict:
    """The JSON record of one predicted frame: its COCO image and annotations.

    Args:
        t: frame index.
        pred: the :class:`cohesiv.model.Prediction` of the frame.
        hand_ids: one id per queried hand.
        file_name: the image's ``file_name`` (default ``labels/<t>.png``).

    Returns:
        ``{"t", "image": {...}, "annotations": [...]}``.
    """
    label = pred.label
    h, w = label.shape
    k = len(pred.sides)
    hands = np.stack([label == (1 if s == "left" else 2) for s in pred.sides]) if k else np.zeros((0, h, w))
    under = (label == 1) | (label == 2)
    objects = pred.object_masks.astype(bool) & ~under[None] if k else np.zeros((0, h, w), bool)
    # each hand's own pixels: its mask within its side's label (two hands of a side share the label)
    own = hands & pred.hand_masks.astype(bool) if k else hands
    scores = [float(pred.scores[i][own[i]].mean()) if own[i].any() else 0.0 for i in range(k)]
    held_p = pred.held_probability if pred.held_probability is not None else np.full(k, np.nan)
    drawn = objects.any((1, 2))  # an object left visible in the label
    holds = drawn if pred.holds is None else np.asarray(pred.holds, bool) & drawn
    anns = hand_annotations(
        t,
        t * ANN_STRIDE + 1,
        own.astype(np.uint8),
        objects.astype(np.uint8),
        hand_ids=hand_ids,
        sides=list(pred.sides),
        scores=scores,
        held_probability=[None if not np.isfinite(p) else float(p) for p in held_p],
        holds=[bool(v) for v in holds],
        queries=pred.queries,
    )
    image = {
        "id": t,
        "file_name": file_name or f"labels/{t:06d}.png",
        "frame_index": t,
        "width": w,
        "height": h,
    }
    return {"t": t, "image": image, "annotations": anns}


def _read_parts(parts: Path) -> Iterator[dict]:
    for p in sorted(parts.glob("[0-9]*.jsonl")):
        with open(p, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)


def predict_clip(
    predictor: Any,
    clip: str | Path,
    out: str | Path,
    hands_for: Callable[[int, np.ndarray], tuple[list[tuple[float, float]], list[str | None], list[str]]],
    *,
    state: dict[str, Any],
    chunk: int = PREDICT_CHUNK,
    overlay: bool = True,
    progress: bool = True,
    refine: Callable[[int, np.ndarray, Any], Any] | None = None,
) -> dict[str, Any]:
    """Predict every frame of a clip and write labels, ``predictions.json`` and ``overlay.mp4``.

    Args:
        predictor: a :class:`cohesiv.model.Predictor`.
        clip: a video file or a frame folder.
        out: the output folder.
        hands_for: ``(t, image) -> (queries, sides, hand ids)`` of frame t.
        state: what defines the job (run, hands source, size...): a resumed job must match it.
        chunk: frames per resumable part.
        overlay: write ``overlay.mp4``.
        progress: progress bars on stderr.
        refine: ``(t, image, prediction) -> prediction`` applied to each frame's prediction before it
            is written (a hand support, :mod:`cohesiv.model.support`), or None. Record it in ``state``.

    Returns:
        A summary: frame counts, skipped frames, timings.

    Raises:
        CohesivError: ``out`` holds a job with another state; an unreadable clip.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    reader = FrameReader(clip)
    n_expected = listed_frames(reader)
    out = Path(out)
    parts = out / PARTS
    state = dict(
        state, clip=str(Path(clip).resolve()), frames=n_expected, size=list(reader.size), chunk=chunk
    )
    if (parts / STATE).is_file():
        old = json.loads((parts / STATE).read_text(encoding="utf-8"))
        if old != json.loads(json.dumps(state)):
            diff = sorted(
                k for k in set(old) | set(state) if old.get(k) != json.loads(json.dumps(state)).get(k)
            )
            raise CohesivError(
                f"{out}: holds an unfinished prediction with other settings ({', '.join(diff)}); "
                "resume it with the same arguments, or use another --out"
            )
    (out / "labels").mkdir(parents=True, exist_ok=True)
    parts.mkdir(exist_ok=True)
    atomic_write_text(parts / STATE, json.dumps(state))
    done = {int(p.stem) for p in parts.glob("[0-9]*.jsonl")}
    start = time.perf_counter()
    n_pred = 0
    records: list[dict] = []
    n_read = 0
    for fr in _frames_with_bar(reader, "predict", progress):
        n_read = fr.t + 1
        first = fr.t - fr.t % chunk
        if first in done:
            continue
        if fr.image is None:
            records.append({"t": fr.t, "skipped": fr.error})
        else:
            queries, sides, ids = hands_for(fr.t, fr.image)
            pred = predictor.predict(fr.image, queries, sides)
            if refine is not None:
                pred = refine(fr.t, fr.image, pred)
            write_label(out / "labels" / f"{fr.t:06d}.png", pred.label, compress_level=1)
            records.append(frame_record(fr.t, pred, ids))
            n_pred += 1
        if fr.t % chunk == chunk - 1:
            _write_part(parts, first, records)
            records = []
    if records:
        _write_part(parts, records[0]["t"] - records[0]["t"] % chunk, records)
    predict_s = time.perf_counter() - start
    skipped = []
    n_done = 0
    for r in _read_parts(parts):
        if "skipped" in r:
            skipped.append({"frame": r["t"], "reason": r["skipped"]})
        else:
            n_done += 1
    info = {
        "description": "cohesiv predictions: hands and the objects they hold",
        **state,
        "frames_expected": n_expected,
        "frames_read": n_read,
        "frames_predicted": n_done,
        "frames_skipped": skipped,
        "ended_early": max(n_expected - n_read, 0),
    }
    t0 = time.perf_counter()
    n_overlay = _write_overlay(reader, out, parts, progress) if overlay else 0
    overlay_s = time.perf_counter() - t0
    write_coco(
        out / "predictions.json",
        info,
        (r["image"] for r in _read_parts(parts) if "image" in r),
        (a for r in _read_parts(parts) if "image" in r for a in r["annotations"]),
    )
    shutil.rmtree(parts)
    return {
        "frames_expected": n_expected,
        "frames_read": n_read,
        "frames_predicted": n_done,
        "frames_predicted_now": n_pred,
        "frames_skipped": len(skipped),
        "ended_early": info["ended_early"],
        "overlay_frames": n_overlay,
        "predict_ms_per_frame": 1000 * predict_s / max(n_pred, 1),
        "overlay_ms_per_frame": 1000 * overlay_s / max(n_overlay, 1),
        "out": str(out),
    }


def _write_part(parts: Path, first: int, records: list[dict]) -> None:
    atomic_write_text(parts / f"{first:06d}.jsonl", "".join(json.dumps(r) + "\n" for r in records))


def listed_frames(reader: FrameReader) -> int:
    """Frames the clip should have: a video's header count (its demuxed packets when the header has none)."""
    if reader.is_folder:
        return len(reader)
    container = reader._open_container()
    try:
        listed = int(container.streams.video[0].frames or 0)
    finally:
        container.close()
    return max(listed, len(reader))


def _frame_rate(reader: FrameReader) -> Any:
    from fractions import Fraction

    if reader.is_folder:
        return Fraction(30)
    container = reader._open_container()
    try:
        rate = container.streams.video[0].average_rate
    finally:
        container.close()
    return Fraction(rate) if rate else Fraction(30)


def draw_overlay(image: np.ndarray, label: np.ndarray, record: dict) -> np.ndarray:
    """The overlay frame: labels in colour, query points, and ``<hand id> p=<held probability>`` per hand."""
    import cv2

    from cohesiv.viz import LABEL_COLORS, label_overlay

    hands = [a for a in record["annotations"] if a["category_id"] in (1, 2)]
    out = label_overlay(image, label, [a["query"] for a in hands], [a["side"] for a in hands])
    scale = max(image.shape[:2]) / 640
    for a in hands:
        p = a["held_object_probability"]
        text = (
            f"{a['hand_id']} "
            + ("holds" if a["holds_object"] else "empty")
            + ("" if p is None else f" p={p:.2f}")
        )
        x, y = int(a["query"][0]) + 6, int(a["query"][1]) - 6
        for color, thick in (((0, 0, 0), 3), (LABEL_COLORS[a["category_id"]], 1)):
            cv2.putText(
                out,
                text,
                (x, y),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.5 * max(scale, 0.6),
                color,
                max(1, int(thick * max(scale, 1))),
                cv2.LINE_AA,
            )
    return out


def _write_overlay(reader: FrameReader, out: Path, parts: Path, progress: bool) -> int:
    """Encode ``out/overlay.mp4`` (H.264) from the clip and the parts, streamed; return its frame count."""
    from cohesiv.io import read_label
    from cohesiv.io.frames import _av

    av = _av()
    w, h = reader.size
    ew, eh = w + w % 2, h + h % 2  # yuv420p needs even sides
    records = _read_parts(parts)
    nxt = next(records, None)
    n = 0
    with atomic_path(out / "overlay.mp4") as tmp:
        container = av.open(str(tmp), mode="w", format="mp4")
        try:
            stream = container.add_stream("libx264", rate=_frame_rate(reader))
            stream.width, stream.height, stream.pix_fmt = ew, eh, "yuv420p"
            stream.options = {"crf": "23", "preset": "veryfast"}
            for fr in _frames_with_bar(reader, "overlay", progress):
                while nxt is not None and nxt["t"] < fr.t:
                    nxt = next(records, None)
                if fr.image is None or nxt is None or nxt["t"] != fr.t or "image" not in nxt:
                    continue
                img = draw_overlay(fr.image, read_label(out / "labels" / f"{fr.t:06d}.png"), nxt)
                if (ew, eh) != (w, h):
                    img = np.pad(img, ((0, eh - h), (0, ew - w), (0, 0)), mode="edge")
                for packet in stream.encode(
                    av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                ):
                    container.mux(packet)
                n += 1
            for packet in stream.encode():
                container.mux(packet)
        finally:
            container.close()
    return n
