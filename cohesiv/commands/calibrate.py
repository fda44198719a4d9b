"""``cohesiv calibrate``: person/object prototypes and read-out thresholds of a trained run."""

from __future__ import annotations

import argparse

from cohesiv.config import CALIBRATION_OBJECTIVES, CalibrationOptions, default_of, help_default

HELP = "compute the prototypes and grid-search the read-out thresholds of a run"
DESCRIPTION = """\
Compute the person and object prototypes of a trained run (mean embedding at --samples random
person pixels and as many object pixels of its pseudo-labels; 500 in the paper) and grid-search the
read-out thresholds tau_h, tau_o, tau_r on labeled validation clips (folders with frames/, labels/
and hands.json; only labeled frames count), maximising the Pair mIoU (or All, --objective: All scores
the union of every hand and object, so it cannot see a hand mask that takes its neighbour's pixels);
among thresholds within --tolerance points of the best, the mean of the All, Pair, Hand and Obj mIoU
decides. Then, with those fixed, it tries growing each hand mask into the connected pixels the
embedding calls person (tau_g; recovers forearms that move unlike the hand when the run was trained on
pseudo-labels made with 'cohesiv pseudolabel --forearm') and keeps it only if it raises that mIoU by
at least half a point (--no-grow: never). Last it tries opening the object masks with a disc (open_o, a fraction of the
image's longer side; removes the thin rims of false object that a moving empty hand leaves) under the
same rule (--no-open: never). Then it fits the held-object model ("holds nothing": a per-hand
probability that the hand holds an object, from the read-out) on the validation hands and chooses its
threshold like the others; prediction drops the object mask of a hand below it (--no-held: never). With --flip, every size is also calibrated with the test-time flip
(the mirrored image's maps averaged in), kept when it wins by half a point. The result is written to RUN/calibration.json, which 'cohesiv predict' and
'cohesiv eval' use.

Without --val (no labeled clip at all) only the prototypes are computed; prediction then splits
S_k > 0.5 into hand and object by the closer prototype.

  cohesiv calibrate --run runs/r1 --val val/clip1 val/clip2
  cohesiv calibrate --run runs/r1 --val val/clip1 --data other_pseudolabels --objective Pair
  cohesiv calibrate --run runs/r1                       # no labels: prototypes only
"""


