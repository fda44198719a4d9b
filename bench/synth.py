"""Benchmark of ``cohesiv synth``: ground-truth quality and generation speed.

Prints
  (a) the mean photometric error |I_t+1(x + f(x)) - I_t(x)| (gray levels, 0-255, mean over RGB)
      on non-occluded pixels before (f = 0) and after warping frame t+1 back with the exact GT
      flow (cv2.remap, bilinear), for static- and moving-camera clips. Non-occluded: the target
      lies inside the image and the label at t+1 at the (nearest) target pixel is the label at t.
      "interior" also excludes pixels within 1 px of a label boundary (mixed, anti-aliased
      pixels, whose colour blends two layers that move differently);
  (b) the speed of ``cohesiv synth`` (a subprocess, start-up included) in frames per second;
  (c) for context, the end-point error of OpenCV DIS (medium preset) against the GT flow.

Usage: .venv/bin/python bench/synth.py [--clips 20] [--frames 24] [--size 320x240]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from cohesiv.io import read_flo, read_image, read_label


def photometric(clip: Path, frames: int) -> np.ndarray:
    """Return sums ``[[before, after, count], ...]`` for the brief's mask and the interior mask."""
    acc = np.zeros((2, 3))
    k = np.ones((3, 3), np.uint8)
    for t in range(frames - 1):
        a = read_image(clip / "frames" / f"{t:06d}.png").astype(np.float32)
        b = read_image(clip / "frames" / f"{t + 1:06d}.png").astype(np.float32)
        la, lb = (
            read_label(clip / "labels" / f"{t:06d}.png"),
            read_label(clip / "labels" / f"{t + 1:06d}.png"),
        )
        f = read_flo(clip / "flow" / f"{t:06d}.flo")
        h, w = la.shape
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        mx, my = xs + f[0], ys + f[1]
        warped = cv2.remap(b, mx, my, cv2.INTER_LINEAR)
        inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
        ix = np.clip(np.rint(mx), 0, w - 1).astype(int)
        iy = np.clip(np.rint(my), 0, h - 1).astype(int)
        same = inside & (lb[iy, ix] == la)
        uni_a = cv2.dilate(la, k) == cv2.erode(la, k)
        uni_b = cv2.dilate(lb, k) == cv2.erode(lb, k)
        interior = same & uni_a & uni_b[iy, ix]
        e0, e1 = np.abs(b - a).mean(2), np.abs(warped - a).mean(2)
        for j, m in enumerate((same, interior)):
            acc[j] += (e0[m].sum(), e1[m].sum(), m.sum())
    return acc


def dis_epe(clip: Path, frames: int, dis) -> tuple[float, float]:
    """Mean end-point error of DIS vs the GT flow on all pixels, and on the hand/object pixels."""
    tot = np.zeros(4)
    for t in range(frames - 1):
        a = cv2.cvtColor(read_image(clip / "frames" / f"{t:06d}.png"), cv2.COLOR_RGB2GRAY)
        b = cv2.cvtColor(read_image(clip / "frames" / f"{t + 1:06d}.png"), cv2.COLOR_RGB2GRAY)
        est = dis.calc(a, b, None).transpose(2, 0, 1)
        gt = read_flo(clip / "flow" / f"{t:06d}.flo")
        epe = np.linalg.norm(est - gt, axis=0)
        fg = read_label(clip / "labels" / f"{t:06d}.png") > 0
        tot += (epe.sum(), epe.size, epe[fg].sum(), fg.sum())
    return tot[0] / tot[1], tot[2] / max(tot[3], 1)


def main() -> None:
    """Run the benchmark and print its figures."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=20, help="clips per camera mode")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("static", "moving"):
            out = Path(tmp) / mode
            cmd = [sys.executable, "-m", "cohesiv", "synth", str(out), "--clips", str(args.clips)]
            cmd += [
                "--frames",
                str(args.frames),
                "--size",
                args.size,
                "--seed",
                str(args.seed),
                "--camera",
                mode,
            ]
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            dt = time.perf_counter() - t0
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
            n = args.clips * args.frames
            print(
                f"\n[{mode} camera] (b) cohesiv synth: {args.clips} clips x {args.frames} frames at {args.size} "
                f"in {dt:.1f} s wall = {n / dt:.1f} frames/s; CPU {cpu:.1f} s = {n / cpu:.1f} frames per CPU-second "
                f"(load average now {os.getloadavg()[0]:.1f})"
            )
            clips = sorted(out.glob("clip_*"))
            per_clip = np.stack([photometric(c, args.frames) for c in clips])  # (clips, 2, 3)
            for j, name in enumerate(("non-occluded (brief)", "interior")):
                tot = per_clip[:, j].sum(0)
                before, after = tot[0] / tot[2], tot[1] / tot[2]
                ratios = per_clip[:, j, 1] / np.maximum(per_clip[:, j, 0], 1e-9)
                print(
                    f"  (a) {name:22s} before {before:6.3f}  after {after:6.3f}  after/before {after / before:.3f}"
                    f"  (per clip: median {np.median(ratios):.3f}, worst {ratios.max():.3f}; "
                    f"{tot[2] / (len(clips) * (args.frames - 1)):.0f} px per pair)"
                )
            epes = np.array([dis_epe(c, args.frames, dis) for c in clips[: min(len(clips), 5)]])
            print(
                f"  (c) DIS medium vs GT flow, first {len(epes)} clips: EPE {epes[:, 0].mean():.2f} px "
                f"(hand/object pixels {epes[:, 1].mean():.2f} px)"
            )


if __name__ == "__main__":
    main()
