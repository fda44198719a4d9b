"""``cohesiv flow``: optical flow of a clip, written as Middlebury ``.flo`` files and colour images."""

from __future__ import annotations

import argparse

from cohesiv.defaults import DEFAULT_DIS_PRESET, DIS_PRESET_NAMES

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


#: The DIS presets and the default, from :mod:`cohesiv.defaults` (imports nothing: ``--help`` stays instant).
PRESETS = DIS_PRESET_NAMES
DEFAULT_PRESET = DEFAULT_DIS_PRESET


def _write_png(path, image) -> None:
    """Write ``(H, W, 3)`` RGB or ``(H, W)`` uint8 as PNG, atomically, with fast (level 1) compression."""
    import cv2

    from cohesiv.io import atomic_write_bytes

    bgr = image[..., ::-1] if image.ndim == 3 else image
    ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    atomic_write_bytes(path, buf.tobytes())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``cohesiv flow`` arguments to ``parser``."""
    parser.add_argument("clip", help="video file (mp4/avi/mov/gif/...) or folder of images")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--method", choices=("dis", "raft"), default="dis", help="flow method")
    parser.add_argument(
        "--preset",
        choices=PRESETS,
        default=None,
        help=f"DIS preset (default {DEFAULT_PRESET})",
    )
    parser.add_argument(
        "--raft-weights", metavar="PATH", help="RAFT checkpoint (torchvision or princeton-vl)"
    )
    parser.add_argument("--raft-model", choices=("small", "large"), default="small", help="RAFT size")
    parser.add_argument("--raft-iters", type=int, default=12, help="RAFT refinement iterations")
    parser.add_argument("--device", default=None, help="torch device for RAFT (default: cuda if available)")
    parser.add_argument(
        "--offsets", type=_offsets, default=[1], metavar="K[,K...]", help="frame offsets k: flows t -> t+k"
    )
    parser.add_argument("--backward", action="store_true", help="also flows t+k -> t, and valid masks")
    parser.add_argument("--alpha", type=float, default=0.01, help="consistency check: relative tolerance")
    parser.add_argument(
        "--beta", type=float, default=0.5, help="consistency check: absolute tolerance (px^2)"
    )
    parser.add_argument("--no-color", action="store_true", help="do not write colour images")
    parser.add_argument(
        "--overwrite", action="store_true", help="recompute every file of this run, even if it exists"
    )


def run(args: argparse.Namespace) -> int:
    """Compute and write the flows; return 0."""
    import sys
    from pathlib import Path

    import numpy as np
    from tqdm import tqdm

    from cohesiv.errors import InputError
    from cohesiv.flow import FlowCache, FlowEstimator, StreamingFrames, flow_to_color, forward_backward_valid
    from cohesiv.flow.store import check_flow_config, color_file, flow_file, valid_file, write_flow_config
    from cohesiv.io import FrameReader, write_flo

    if args.method == "raft" and args.preset is not None:
        raise InputError(None, "--preset applies to --method dis only (RAFT: --raft-model, --raft-iters)")
    if not (args.alpha >= 0 and args.beta >= 0):  # also refuses NaN
        raise InputError(None, f"--alpha and --beta must be >= 0, got {args.alpha} and {args.beta}")
    if args.method == "dis" and not args.no_color:
        import torch

        # torch only draws the colour images here: small per-frame ops, for which intra-op
        # threads cost more than they give (4x slower on a busy 2-core machine)
        torch.set_num_threads(1)
    out = Path(args.out)
    reader = FrameReader(args.clip)
    n = len(reader)
    est = FlowEstimator(
        method=args.method,
        preset=args.preset,
        raft_weights=args.raft_weights,
        raft_model=args.raft_model,
        device=args.device,
        raft_iters=args.raft_iters,
    )
    if not args.overwrite:
        check_flow_config(out, est.config, reader.path)
    out.mkdir(parents=True, exist_ok=True)
    write_flow_config(
        out,
        est.config,
        clip=str(reader.path.resolve()),
        size=list(reader.size),
        n_frames=n,
        offsets=args.offsets,
        backward=bool(args.backward),
        alpha=args.alpha,
        beta=args.beta,
    )

    def outputs(t: int, s: int) -> list[Path]:
        files = [flow_file(out, t, s)]
        if not args.no_color:
            files.append(color_file(out, t, s))
        if args.backward:
            files.append(valid_file(out, t, s))
        return files

    # the one sliding flow window of the package (as cohesiv pseudolabel): each pair computed at
    # most once, .flo files already in DIR read instead of computed (unless --overwrite)
    reach = max(args.offsets)
    frames = StreamingFrames(reader, keep=reach + 2)
    cache = FlowCache(
        est,
        frames,
        max_frames=reach + 2,
        cache_dir=None if args.overwrite else out,
        clip=None if args.overwrite else reader.path,
    )
    n_skipped = 0
    bar = tqdm(total=n, desc="flow", unit="frame", file=sys.stderr, disable=None)
    for i in range(n):
        try:
            frames(i)
        except IndexError:  # the video ended earlier than its frame count said
            break
        for k in args.offsets:
            t = i - k
            if t < 0:
                continue
            for a, b in [(t, i), (i, t)] if args.backward else [(t, i)]:
                if not args.overwrite and all(p.exists() for p in outputs(a, b)):
                    n_skipped += 1
                    continue
                flow = cache.get(a, b)
                if args.overwrite:
                    write_flo(flow_file(out, a, b), flow)
                if not args.no_color:
                    _write_png(color_file(out, a, b), flow_to_color(flow))
                if args.backward:
                    ok = forward_backward_valid(flow, cache.get(b, a), alpha=args.alpha, beta=args.beta)
                    _write_png(valid_file(out, a, b), ok.astype(np.uint8) * 255)
        bar.update(1)
    bar.close()
    n_computed, seconds = cache.stats.computed, cache.stats.seconds
    per_pair = f", {1000 * seconds / n_computed:.1f} ms per pair" if n_computed else ""
    print(f"{n_computed} flows computed ({est!r}{per_pair}), {n_skipped} flows already done; wrote {out}")
    return 0
