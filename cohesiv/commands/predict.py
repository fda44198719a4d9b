"""``cohesiv predict``: hand and held-object masks of images from a trained run and hand query points."""

from __future__ import annotations

import argparse

HELP = "segment queried hands and the objects they hold in images (trained run)"
DESCRIPTION = """\
Segment hands and the objects they hold in RGB images with a trained run (cohesiv train), given one
query point per hand: --hand x,y[,side] (repeatable; the same points for every image), a hand tracks
file --hands hands.json (image i uses frame i; a clip folder or video uses its frame indices), or
--detect-hands (MediaPipe, see 'cohesiv hands').

Writes, per image (STEM = file stem, or <clip>_<frame> for clips), into DIR:
  STEM_label.png    EgoHOS labels: 0 bg, 1 left hand, 2 right hand, 3 object of the left hand,
                    4 object of the right hand, 5 object of both hands
  STEM_scores.npz   scores (K,H,W) float32 (per-hand score S_k), person_sim and object_sim (H,W),
                    hand_masks / object_masks (K,H,W) uint8, queries (K,2), sides
  STEM_overlay.png  classes in colour over the image, query points drawn
Sides: as seen in the (non-mirrored) image; an unknown side is taken from the image half of the query.
The read-out uses the run's calibration.json (cohesiv calibrate); without it, a documented fallback
(see cohesiv.model.predictor)."""


def _hand_arg(text: str) -> tuple[float, float, str | None]:
    parts = [p.strip() for p in text.split(",")]
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        x, y = float(parts[0]), float(parts[1])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected x,y or x,y,side (e.g. 120,80,left); got {text!r}"
        ) from None
    side = parts[2].lower() if len(parts) == 3 else None
    if side not in (None, "left", "right"):
        raise argparse.ArgumentTypeError(f"side must be left or right, got {parts[2]!r}")
    return x, y, side


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``cohesiv predict`` arguments to ``parser``."""
    parser.add_argument(
        "images", nargs="+", metavar="IMAGE", help="image files, or one clip (video or folder)"
    )
    parser.add_argument("--run", required=True, metavar="RUN", help="trained run folder")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--hand",
        type=_hand_arg,
        action="append",
        metavar="X,Y[,SIDE]",
        help="query point of a hand (repeatable)",
    )
    src.add_argument("--hands", metavar="JSON", help="hand tracks file (hands.json); image i = frame i")
    src.add_argument("--detect-hands", action="store_true", help="find hands with the MediaPipe detector")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--size",
        type=int,
        default=None,
        help="longer image side for the network (default: the size the run was calibrated at, else its training size)",
    )
    parser.add_argument("--checkpoint", default="last", help="weights file stem in RUN/checkpoints/")
    parser.add_argument("--device", default=None, help="torch device (default cpu)")
    parser.add_argument("--no-overlay", action="store_true", help="do not write overlay images")


def _inputs(paths: list[str]):
    """Yield ``(stem, frame index, image)`` for image files or a single clip."""
    from pathlib import Path

    from cohesiv.io import FrameReader, read_image
    from cohesiv.io.images import IMAGE_SUFFIXES

    if len(paths) == 1 and (Path(paths[0]).is_dir() or Path(paths[0]).suffix.lower() not in IMAGE_SUFFIXES):
        reader = FrameReader(paths[0])
        name = Path(paths[0]).stem
        for i, frame in enumerate(reader):
            yield f"{name}_{i:06d}", i, frame
        return
    for i, p in enumerate(paths):
        yield Path(p).stem, i, read_image(p)


def _detector(video: bool):
    from cohesiv.errors import CohesivError

    try:
        from cohesiv.hands import HandDetector
    except ImportError as e:
        raise CohesivError(
            f"--detect-hands needs cohesiv.hands.HandDetector (MediaPipe), which is not available ({e}); "
            "give query points with --hand x,y or --hands hands.json"
        ) from None
    try:
        return HandDetector(video=video)  # VIDEO mode follows hands through a clip; IMAGE mode otherwise
    except CohesivError:
        raise
    except Exception as e:  # noqa: BLE001 - a missing model file / mediapipe is a user environment problem
        raise CohesivError(
            f"--detect-hands: cannot start the hand detector ({e}); try 'cohesiv hands --help'"
        ) from None


def _queries_of(hands) -> tuple[list[tuple[float, float]], list[str | None]]:
    qs, sides = [], []
    for h in hands:
        if h.query is None:
            continue
        qs.append((float(h.query[0]), float(h.query[1])))
        sides.append(h.side)
    return qs, sides


def run(args: argparse.Namespace) -> int:
    """Predict and write label, scores and overlay files for every image; return 0."""
    import json
    import sys
    from pathlib import Path

    import numpy as np
    from tqdm import tqdm

    from cohesiv.errors import InputError
    from cohesiv.io import read_hands, write_image, write_label
    from cohesiv.io.atomic import atomic_path
    from cohesiv.io.images import IMAGE_SUFFIXES
    from cohesiv.model import Predictor
    from cohesiv.viz import label_overlay

    if args.size is not None and args.size < 32:
        raise InputError(None, f"--size must be at least 32 (the network's stride), got {args.size}")
    predictor = Predictor.from_run(args.run, device=args.device, size=args.size, name=args.checkpoint)
    tracks = read_hands(args.hands) if args.hands else None
    is_clip = len(args.images) == 1 and (
        Path(args.images[0]).is_dir() or Path(args.images[0]).suffix.lower() not in IMAGE_SUFFIXES
    )
    detector = _detector(video=is_clip) if args.detect_hands else None
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = 0
    for stem, index, image in tqdm(_inputs(args.images), desc="predict", disable=not sys.stderr.isatty()):
        h, w = image.shape[:2]
        if args.hand:
            queries = [(x, y) for x, y, _ in args.hand]
            sides = [s for _, _, s in args.hand]
        elif tracks is not None:
            if tuple(tracks.image_size) != (w, h):
                raise InputError(
                    args.hands, f"image_size {list(tracks.image_size)} does not match image {stem} ({w}x{h})"
                )
            queries, sides = _queries_of(tracks.hands_at(index))
        else:
            queries, sides = _queries_of(detector.detect(image))
        for x, y in queries:
            if not (-0.5 <= x <= w - 0.5 and -0.5 <= y <= h - 0.5):
                raise InputError(None, f"{stem}: query point ({x:g}, {y:g}) is outside the {w}x{h} image")
        pred = predictor.predict(image, queries, sides)
        write_label(out_dir / f"{stem}_label.png", pred.label)
        with atomic_path(out_dir / f"{stem}_scores.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(
                    f,
                    scores=pred.scores,
                    person_sim=pred.person_sim,
                    object_sim=pred.object_sim,
                    hand_masks=pred.hand_masks,
                    object_masks=pred.object_masks,
                    queries=pred.queries,
                    sides=np.array(pred.sides, dtype=str),
                    mode=np.array(pred.mode),
                )
        if not args.no_overlay:
            write_image(
                out_dir / f"{stem}_overlay.png", label_overlay(image, pred.label, pred.queries, pred.sides)
            )
        n += 1
    if detector is not None:
        detector.close()
    summary = {"images": n, "out": str(out_dir), "mode": predictor.readout_mode}
    print(json.dumps(summary))
    return 0
