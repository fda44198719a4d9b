"""``cohesiv pseudolabel``: responsibility maps of hand-labeled clips -> a pseudo-label dataset."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from cohesiv.config import (
    BACKGROUNDS,
    FLOW_SOURCES,
    HOMOGRAPHY_METHODS,
    PERSON_RULES,
    RAFT_MODELS,
    SMOOTHINGS,
    PseudoLabelConfig,
    default_of,
    help_default,
)

HELP = "make a pseudo-label dataset (responsibility maps, person masks) from clips and hand points"
DESCRIPTION = """\
Label every frame that has hands with averaged responsibility maps [COHESIV Eq. 1-2] and
write a pseudo-label dataset for 'cohesiv train'.

For each frame t and offset k (default ±1, ±2, ±3), a homography per hand is fitted from its
points P to P + flow(P), and every pixel gets softmax(-d / t) over {background, hands}, where d
is how far the pixel's flow is from each hand's (or the background's) motion model; maps are
averaged over the offsets (frames near the clip ends use those they have). A forward-backward
flow check marks pixels whose flow is unreliable ('valid' in the samples; it also keeps those
pixels out of the hand fits and the average). Hands whose fit is degenerate at an offset
(< 4 usable points, collinear, wild) are dropped there and counted.

Hand points, per clip, from: --hands FILE (one clip), else hands.json inside a clip folder (or
<video stem>.hands.json beside a video), else --detect-hands (MediaPipe).

Output folder: dataset.json (the config), manifest.jsonl, images/<id>.png, samples/<id>.npz
(responsibility float16 (N+1,H,W), person uint8, valid uint8), samples/<id>.json (per-sample
sidecar and completion mark), viz/<id>.png with --viz. Every file is written atomically: a re-run
skips finished samples and resumes after an interruption; --shard i/n runs one of n disjoint
workers (sample number modulo n) in the same --out.

Examples:
  cohesiv pseudolabel clip_dir --out data/pl
  cohesiv pseudolabel a.mp4 --hands a_hands.json --out data/pl --frames 0:600:2 --viz
  cohesiv pseudolabel clips/* --out data/pl --background homography --shard 0/2 &
  cohesiv pseudolabel clips/* --out data/pl --background homography --shard 1/2
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``cohesiv pseudolabel``."""
    parser.add_argument("clips", nargs="+", metavar="CLIP", help="video files or frame folders")
    parser.add_argument("--out", required=True, metavar="DATASET", help="dataset folder to write (or resume)")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--hands", metavar="FILE", help="hands.json for the (single) clip")
    src.add_argument(
        "--detect-hands", action="store_true", help="detect hands with MediaPipe (cohesiv.hands.detect_hands)"
    )
    add_label_arguments(parser)
    parser.add_argument(
        "--stop-at-wrist",
        action="store_true",
        help="the hand ends at the wrist, as human hand masks do: training labels the forearm past the wrist "
        "of each 21-keypoint hand background (the stored maps are unchanged; for real video)",
    )
    parser.add_argument("--frames", metavar="SPEC", help="frames to label: start:stop:step or 0,10,20")
    parser.add_argument(
        "--person-masks",
        metavar="DIR",
        help="person/hand masks (PNG per frame, <frame:06d>.png); else hand hulls",
    )
    parser.add_argument("--shard", metavar="i/n", help="label only sample numbers = i modulo n")
    parser.add_argument("--viz", action="store_true", help="also write overlays to DATASET/viz/")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary")


def _positive_offsets(offsets: tuple[int, ...]) -> str:
    """``(-3, -2, -1, 1, 2, 3)`` -> ``"1,2,3"`` (the ``--offsets`` spelling: each k is used as +k and -k)."""
    return ",".join(str(k) for k in sorted({abs(k) for k in offsets}))


def add_label_arguments(parser, offsets: str | None = "config", fb_flag: bool = True) -> None:
    """Add every option that determines the pseudo-labels (shared with ``cohesiv eval --baseline``).

    Every flag defaults to None and takes the :class:`~cohesiv.config.PseudoLabelConfig` value
    (shown by ``--help``), so the defaults are written once, on the config.

    Args:
        parser: an ``argparse`` parser or argument group.
        offsets: ``"config"``: ``--offsets`` shows the config's offsets as its default; None: the
            caller decides (``cohesiv eval``: the flow baseline uses 1, the next frame).
        fb_flag: add ``--no-fb-check`` (the caller may have its own spelling).
    """
    defaults = PseudoLabelConfig()

    def dflt(text: str, name: str) -> str:
        return help_default(text, getattr(defaults, name))

    offsets_help = "frame offsets k; each is used as +k and -k"
    parser.add_argument(
        "--offsets",
        help=help_default(offsets_help, _positive_offsets(defaults.offsets))
        if offsets
        else f"{offsets_help} (default 1,2,3; the flow baseline: 1, the next frame)",
    )
    parser.add_argument("--temperature", type=float, help=dflt("softmax temperature, pixels", "temperature"))
    parser.add_argument(
        "--background",
        choices=BACKGROUNDS,
        help=dflt(
            "background motion: static camera [C], or a camera homography fitted away from the hands",
            "background",
        ),
    )
    parser.add_argument(
        "--homography",
        choices=HOMOGRAPHY_METHODS,
        help=dflt("hand fit: OpenCV USAC-MAGSAC (robust) or kornia DLT (least squares)", "homography"),
    )
    parser.add_argument(
        "--inlier-threshold", type=float, help=dflt("MAGSAC inlier threshold, pixels", "inlier_threshold")
    )
    parser.add_argument(
        "--flow",
        choices=FLOW_SOURCES,
        help=dflt(
            "flow: OpenCV DIS, RAFT (needs --raft-weights) or the exact flow of a 'cohesiv synth' clip",
            "flow",
        ),
    )
    parser.add_argument("--dis-preset", help="DIS preset (default: the flow module's)")
    parser.add_argument("--raft-weights", metavar="FILE", help="local RAFT checkpoint (for --flow raft)")
    parser.add_argument("--raft-model", choices=RAFT_MODELS, help=dflt("RAFT size", "raft_model"))
    if fb_flag:
        parser.add_argument(
            "--no-fb-check",
            action="store_true",
            help="skip the forward-backward flow check (valid = 1 everywhere; halves flow work on sparse --frames)",
        )
    parser.add_argument(
        "--hull-dilation",
        type=float,
        help=dflt("person-mask dilation, fraction of hand size", "hull_dilation"),
    )
    parser.add_argument(
        "--forearm",
        action="store_true",
        help="person mask: add a forearm band from the wrist away from the fingers (21 MediaPipe keypoints)",
    )
    parser.add_argument(
        "--person-rule",
        choices=PERSON_RULES,
        help=dflt(
            "person mask from the hand points: their dilated hull (the paper's), or each hand cut out of the "
            "frame by GrabCut seeded by its points (follows the hand's outline; for real video; a "
            "--person-masks folder wins over both)",
            "person_rule",
        ),
    )
    parser.add_argument(
        "--separate-hands",
        action="store_true",
        help="inside one hand's dilated hull (and no other's), give every hand responsibility to that hand: "
        "two hands that move together (holding one object) no longer share each other's pixels",
    )
    parser.add_argument(
        "--smoothing",
        choices=SMOOTHINGS,
        help=dflt(
            "edge-aware smoothing of the responsibility on the frame (guided filter or SLIC superpixel mean; "
            "meant for thin/flat objects; lowered Pair on synthetic clips)",
            "smoothing",
        ),
    )
    parser.add_argument(
        "--smoothing-radius",
        type=float,
        help=dflt(
            "guided-filter radius / superpixel size, fraction of the image diagonal", "smoothing_radius"
        ),
    )


#: ``PseudoLabelConfig`` field -> the ``add_label_arguments`` destination that sets it.
_LABEL_FIELDS = {
    "temperature": "temperature",
    "background": "background",
    "homography": "homography",
    "inlier_threshold": "inlier_threshold",
    "hull_dilation": "hull_dilation",
    "smoothing": "smoothing",
    "smoothing_radius": "smoothing_radius",
    "person_rule": "person_rule",
}
#: ``FlowConfig`` field (of ``PseudoLabelConfig.flow_config``) -> the destination that sets it.
_FLOW_FIELDS = {
    "method": "flow",
    "preset": "dis_preset",
    "raft_model": "raft_model",
    "raft_weights": "raft_weights",
}


def label_config(args: argparse.Namespace, offsets: str | None = None):
    """The :class:`~cohesiv.config.PseudoLabelConfig` of parsed :func:`add_label_arguments`.

    Options left unset (None) take the config's default.

    Args:
        args: the parsed arguments.
        offsets: used when ``args.offsets`` is None (None: the config's offsets).

    Raises:
        CohesivError: a bad value (the message names it), or ``--flow raft`` without weights.
    """
    from cohesiv._checks import parse_int_list
    from cohesiv.errors import CohesivError

    given = {f: getattr(args, dest) for f, dest in _LABEL_FIELDS.items() if getattr(args, dest) is not None}
    flow = {f: getattr(args, dest) for f, dest in _FLOW_FIELDS.items() if getattr(args, dest) is not None}
    if flow:
        given["flow_config"] = dataclasses.replace(default_of(PseudoLabelConfig, "flow_config"), **flow)
    text = args.offsets if args.offsets is not None else offsets
    try:
        if text is not None:
            ks = parse_int_list(text)
            if not ks or 0 in ks:
                raise ValueError(f"--offsets must be non-zero integers, got {text!r}")
            given["offsets"] = tuple(sorted({s * abs(k) for k in ks for s in (-1, 1)}))
        config = PseudoLabelConfig(
            fb_check=not args.no_fb_check,
            forearm=args.forearm,
            separate_hands=args.separate_hands,
            **given,
        )
    except ValueError as e:
        raise CohesivError(str(e)) from None
    if config.flow == "raft" and not config.raft_weights:
        raise CohesivError("--flow raft needs --raft-weights FILE (a local RAFT checkpoint)")
    return config


def _fitting(tracks, clip, hands_path):
    """Return ``tracks`` after checking that they fit the clip (errors name the hands file)."""
    from cohesiv.io import FrameReader, check_tracks_match_clip

    reader = FrameReader(clip)
    check_tracks_match_clip(tracks, reader.size, len(reader), hands_path)
    return tracks


def _hands_for(clip, args, n_clips):
    from pathlib import Path

    from cohesiv.errors import CohesivError, InputError
    from cohesiv.io import read_hands

    clip = Path(clip)
    if args.hands:
        if n_clips > 1:
            raise CohesivError("--hands FILE works with one clip; put a hands.json inside each clip folder")
        return _fitting(read_hands(args.hands), clip, args.hands)
    if args.detect_hands:
        try:
            from cohesiv.hands import detect_hands
        except ImportError as e:
            raise CohesivError(
                f"--detect-hands needs cohesiv.hands.detect_hands (MediaPipe), unavailable here ({e}); "
                "install the 'hands' extra or pass --hands FILE"
            ) from None
        return detect_hands(clip)
    cands = [clip / "hands.json"] if clip.is_dir() else [clip.with_name(clip.stem + ".hands.json")]
    for c in cands:
        if c.is_file():
            return _fitting(read_hands(c), clip, c)
    raise InputError(clip, f"no hand points: no {cands[0].name} found; pass --hands FILE or --detect-hands")


def run(args: argparse.Namespace) -> int:
    """Run ``cohesiv pseudolabel``; return the exit status."""
    from pathlib import Path

    from cohesiv.errors import CohesivError
    from cohesiv.io import FrameReader
    from cohesiv.responsibility.dataset import (
        ClipSource,
        parse_frame_spec,
        parse_shard,
        write_dataset,
    )

    try:
        shard = parse_shard(args.shard)
    except ValueError as e:
        raise CohesivError(str(e)) from None
    config = dataclasses.replace(label_config(args), stop_at_wrist=args.stop_at_wrist)

    clips = []
    for c in args.clips:
        frames = None
        if args.frames:
            try:
                frames = parse_frame_spec(args.frames, len(FrameReader(c)))
            except ValueError as e:
                raise CohesivError(f"{c}: {e}") from None
        clips.append(
            ClipSource(
                path=Path(c),
                hands=_hands_for(c, args, len(args.clips)),
                frames=frames,
                person_masks=None if args.person_masks is None else Path(args.person_masks),
            )
        )
    summary = write_dataset(
        clips, args.out, config, shard=shard, viz=args.viz, progress=not args.quiet and sys.stderr.isatty()
    )
    if not args.quiet:
        print(summary.to_text(), file=sys.stderr)
        print(f"dataset: {args.out}", file=sys.stderr)
    return 0
