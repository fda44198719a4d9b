"""Benchmark of cohesiv's flow stage: accuracy (EPE), speed, project overhead, memory.

Prints, for each method/preset:
  - EPE (mean end-point error, px) on each Middlebury pair with public ground truth
    (../shared/data/middlebury-other-gt-flow; unknown-flow pixels > 1e9 skipped) and on
    synthetic clips with exact ground truth (cohesiv.synth; "skipped" when not importable);
  - ms per pair at the native Middlebury sizes and at 480x360;
  - for DIS: the ratio of cohesiv's path (RGB in, (2, H, W) out) to a bare
    cv2.DISOpticalFlow.calc on grey images of the same pair, measured in the same run;
  - the most accurate preset at <= 15 ms per 480x360 pair (the default itself is chosen by
    label quality per second: bench/flow_labels.py);
  - peak RSS of `cohesiv flow` on a 1,000-frame vs a 100-frame clip (child processes).

Usage:
  .venv/bin/python bench/flow.py                     # everything (a few minutes on 2 cores)
  .venv/bin/python bench/flow.py --skip-memory --skip-raft
  .venv/bin/python bench/flow.py --raft-weights raft_small_C_T_V2-01064c6d.pth --raft-model small
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from cohesiv.flow import DEFAULT_DIS_PRESET, DIS_PRESETS, FlowEstimator
from cohesiv.flow.defaults import DIS_PRESET_NAMES
from cohesiv.flow.dis import to_grey
from cohesiv.io import read_flo, read_image, unknown_flow_mask

REPO = Path(__file__).resolve().parents[1]

DATA = Path(os.environ.get("COHESIV_DATA", REPO.parent / "shared" / "data"))
MIDDLEBURY = DATA / "middlebury-other-gt-flow"
BENCH_SIZE = (480, 360)
BUDGET_MS = 15.0


def epe(flow: np.ndarray, gt: np.ndarray) -> float:
    ok = ~unknown_flow_mask(gt)
    err = np.sqrt(((flow - gt) ** 2).sum(0))
    return float(err[ok].mean())


def median_ms(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def middlebury_pairs() -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    if not MIDDLEBURY.is_dir():
        return []
    out = []
    for seq in sorted(p for p in MIDDLEBURY.iterdir() if (p / "flow10.flo").exists()):
        a = read_image(seq / "frame10.png")
        b = read_image(seq / "frame11.png")
        out.append((seq.name, a, b, read_flo(seq / "flow10.flo", allow_nonfinite=True)))
    return out


def synth_pairs(n_clips: int, frames: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None:
    try:
        from cohesiv.synth import generate_clip
    except ImportError:
        return None
    pairs = []
    for i in range(n_clips):
        clip = generate_clip([2026, i], frames=frames, size=BENCH_SIZE, camera="mixed")
        for t in range(frames - 1):
            pairs.append((clip.frames[t], clip.frames[t + 1], clip.flows[t]))
    return pairs


def resized(img: np.ndarray) -> np.ndarray:
    return cv2.resize(img, BENCH_SIZE, interpolation=cv2.INTER_AREA)


def accuracy(name, est, mb, synth) -> dict:
    row = {"name": name, "mb": {}, "synth": None}
    for seq, a, b, gt in mb:
        row["mb"][seq] = epe(est(a, b), gt)
    if synth:
        row["synth"] = float(np.mean([epe(est(a, b), gt) for a, b, gt in synth]))
    return row


def interleaved_ms(fns: list, a: np.ndarray, b: np.ndarray, rounds: int) -> list[float]:
    """Median ms per call of each fn(a, b), the fns called in turn each round (same load for all)."""
    times = [[] for _ in fns]
    for fn in fns:
        fn(a, b)  # warm-up
    for i in range(rounds):
        order = list(range(len(fns)))
        if i % 2:
            order.reverse()
        for k in order:
            start = time.perf_counter()
            fns[k](a, b)
            times[k].append(time.perf_counter() - start)
    return [1000 * statistics.median(t) for t in times]


def timings(rows: list[dict], ests: list, mb, synth, reps: int) -> None:
    """Fill ms_native (mean over Middlebury pairs of the median) and ms_480 for each row."""
    native = [interleaved_ms(ests, a, b, reps) for _, a, b, _ in mb]
    a, b = (resized(mb[0][1]), resized(mb[0][2])) if mb else synth[0][:2]
    at480 = interleaved_ms(ests, a, b, 3 * reps)
    for k, row in enumerate(rows):
        row["ms_native"] = float(np.mean([t[k] for t in native])) if native else float("nan")
        row["ms_480"] = at480[k]


def overhead(
    preset: str, a: np.ndarray, b: np.ndarray, rounds: int = 100
) -> tuple[float, float, float, float]:
    """Bare cv2 calc on grey vs cohesiv's FlowEstimator on RGB, interleaved (order alternating).

    Returns:
        (median ms bare, median ms cohesiv, ratio of medians, ratio of minima).
    """
    est = FlowEstimator(preset=preset)
    bare = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
    ga, gb = to_grey(a), to_grey(b)
    t_bare, t_ours = [], []
    calls = [(lambda: bare.calc(ga, gb, None), t_bare), (lambda: est(a, b), t_ours)]
    for fn, _ in calls:
        fn()
    for i in range(rounds):
        for fn, times in calls if i % 2 else calls[::-1]:
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    mb, mo = 1000 * statistics.median(t_bare), 1000 * statistics.median(t_ours)
    return mb, mo, mo / mb, min(t_ours) / min(t_bare)


def write_moving_texture(path: Path, n: int, size=(320, 240)) -> None:
    """A cheap procedural clip: a large texture panned and slowly rotated, as mp4."""
    import av

    w, h = size
    rng = np.random.default_rng(0)
    tex = cv2.GaussianBlur(rng.random((2 * h, 2 * w, 3)).astype(np.float32), (0, 0), 3)
    tex = cv2.normalize(tex, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for t in range(n):
            m = cv2.getRotationMatrix2D((w, h), 0.05 * t, 1.0)
            m[:, 2] += (-w / 2 + 40 * np.sin(t / 30), -h / 2 + 30 * np.cos(t / 45))
            img = cv2.warpAffine(tex, m, (w, h), borderMode=cv2.BORDER_REFLECT)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


# Linux keeps a process's peak RSS across fork+exec, so a child started from this (large) process
# would report our peak. A tiny helper process starts the command and reports its child's peak.
_HELPER = """
import os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
_, status, usage = os.wait4(proc.pid, 0)
code = os.waitstatus_to_exitcode(status)
if code:
    sys.exit(proc.stderr.read().decode()[-500:])