def _default(text: str, name: str) -> str:
    """``text`` and the :class:`~cohesiv.config.CalibrationOptions` default of ``name``."""
    return help_default(text, default_of(CalibrationOptions, name))


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``calibrate`` options."""
    p.add_argument(
        "--run", required=True, metavar="RUN", help="run folder written by 'cohesiv train'%(default).0s"
    )
    p.add_argument(
        "--val",
        nargs="+",
        default=[],
        metavar="CLIP",
        help="labeled validation clip folders (none: prototypes only)%(default).0s",
    )
    p.add_argument(
        "--data",
        nargs="+",
        metavar="DATASET",
        help="pseudo-label datasets for the prototypes (default: the run's)%(default).0s",
    )
    p.add_argument("--samples", type=int, help=_default("pixels per class for the prototypes", "samples"))
    p.add_argument(
        "--objective", choices=CALIBRATION_OBJECTIVES, help=_default("mIoU to maximise", "objective")
    )
    p.add_argument(
        "--size",
        type=_size_list,
        metavar="SIZE[,SIZE...]",
        help="longer image side fed to the network (default: the training size); several, e.g. "
        "128,192,256: calibrate at each and keep the best on --val%(default).0s",
    )
    p.add_argument("--device", help="cpu, cuda, ... (default cpu)%(default).0s")
    p.add_argument("--seed", type=int, help=_default("seed of the pixel draw", "seed"))
    p.add_argument(
        "--tolerance",
        type=float,
        metavar="POINTS",
        help=_default(
            "threshold triples within this many mIoU points of the best --objective are ranked by the "
            "mean of All, Pair, Hand and Obj (All and Pair hardly constrain the hand/object split)",
            "tolerance",
        ),
    )
    p.add_argument(
        "--no-grow",
        action="store_true",
        help="do not try the hand-growing read-out (tau_g): use it when the validation hands include the forearm "
        "(as cohesiv synth's do) but the masks you want stop at the wrist (human labels of real photos); "
        "growing wins on the former and spreads hands over forearms and faces on the latter",
    )
    p.add_argument(
        "--no-open",
        action="store_true",
        help="do not try opening the object masks (open_o: removes thin false-object rims)",
    )
    p.add_argument(
        "--flip",
        action="store_true",
        help="also calibrate with the test-time flip (the mirrored image's maps averaged in; twice the "
        "prediction cost) and keep it when it raises the validation mIoU by at least half a point",
    )
    p.add_argument(
        "--no-relative-scores",
        action="store_true",
        help="fit the score threshold on S_k as the network gives it; by default each S_k is divided by "
        "its value at its own query point first, so that a map that sags on unfamiliar images keeps its hand",
    )
    p.add_argument(
        "--query-person",
        action="store_true",
        help="take each image's person prototype from the image itself (the mean embedding at its query "
        "points) instead of the mean over the training pseudo-labels; thresholds are fitted with it and "
        "prediction uses it (for images unlike the training clips: other skin, light, sleeves)",
    )
    p.add_argument(
        "--no-held",
        action="store_true",
        help="do not fit the held-object model (hands never said to hold nothing)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _size_list(text: str) -> list[int]:
    """``"192"`` or ``"128,192,256"`` -> positive ints (argparse type)."""
    try:
        sizes = [int(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SIZE or SIZE,SIZE,..., got {text!r}") from None
    if any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return sizes


def run(args: argparse.Namespace) -> int:
    """Calibrate and print the thresholds and validation metrics."""
    from cohesiv.eval.calibrate import calibrate_run
    from cohesiv.model.readout import Readout

    given = {
        k: getattr(args, k)
        for k in ("samples", "objective", "seed", "tolerance")
        if getattr(args, k) is not None
    }
    doc = calibrate_run(
        args.run,
        args.val,
        data=args.data,
        size=args.size,
        device=args.device,
        **given,
        grow=not args.no_grow,
        opening=not args.no_open,
        flip=args.flip,
        held=not args.no_held,
        relative_scores=not args.no_relative_scores,
        query_person=args.query_person,
        progress=not args.no_progress,
    )
    t = doc["thresholds"]
    if t is None:
        print(
            f"{args.run}/calibration.json: prototypes from {sum(doc['samples'].values())} pseudo-label pixels; "
            "no thresholds (no --val): prediction uses the nearest-prototype read-out"
        )
        return 0
    m = doc["val_metrics"]
    if len(doc["sizes"]) > 1:
        tried = ", ".join(f"{k}: {v:.1f}" for k, v in doc["sizes"].items())
        print(f"validation {doc['objective']} mIoU by network size: {tried}; kept {doc['size']}")
    if doc.get("flip_sizes"):
        tried = ", ".join(f"{k}: {v:.1f}" for k, v in doc["flip_sizes"].items())
        print(f"with the test-time flip: {tried}; {'kept' if doc['flip'] else 'not kept'}")
    print(
        f"{args.run}/calibration.json (size {doc['size']}{', flip' if doc.get('flip') else ''}): "
        f"{Readout.from_thresholds(t).summary()}; "
        f"validation mIoU All {m['All']['mIoU']:.1f} Pair {m['Pair']['mIoU']:.1f} "
        f"Hand {m['Hand']['mIoU']:.1f} Obj {m['Obj']['mIoU']:.1f} ({m['n_images']} images, {m['n_hands']} hands)"
    )
    fit = doc.get("held_object_fit") or {}
    if "after" in fit:
        b, a = fit["before"], fit["after"]
        print(
            f"held-object threshold p={fit['threshold']:g}: validation false-object rate "
            f"{b['false_object_rate']:.1f} -> {a['false_object_rate']:.1f}%, object found "
            f"{b['object_found_rate']:.1f} -> {a['object_found_rate']:.1f}% of holding hands"
        )
    elif fit.get("skipped"):
        print(f"no held-object model: {fit['skipped']}")
    return 0
