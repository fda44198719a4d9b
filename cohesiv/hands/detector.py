"""MediaPipe's hand landmarker, run offline from a local model file, and hand tracks for a clip.

The model file is built once by ``python -m cohesiv.hands.model_setup`` (see
:mod:`cohesiv.hands.model_setup`); nothing is downloaded at run time.

Side convention: ``side`` is the person's hand (``"right"`` = their right hand), for
non-mirrored video. Measured here (tests/hands/test_detector.py) on an egocentric frame (Ego4D
cooking clip) and a third-person frame (person facing the camera): MediaPipe 1.2.2 with the
0.10.21 models reports the person's actual hand on non-mirrored images, and the opposite label on
the horizontally flipped image. So its label is used as is, and swapped only for mirrored
(selfie-preview) input, ``mirrored=True``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from cohesiv.config import HANDS_EVERY, MAX_HANDS, MIN_HAND_CONFIDENCE, MIN_TRACK_FRAMES
from cohesiv.errors import CohesivError
from cohesiv.hands.model_setup import ENV_VAR, SETUP_COMMAND, hand_model_path, is_valid_bundle
from cohesiv.hands.tracking import Detection, track_hands
from cohesiv.io.hands import POINT_TOLERANCE, Hand, HandTracks

#: Milliseconds between frames given to MediaPipe's VIDEO mode (only the order matters to it).
FRAME_STEP_MS = 33
_SWAP = {"left": "right", "right": "left"}


def landmarks_to_detection(
    landmarks: np.ndarray,
    image_size: tuple[int, int],
    side: str | None = None,
    score: float = 1.0,
    *,
    tolerance: float = POINT_TOLERANCE,
    min_spread: float = 1.0,
) -> Detection | None:
    """Convert normalised landmarks to pixel points inside the image, with their box.

    Args:
        landmarks: ``(N, 2)`` MediaPipe ``(x, y)`` in [0, 1] of the image width/height, where 0
            is the left/top image edge.
        image_size: ``(W, H)``.
        side: side label to keep.
        score: its confidence.
        tolerance: landmarks up to this many pixels outside the image are clipped onto it;
            farther ones are dropped (their flow would belong to whatever is at the border).
        min_spread: the hand is dropped when the kept points are nearly collinear (second
            singular value of the centred points, per point, below this many pixels).

    Returns:
        The detection (points ``(M, 2)`` float32 pixels with the origin at the centre of the
        top-left pixel, i.e. ``x_pixel = x * W - 0.5``; box = their bounding box) or None when
        fewer than 4 usable points remain.
    """
    w, h = image_size
    pts = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2) * (w, h) - 0.5
    lo, hi = np.array([-0.5, -0.5]), np.array([w - 0.5, h - 0.5])
    keep = np.isfinite(pts).all(1) & ((pts >= lo - tolerance) & (pts <= hi + tolerance)).all(1)
    pts = np.clip(pts[keep], lo, hi)
    if len(pts) < 4:
        return None
    sv = np.linalg.svd(pts - pts.mean(0), compute_uv=False)
    if sv[1] / np.sqrt(len(pts)) < min_spread:
        return None
    x1, y1 = pts.min(0)
    x2, y2 = pts.max(0)
    box = (float(x1), float(y1), float(max(x2, x1 + 1e-3)), float(max(y2, y1 + 1e-3)))
    return Detection(points=pts.astype(np.float32), box=box, side=side, score=float(score))


def crop_boxes(size: tuple[int, int], grid: int = 2, overlap: float = 0.3) -> list[tuple[int, int, int, int]]:
    """``grid x grid`` overlapping crops ``(x0, y0, x1, y1)`` (end exclusive) covering a ``(W, H)`` image."""
    w, h = size
    if grid < 1 or not 0 <= overlap < 1:
        raise ValueError(f"need grid >= 1 and 0 <= overlap < 1, got {grid} and {overlap}")
    out = []
    for n, side in ((grid, w), (grid, h)):
        step = side / (n - (n - 1) * overlap)  # crop side so that n crops with this overlap span it
        starts = [round(i * step * (1 - overlap)) for i in range(n)]
        out.append([(s0, min(side, round(s0 + step))) for s0 in starts])
    return [(x0, y0, x1, y1) for y0, y1 in out[1] for x0, x1 in out[0]]


def _box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _same_hand(a: Detection, b: Detection, iou: float, near: float) -> bool:
    if _box_iou(a.box, b.box) > iou:
        return True
    ca = np.array([(a.box[0] + a.box[2]) / 2, (a.box[1] + a.box[3]) / 2])
    cb = np.array([(b.box[0] + b.box[2]) / 2, (b.box[1] + b.box[3]) / 2])
    size = max(a.box[2] - a.box[0], a.box[3] - a.box[1], b.box[2] - b.box[0], b.box[3] - b.box[1])
    return float(np.linalg.norm(ca - cb)) < near * size


def merge_detections(
    dets: list[Detection], iou: float = 0.3, keep: list[Detection] | None = None, near: float = 0.5
) -> list[Detection]:
    """Non-maximum suppression of hand detections by box IoU and centre distance.

    Args:
        dets: candidate detections (e.g. from several crops).
        iou: a candidate overlapping a kept detection by more than this is dropped.
        keep: detections that are kept first, unconditionally (e.g. the first pass's).
        near: a candidate whose box centre is closer to a kept one's than this fraction of the
            larger box side is dropped too (the same hand seen whole in one crop, cut in another).

    Returns:
        ``keep`` followed by the kept candidates, most points and highest score first.
    """
    out = list(keep or [])
    for d in sorted(dets, key=lambda d: (-len(d.points), -d.score)):
        if not any(_same_hand(d, k, iou, near) for k in out):
            out.append(d)
    return out


@contextlib.contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """Send what C++ code writes to file descriptor 2 into a list (MediaPipe's start-up log)."""
    out: list[str] = []
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield out  # no real stderr (e.g. captured by a test runner): nothing to hide
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield out
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            out.extend(tmp.read().decode("utf-8", "replace").splitlines())


class HandDetector:
    """MediaPipe's hand landmarker (21 landmarks + side per hand), offline.

    Example:
        >>> with HandDetector() as det:                  # doctest: +SKIP
        ...     hands = det.detect(frame)                # frame: (H, W, 3) uint8 RGB

    Use as a context manager or call :meth:`close`. ``seconds`` and ``calls`` accumulate the
    time spent in MediaPipe, for timing reports.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        max_hands: int = MAX_HANDS,
        min_confidence: float = MIN_HAND_CONFIDENCE,
        *,
        min_presence: float = 0.5,
        min_tracking: float = 0.5,
        video: bool = True,
        mirrored: bool = False,
        quiet: bool = True,
    ) -> None:
        """Load the model.

        Args:
            model_path: the ``.task`` file; default :func:`cohesiv.hands.model_setup.hand_model_path`.
            max_hands: most hands reported per frame.
            min_confidence: minimum palm-detection score.
            min_presence: minimum hand-presence score of the landmark model.
            min_tracking: in video mode, below this the palm detector runs again instead of
                following the previous frame's hands.
            video: MediaPipe VIDEO mode (frames of one clip, in order; hands are followed from
                frame to frame); False: every image is independent (IMAGE mode).
            mirrored: the input is mirrored (a selfie preview): swap MediaPipe's side labels.
            quiet: hide MediaPipe's start-up log lines (shown if loading fails).

        Raises:
            CohesivError: model file missing or invalid, or mediapipe not installed.
        """
        path = Path(model_path) if model_path is not None else hand_model_path()
        if not path.is_file():
            raise CohesivError(
                f"{path}: hand model not found; build it with '{SETUP_COMMAND}' "
                f"(fetches the mediapipe wheel from PyPI), or set {ENV_VAR} / --model to a hand_landmarker.task"
            )
        if not is_valid_bundle(path):
            raise CohesivError(
                f"{path}: not a hand landmarker model (a .task zip with hand_detector.tflite and "
                f"hand_landmarks_detector.tflite); rebuild it with '{SETUP_COMMAND} --force'"
            )
        if max_hands < 1:
            raise ValueError(f"max_hands must be >= 1, got {max_hands}")
        self.max_hands = int(max_hands)
        try:
            import mediapipe as mp
            from mediapipe.tasks.python import BaseOptions, vision
        except ImportError as e:
            raise CohesivError(
                f"MediaPipe is not installed ({e}); run: pip install 'mediapipe>=1.2'"
            ) from None
        self._mp = mp
        self.model_path = path
        self.video = video
        self.mirrored = mirrored
        self.quiet = quiet
        self.seconds = 0.0
        self.calls = 0
        self._last_ts = -FRAME_STEP_MS
        options = vision.HandLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(path)),
            running_mode=vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE,
            num_hands=int(max_hands),
            min_hand_detection_confidence=float(min_confidence),
            min_hand_presence_confidence=float(min_presence),
            min_tracking_confidence=float(min_tracking),
        )
        with self._quiet() as log:
            try:
                self._landmarker = vision.HandLandmarker.create_from_options(options)
            except Exception as e:  # MediaPipe raises RuntimeError/ValueError with a status text
                detail = " / ".join(ln for ln in log if "E0000" in ln or "rror" in ln)[-300:]
                raise CohesivError(f"{path}: MediaPipe cannot load the hand model ({e}) {detail}") from None

    def _quiet(self):
        return _captured_stderr() if self.quiet else contextlib.nullcontext([])

    def __enter__(self) -> HandDetector:
        """Return self."""
        return self

    def __exit__(self, *exc) -> None:
        """Close the landmarker."""
        self.close()

    def close(self) -> None:
        """Release MediaPipe's graph (safe to call twice)."""
        lm = getattr(self, "_landmarker", None)
        if lm is not None:
            with self._quiet():  # MediaPipe logs its accelerator teardown on stderr
                lm.close()
            self._landmarker = None

    def detect_raw(self, image: np.ndarray, timestamp_ms: int | None = None) -> list[Detection]:
        """Detect hands in one image and return them untracked.

        Args:
            image: ``(H, W, 3)`` uint8 RGB.
            timestamp_ms: in video mode, the frame time (must increase); default: the previous
                time + 33 ms. Ignored in image mode.

        Returns:
            Detections (points in pixels, origin at the centre of the top-left pixel; side as
            described in the module docstring; score = MediaPipe's handedness score).
        """
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
        if self._landmarker is None:
            raise ValueError("HandDetector is closed")
        mp_image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))
        start = time.perf_counter()
        with self._quiet() if self.calls == 0 else contextlib.nullcontext([]):
            if self.video:
                ts = self._last_ts + FRAME_STEP_MS if timestamp_ms is None else int(timestamp_ms)
                if ts <= self._last_ts:
                    raise ValueError(f"timestamp_ms must increase: {ts} after {self._last_ts}")
                self._last_ts = ts
                result = self._landmarker.detect_for_video(mp_image, ts)
            else:
                result = self._landmarker.detect(mp_image)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        size = (image.shape[1], image.shape[0])
        out = []
        for cats, lms in zip(result.handedness, result.hand_landmarks):
            side, score = None, 0.0
            if cats:
                name = (cats[0].category_name or "").lower()
                side, score = (name if name in _SWAP else None), float(cats[0].score)
                if self.mirrored and side is not None:
                    side = _SWAP[side]
            xy = np.array([[p.x, p.y] for p in lms], dtype=np.float64)
            det = landmarks_to_detection(xy, size, side, score)
            if det is not None:
                out.append(det)
        return out

    def detect_crops(self, image: np.ndarray, grid: int = 2, overlap: float = 0.3) -> list[Detection]:
        """Second pass for small hands: detect in overlapping crops (IMAGE mode only), in image pixels.

        MediaPipe's palm detector sees the whole image at 192x192, so a hand a few percent of a
        large frame wide (an egocentric hand at the bottom edge) is often missed; on a crop of
        ``1 / grid`` of each side it is ``grid`` times larger. Detections of different crops
        that are the same hand are merged (:func:`merge_detections`).

        Args:
            image: ``(H, W, 3)`` uint8 RGB.
            grid: crops per side.
            overlap: overlap of neighbouring crops, fraction of a crop's side.

        Returns:
            Detections with points in the full image's pixels (origin at the centre of the
            top-left pixel); landmarks outside their crop are dropped as at the image border.
        """
        if self.video:
            raise ValueError("detect_crops needs an IMAGE-mode detector (video=False)")
        h, w = image.shape[:2]
        out = []
        for x0, y0, x1, y1 in crop_boxes((w, h), grid, overlap):
            for d in self.detect_raw(np.ascontiguousarray(image[y0:y1, x0:x1])):
                pts = d.points + np.float32([x0, y0])
                box = (d.box[0] + x0, d.box[1] + y0, d.box[2] + x0, d.box[3] + y0)
                out.append(Detection(points=pts, box=box, side=d.side, score=d.score))
        return merge_detections(out)

    def detect(self, image: np.ndarray, timestamp_ms: int | None = None, *, crops: bool = True) -> list[Hand]:
        """Detect hands in one image.

        Args:
            image: ``(H, W, 3)`` uint8 RGB.
            timestamp_ms: see :meth:`detect_raw`.
            crops: in IMAGE mode, when fewer than ``max_hands`` hands were found, a second pass on
                2x2 overlapping crops (:meth:`detect_crops`), as :func:`detect_hands` does for clips.

        Returns:
            One :class:`cohesiv.io.Hand` per hand: up to 21 landmark points ``(N, 2)`` in pixels
            (origin at the centre of the top-left pixel; landmarks outside the image dropped),
            ``side`` (the person's hand, non-mirrored convention), ``box`` from the points and
            ``query`` = mean of the points. Ids are the side (or ``"hand<k>"``) within this frame
            only; use :func:`detect_hands` for ids stable across a clip.
        """
        found = self.detect_raw(image, timestamp_ms)
        if crops and not self.video and len(found) < self.max_hands:
            found = merge_detections(self.detect_crops(image), keep=found)[: self.max_hands]
        return track_hands({0: found})[0]


