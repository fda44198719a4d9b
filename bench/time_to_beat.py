"""Time to beat the pseudo-labels: wall time of ONE training run until its model's test All and Pair
exceed the Thresholded Responsibility (TR) of the pseudo-labels it learns from.

The benchmark is the README's synthetic one (bench/experiment.py: 40 train / 10 val / 20 test clips,
16 frames at 256x192, mixed cameras, DIS flow, homography background; TR thresholds fit on val). One
``cohesiv train`` run keeps its weights every ``--every`` steps (``--keep-every``); after training,
each kept step is calibrated on val and evaluated on test (``cohesiv calibrate`` / ``cohesiv eval``,
on a run folder per step that shares the run's config). The training wall time of a step is the time
of its log record minus the start of the ``cohesiv train`` process (so it includes start-up, data
loading and checkpoint writes; calibration and evaluation are not included and are reported apart).
Nothing else of this bench runs during training: evaluation starts when training has ended. On a
shared CPU the wall time depends on the other jobs; the CPU seconds of the training process (from
``log.jsonl``, ``cpu_s``, from the start of the loop) are what the run would take with its threads on
an idle machine, for one thread.

  OMP_NUM_THREADS=1 .venv/bin/python bench/time_to_beat.py --work /tmp/exp --forearm --tag lite0 \\
      --steps 400 --every 100 --train-args "--size 128 --head-stride 4"

prints one row per kept step (training seconds, test All / Pair / Hand / Obj, beats TR?) and the
time to beat. A finished bench is read back from its folder (``RUN/at/step-NNNNNN/metrics.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from experiment import baseline, prepare, sh  # noqa: E402

from cohesiv.train import read_log  # noqa: E402


def kept_steps(run: Path) -> list[tuple[int, Path]]:
    """``(step, weights file)`` of the weights a run kept (``checkpoints/step-NNNNNN.safetensors``)."""
    out = []
    for p in sorted((run / "checkpoints").glob("step-*.safetensors")):
        out.append((int(p.stem.split("-")[1]), p))
    return out


def step_run(run: Path, step: int, weights: Path, suffix: str = "") -> Path:
    """A run folder for one kept step: the run's config and that step's weights as ``last``."""
    d = run / "at" / f"step-{step:06d}{suffix}"
    (d / "checkpoints").mkdir(parents=True, exist_ok=True)
    shutil.copy2(run / "config.yaml", d / "config.yaml")
    last = d / "checkpoints" / "last.safetensors"
    if not last.exists():
        os.link(weights, last)
    return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/cohesiv-exp"), help="experiment.py's folder")
    ap.add_argument("--forearm", action="store_true", help="pseudolabel --forearm (as the README's best run)")
    ap.add_argument("--tag", required=True, help="name of this configuration (run folder ttb-TAG)")
    ap.add_argument("--steps", type=int, default=600, help="training steps")
    ap.add_argument("--every", type=int, default=100, help="evaluate every this many steps")
    ap.add_argument("--train-args", default="", help="extra 'cohesiv train' options")
    ap.add_argument(
        "--calibrate-args",
        default="--size 256",
        help="'cohesiv calibrate' options (default '--size 256': the network runs at the clips' size; "
        "at the 128 training size the same step-200 model scored All/Pair 52.2/45.2 instead of 74.3/55.8)",
    )
    ap.add_argument(
        "--eval-suffix",
        default="-c256",
        help="suffix of the per-step folders RUN/at/step-NNNNNN<suffix> (one per calibration setting)",
    )
    ap.add_argument("--threads", default="1", help="'cohesiv train --threads' (default 1)")
    ap.add_argument(
        "--stop-at-beat", action="store_true", help="stop evaluating after the first step that beats TR"
    )
    a = ap.parse_args()
    w = a.work
    w.mkdir(parents=True, exist_ok=True)
    log = w / "commands.log"
    pseudo, _ = prepare(w, log, forearm=a.forearm)
    tr = baseline(w, log, "responsibility", forearm=a.forearm)
    tr_all, tr_pair = tr["All"]["mIoU"], tr["Pair"]["mIoU"]

    run = w / f"ttb-{a.tag}"
    info_path = run / "bench.json"
    if not info_path.exists():
        if run.exists():
            shutil.rmtree(run)  # an interrupted timing is not a timing: start again
        load = os.getloadavg()
        t0 = time.time()
        sh(
            ["train", "--data", str(pseudo), "--out", str(run), "--steps", str(a.steps)]
            + ["--keep-every", str(a.every), "--log-every", str(10 if a.every % 10 == 0 else a.every)]
            + ["--image-every", "0", "--no-progress", "--threads", a.threads]
            + shlex.split(a.train_args),
            log,
        )
        info = {
            "start": t0,
            "end": time.time(),
            "load_before": load,
            "load_after": os.getloadavg(),
            "train_args": a.train_args,
            "threads": a.threads,
            "steps": a.steps,
        }
        info_path.write_text(json.dumps(info, indent=1))
    info = json.loads(info_path.read_text())

    records = {r["step"]: r for r in read_log(run)}
    rows = []
    eval_seconds = 0.0
    for step, weights in kept_steps(run):
        d = step_run(run, step, weights, a.eval_suffix)
        if not (d / "metrics.json").exists():
            t = time.perf_counter()
            sh(
                ["calibrate", "--run", str(d), "--val", str(w / "val"), "--no-progress"]
                + shlex.split(a.calibrate_args),
                log,
            )
            sh(["eval", "--run", str(d), "--data", str(w / "test"), "--out", str(d / "metrics.json")], log)
            eval_seconds += time.perf_counter() - t
        m = json.loads((d / "metrics.json").read_text())
        cells = [m.get(k, {}).get("mIoU", float("nan")) for k in ("All", "Pair", "Hand", "Obj")]
        rec = records.get(step, {})
        seconds = rec.get("time", weights.stat().st_mtime) - info["start"]
        beats = cells[0] > tr_all and cells[1] > tr_pair
        rows.append((step, seconds, rec.get("cpu_s", float("nan")), cells, beats))
        if beats and a.stop_at_beat:
            break

    print(
        f"\ntime to beat the pseudo-labels: {run}; cohesiv train {a.train_args} --threads {a.threads} "
        f"(load average before {info['load_before'][0]:.2f}, after {info['load_after'][0]:.2f}); "
        f"TR (pseudo-labels) All {tr_all:.1f} Pair {tr_pair:.1f}"
    )
    print(
        f"{'step':>6s} {'wall s':>7s} {'CPU s':>7s} {'All':>6s} {'Pair':>6s} {'Hand':>6s} {'Obj':>6s}  beats TR"
    )
    for step, seconds, cpu, cells, beats in rows:
        line = f"{step:6d} {seconds:7.0f} {cpu:7.0f} " + " ".join(f"{c:6.1f}" for c in cells)
        print(line + ("  yes" if beats else "  no"))
    first = next((r for r in rows if r[-1]), None)
    total = info["end"] - info["start"]
    if first:
        print(
            f"time to beat: {first[1]:.0f} s wall ({first[1] / 60:.1f} min), {first[2]:.0f} CPU s "
            f"({first[2] / 60:.1f} min), at step {first[0]}; whole run {total:.0f} s wall"
        )
    else:
        print(f"not beaten within {a.steps} steps ({total:.0f} s of training)")
    first_all = next((r for r in rows if r[3][0] > tr_all), None)
    if first_all and first_all is not first:
        print(
            f"All alone beats TR from step {first_all[0]} ({first_all[1]:.0f} s wall, {first_all[2]:.0f} CPU s)"
        )
    if eval_seconds:
        print(f"calibration + evaluation of the kept steps: {eval_seconds:.0f} s (not counted)")


if __name__ == "__main__":
    main()
