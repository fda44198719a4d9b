"""``cohesiv hands``: MediaPipe hand landmarks for a clip, tracked, written as ``hands.json``."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

from cohesiv.config import HANDS_EVERY, MAX_HANDS, MIN_HAND_CONFIDENCE, MIN_TRACK_FRAMES

HELP = "detect and track hands in a clip with MediaPipe (offline) -> hands.json"
DESCRIPTION = (
    "Run MediaPipe's hand landmarker over a clip (video file or folder of frames) and write the\n"
    "hand tracks file: 21 landmarks per hand in pixels, the side (the person's hand, for\n"
    "non-mirrored video), a box, and an id that is stable across frames.\n"
    "The model is a local file built once by 'python -m cohesiv.hands.model_setup'\n"
    "(default ~/.cache/cohesiv/hand_landmarker.task, or $COHESIV_HAND_MODEL)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``hands`` arguments."""
    p.add_argument("clip", help="video file or folder of frames")
    p.add_argument("--out", required=True, help="hands.json to write")
    p.add_argument("--model", help="hand_landmarker.task (default: $COHESIV_HAND_MODEL or the cache)")
    p.add_argument("--every", type=int, default=HANDS_EVERY, help="process every N-th frame")
    p.add_argument("--max-hands", type=int, default=MAX_HANDS, help="most hands per frame")
    p.add_argument(
        "--min-confidence", type=float, default=MIN_HAND_CONFIDENCE, help="minimum palm-detection score"
    )
    p.add_argument(
        "--mirrored", action="store_true", help="the video is mirrored (selfie preview): swap sides"
    )
    p.add_argument(
        "--no-crops",
        action="store_true",
        help="no second pass on 2x2 image crops where fewer than --max-hands hands were found (small hands)",
    )
    p.add_argument(
        "--min-track-frames",
        type=int,
        default=MIN_TRACK_FRAMES,
        help="drop hands seen in fewer processed frames (1: keep all)",
    )
    p.add_argument(
        "--keep-still",
        action="store_true",
        help="keep 'hands' that never move or change shape (rigid objects)",
    )
    p.add_argument("--viz", metavar="DIR", help="write each processed frame with its hands drawn to DIR")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Detect, track, write ``--out`` (and ``--viz`` images); print a summary."""
    from pathlib import Path

    from cohesiv.errors import CohesivError
    from cohesiv.hands.detector import HandDetector, detect_hands
    from cohesiv.io import FrameReader, write_hands

    if args.every < 1:
        raise CohesivError(f"--every must be >= 1, got {args.every}")
    if args.max_hands < 1:
        raise CohesivError(f"--max-hands must be >= 1, got {args.max_hands}")
    if not 0.0 <= args.min_confidence <= 1.0:
        raise CohesivError(f"--min-confidence must be in [0, 1], got {args.min_confidence}")
    FrameReader(args.clip)  # clip errors before the model loads
    with HandDetector(args.model, args.max_hands, args.min_confidence, mirrored=args.mirrored) as det:
        start = time.perf_counter()
        tracks = detect_hands(
            args.clip,
            every=args.every,
            progress=not args.no_progress,
            detector=det,
            crops=not args.no_crops,
            min_track_frames=args.min_track_frames,
            reject_still=not args.keep_still,
        )
        model_ms = 1000 * det.seconds / max(det.calls, 1)
    total_ms = 1000 * (time.perf_counter() - start) / max(len(tracks.frames), 1)
    write_hands(args.out, tracks)

    if args.viz:
        from cohesiv.hands.draw import draw_hands
        from cohesiv.io import write_image

        viz = Path(args.viz)
        for t, image in enumerate(FrameReader(args.clip)):
            if t in tracks.frames:
                write_image(viz / f"{t:06d}.png", draw_hands(image, tracks.frames[t]))

    counts = Counter(len(hs) for hs in tracks.frames.values())
    ids = Counter(h.id for hs in tracks.frames.values() for h in hs)
    w, h = tracks.image_size
    print(f"wrote {args.out}: {len(tracks.frames)} frames processed ({w}x{h}, every {args.every})")
    print("frames with 0/1/2+ hands: " + " / ".join(str(v) for v in _bins(counts, args.max_hands)))
    print("hand ids (frames): " + (", ".join(f"{k} ({v})" for k, v in sorted(ids.items())) or "none"))
    print(f"time: {model_ms:.1f} ms per frame in MediaPipe, {total_ms:.1f} ms per frame with decoding")
    if args.viz:
        print(f"drawings in {args.viz}")
    sys.stdout.flush()
    return 0


def _bins(counts: Counter, max_hands: int) -> list[int]:
    """Frames with 0, 1 and >= 2 hands."""
    return [counts.get(0, 0), counts.get(1, 0), sum(v for k, v in counts.items() if k >= 2)]
