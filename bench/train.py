"""Training benchmarks: DDP (2 CPU processes) vs 1 process with the same global batch; resume cost.

    .venv/bin/python bench/train.py                      # defaults: resnet18, 64x64, batch 8, 30 steps
    .venv/bin/python bench/train.py --steps 60 --size 96 --out /tmp/bench_train
    .venv/bin/python bench/train.py --lr-sweep 1e-3,3e-3,1e-2 --steps 150   # CPU default: lr/schedule sweep

Makes a small synthetic pseudo-label dataset (cohesiv synth + DIS pseudo-labels), then trains the same
configuration three times through the command line:

* ``one``:  1 process (``python -m cohesiv train``);
* ``two``:  2 processes (``python -m torch.distributed.run --standalone --nproc_per_node=2 -m cohesiv train``),
  gloo on 127.0.0.1, each process taking 4 of the 8 samples of every global batch;
* ``seed``: 1 process with another seed (other initialisation, order and augmentation): the scale
  of the differences that "noise" means here.

It prints the three loss curves and the max / mean absolute difference of one vs two and of one vs seed.
The CPU has no SyncBatchNorm, so in the 2-process run BatchNorm normalises over 4 samples instead of
8: the curves agree within noise, not bit for bit (tests/train/test_ddp.py checks a BatchNorm-free
network to 5 %).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def make_data(root: Path, size: tuple[int, int]) -> Path:
    from cohesiv.io import read_hands
    from cohesiv.responsibility.dataset import ClipSource, PseudoLabelConfig, write_dataset
    from cohesiv.synth import generate_dataset

    ds = root / "pseudo"
    if (ds / "manifest.jsonl").is_file():
        return ds
    generate_dataset(root / "synth", clips=4, frames=10, size=size, seed=7, progress=False)
    clips = sorted(p for p in (root / "synth").iterdir() if p.is_dir())
    sources = [ClipSource(path=c, hands=read_hands(c / "hands.json")) for c in clips]
    write_dataset(sources, ds, PseudoLabelConfig(), progress=False)
    return ds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_train(args: list[str], procs: int) -> float:
    env = dict(os.environ)
    if procs == 1:
        cmd = [sys.executable, "-m", "cohesiv", "train", *args]
    else:
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
            "--master_addr=127.0.0.1", f"--master_port={free_port()}", "-m", "cohesiv", "train", *args,
        ]  # fmt: skip
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr[-3000:]}")
    return time.perf_counter() - t


def lr_sweep(a, out: Path, ds: Path, lrs: list[float], schedules: list[str]) -> None:
    """Train one run per (lr, schedule), calibrate on a synthetic val clip, evaluate on 2 held-out clips."""
    from cohesiv.eval.runner import evaluate_run
    from cohesiv.synth import generate_dataset
    from cohesiv.train import read_log
    from cohesiv.train.calibrate import calibrate_run

    generate_dataset(out / "val", clips=1, frames=10, size=(160, 120), seed=8, progress=False)
    generate_dataset(out / "test", clips=2, frames=10, size=(160, 120), seed=9, progress=False)
    val = sorted(p for p in (out / "val").iterdir() if p.is_dir())
    test = sorted(p for p in (out / "test").iterdir() if p.is_dir())
    rows = []
    for sched in schedules:
        for lr in lrs:
            run = out / f"sweep_{sched}_{lr:g}"
            args = [
                "--data", str(ds), "--size", str(a.size), "--batch", str(a.batch), "--steps", str(a.steps),
                "--encoder", a.encoder, "--lr", str(lr), "--schedule", sched, "--image-every", "0",
                "--save-every", str(a.steps), "--no-progress", "--out", str(run), "--resume",
            ]  # fmt: skip
            secs = run_train(args, 1)
            log = read_log(run)
            tail = float(np.mean([r["loss"] for r in log[-3:]]))
            cal = calibrate_run(run, val, progress=False)
            m = evaluate_run(run, test, progress=False)
            rows.append((sched, lr, tail, cal["objective_mIoU"], m["All"]["mIoU"], m["Pair"]["mIoU"], secs))
            print(f"{sched:8s} lr {lr:<7g} loss(last logs) {tail:.4f}  val All {rows[-1][3]:5.1f}  "
                  f"test All {rows[-1][4]:5.1f} Pair {rows[-1][5]:5.1f}  ({secs:.0f} s)", flush=True)  # fmt: skip


def main() -> None:
    from cohesiv.train import read_log

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/tmp/cohesiv_bench_train")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--encoder", default="resnet18")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-sweep", help="comma-separated learning rates: run the CPU-default sweep instead")
    ap.add_argument("--schedules", default="cosine", help="comma-separated schedules for --lr-sweep")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    ds = make_data(out, (160, 120))
    print(
        f"data: {ds} ({sum(1 for _ in open(ds / 'manifest.jsonl'))} samples, {time.perf_counter() - t:.0f} s)"
    )
    if a.lr_sweep:
        lr_sweep(a, out, ds, [float(v) for v in a.lr_sweep.split(",")], a.schedules.split(","))
        return
    common = [
        "--data", str(ds), "--size", str(a.size), "--batch", str(a.batch), "--steps", str(a.steps),
        "--encoder", a.encoder, "--lr", str(a.lr), "--log-every", "1", "--image-every", "0",
        "--save-every", str(a.steps), "--no-progress", "--warmup-steps", "5",
    ]  # fmt: skip
    runs = {"one": (1, 0), "two": (2, 0), "seed": (1, 1)}
    times = {}
    curves = {}
    for name, (procs, seed) in runs.items():
        run = out / f"run_{name}"
        if run.exists():
            import shutil

            shutil.rmtree(run)
        times[name] = run_train([*common, "--seed", str(seed), "--out", str(run)], procs)
        curves[name] = np.array([r["loss"] for r in read_log(run)])
    print(f"\n{a.encoder} {a.size}x{a.size}, global batch {a.batch}, {a.steps} steps, lr {a.lr}")
    print(f"{'step':>4} {'1 proc':>9} {'2 procs':>9} {'|diff|':>8} {'seed 1':>9}")
    for i in range(a.steps):
        c1, c2, cs = curves["one"][i], curves["two"][i], curves["seed"][i]
        print(f"{i + 1:4d} {c1:9.4f} {c2:9.4f} {abs(c1 - c2):8.4f} {cs:9.4f}")
    d12 = np.abs(curves["one"] - curves["two"])
    d1s = np.abs(curves["one"] - curves["seed"])
    print(f"\n1 vs 2 processes: max |diff| {d12.max():.4f}, mean |diff| {d12.mean():.4f}")
    print(f"1 process, seed 0 vs seed 1 (noise): max |diff| {d1s.max():.4f}, mean |diff| {d1s.mean():.4f}")
    print(f"ratio of mean |diff| (DDP / noise): {d12.mean() / max(d1s.mean(), 1e-12):.2f}")
    print(
        f"mean loss of the last 10 steps: 1 proc {curves['one'][-10:].mean():.4f}, "
        f"2 procs {curves['two'][-10:].mean():.4f}, seed 1 {curves['seed'][-10:].mean():.4f}"
    )
    print(
        f"wall time (incl. start-up): 1 proc {times['one']:.1f} s, 2 procs {times['two']:.1f} s "
        f"(ratio {times['two'] / times['one']:.2f}) on {os.cpu_count()} CPU cores"
    )


if __name__ == "__main__":
    main()
