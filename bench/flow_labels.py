"""Flow chosen by what it does to the pseudo-labels: label quality vs labeled frames per second.

For every flow variant (DIS presets, DIS with tuned parameters, downscaled DIS, forward-backward
weighting on/off, the other offline OpenCV flows), prints

* the pseudo-labels' quality on synthetic clips with exact labels (``cohesiv synth``), static and
  moving camera: Thresholded Responsibility (``label_frame`` with ``cohesiv pseudolabel``'s
  defaults; homography background on the moving camera), threshold fitted on the validation
  clips (best All mIoU), All / Pair / Hand / Obj mIoU % on the test clips;
* labeled frames per second when labelling every frame of a clip as ``cohesiv pseudolabel`` does
  (one sliding flow window, each frame pair computed once; decoding and file writes excluded;
  OpenCV with its default thread count, which ``pseudolabel`` leaves alone), all variants timed
  in this run, interleaved clip by clip, fastest of ``--reps`` rounds (compare ratios: the machine
  is shared). Like the writer, the variants compute the next frame's flows in a second thread only
  when a core is free at the start (``--flow-thread auto``). CPU ms per labeled frame (all
  threads) are printed beside the wall rate;
* the same speed for a **reference**: a simple per-frame labeller (6 forward DIS-medium flows
  computed afresh for every frame, no cache, no forward-backward check, no flow thread, OpenCV's
  default threads), as the issue's reference. It calls the same ``label_frame``, so it gains from
  any speed-up of the labelling too (the ratio is conservative);
* the default preset and the reference again with everything on one thread ("1 thread": no flow
  thread, OpenCV single-threaded), the ratio on one core.

The default rule: the best mean of All over both cameras among variants at >= ``--min-fps``
labeled frames per second (and >= 2x the reference's, in the same run).

    OMP_NUM_THREADS=1 .venv/bin/python bench/flow_labels.py                 # sweep: 4 val + 8 test clips per camera
    OMP_NUM_THREADS=1 .venv/bin/python bench/flow_labels.py --val 10 --test 30 --variants dis-fast,dis-medium-s0.5
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baselines import Config, SparseExactFlow, fit_all, synth, test_all  # noqa: E402

from cohesiv.eval.baselines import EstimatedFlow, ResponsibilityBaseline  # noqa: E402
from cohesiv.flow import FlowCache  # noqa: E402
from cohesiv.flow.defaults import DEFAULT_DIS_PRESET  # noqa: E402
from cohesiv.flow.dis import DISFlow  # noqa: E402
from cohesiv.io import FrameReader, read_hands  # noqa: E402
from cohesiv.responsibility.labeler import (  # noqa: E402
    PseudoLabelConfig,
    flow_pairs,
    label_frame,
    usable_offsets,
)
from cohesiv.threads import auto_threads  # noqa: E402

#: OpenCV's own thread count (before this bench sets it to 1): what ``cohesiv pseudolabel`` runs with.
CV_DEFAULT_THREADS = cv2.getNumThreads()


class OpenCVFlow:
    """A non-DIS OpenCV flow as ``(frame_a, frame_b) -> (2, H, W)`` float32."""

    def __init__(self, name: str) -> None:
        self.name = name
        if name == "pcaflow":
            self._m = cv2.optflow.createOptFlow_PCAFlow()
        elif name == "deepflow":
            self._m = cv2.optflow.createOptFlow_DeepFlow()

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if self.name == "rlof":  # RLOF wants BGR
            f = cv2.optflow.calcOpticalFlowDenseRLOF(
                np.ascontiguousarray(a[..., ::-1]), np.ascontiguousarray(b[..., ::-1]), None
            )
            return f.transpose(2, 0, 1)
        ga, gb = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
        if self.name == "farneback":
            f = cv2.calcOpticalFlowFarneback(ga, gb, None, 0.5, 4, 15, 3, 5, 1.2, 0)
        else:
            f = self._m.calc(ga, gb, None)
        return f.transpose(2, 0, 1)


#: name -> (estimator factory, config overrides, note)
VARIANTS = {
    "dis-ultrafast": (lambda: DISFlow("ultrafast"), {}, "OpenCV preset"),
    "dis-fast": (lambda: DISFlow("fast"), {}, "OpenCV preset (old default)"),
    "dis-medium": (lambda: DISFlow("medium"), {}, "OpenCV preset"),
    "dis-fast-nofb": (lambda: DISFlow("fast"), {"fb_check": False}, "no fwd-bwd weighting"),
    "dis-medium-nofb": (lambda: DISFlow("medium"), {"fb_check": False}, "no fwd-bwd weighting"),
    "dis-fast-fs1": (lambda: DISFlow("fast", finest_scale=1), {}, "finest scale 1"),
    "dis-fast-fs1-vr10": (
        lambda: DISFlow("fast", finest_scale=1, var_refine_iters=10),
        {},
        "finest scale 1, 10 var. iters",
    ),
    "dis-fast-fs1-vr0": (
        lambda: DISFlow("fast", finest_scale=1, var_refine_iters=0),
        {},
        "finest scale 1, no var.",
    ),
    "dis-fast-fs1-s0.75": (lambda: DISFlow("fast", finest_scale=1, scale=0.75), {}, "fs1 on 3/4-size frames"),
    "dis-ultrafast-fs1": (lambda: DISFlow("ultrafast", finest_scale=1), {}, "ultrafast, finest scale 1"),
    "dis-fast-fs1-nofb": (lambda: DISFlow("fast", finest_scale=1), {"fb_check": False}, "fs1, no fwd-bwd"),
    "dis-medium-st4": (lambda: DISFlow("medium", patch_stride=4), {}, "medium, patch stride 4"),
    "dis-medium-gd12": (lambda: DISFlow("medium", grad_descent_iters=12), {}, "medium, 12 GD iters"),
    "dis-medium-vr10": (lambda: DISFlow("medium", var_refine_iters=10), {}, "medium, 10 var. iters"),
    "dis-medium-p12": (lambda: DISFlow("medium", patch_size=12), {}, "medium, patch 12"),
    "dis-medium-fs0": (lambda: DISFlow("medium", finest_scale=0), {}, "medium, finest scale 0"),
    "dis-medium-s0.5": (lambda: DISFlow("medium", scale=0.5), {}, "medium on 1/2-size frames"),
    "dis-medium-s0.75": (lambda: DISFlow("medium", scale=0.75), {}, "medium on 3/4-size frames"),
    "dis-fast-s0.5": (lambda: DISFlow("fast", scale=0.5), {}, "fast on 1/2-size frames"),
    "farneback": (lambda: OpenCVFlow("farneback"), {}, "OpenCV Farneback"),
    "pcaflow": (lambda: OpenCVFlow("pcaflow"), {}, "OpenCV contrib PCAFlow"),
    "rlof": (lambda: OpenCVFlow("rlof"), {}, "OpenCV contrib dense RLOF"),
    "deepflow": (lambda: OpenCVFlow("deepflow"), {}, "OpenCV contrib DeepFlow"),
}
# finest scale 1 with a coarser patch stride or fewer gradient-descent iterations, on both bases
for _base in ("fast", "ultrafast"):
    for _suffix, _param, _value, _note in (
        ("st5", "patch_stride", 5, "stride 5"),
        ("st6", "patch_stride", 6, "stride 6"),
        ("gd8", "grad_descent_iters", 8, "8 GD iters"),
    ):
        VARIANTS[f"dis-{_base}-fs1-{_suffix}"] = (
            functools.partial(DISFlow, _base, finest_scale=1, **{_param: _value}),
            {},
            f"{_base}, finest scale 1, {_note}",
        )
DEFAULT_VARIANTS = ",".join(k for k in VARIANTS if k not in ("pcaflow", "rlof", "deepflow"))


def label_seconds(
    clip: Path,
    make_est,
    config: PseudoLabelConfig,
    *,
    reference: bool = False,
    prefetch: bool = True,
    cv_threads: int | None = None,
) -> tuple[int, float, float]:
    """``(frames, wall seconds, CPU seconds of all threads)`` to label every frame of ``clip`` (flow + labels; no decoding, no writes).

    ``reference``: no flow cache (every frame computes its own forward flows), as a simple labeller,
    in one thread. Otherwise as ``cohesiv pseudolabel`` does it: one flow cache for the clip and,
    with ``prefetch``, the next frame's flows computed in a second thread while this one is labeled.
    ``cv_threads``: OpenCV's threads for this clip (None: OpenCV's default, as ``cohesiv pseudolabel``
    runs it); OpenCV is set back to one thread after the clip.
    """
    reader = FrameReader(clip / "frames")
    frames = [reader.frame(i) for i in range(len(reader))]
    tracks = read_hands(clip / "hands.json")
    est = make_est()
    n = len(frames)
    cv2.setNumThreads(CV_DEFAULT_THREADS if cv_threads is None else cv_threads)
    t0, c0 = time.perf_counter(), time.process_time()
    cache = FlowCache(est, frames.__getitem__, max_frames=n + 2, prefetch=prefetch and not reference)
    for t in range(n):
        if reference:
            cache = FlowCache(est, frames.__getitem__)
        hands = tracks.hands_at(t)
        ks = usable_offsets(config.offsets, t, n)
        cache.prefetch(flow_pairs(t, ks, config.fb_check))
        if t + 1 < n:
            cache.prefetch(flow_pairs(t + 1, usable_offsets(config.offsets, t + 1, n), config.fb_check))
        label_frame(cache.get, t, ks, [h.points for h in hands], reader.size, config, image=frames[t])
    cache.close()
    out = n, time.perf_counter() - t0, time.process_time() - c0
    cv2.setNumThreads(1)
    return out


def label_speeds(clips: list[Path], jobs: dict, reps: int) -> dict:
    """Labeled frames/s and CPU ms per frame of each job ``name -> (make_est, config, reference, prefetch, cv_threads)``.

    The jobs take turns clip by clip, ``reps`` rounds; each (job, clip) keeps its fastest round (and
    that round's CPU time), so that a burst of load from other processes does not favour one variant.

    Returns:
        ``name -> (labeled frames per wall second, CPU ms per labeled frame)``.
    """
    best: dict = {}
    for _ in range(reps):
        for clip in clips:
            for name, (make, cfg, ref, pre, cvt) in jobs.items():
                n, sec, cpu = label_seconds(clip, make, cfg, reference=ref, prefetch=pre, cv_threads=cvt)
                key = (name, clip)
                if sec < best.get(key, (n, np.inf, 0.0))[1]:
                    best[key] = (n, sec, cpu)
    out = {}
    for name in jobs:
        n = sum(best[(name, c)][0] for c in clips)
        out[name] = (
            n / sum(best[(name, c)][1] for c in clips),
            1e3 * sum(best[(name, c)][2] for c in clips) / n,
        )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/cohesiv-bench-flow-labels", help="synthetic clips go here")
    ap.add_argument("--val", type=int, default=4, help="validation clips per camera (threshold fit)")
    ap.add_argument("--test", type=int, default=8, help="test clips per camera")
    ap.add_argument("--frames", type=int, default=13)
    ap.add_argument("--label-every", type=int, default=3)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--cameras", default="static,moving")
    ap.add_argument(
        "--variants", default=DEFAULT_VARIANTS, help=f"comma-separated, from {', '.join(VARIANTS)}"
    )
    ap.add_argument(
        "--speed-clips", type=int, default=3, help="clips (per camera) labelled densely for the speed"
    )
    ap.add_argument("--reps", type=int, default=2, help="speed rounds (each variant keeps its fastest)")
    ap.add_argument("--min-fps", type=float, default=20.0, help="the default must label at least this fast")
    ap.add_argument("--no-quality", action="store_true", help="speed only")
    ap.add_argument(
        "--flow-thread",
        choices=("auto", "on", "off"),
        default="auto",
        help="the next frame's flows in a second thread (auto: as cohesiv pseudolabel, when a core is free)",
    )
    ap.add_argument(
        "--forearm", action="store_true", help="pseudo-labels with the forearm band (person mask)"
    )
    ap.add_argument("--smoothing", action="store_true", help="also each variant with --smoothing guided")
    ap.add_argument(
        "--smoothing-radii", default="0.02", help="guided-filter radii (fractions of the diagonal)"
    )
    ap.add_argument("--smoothing-kinds", default="guided", help="guided and/or superpixel")
    a = ap.parse_args()
    cv2.setNumThreads(1)
    import torch

    torch.set_num_threads(1)
    names = [v.strip() for v in a.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant {unknown[0]!r}; choose from {', '.join(VARIANTS)}")
    thread = a.flow_thread == "on" or (a.flow_thread == "auto" and auto_threads() >= 2)
    omp = os.environ.get("OMP_NUM_THREADS", "")
    print(f"$ OMP_NUM_THREADS={omp} .venv/bin/python bench/flow_labels.py {' '.join(sys.argv[1:])}")
    print(
        f"load average at start: {os.getloadavg()[0]:.2f}, {os.getloadavg()[1]:.2f}, {os.getloadavg()[2]:.2f}"
        f"; flow thread: {'on' if thread else 'off'} (--flow-thread {a.flow_thread})"
    )
    rows = {}  # (variant, smoothing) -> {camera: metrics}
    speed = {}
    cpu = {}  # CPU ms per labeled frame (all threads)
    work = Path(a.work)
    tag = f"{a.size}_f{a.frames}_e{a.label_every}"
    for camera in a.cameras.split(","):
        bg = "homography" if camera == "moving" else "static"
        base_cfg = PseudoLabelConfig(background=bg, forearm=a.forearm)
        val = synth(work / f"{camera}_{tag}_val{a.val}", a.val, a.frames, a.size, 1000, camera, a.label_every)
        test = synth(
            work / f"{camera}_{tag}_test{a.test}", a.test, a.frames, a.size, 2000, camera, a.label_every
        )
        full = sorted((work / f"{camera}_{tag}_test{a.test}" / "full").glob("clip_*"))[: a.speed_clips]
        cfgs = []
        jobs = {
            ("reference", "none"): (
                lambda: DISFlow("medium"),
                replace(base_cfg, fb_check=False),
                True,
                False,
                None,
            )
        }
        jobs[("reference", "1 thread")] = (*jobs[("reference", "none")][:4], 1)
        for name in names:
            make, over, _ = VARIANTS[name]
            source = EstimatedFlow(make(), name)  # shared by the smoothing variants (one flow cache)
            radii = [float(r) for r in a.smoothing_radii.split(",")] if a.smoothing else []
            kinds = a.smoothing_kinds.split(",")
            for sm in ["none"] + [f"{k}{r:g}" for k in kinds for r in radii]:
                kind = sm.rstrip("0123456789.")
                smooth = (
                    {} if sm == "none" else {"smoothing": kind, "smoothing_radius": float(sm[len(kind) :])}
                )
                cfg = replace(base_cfg, **smooth, **over)
                jobs[(name, sm)] = (make, cfg, False, thread, None)
                if sm == "none" and name == f"dis-{DEFAULT_DIS_PRESET}":  # the default on one thread
                    jobs[(name, "1 thread")] = (make, cfg, False, False, 1)
                base = ResponsibilityBaseline(source, cfg)
                cfgs.append(Config(f"{name}|{sm}", "flow", base, "responsibility"))
        t0 = time.perf_counter()
        for key, (fps, cpu_ms) in label_speeds(full, jobs, a.reps).items():
            speed.setdefault(key, {})[camera] = fps
            cpu.setdefault(key, {})[camera] = cpu_ms
        print(
            f"[{camera}] speed: {len(jobs)} jobs x {len(full)} clips x {a.reps} rounds, {time.perf_counter() - t0:.0f} s",
            file=sys.stderr,
        )
        gt_cfg = Config(
            "exact|none", "flow", ResponsibilityBaseline(SparseExactFlow(), base_cfg), "responsibility"
        )
        if a.no_quality:
            continue
        cfgs.append(gt_cfg)
        taus = fit_all(cfgs, val)
        metrics, _ = test_all(cfgs, test, taus, [])
        for c in cfgs:
            name, sm = c.name.split("|")
            rows.setdefault((name, sm), {})[camera] = (taus[c.name][0], metrics[c.name])
        n_img = next(iter(metrics.values()))["n_images"]
        print(
            f"[{camera}] {len(test)} test clips, {n_img} labeled frames; thresholds fitted on {len(val)} val clips",
            file=sys.stderr,
        )

    cams = a.cameras.split(",")
    print(
        f"\nPseudo-label quality (Thresholded Responsibility, mIoU %) vs labeled frames/s at {a.size} (as `cohesiv pseudolabel` runs: OpenCV's default {CV_DEFAULT_THREADS} threads; {'flows of the next frame in a second thread' if thread else 'no flow thread'}; rows marked '1 thread': one thread in all)"
    )
    print(
        f"quality: {a.test} test clips per camera, {a.frames} frames, scored every {a.label_every}; speed: every frame of {a.speed_clips} clips per camera"
    )
    head = (
        f"{'variant':<22}{'smooth':<7}"
        + "".join(f"| {c:<7} tau  All  Pair Hand  Obj " for c in cams)
        + "| mean All | frames/s"
    )
    print(head)

    def fmt(v):
        return "  -  " if v is None or not np.isfinite(v) else f"{v:5.1f}"

    ref_key = ("reference", "none")  # run as the variants are (OpenCV's default threads)
    ref = np.mean(list(speed[ref_key].values()))
    best = None
    for key in [*(k for k in rows if k[0] != "exact"), ("exact", "none")]:
        if key not in rows:
            continue
        line = f"{key[0]:<22}{key[1]:<13}"
        alls = []
        for c in cams:
            tau, m = rows[key][c]
            alls.append(m["All"]["mIoU"])
            line += (
                f"| {'':<7}{tau:4.2f} "
                + " ".join(fmt(m[t]["mIoU"]) for t in ("All", "Pair", "Hand", "Obj"))
                + " "
            )
        fps = np.mean(list(speed[key].values())) if key in speed else float("nan")
        line += f"| {np.mean(alls):8.1f} | {fps:8.1f}"
        print(line)
        if key[0] != "exact" and fps >= max(a.min_fps, 2 * ref) and (best is None or np.mean(alls) > best[1]):
            best = (key, float(np.mean(alls)), fps)
    for key, v in speed.items():
        if key[0] == "reference":
            what = f"per-frame DIS medium, no cache, no fwd-bwd check, {'one thread' if key[1] == '1 thread' else 'OpenCV default threads'}"
            print(f"{'reference':<35}| {what:<88}| {np.mean(list(v.values())):8.1f}")
    for key, v in speed.items():
        if key not in rows and key[0] != "reference":
            print(f"{key[0]:<22}{key[1]:<13}| speed only {'':>70}| {np.mean(list(v.values())):8.1f}")
    ref_cpu = np.mean(list(cpu[ref_key].values()))
    print(
        f"\nspeed of the default preset ({DEFAULT_DIS_PRESET}) vs the reference, in this run (mean over"
        " cameras; the '1 thread' rows: both on one thread, no flow thread):"
    )
    for key in [
        ("reference", "none"),
        ("reference", "1 thread"),
        (f"dis-{DEFAULT_DIS_PRESET}", "none"),
        (f"dis-{DEFAULT_DIS_PRESET}", "1 thread"),
    ]:
        if key in speed:
            fps, ms = np.mean(list(speed[key].values())), np.mean(list(cpu[key].values()))
            print(
                f"  {key[0]:<20}{key[1]:<12}{fps:6.1f} labeled frames/s ({fps / ref:4.2f}x), "
                f"{ms:5.1f} CPU ms per frame ({ref_cpu / ms:4.2f}x less)"
            )
    if best is not None:
        print(
            f"default rule (best mean All at >= {max(a.min_fps, 2 * ref):.1f} labeled frames/s = max(--min-fps, 2x reference)): {best[0][0]} smoothing={best[0][1]} (All {best[1]:.1f}, {best[2]:.1f} frames/s)"
        )
    print(
        f"load average at end: {os.getloadavg()[0]:.2f}, {os.getloadavg()[1]:.2f}, {os.getloadavg()[2]:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
