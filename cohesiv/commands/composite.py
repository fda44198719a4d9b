"""``cohesiv composite``: paste real hands and held objects onto other real frames (a training dataset)."""

from __future__ import annotations

import argparse

from cohesiv.config import COMPOSITE_SAMPLES, COMPOSITE_SKIN, help_default

HELP = "composite real hands onto other real frames: extra training samples from pseudo-labels"
DESCRIPTION = """\
Cut each hand (with what moves with it) out of one pseudo-label sample and paste it, moved by a random
scale, mirror and translation, onto the frame of another sample (EgoHOS's CCDA, with pseudo-labels
instead of masks). Under the paste the labels are exact; elsewhere the background frame keeps its own
pseudo-labels. The output is a pseudo-label dataset for 'cohesiv train --data', beside the others.

  cohesiv composite ds/clip1 ds/clip2 ... --out ds/composites --samples 500
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``composite`` options."""
    p.add_argument(
        "datasets", nargs="+", metavar="DATASET", help="pseudo-label datasets (cohesiv pseudolabel)"
    )
    p.add_argument("--out", required=True, help="dataset folder to write (resumed when it exists)")
    p.add_argument("--samples", type=int, default=COMPOSITE_SAMPLES, help="number of composited samples")
    p.add_argument("--seed", type=int, default=0, help="sample i is a function of (seed, i)")
    p.add_argument(
        "--skin",
        type=float,
        metavar="P",
        help=help_default(
            "probability that a hand is pasted over a skin-coloured oval in its own skin's colours, "
            "labelled background: a hard negative for the faces and bare arms that hands touch",
            COMPOSITE_SKIN,
        ),
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Write the composites; print how many the dataset holds."""
    import sys

    from cohesiv.errors import CohesivError
    from cohesiv.synth.composite import CompositeConfig, write_composites

    if args.samples < 1:
        raise CohesivError(f"--samples must be >= 1, got {args.samples}")
    if args.skin is not None and not 0.0 <= args.skin <= 1.0:
        raise CohesivError(f"--skin must be a probability in [0, 1], got {args.skin}")
    config = CompositeConfig() if args.skin is None else CompositeConfig(skin=args.skin)
    n = write_composites(
        args.datasets,
        args.out,
        args.samples,
        seed=args.seed,
        config=config,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    print(
        f"{args.out}: {n} composited samples (of {args.samples} asked; a sample with no usable cut-out is skipped)"
    )
    return 0
