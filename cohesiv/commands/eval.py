"""``cohesiv eval``: score a trained run or a baseline on labeled clips; write metrics.json."""

from __future__ import annotations

import argparse
import sys

from cohesiv.config import DEFAULT_WINDOW_FACTOR, EVAL_IMAGE_SUPPORT, SUPPORTS

HELP = "score a trained run or a baseline (Hand / Obj / Pair / All IoU) on labeled clips"
DESCRIPTION = """\
Score hand / held-object segmentation on labeled clips and write metrics.json.

A labeled clip is a folder with frames/, labels/ (EgoHOS label PNGs) and hands.json, as
'cohesiv synth' writes them. Only frames that have a label file are scored; the other frames
serve as motion context for the baselines.

  cohesiv eval --run RUN --data CLIPS... --out metrics.json
      the trained model of RUN, on each labeled frame alone with the hands' query points.
  cohesiv eval --baseline responsibility|flow --data CLIPS... --val CLIPS... --out metrics.json
      the baselines of COHESIV: Thresholded Responsibility (averaged responsibility > tau is each
      hand's Pair mask) or Flow (flow magnitude > tau is All; the connected components under each
      hand are its Pair). tau is fitted on --val clips (best All mIoU) or given with --threshold.

metrics.json: {"All": {"mIoU", "IoU", "precision", "recall", "F1", "n"}, "Pair": {...},
"Hand": {...}, "Obj": {..., "false_object_rate"}, "n_images", "n_hands", "config"}, in percent.
mIoU is the mean over instances (hands; images for All), IoU is pooled over all pixels,
precision / recall / F1 are means over instances (EgoHOS mPrec / mRec / mF1).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``cohesiv eval``."""
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--run", metavar="RUN", help="run folder of a trained model (cohesiv train)")
    what.add_argument("--baseline", choices=("responsibility", "flow"), help="evaluate a baseline of [C]")
    what.add_argument(
        "--pseudo-labels",
        metavar="DATASET",
        help="score a pseudo-label dataset (cohesiv pseudolabel) as Thresholded Responsibility: its own "
        "maps, > --threshold (default 0.5, or fitted on --val clips that the dataset covers)",
    )
    parser.add_argument("--data", nargs="+", metavar="CLIP", help="labeled clip folders to score")
    g = parser.add_argument_group("real images (instead of --data)")
    g.add_argument(
        "--images",
        metavar="DIR",
        help="an image set: images/ plus labels/ (EgoHOS PNGs: Hand/Obj/Pair/All) or masks/ (binary hand "
        "masks: All-hands IoU); the hull of the hand points is always scored beside the model",
    )
    g.add_argument(
        "--hands",
        metavar="FILE",
        help="hands file whose frame t holds the hands of the t-th image (by name); default: detect "
        "hands with MediaPipe on each image",
    )
    g.add_argument("--detect-hands", action="store_true", help="detect hands with MediaPipe (the default)")
    g.add_argument("--viz", metavar="DIR", help="write one picture per image: ground truth, model, hull")
    g.add_argument(
        "--support",
        choices=SUPPORTS,
        default=EVAL_IMAGE_SUPPORT,
        help="also score 'model+support': each hand mask kept inside its hand's dilated hull and, for 21 "
        "keypoints, on the fingers' side of the wrist (real hand labels stop at the wrist; the "
        "motion the network learned from does not); 'grabcut' also scores 'model+grabcut': that mask "
        "refined by GrabCut on the image (compare with the points-only 'grabcut' row); 'none': the "
        "network's read-out alone (default: %(default)s)",
    )
    g.add_argument(
        "--window",
        type=float,
        metavar="F",
        help="predict each hand in a window of F times its size around its points, so that it is "
        f"at the scale the network was trained at (default {DEFAULT_WINDOW_FACTOR:g}; 0: the whole image at once)",
    )
    parser.add_argument(
        "--gt",
        nargs="+",
        metavar="JSON",
        help="ground truth as COCO-RLE instance or VISOR sparse JSON files, one per --data clip "
        "(a frame folder) instead of its labels/ folder (see cohesiv.io.groundtruth)",
    )
    parser.add_argument("--out", default="metrics.json", help="metrics file to write (JSON)")
    g = parser.add_argument_group("baselines")
    g.add_argument(
        "--val",
        nargs="+",
        metavar="CLIP",
        help="labeled clips (or folders of them) on which to fit the threshold",
    )
    g.add_argument("--threshold", type=float, help="use this threshold instead of fitting one on --val")
    from cohesiv.commands.pseudolabel import add_label_arguments

    add_label_arguments(g, offsets=None)  # every pseudo-label option: the baseline is the pseudo-labels
    g.add_argument("--fb-check", action="store_true", help="(the default now, as cohesiv pseudolabel)")
    parser.add_argument("--device", default=None, help="torch device for --run (None: CPU)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no table")


def _offsets(text: str | None, default: tuple[int, ...]) -> tuple[int, ...]:
    from cohesiv._checks import parse_int_list
    from cohesiv.errors import CohesivError

    if text is None:
        return default
    try:
        ks = parse_int_list(text)
    except ValueError as e:
        raise CohesivError(f"--offsets: {e}") from None
    if not ks or any(k == 0 for k in ks):
        raise CohesivError(f"--offsets must be non-zero integers, got {text!r}")
    return tuple(sorted({s * abs(k) for k in ks for s in (-1, 1)}))


