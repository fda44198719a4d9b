"""``cohesiv predict``: hand and held-object masks of images from a trained run and hand query points."""

from __future__ import annotations

import argparse
import sys

from cohesiv.config import PREDICT_CHUNK, SUPPORTS

HELP = "segment queried hands and the objects they hold in images (trained run)"
DESCRIPTION = """\
Segment hands and the objects they hold in RGB images with a trained run (cohesiv train), given one
query point per hand: --hand x,y[,side] (repeatable; the same points for every image), a hand tracks
file --hands hands.json (image i uses frame i; a clip folder or video uses its frame indices), or
--detect-hands (MediaPipe, see 'cohesiv hands').

On a clip (one video file or frame folder), streams its frames and writes into DIR:
  labels/NNNNNN.png EgoHOS label PNG of frame N (palette: colours in a viewer, values 0..8)
  predictions.json  COCO-style: one image per frame, one annotation per hand and per held object
                    (RLE mask, side, hand id, score, held_object_probability, holds_object)
  overlay.mp4       the labels over the frames with hand ids and held-object probabilities (H.264)
  hands.json        with --detect-hands: the hands MediaPipe found, ids tracked across the clip
                    (as 'cohesiv hands' writes them; a resumed run reuses it)
Resumable: run the same command again after an interruption (even kill -9). Frames that fail to
decode are skipped and counted (predictions.json info.frames_skipped).

On image files, writes per image (STEM = file stem) into DIR:
  STEM_label.png    EgoHOS labels: 0 bg, 1 left hand, 2 right hand, 3 object of the left hand,
                    4 object of the right hand, 5 object of both hands
  STEM_scores.npz   scores (K,H,W) float32 (per-hand score S_k), person_sim and object_sim (H,W),
                    hand_masks / object_masks (K,H,W) uint8, queries (K,2), sides
                    held_probability (K,) (NaN: no held-object model), holds (K,) bool
  STEM_overlay.png  classes in colour over the image, query points, hand ids, held-object probability
  predictions.json  COCO-style, as for clips (image ids = the images' order)
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
    parser.add_argument(
        "--support",
        choices=SUPPORTS,
        default="none",
        help="'points' keeps each hand mask inside its hand's support (the hull of its points "
        "dilated by 0.2 of the hand's size, and the fingers' side of the wrist for 21 keypoints), for real "
        "photos whose hand labels stop at the wrist; 'grabcut' then refines that mask by GrabCut on the "
        "image (the edge moves to where the colours change; on the real image sets far above the network's "
        "own masks, level with GrabCut of the points); "
        "needs hand points (--hands or --detect-hands); clips too, frame by frame (default: none)",
    )
    parser.add_argument("--checkpoint", default="last", help="weights file stem in RUN/checkpoints/")
    parser.add_argument("--device", default=None, help="torch device (default cpu)")
    parser.add_argument("--no-overlay", action="store_true", help="do not write overlay images / overlay.mp4")
    parser.add_argument("--chunk", type=int, default=PREDICT_CHUNK, help="clips: frames per resumable part")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _inputs(paths: list[str]):
    """Yield ``(stem, index, image)`` for image files."""
    from pathlib import Path

    from cohesiv.io import read_image

    for i, p in enumerate(paths):
        yield Path(p).stem, i, read_image(p)


def _run_clip(args: argparse.Namespace, predictor, tracks) -> int:
    """Predict a whole clip (cohesiv.predict_video); print the summary."""
    import json
    from pathlib import Path

    from cohesiv.errors import InputError
    from cohesiv.io import FrameReader, check_tracks_match_clip
    from cohesiv.predict_video import predict_clip

    if args.chunk < 1:
        raise InputError(None, f"--chunk must be >= 1, got {args.chunk}")
    clip = args.images[0]
    reader = FrameReader(clip)  # clip errors before anything is written
    w, h = reader.size
    if tracks is not None:
        check_tracks_match_clip(tracks, reader.size, len(reader), args.hands)
        source = f"hands file {Path(args.hands).resolve()}"
    elif args.hand:
        source = "points " + " ".join(f"{x:g},{y:g},{s}" for x, y, s in args.hand)
    else:  # MediaPipe over the whole clip first, then ids tracked as 'cohesiv hands' does (DIR/hands.json)
        from cohesiv.io import read_hands, write_hands
        from cohesiv.predict_video import detect_and_track

        hands_path = Path(args.out) / "hands.json"
        if _resuming(Path(args.out), clip) and hands_path.is_file():  # the detection pass is done
            tracks = read_hands(hands_path)
            check_tracks_match_clip(tracks, reader.size, len(reader), hands_path)
        else:
            detector = _detector(video=True)
            try:
                tracks = detect_and_track(reader, detector, progress=not args.no_progress)
            finally:
                detector.close()
            write_hands(hands_path, tracks)
        source = "MediaPipe, tracked (hands.json)"

    def hands_for(t, image):
        if args.hand:
            qs = [(x, y) for x, y, _ in args.hand]
            return (
                qs,
                [s for _, _, s in args.hand],
                [s or f"hand{i}" for i, (_, _, s) in enumerate(args.hand)],
            )
        hands = [hd for hd in tracks.hands_at(t) if hd.query is not None]
        for hd in hands:
            x, y = hd.query
            if not (-0.5 <= x <= w - 0.5 and -0.5 <= y <= h - 0.5):
                raise InputError(
                    args.hands, f"frame {t}: query point ({x:g}, {y:g}) is outside the {w}x{h} frame"
                )
        return (
            [tuple(map(float, hd.query)) for hd in hands],
            [hd.side for hd in hands],
            [hd.id for hd in hands],
        )

    def refine(t, image, pred):  # only with hand points (checked in run)
        return _with_support(
            pred, [hd for hd in tracks.hands_at(t) if hd.query is not None], args.support, image
        )

    state = {
        "run": str(Path(args.run).resolve()),
        "checkpoint": args.checkpoint,
        "network_size": predictor.size,
        "readout": predictor.readout_mode,
        "held_object_model": predictor.held is not None,
        "hands": source,
        **({"support": args.support} if args.support != "none" else {}),  # jobs from before resume
    }
    summary = predict_clip(
        predictor,
        clip,
        args.out,
        hands_for,
        state=state,
        chunk=args.chunk,
        overlay=not args.no_overlay,
        progress=not args.no_progress,
        refine=None if args.support == "none" else refine,
    )
    summary["mode"] = predictor.readout_mode
    if summary["frames_skipped"] or summary["ended_early"]:
        print(
            f"warning: {summary['frames_skipped']} frame(s) skipped (see predictions.json info.frames_skipped); "
            f"{summary['ended_early']} listed frame(s) missing at the end of the video",
            file=sys.stderr,
        )
    print(json.dumps(summary))
    return 0


def _resuming(out, clip: str) -> bool:
    """True when ``out`` holds an unfinished prediction of ``clip`` (cohesiv.predict_video's parts)."""
    import json
    from pathlib import Path

    from cohesiv.predict_video import PARTS, STATE

    try:
        state = json.loads((out / PARTS / STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return state.get("clip") == str(Path(clip).resolve())


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


def _with_support(pred, hands, support: str, image):
    """``pred`` under a support of :mod:`cohesiv.model.support` ("points" or "grabcut")."""
    from dataclasses import replace

    import numpy as np

    from cohesiv.io.labels import compose_label
    from cohesiv.io.predictions import HOSPrediction
    from cohesiv.model.support import apply_support

    kept = apply_support(HOSPrediction(pred.hand_masks, pred.object_masks), hands, support, image)
    hm = np.asarray(kept.hand_masks, np.uint8)
    om = np.asarray(kept.object_masks, np.uint8)
    return replace(pred, hand_masks=hm, object_masks=om, label=compose_label(hm, om, pred.sides))


def _queries_of(hands) -> tuple[list[tuple[float, float]], list[str | None], list[str]]:
    qs, sides, ids = [], [], []
    for h in hands:
        if h.query is None:
            continue
        qs.append((float(h.query[0]), float(h.query[1])))
        sides.append(h.side)
        ids.append(h.id)
    return qs, sides, ids


def run(args: argparse.Namespace) -> int:
    """Predict and write label, scores and overlay files for every image; return 0."""
    import json
    from pathlib import Path

    import numpy as np
    from tqdm import tqdm

    from cohesiv.errors import InputError
    from cohesiv.io import read_hands, write_image, write_label
    from cohesiv.io.atomic import atomic_path
    from cohesiv.io.coco import write_coco
    from cohesiv.io.images import IMAGE_SUFFIXES
    from cohesiv.model import Predictor
    from cohesiv.predict_video import draw_overlay, frame_record

    if args.size is not None and args.size < 32:
        raise InputError(None, f"--size must be at least 32 (the network's stride), got {args.size}")
    predictor = Predictor.from_run(args.run, device=args.device, size=args.size, name=args.checkpoint)
    tracks = read_hands(args.hands) if args.hands else None
    is_clip = len(args.images) == 1 and (
        Path(args.images[0]).is_dir() or Path(args.images[0]).suffix.lower() not in IMAGE_SUFFIXES
    )
    if args.support != "none" and args.hand:
        raise InputError(
            None, f"--support {args.support} needs hand points (--hands or --detect-hands, not --hand)"
        )
    if is_clip:
        return _run_clip(args, predictor, tracks)
    detector = _detector(video=False) if args.detect_hands else None
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = 0
    records = []
    for stem, index, image in tqdm(_inputs(args.images), desc="predict", disable=args.no_progress or None):
        h, w = image.shape[:2]
        if args.hand:
            queries = [(x, y) for x, y, _ in args.hand]
            sides = [s for _, _, s in args.hand]
            ids = [s or f"hand{i}" for i, s in enumerate(sides)]
        elif tracks is not None:
            if tuple(tracks.image_size) != (w, h):
                raise InputError(
                    args.hands, f"image_size {list(tracks.image_size)} does not match image {stem} ({w}x{h})"
                )
            hands = [h for h in tracks.hands_at(index) if h.query is not None]
            queries, sides, ids = _queries_of(hands)
        else:
            hands = [h for h in detector.detect(image) if h.query is not None]
            queries, sides, ids = _queries_of(hands)
        for x, y in queries:
            if not (-0.5 <= x <= w - 0.5 and -0.5 <= y <= h - 0.5):
                raise InputError(None, f"{stem}: query point ({x:g}, {y:g}) is outside the {w}x{h} image")
        pred = predictor.predict(image, queries, sides)
        if args.support != "none":
            pred = _with_support(pred, hands, args.support, image)
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
                    held_probability=pred.held_probability,
                    holds=pred.holds,
                )
        record = frame_record(index, pred, ids, file_name=f"{stem}_label.png")
        records.append(record)
        if not args.no_overlay:
            write_image(out_dir / f"{stem}_overlay.png", draw_overlay(image, pred.label, record))
        n += 1
    if detector is not None:
        detector.close()
    info = {
        "description": "cohesiv predictions: hands and the objects they hold",
        "run": str(Path(args.run).resolve()),
        "readout": predictor.readout_mode,
        "held_object_model": predictor.held is not None,
    }
    write_coco(
        out_dir / "predictions.json",
        info,
        (r["image"] for r in records),
        (a for r in records for a in r["annotations"]),
    )
    summary = {"images": n, "out": str(out_dir), "mode": predictor.readout_mode}
    print(json.dumps(summary))
    return 0
