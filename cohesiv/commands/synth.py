"""``cohesiv synth``: write synthetic egocentric clips with exact ground truth."""

from __future__ import annotations

import argparse

from cohesiv.config import CAMERA_MODES, SYNTH_CAMERA, SYNTH_CLIPS, SYNTH_FRAMES, SYNTH_SIZE

HELP = "write synthetic clips with exact labels, flow and hand keypoints"
DESCRIPTION = (
    "Write synthetic egocentric clips (textured background, optional camera motion, one or two\n"
    "hands entering from the bottom, held objects) with exact ground truth, one folder per clip:\n"
    "  OUT/clip_NNNN/frames/NNNNNN.png   RGB frames\n"
    "  OUT/clip_NNNN/labels/NNNNNN.png   EgoHOS labels (0 bg, 1/2 left/right hand, 3/4/5 objects)\n"
    "  OUT/clip_NNNN/flow/NNNNNN.flo     exact forward flow t -> t+1\n"
    "  OUT/clip_NNNN/hands.json          21 keypoints per hand per frame\n"
    "  OUT/clip_NNNN/scene.json          the recipe and every motion matrix\n"
    "Clip i uses seed [SEED, i]; the same arguments give identical files. Complete clips are\n"
    "skipped on a re-run."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``synth`` arguments."""
    parser.add_argument("out", help="output folder")
    parser.add_argument("--clips", type=int, default=SYNTH_CLIPS, help="number of clips")
    parser.add_argument("--frames", type=int, default=SYNTH_FRAMES, help="frames per clip (>= 2)")
    parser.add_argument("--size", default="{}x{}".format(*SYNTH_SIZE), help="frame size WxH")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed")
    parser.add_argument(
        "--camera", choices=CAMERA_MODES, default=SYNTH_CAMERA, help="camera motion (mixed: per clip)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace clips made with other settings")


def run(args: argparse.Namespace) -> int:
    """Generate the clips; print one summary line."""
    from cohesiv._checks import parse_size
    from cohesiv.errors import CohesivError
    from cohesiv.synth import generate_dataset

    try:
        size = parse_size(args.size)
    except ValueError as e:
        raise CohesivError(f"--size: {e}") from None
    report = generate_dataset(
        args.out,
        clips=args.clips,
        frames=args.frames,
        size=size,
        seed=args.seed,
        camera=args.camera,
        overwrite=args.overwrite,
    )
    print(
        f"{len(report.clips)} clips of {args.frames} frames at {size[0]}x{size[1]} in {args.out} "
        f"({report.written} written, {report.skipped} already complete)"
    )
    return 0