def _run_images(args: argparse.Namespace) -> int:
    """``--images``: score the run (if any) and the hull floor on an image set."""
    from pathlib import Path

    from cohesiv.errors import CohesivError
    from cohesiv.eval.driver import write_metrics
    from cohesiv.eval.images import format_image_table, run_image_eval

    if args.data or args.baseline:
        raise CohesivError(
            "--images scores a --run (and the hull of the hand points); not with --data/--baseline"
        )
    if args.hands and args.detect_hands:
        raise CohesivError("give --hands FILE or --detect-hands, not both")
    if Path(args.out).is_dir():
        raise CohesivError(f"--out {args.out} is a folder; give the metrics file to write")
    result = run_image_eval(
        args.images,
        run=args.run,
        hands_file=args.hands,
        device=args.device,
        viz=args.viz,
        window=args.window,
        support=args.support,
        progress=not args.quiet,
    )
    result["config"] = {
        "images": str(args.images),
        "run": args.run,
        "hands": result.pop("hands"),
        "window": result.pop("window"),
        "support": result.pop("support"),
    }
    write_metrics(args.out, result)
    if not args.quiet:
        print(format_image_table(result, f"{args.images}" + (f", run {args.run}" if args.run else "")))
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    """Evaluate, write ``args.out`` and print the table."""
    import math
    from pathlib import Path

    from cohesiv.errors import CohesivError
    from cohesiv.eval.driver import format_table, write_metrics

    progress = not args.quiet
    if args.images is not None:
        return _run_images(args)
    if not args.data:
        raise CohesivError("give --data CLIPS (labeled clips) or --images DIR (an image set)")
    if args.run is None and args.baseline is None and args.pseudo_labels is None:
        raise CohesivError(
            "give --run RUN (a trained model), --baseline responsibility|flow or --pseudo-labels DATASET"
        )
    if args.gt:  # COCO-RLE / VISOR ground truth: converted to EgoHOS label folders first
        import tempfile

        from cohesiv.io.groundtruth import labeled_clips_from_gt

        with tempfile.TemporaryDirectory(prefix="cohesiv-gt-") as tmp:
            gt_args = argparse.Namespace(
                **dict(vars(args), gt=None, data=labeled_clips_from_gt(args.gt, args.data, tmp)),
                gt_source={"data": list(args.data), "gt": list(args.gt)},
            )
            return run(gt_args)
    if Path(args.out).is_dir():
        raise CohesivError(
            f"--out {args.out} is a folder; give the metrics file to write, e.g. {args.out}/metrics.json"
        )
    if args.threshold is not None and not math.isfinite(args.threshold):
        raise CohesivError(f"--threshold must be a finite number, got {args.threshold}")
    config: dict = getattr(args, "gt_source", None) or {"data": list(args.data)}
    if args.run is not None:
        if args.val or args.threshold is not None:
            raise CohesivError("--val and --threshold apply to --baseline, not to --run")
        from cohesiv.eval.runner import evaluate_run

        metrics = evaluate_run(args.run, args.data, device=args.device, progress=progress)
        config.update(run=str(args.run))
        title = f"run {args.run}"
    elif args.pseudo_labels is not None:
        from cohesiv.eval.baselines import PseudoLabelDataset
        from cohesiv.eval.runner import run_baseline

        threshold = 0.5 if args.threshold is None and not args.val else args.threshold
        metrics, _ = run_baseline(
            PseudoLabelDataset(args.pseudo_labels),
            args.data,
            val=args.val,
            threshold=threshold,
            progress=progress,
        )
        config.update(pseudo_labels=str(args.pseudo_labels), threshold=metrics.pop("threshold"))
        title = f"pseudo-labels {args.pseudo_labels} (threshold {config['threshold']:.3g})"
    else:
        from cohesiv.commands.pseudolabel import label_config
        from cohesiv.eval.runner import build_baseline, run_baseline

        if args.threshold is None and not args.val:
            raise CohesivError("give --val CLIPS to fit the threshold, or --threshold VALUE")
        plcfg = label_config(args)  # checks every pseudo-label value (the temperature > 0, ...)
        offsets = _offsets(args.offsets, plcfg.offsets if args.baseline == "responsibility" else (1,))
        baseline = build_baseline(args.baseline, config=plcfg, offsets=offsets)
        metrics, fit = run_baseline(
            baseline, args.data, val=args.val, threshold=args.threshold, progress=progress
        )
        config.update(
            baseline=args.baseline,
            flow=plcfg.flow,
            offsets=list(offsets),
            temperature=plcfg.temperature if args.baseline == "responsibility" else None,
            background=plcfg.background,
            pseudolabel=plcfg.to_dict() if args.baseline == "responsibility" else None,
            threshold=metrics["threshold"],
            val=list(args.val or []),
        )
        if fit is not None:
            config["threshold_fit"] = {
                "grid": fit.grid,
                "val_all_mIoU": fit.all_miou,
                "n_images": fit.n_images,
            }
        title = f"{args.baseline} baseline (flow {plcfg.flow}, threshold {metrics['threshold']:.3g})"
        metrics.pop("threshold")
    metrics["config"] = config
    write_metrics(args.out, metrics)
    if not args.quiet:
        print(format_table(metrics, title))
        print(f"wrote {args.out}", file=sys.stderr)
    return 0
