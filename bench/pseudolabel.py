"""Speed of `cohesiv pseudolabel`: labeled frames per second, and flow vs the rest.

Runs the dataset writer exactly as the command does (decode, DIS flow with the pair cache,
forward-backward check, responsibility over offsets ±1..±3, masks, atomic writes) on a real
egocentric clip (../shared/data/ego4d-lavila-clips, 60 frames) resized to each size, with two
hands given as box grids (25 points each; their position does not change the cost). Every number
printed is measured in this run, so ratios are comparable on a shared machine.

    .venv/bin/python bench/pseudolabel.py                   # 320x240 and 480x360, 60 frames
    .venv/bin/python bench/pseudolabel.py --frames 30 --sizes 320x240 --background homography
    .venv/bin/python bench/pseudolabel.py --quality 6       # label quality on synthetic clips

``--quality N`` instead labels N synthetic clips (cohesiv.synth, 160x120, 12 frames, mixed static /
moving camera) with exact (gt) and DIS flow, static and homography background, and prints the
mean IoU of each hand's thresholded responsibility (R_k > 0.5) with its ground-truth hand + held
object (Pair), and the person / object mask IoUs against the GT hand and object.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from cohesiv._checks import parse_size
from cohesiv.hands.boxes import box_grid_points
from cohesiv.io import Hand, HandTracks, read_hands, write_hands
from cohesiv.responsibility.dataset import ClipSource, PseudoLabelConfig, write_dataset

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = REPO.parent / "shared" / "data" / "ego4d-lavila-clips"


def _clip_folder(video: Path, size: tuple[int, int], n: int, folder: Path) -> HandTracks:
    # OpenCV decodes here: cohesiv.io.FrameReader can hang in PyAV's logging callback with
    # threaded decoding (PyAV-Org/PyAV#751, #909); reported to the lead.
    w, h = size
    (folder / "frames").mkdir(parents=True)
    cap = cv2.VideoCapture(str(video))
    t = 0
    while t < n:
        ok, bgr = cap.read()
        if not ok:
            break
        cv2.imwrite(
            str(folder / "frames" / f"{t:06d}.png"), cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA)
        )
        t += 1
    cap.release()
    n = t
    boxes = [(0.15 * w, 0.55 * h, 0.40 * w, 0.95 * h), (0.60 * w, 0.55 * h, 0.85 * w, 0.95 * h)]
    frames = {
        t: [
            Hand(f"hand{i}", side, box_grid_points(b))
            for i, (b, side) in enumerate(zip(boxes, ("left", "right")))
        ]
        for t in range(n)
    }
    tracks = HandTracks((w, h), frames)
    write_hands(folder / "hands.json", tracks)
    return tracks


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else float("nan")


def quality(n_clips: int) -> None:
    from cohesiv.io import read_label
    from cohesiv.io.labels import HAND_LABEL, OBJECT_LABELS
    from cohesiv.responsibility import object_mask
    from cohesiv.responsibility.dataset import read_manifest
    from cohesiv.synth import generate_dataset

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate_dataset(tmp / "synth", clips=n_clips, frames=12, size=(160, 120), seed=11, progress=False)
        clips = sorted(p for p in (tmp / "synth").iterdir() if (p / "scene.json").is_file())
        print(f"{n_clips} synthetic clips 160x120 x 12 frames; offsets ±1..±3, t = 2, fb check on")
        print(
            f"{'flow':>5} {'background':>11} {'forearm':>7} {'Pair mIoU':>9} {'person IoU':>10} "
            f"{'object IoU':>10} {'hands':>6}"
        )
        runs = [(f, b, False) for f in ("gt", "dis") for b in ("static", "homography")]
        runs += [("gt", "homography", True), ("dis", "homography", True)]
        srcs = [ClipSource(c, read_hands(c / "hands.json")) for c in clips]
        for flow, bg, forearm in runs:
            out = tmp / f"ds_{flow}_{bg}_{forearm}"
            write_dataset(
                srcs, out, PseudoLabelConfig(flow=flow, background=bg, forearm=forearm), progress=False
            )
            pair, pers, obj = [], [], []
            for e in read_manifest(out):
                lab = read_label(Path(e["clip"]) / "labels" / f"{e['frame']:06d}.png")
                with np.load(out / e["sample"]) as z:
                    r = z["responsibility"].astype(np.float32)
                    person = z["person"]
                pers.append(_iou(person > 0, np.isin(lab, (1, 2))))
                obj.append(_iou(object_mask(r, person) > 0, np.isin(lab, (3, 4, 5))))
                for k, hd in enumerate(e["hands"], 1):
                    if hd["side"] in HAND_LABEL:
                        gt = (lab == HAND_LABEL[hd["side"]]) | np.isin(lab, OBJECT_LABELS[hd["side"]])
                        pair.append(_iou(r[k] > 0.5, gt))
            print(
                f"{flow:>5} {bg:>11} {str(forearm):>7} {100 * np.nanmean(pair):9.1f} "
                f"{100 * np.nanmean(pers):10.1f} {100 * np.nanmean(obj):10.1f} {len(pair):6d}"
            )


def compare_presets(args) -> int:
    """Labeled frames/s of ``cohesiv pseudolabel`` (the dataset writer, end to end) per DIS preset."""
    import os
    from dataclasses import replace

    video = args.video or next(iter(sorted(DEFAULT_CLIP.glob("*.mp4"))), None)
    presets = args.dis_presets.split(",")
    cfg = PseudoLabelConfig(background=args.background, fb_check=not args.no_fb_check)
    print(f"$ .venv/bin/python bench/pseudolabel.py {' '.join(sys.argv[1:])}")
    print(f"load average at start: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(
        f"clip {video.name}, {args.frames} frames, cohesiv pseudolabel's writer end to end (decode, flow, fb "
        f"check, responsibility, masks, writes), background={cfg.background}; fastest of {args.rounds} interleaved rounds"
    )
    for spec in args.sizes.split(","):
        size = parse_size(spec)
        best: dict = {}
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            tracks = _clip_folder(video, size, args.frames, tmp / "clip")
            for r in range(args.rounds):
                for preset in presets:
                    out = tmp / f"ds-{preset}-{r}"
                    c = replace(cfg, flow_preset=preset)
                    s = write_dataset([ClipSource(tmp / "clip", tracks)], out, c, progress=False)
                    fps = s.samples_written / s.wall
                    flow = s.times.get("flow", 0.0) / s.wall
                    if fps > best.get(preset, (0, 0))[0]:
                        best[preset] = (fps, flow)
        for preset in presets:
            fps, flow = best[preset]
            print(
                f"{spec:>9} {preset:>14} {fps:8.2f} labeled frames/s (flow {100 * flow:.0f}% of the wall time)"
            )
    print(f"load average at end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", type=Path, default=None, help="clip to use (default: the ego4d clip)")
    p.add_argument("--sizes", default="320x240,480x360")
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--background", default="static", choices=("static", "homography"))
    p.add_argument("--no-fb-check", action="store_true")
    p.add_argument("--quality", type=int, metavar="N", help="label quality on N synthetic clips instead")
    p.add_argument(
        "--dis-presets",
        default=None,
        help="compare these DIS presets (e.g. fast,medium,ultrafast-fs1): labeled frames/s of each, "
        "interleaved over --rounds rounds, fastest round kept",
    )
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    if args.dis_presets:
        return compare_presets(args)
    if args.quality:
        quality(args.quality)
        return 0
    video = args.video or next(iter(sorted(DEFAULT_CLIP.glob("*.mp4"))), None)
    if video is None:
        print("no clip: pass --video", file=sys.stderr)
        return 2
    cfg = PseudoLabelConfig(
        offsets=(-3, -2, -1, 1, 2, 3), background=args.background, fb_check=not args.no_fb_check
    )
    print(
        f"clip {video.name}, {args.frames} frames, offsets ±1..±3, DIS, background={cfg.background}, "
        f"fb_check={cfg.fb_check}, 2 hands x 25 points"
    )
    print(
        "flow = DIS pairs; fb = forward-backward check (cohesiv.flow); rest = everything else "
        "(decode, responsibility, masks, writes); wall and CPU (process time, all threads) seconds"
    )
    print(
        f"{'size':>9} {'frames/s':>8} {'wall s':>7} {'flow':>6} {'fb':>6} {'rest':>6} {'rest/flow':>9} "
        f"{'rest/(flow+fb)':>14} | {'CPU s':>6} {'flow':>6} {'fb':>6} {'rest':>6} {'rest/flow':>9} "
        f"{'rest/(flow+fb)':>14} | rest by stage (wall s)"
    )
    for spec in args.sizes.split(","):
        size = parse_size(spec)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            tracks = _clip_folder(video, size, args.frames, tmp / "clip")
            s = write_dataset([ClipSource(tmp / "clip", tracks)], tmp / "ds", cfg, progress=False)
        cols = []
        for total, times in ((s.wall, s.times), (s.wall_cpu, s.cpu)):
            flow, fb = times.get("flow", 0.0), times.get("consistency", 0.0)
            rest = total - flow - fb
            cols.append(
                f"{total:7.2f} {flow:6.2f} {fb:6.2f} {rest:6.2f} {rest / flow:9.2f} {rest / (flow + fb):14.2f}"
            )
        parts = {k: v for k, v in s.times.items() if k not in ("flow", "consistency")}
        stages = ", ".join(f"{k} {v:.2f}" for k, v in parts.items())
        print(f"{spec:>9} {s.samples_written / s.wall:8.2f} {cols[0]} | {cols[1][1:]} | {stages}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
