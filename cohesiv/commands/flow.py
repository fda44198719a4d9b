"""``cohesiv flow``: optical flow of a clip, written as Middlebury ``.flo`` files and colour images."""

from __future__ import annotations

import argparse

from cohesiv import config

HELP = "compute optical flow of a clip (.flo files + colour images)"
DESCRIPTION = """\
Compute optical flow between frames t and t+k of a clip (video file or image folder) and write
Middlebury .flo files and colour images. Frames are streamed: memory does not grow with the clip.

Output layout (DIR):
  flow.json                 method, preset/model, clip, offsets
  flow/fw1/000000.flo       flow 0 -> 1 (channel 0 = dx right, 1 = dy down, pixels)
  flow/bw1/000001.flo       flow 1 -> 0                       (--backward)
  color/fw1/000000.png      colour image (torchvision flow_to_image)
  valid/fw1/000000.png      forward-backward consistency, 255 = valid  (--backward)
Finished files are kept: a re-run with the same settings only computes what is missing.

Methods: dis (OpenCV DIS, default, no weights) or raft (torchvision RAFT; needs a local
checkpoint, torchvision's or princeton-vl's, via --raft-weights)."""


def _offsets(text: str) -> list[int]:
    try:
        vals = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers, e.g. 1,2,3; got {text!r}"
        ) from None
    if not vals or vals[0] < 1:
        raise argparse.ArgumentTypeError(f"offsets must be positive integers, e.g. 1 or 1,2,3; got {text!r}")
    return vals


def _help(text: str, default: object) -> str:
    return config.help_default(text, default)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``cohesiv flow`` arguments to ``parser`` (defaults: :mod:`cohesiv.config`, shown by ``--help``)."""
    flow, options = config.FlowConfig(), config.FlowFolderOptions()
    parser.add_argument("clip", help="video file (mp4/avi/mov/gif/...) or folder of images")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--method", choices=config.FLOW_METHODS, help=_help("flow method", flow.method))
    parser.add_argument("--preset", choices=config.DIS_PRESET_NAMES, help=_help("DIS preset", flow.preset))
    parser.add_argument(
        "--raft-weights", metavar="PATH", help="RAFT checkpoint (torchvision or princeton-vl)"
    )
    parser.add_argument(
        "--raft-model", choices=config.RAFT_MODELS, help=_help("RAFT size", config.DEFAULT_RAFT_MODEL)
    )
    parser.add_argument(
        "--raft-iters", type=int, help=_help("RAFT refinement iterations", config.DEFAULT_RAFT_ITERS)
    )
    parser.add_argument("--device", help="torch device for RAFT (default: cuda if available)")
    parser.add_argument(
        "--offsets",
        type=_offsets,
        metavar="K[,K...]",
        help=_help("frame offsets k: flows t -> t+k", options.offsets),
    )
    parser.add_argument("--backward", action="store_true", help="also flows t+k -> t, and valid masks")
    parser.add_argument(
        "--alpha", type=float, help=_help("consistency check: relative tolerance", options.alpha)
    )
    parser.add_argument(
        "--beta", type=float, help=_help("consistency check: absolute tolerance (px^2)", options.beta)
    )
    parser.add_argument("--no-color", action="store_true", help="do not write colour images")
    parser.add_argument(
        "--overwrite", action="store_true", help="recompute every file of this run, even if it exists"
    )


def _given(args: argparse.Namespace, *names: str) -> dict:
    """The options among ``names`` that were given (not None): the others keep their defaults."""
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def run(args: argparse.Namespace) -> int:
    """Compute and write the flows (:func:`cohesiv.flow.folder.write_flow_folder`); return 0."""
    from cohesiv.errors import InputError
    from cohesiv.flow import FlowEstimator
    from cohesiv.flow.folder import write_flow_folder

    if args.method == "raft" and args.preset is not None:
        raise InputError(None, "--preset applies to --method dis only (RAFT: --raft-model, --raft-iters)")
    given = _given(args, "offsets", "alpha", "beta")
    if "offsets" in given:
        given["offsets"] = tuple(given["offsets"])
    options = config.FlowFolderOptions(
        color=not args.no_color, backward=args.backward, overwrite=args.overwrite, **given
    )
    est = FlowEstimator(
        raft_weights=args.raft_weights,
        device=args.device,
        **_given(args, "method", "preset", "raft_model", "raft_iters"),
    )
    summary = write_flow_folder(args.clip, args.out, est, options)
    print(summary.to_text(args.out))
    return 0
