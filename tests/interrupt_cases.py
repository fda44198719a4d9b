"""Nothing half-written: ``kill -9`` ``cohesiv pseudolabel`` and ``cohesiv train`` at random points, resume,
and compare the end result with an uninterrupted run.

pseudolabel: 2 synthetic clips (64x64, 8 frames). The reference is one uninterrupted run. The
interrupted run is started, SIGKILLed after a random number of finished samples plus a random
0-60 ms (so kills land inside writes too), ``--kills`` times, then re-run until it exits 0. Every
sample (npz arrays, image, sidecar) and the manifest are compared with the reference, and no
temporary file may be left.

train: ``--steps 12 --save-every 3 --size 64 --batch 2`` on the reference dataset. The interrupted
run is SIGKILLed after a random number of logged steps plus a random 0-0.3 s, ``--kills``
times, each restart with ``--resume``, then resumed to the end. The final weights
(``checkpoints/last.safetensors``) are compared tensor by tensor with the uninterrupted run.

The interruption scenarios are owned by the tests: ``tests/test_interrupt.py`` (marked slow) runs
them and ``bench/interrupt.py`` imports them to print the figures.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def cohesiv_cmd(*argv: str) -> list[str]:
    """The command line of ``python -m cohesiv argv``."""
    return [sys.executable, "-m", "cohesiv", *map(str, argv)]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")


def run_ok(argv: list[str]) -> float:
    """Run a command to completion (it must exit 0); return its wall time."""
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, env=_env(), timeout=900)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return time.perf_counter() - t0


@dataclass
class KillLog:
    """What happened to the interrupted run."""

    kills: int = 0
    progress_at_kill: list = field(default_factory=list)  # finished units (samples / steps) at each kill
    missed: int = 0  # launches that finished before the kill came (not counted as kills)
    launches: int = 0
    statuses: list = field(default_factory=list)  # exit statuses of the launches that were not killed


def kill_at_random(
    argv_first: list[str],
    argv_again: list[str],
    progress,
    total: int,
    *,
    kills: int,
    rng: random.Random,
    extra_delay: float,
    timeout: float = 600,
) -> KillLog:
    """Launch, SIGKILL when ``progress() >= k`` plus a random delay, repeat (k: sorted random in 0..total-1).

    ``argv_first`` is the first launch, ``argv_again`` every later one (e.g. with ``--resume``).
    After ``kills`` kills, the command is run once more to completion.
    """
    log = KillLog()
    # kill i comes once progress() reaches targets[i]: spread over the run, in order
    targets = sorted(rng.randrange(total) for _ in range(kills))
    while log.kills < kills:
        argv = argv_first if log.launches == 0 else argv_again
        target = targets[log.kills]
        delay = rng.uniform(0.0, extra_delay)
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env())
        log.launches += 1
        t0 = time.perf_counter()
        killed = False
        while proc.poll() is None and time.perf_counter() - t0 < timeout:
            if progress() >= target:
                time.sleep(delay)
                if proc.poll() is None:
                    at = progress()
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
                    killed = True
                    log.kills += 1
                    log.progress_at_kill.append(at)
                break
            time.sleep(0.005)
        if not killed:
            if proc.poll() is None:
                proc.kill()
                raise RuntimeError(f"{argv} did not finish in {timeout} s")
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            proc.wait()
            if proc.returncode != 0:
                raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode} after a kill:\n{err[-3000:]}")
            log.missed += 1
            log.statuses.append(proc.returncode)
            if progress() >= total:
                # finished before we could kill it: start over so that the remaining kills happen
                return log
        if proc.stderr:
            proc.stderr.close()
    run_ok(argv_again)
    log.launches += 1
    log.statuses.append(0)
    return log


# ------------------------------------------------------------------------------------- pseudolabel


def make_clips(root: Path, frames: int = 8) -> list[Path]:
    """Two synthetic 64x64 clips in ``root``."""
    run_ok(cohesiv_cmd("synth", root, "--clips", 2, "--frames", frames, "--size", "64x64", "--seed", 3))
    return sorted(p for p in root.iterdir() if p.is_dir())


def compare_datasets(ref: Path, got: Path) -> dict:
    """Compare two pseudo-label dataset folders; return counts and the max abs difference of the arrays."""
    ref_lines = [json.loads(x) for x in (ref / "manifest.jsonl").read_text().splitlines() if x]
    got_lines = [json.loads(x) for x in (got / "manifest.jsonl").read_text().splitlines() if x]
    out = {
        "samples": len(ref_lines),
        "manifest_equal": sorted(ref_lines, key=lambda d: d["id"])
        == sorted(got_lines, key=lambda d: d["id"]),
        "manifest_bytes_equal": (ref / "manifest.jsonl").read_bytes()
        == (got / "manifest.jsonl").read_bytes(),
        "max_abs_diff": 0.0,
        "arrays_compared": 0,
        "images_equal": True,
        "sidecars_equal": True,
        "temporaries_left": sorted(str(p.relative_to(got)) for p in got.rglob(".tmp-*")),
    }
    ref_files = sorted(p.relative_to(ref) for p in ref.rglob("*") if p.is_file())
    got_files = sorted(
        p.relative_to(got) for p in got.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")
    )
    out["same_file_list"] = ref_files == got_files
    for line in ref_lines:
        a = np.load(ref / line["sample"], allow_pickle=False)
        b = np.load(got / line["sample"], allow_pickle=False)
        if sorted(a.files) != sorted(b.files):
            out["max_abs_diff"] = float("inf")
            continue
        for k in a.files:
            x, y = a[k], b[k]
            if x.shape != y.shape or x.dtype != y.dtype:
                out["max_abs_diff"] = float("inf")
                continue
            d = np.abs(x.astype(np.float64) - y.astype(np.float64)).max() if x.size else 0.0
            out["max_abs_diff"] = max(out["max_abs_diff"], float(d))
            out["arrays_compared"] += 1
        if (ref / line["image"]).read_bytes() != (got / line["image"]).read_bytes():
            out["images_equal"] = False
        side = Path(line["sample"]).with_suffix(".json")
        ja, jb = json.loads((ref / side).read_text()), json.loads((got / side).read_text())
        for d in (ja, jb):
            d.pop("seconds", None)
            d.pop("time", None)
        if ja != jb:
            out["sidecars_equal"] = False
    return out


def bench_pseudolabel(work: Path, *, kills: int, seed: int, frames: int = 8) -> dict:
    """Reference run vs a run killed ``kills`` times; returns the comparison."""
    clips = make_clips(work / "clips", frames)
    base_args = [*clips]
    ref = work / "pl_ref"
    t_ref = run_ok(cohesiv_cmd("pseudolabel", *base_args, "--out", ref, "--quiet"))
    ref2 = work / "pl_ref2"
    run_ok(cohesiv_cmd("pseudolabel", *base_args, "--out", ref2, "--quiet"))
    determinism = compare_datasets(ref, ref2)
    total = len((ref / "manifest.jsonl").read_text().splitlines())
    got = work / "pl_killed"

    def progress() -> int:
        d = got / "samples"
        return sum(1 for p in d.glob("*.json") if not p.name.startswith(".")) if d.is_dir() else 0

    argv = cohesiv_cmd("pseudolabel", *base_args, "--out", got, "--quiet")
    log = kill_at_random(argv, argv, progress, total, kills=kills, rng=random.Random(seed), extra_delay=0.06)
    return {
        "what": "pseudolabel",
        "reference_seconds": t_ref,
        "kills": log.kills,
        "progress_at_kill": log.progress_at_kill,
        "total": total,
        "launches": log.launches,
        "missed": log.missed,
        "determinism": determinism,
        "result": compare_datasets(ref, got),
    }


def pseudolabel_ok(r: dict) -> bool:
    """True when the interrupted dataset equals the reference exactly."""
    c = r["result"]
    return (
        c["manifest_equal"]
        and c["manifest_bytes_equal"]
        and c["max_abs_diff"] == 0.0
        and c["images_equal"]
        and c["sidecars_equal"]
        and c["same_file_list"]
        and not c["temporaries_left"]
        and c["arrays_compared"] == 3 * c["samples"]
    )


# ------------------------------------------------------------------------------------------- train


def compare_weights(a: Path, b: Path) -> dict:
    """Compare two safetensors files tensor by tensor."""
    from safetensors.torch import load_file

    x, y = load_file(str(a)), load_file(str(b))
    out = {"tensors": len(x), "same_keys": sorted(x) == sorted(y), "max_abs_diff": 0.0, "n_different": 0}
    for k in x:
        if k not in y or x[k].shape != y[k].shape:
            out["max_abs_diff"] = float("inf")
            out["n_different"] += 1
            continue
        d = (x[k].double() - y[k].double()).abs().max().item() if x[k].numel() else 0.0
        out["max_abs_diff"] = max(out["max_abs_diff"], d)
        out["n_different"] += int(d != 0)
    return out


def _ckpt_step(run: Path) -> int:
    try:
        return int(json.loads((run / "checkpoints" / "last.json").read_text())["step"])
    except (OSError, ValueError, KeyError):
        return 0


def _logged_step(run: Path) -> int:
    """The last step in RUN/log.jsonl (``--log-every 1``: the steps done, saved or not)."""
    try:
        lines = (run / "log.jsonl").read_text().splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):
            continue
    return 0


def bench_train(
    work: Path, dataset: Path, *, kills: int, seed: int, steps: int = 12, save_every: int = 3
) -> dict:
    """Uninterrupted training vs one killed ``kills`` times and resumed; compares the final weights."""
    common = ["--data", dataset, "--steps", steps, "--save-every", save_every, "--size", 64, "--batch", 2]
    common += ["--image-every", 0, "--log-every", 1, "--no-progress"]
    ref = work / "run_ref"
    t_ref = run_ok(cohesiv_cmd("train", "--out", ref, *common))
    got = work / "run_killed"
    log = kill_at_random(
        cohesiv_cmd("train", "--out", got, *common),
        cohesiv_cmd("train", "--out", got, "--resume", *common),
        lambda: _logged_step(got),
        steps,
        kills=kills,
        rng=random.Random(seed),
        extra_delay=0.3,
    )
    res = compare_weights(ref / "checkpoints" / "last.safetensors", got / "checkpoints" / "last.safetensors")
    res["final_step"] = _ckpt_step(got)
    res["temporaries_left"] = sorted(str(p.relative_to(got)) for p in got.rglob(".tmp-*"))
    ref_log = [json.loads(x) for x in (ref / "log.jsonl").read_text().splitlines() if x]
    got_log = [json.loads(x) for x in (got / "log.jsonl").read_text().splitlines() if x]

    def losses(lines):
        return {d["step"]: d.get("loss") for d in lines if "step" in d and "loss" in d}

    res["loss_log_equal"] = losses(ref_log) == losses(got_log)
    return {
        "what": "train",
        "reference_seconds": t_ref,
        "kills": log.kills,
        "progress_at_kill": log.progress_at_kill,
        "total": steps,
        "launches": log.launches,
        "missed": log.missed,
        "result": res,
    }


def train_ok(r: dict) -> bool:
    """True when the resumed run ends with exactly the reference weights."""
    c = r["result"]
    return (
        c["same_keys"]
        and c["max_abs_diff"] == 0.0
        and c["final_step"] == r["total"]
        and not c["temporaries_left"]
    )