print(usage.ru_maxrss / 1024, time.perf_counter() - start)
"""


def peak_rss_mb(args: list[str]) -> tuple[float, float]:
    """Run ``args`` as a grandchild; return (its peak RSS in MB, wall seconds)."""
    res = subprocess.run([sys.executable, "-c", _HELPER, *args], capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"{' '.join(args)} failed: {res.stderr}")
    rss, wall = (float(v) for v in res.stdout.split())
    return rss, wall


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--synth-clips", type=int, default=24)
    p.add_argument(
        "--synth-frames", type=int, default=4, help="frames per synthetic clip (pairs = frames - 1)"
    )
    p.add_argument("--reps", type=int, default=15, help="timing rounds per Middlebury pair (x3 at 480x360)")
    p.add_argument(
        "--raft-weights", help="local RAFT checkpoint: adds its EPE (else: timing only, random init)"
    )
    p.add_argument("--raft-model", choices=("small", "large"), default="small")
    p.add_argument("--skip-raft", action="store_true")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--memory-frames", default="100,1000")
    args = p.parse_args()

    import torch

    print(
        f"machine: {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, OpenCV {cv2.__version__}, "
        f"OpenCV threads {cv2.getNumThreads()}"
    )
    mb = middlebury_pairs()
    print(
        f"Middlebury: {len(mb)} pairs from {MIDDLEBURY}"
        if mb
        else f"Middlebury: skipped ({MIDDLEBURY} missing)"
    )
    synth = synth_pairs(args.synth_clips, args.synth_frames)
    if synth is None:
        print("synthetic: skipped (cohesiv.synth not importable)")
    else:
        print(
            f"synthetic: {args.synth_clips} clips x {args.synth_frames - 1} pairs = {len(synth)} pairs at "
            f"{BENCH_SIZE[0]}x{BENCH_SIZE[1]} (cohesiv.synth.generate_clip, seeds [2026, i], camera mixed); "
            f"zero-flow EPE {np.mean([epe(np.zeros_like(g), g) for _, _, g in synth]):.3f}"
        )
    if not mb and not synth:
        print("no data: nothing to measure")
        return 1

    ests = [FlowEstimator(preset=preset) for preset in DIS_PRESET_NAMES]
    rows = [accuracy(f"dis/{preset}", est, mb, synth) for preset, est in zip(DIS_PRESET_NAMES, ests)]
    timings(rows, ests, mb, synth, args.reps)
    if not args.skip_raft:
        if args.raft_weights:
            est = FlowEstimator(method="raft", raft_weights=args.raft_weights, raft_model=args.raft_model)
            rows.append(accuracy(f"raft/{args.raft_model}", est, mb, synth))
            timings(rows[-1:], [est], mb, synth, 1)
        else:
            from torchvision.models.optical_flow import raft_large, raft_small

            from cohesiv.flow.raft import RAFTFlow

            a480, b480 = (resized(mb[0][1]), resized(mb[0][2])) if mb else synth[0][:2]
            for model, build in [("small", raft_small), ("large", raft_large)]:
                est = RAFTFlow(build(weights=None).eval(), model)
                rows.append(
                    {
                        "name": f"raft/{model} (random init, 12 iters: speed only)",
                        "mb": {},
                        "synth": None,
                        "ms_native": float("nan"),
                        "ms_480": median_ms(lambda est=est, a=a480, b=b480: est(a, b), 1),
                    }
                )

    seqs = [s for s, *_ in mb]
    head = ["method"] + seqs + ["MB mean", "synth", "ms native", f"ms {BENCH_SIZE[0]}x{BENCH_SIZE[1]}"]
    print()
    print(" | ".join(f"{h:>10}" if i else f"{h:<46}" for i, h in enumerate(head)))
    for r in rows:
        mbv = [r["mb"].get(s, float("nan")) for s in seqs]
        mean = float(np.mean(mbv)) if r["mb"] else float("nan")
        r["mb_mean"] = mean
        synth_txt = "skipped" if r["synth"] is None else f"{r['synth']:.3f}"
        cells = [f"{v:10.3f}" for v in mbv] + [
            f"{mean:10.3f}",
            f"{synth_txt:>10}",
            f"{r['ms_native']:10.1f}",
            f"{r['ms_480']:10.1f}",
        ]
        print(" | ".join([f"{r['name']:<46}"] + cells))

    # default preset: best accuracy (mean of the benchmarks' mean EPE) within the time budget
    dis_rows = [r for r in rows if r["name"].startswith("dis/")]
    for r in dis_rows:
        parts = [v for v in (r["mb_mean"], r["synth"]) if v is not None and not np.isnan(v)]
        r["score"] = float(np.mean(parts))
    fit = [r for r in dis_rows if r["ms_480"] <= BUDGET_MS]
    best = min(fit, key=lambda r: r["score"]) if fit else min(dis_rows, key=lambda r: r["ms_480"])
    print(
        "\naccuracy score (mean of Middlebury mean EPE and synthetic EPE): "
        + ", ".join(f"{r['name']} {r['score']:.3f}" for r in dis_rows)
    )
    print(
        f"best flow accuracy at <= {BUDGET_MS:.0f} ms per {BENCH_SIZE[0]}x{BENCH_SIZE[1]} pair: {best['name']}; "
        f"cohesiv's DEFAULT_DIS_PRESET = {DEFAULT_DIS_PRESET!r} is chosen by what the flow does to the "
        "pseudo-labels per second (bench/flow_labels.py), not by end-point error"
    )

    print(
        f"\noverhead at {BENCH_SIZE[0]}x{BENCH_SIZE[1]} (median of 100 interleaved calls; "
        "bare = cv2 calc on grey, cohesiv = FlowEstimator on RGB incl. cvtColor):"
    )
    a, b = (resized(mb[0][1]), resized(mb[0][2])) if mb else synth[0][:2]
    for preset in DIS_PRESETS:
        t_bare, t_ours, ratio, ratio_min = overhead(preset, a, b)
        print(
            f"  dis/{preset:<10} bare {t_bare:6.2f} ms   cohesiv {t_ours:6.2f} ms   ratio {ratio:.3f} "
            f"(of minima {ratio_min:.3f})  {'ok (<= 1.2)' if ratio <= 1.2 else 'OVER 1.2'}"
        )

    if not args.skip_memory:
        print(
            "\nmemory: peak RSS of `python -m cohesiv flow CLIP --out DIR --backward` (colour images on), "
            "procedural 320x240 mp4 clips:"
        )
        rss, _ = peak_rss_mb([sys.executable, "-c", "import cohesiv.flow, av, torch, torchvision.utils"])
        print(f"  imports only (cohesiv.flow, av, torch, torchvision): peak RSS {rss:7.1f} MB")
        with tempfile.TemporaryDirectory(prefix="cohesiv-bench-flow-") as tmp:
            for n in (int(v) for v in args.memory_frames.split(",")):
                clip = Path(tmp) / f"clip{n}.mp4"
                write_moving_texture(clip, n)
                rss, wall = peak_rss_mb(
                    [
                        sys.executable,
                        "-m",
                        "cohesiv",
                        "flow",
                        str(clip),
                        "--out",
                        str(Path(tmp) / f"out{n}"),
                        "--backward",
                    ]
                )
                n_flo = sum(1 for _ in (Path(tmp) / f"out{n}" / "flow").rglob("*.flo"))
                print(f"  {n:5d} frames: peak RSS {rss:7.1f} MB, {wall:6.1f} s, {n_flo} .flo files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