def detect_hands(
    clip_path: str | Path,
    *,
    model_path: str | Path | None = None,
    every: int = HANDS_EVERY,
    progress: bool = True,
    max_hands: int = MAX_HANDS,
    min_confidence: float = MIN_HAND_CONFIDENCE,
    mirrored: bool = False,
    detector: HandDetector | None = None,
    crops: bool = True,
    min_track_frames: int = MIN_TRACK_FRAMES,
    reject_still: bool = True,
) -> HandTracks:
    """Run the hand landmarker over a clip and track the hands.

    Args:
        clip_path: a video file or a folder of frames (see :class:`cohesiv.io.FrameReader`).
        model_path: the ``.task`` model (default: :func:`cohesiv.hands.model_setup.hand_model_path`).
        every: process every ``every``-th frame (0, every, 2*every, ...).
        progress: show a progress bar on stderr.
        max_hands: most hands per frame (see :class:`HandDetector`).
        min_confidence: minimum palm-detection score.
        mirrored: the clip is mirrored (selfie preview): swap MediaPipe's sides.
        detector: a video-mode detector to use (e.g. to read its timing); it is not closed.
            ``model_path``, ``max_hands``, ``min_confidence`` and ``mirrored`` are then ignored.
        crops: where fewer than ``max_hands`` hands were found, a second pass on 2x2 overlapping
            crops (:meth:`HandDetector.detect_crops`, a second detector in IMAGE mode) for small
            hands; its hands that overlap none of the first pass's are added.
        min_track_frames: drop hand tracks seen in fewer processed frames (1: keep all).
        reject_still: drop tracks that never move like a hand
            (:func:`cohesiv.hands.tracking.rejected_tracks`).

    Returns:
        Hand tracks: every processed frame is a key (an empty list when no hand was found);
        ids are stable across frames (:func:`cohesiv.hands.tracking.track_hands`).

    Raises:
        CohesivError: unreadable clip, missing model, MediaPipe not installed.
    """
    from tqdm import tqdm

    from cohesiv.io import FrameReader

    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    reader = FrameReader(clip_path)
    own = detector is None
    det = detector or HandDetector(model_path, max_hands, min_confidence, video=True, mirrored=mirrored)
    second = None
    if crops:
        second = HandDetector(
            det.model_path,
            max_hands,
            min_confidence,
            min_presence=min_confidence,
            video=False,
            mirrored=det.mirrored,
        )
    frames: dict[int, list[Detection]] = {}
    try:
        bar = tqdm(
            total=len(reader), desc="hands", unit="frame", disable=None if progress else True, file=sys.stderr
        )
        with bar:
            for t, image in enumerate(reader):
                if t % every == 0:
                    found = det.detect_raw(image, timestamp_ms=t * FRAME_STEP_MS)
                    if second is not None and len(found) < max_hands:
                        found = merge_detections(second.detect_crops(image), keep=found)[:max_hands]
                    frames[t] = found
                bar.update(1)
    finally:
        if own:
            det.close()
        if second is not None:
            second.close()
    tracked = track_hands(frames, min_frames=min_track_frames, reject_still=reject_still)
    return HandTracks(image_size=reader.size, frames=tracked)
