"""``cohesiv demo``: the whole pipeline end to end, with an HTML report."""

from __future__ import annotations

import argparse

from cohesiv.config import DemoConfig, default_of, help_default

HELP = "run the whole pipeline (synthetic clips + a real video) and write an HTML report"
DESCRIPTION = """\
Run the whole pipeline end to end and write OUT/report.html:

  synthetic clips -> hands (MediaPipe) -> flow (DIS) -> pseudo-labels -> short training run
  -> calibration -> evaluation (model vs. baselines) -> predictions on a real video

With no arguments it uses synthetic clips and the embedded real clip (a hand holding a cup,
from OpenCV's documentation); --video runs the real-video part on your own clip instead.
Takes a few minutes on 2 CPU cores; a second run with the same --out reuses finished work.
"""


def _default(text: str, name: str) -> str:
    """``text`` and the :class:`~cohesiv.config.DemoConfig` default of ``name``."""
    return help_default(text, default_of(DemoConfig, name))


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``demo`` options."""
    p.add_argument("--out", default="demo-out", help="output folder (report.html is written there)")
    p.add_argument(
        "--video", metavar="PATH", help="your own video or frame folder (default: embedded cup clip)"
    )
    p.add_argument("--no-video", action="store_true", help="synthetic clips only")
    p.add_argument("--steps", type=int, help=_default("training steps", "steps"))
    p.add_argument("--clips", type=int, help=_default("synthetic training clips", "train_clips"))
    p.add_argument("--seed", type=int, help=_default("random seed", "seed"))
    p.add_argument("--quick", action="store_true", help="a tiny run (for smoke tests): few clips, few steps")
    p.add_argument(
        "--real-images",
        nargs="+",
        metavar="DIR",
        help="real image sets with masks to score the model on (images/ + masks/ or labels/; default: "
        "those of $COHESIV_DATA or shared/data beside the checkout; none with --quick)",
    )
    p.add_argument("--no-real-images", action="store_true", help="do not score on real image sets")
    p.add_argument(
        "--threads",
        default="auto",
        metavar="N|auto",
        help="torch CPU threads (as cohesiv train --threads; auto: $OMP_NUM_THREADS, else the free CPUs)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo; print where the report is."""
    import sys
    from pathlib import Path

    from cohesiv.demo import default_video, run_demo
    from cohesiv.errors import InputError
    from cohesiv.threads import set_threads

    video = None
    if not args.no_video:
        video = Path(args.video) if args.video else default_video()
        if not video.exists():
            raise InputError(video, "no such video file or frame folder")
        from cohesiv.io import FrameReader

        FrameReader(video)  # a corrupt or empty video fails here, not after the synthetic stages
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise InputError(args.out, "--out exists and is not a folder")
    kw = {}
    if args.quick:
        kw = dict(
            train_clips=2,
            val_clips=1,
            test_clips=1,
            frames=8,
            size=(160, 120),
            steps=4,
            train_size=64,
            batch=2,
            video_every=12,
        )
    else:
        kw = {k: v for k, v in (("train_clips", args.clips), ("steps", args.steps)) if v is not None}
    if args.seed is not None:
        kw["seed"] = args.seed
    if args.no_real_images:
        kw["real_images"] = ()
    elif args.real_images:
        kw["real_images"] = tuple(Path(p) for p in args.real_images)
    elif args.quick:
        kw["real_images"] = ()
    cfg = DemoConfig(out=Path(args.out), video=video, **kw)
    n, why = set_threads(args.threads)
    print(f"[demo] torch threads: {n} ({why})", file=sys.stderr)
    res = run_demo(cfg, say=lambda m: print(m, file=sys.stderr, flush=True), progress=sys.stderr.isatty())
    print("\nSummary (mIoU %, held-out synthetic clips):")
    for name, m in res.metrics.items():
        cells = "  ".join(f"{t} {m[t]['mIoU']:5.1f}" for t in ("All", "Pair", "Hand", "Obj") if t in m)
        print(f"  {name:45s} {cells}")
    for line in res.real:
        print(line)
    print(f"Total time {sum(res.times.values()):.0f} s. Report: {res.report.resolve()}")
    for n in res.notes:
        print(f"note: {n}")
    return 0
