"""The synthetic experiment of the model issue: train on pseudo-labels, calibrate, evaluate, ablate.

Runs the real command line for every stage, in a work folder that it resumes in:

  1. ``cohesiv synth``: train / val / test splits of synthetic clips (distinct seeds);
  2. ``cohesiv pseudolabel``: DIS flow, offsets ±1..±3, t = 2, homography background, on the train split;
  3. ``cohesiv train``: the model variants (full; attention only = no embedding loss; embedding only =
     no responsibility loss; the paper's plain dot-product embedding loss);
  4. ``cohesiv calibrate`` on the val split; ``cohesiv eval --run`` on the test split;
  5. ``cohesiv eval --baseline responsibility|flow`` on the same test frames (thresholds fit on val);

then prints one table (mIoU %, All / Pair / Hand / Obj) with training times.

  .venv/bin/python bench/experiment.py --work /tmp/cohesiv-exp            # everything
  .venv/bin/python bench/experiment.py --work /tmp/cohesiv-exp --variants full
  .venv/bin/python bench/experiment.py --work /tmp/cohesiv-exp --variants full --forearm --tag -fa \
      --train-args "--steps 600 --size 128"
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = {
    "full": [],
    "attention-only": ["--w-emb", "0"],
    "embedding-only": ["--w-resp", "0"],
    "plain-dot-product": ["--plain-embedding"],
}


def sh(args: list[str], log: Path) -> float:
    t0 = time.perf_counter()
    with open(log, "a") as f:
        f.write("$ " + " ".join(args) + "\n")
        f.flush()
        r = subprocess.run([sys.executable, "-m", "cohesiv", *args], stdout=f, stderr=subprocess.STDOUT)
    if r.returncode:
        sys.exit(f"failed ({r.returncode}): cohesiv {' '.join(args)}; see {log}")
    return time.perf_counter() - t0


def prepare(
    w: Path,
    log: Path,
    train_clips: int = 40,
    val_clips: int = 10,
    test_clips: int = 20,
    frames: int = 16,
    size: str = "256x192",
    *,
    forearm: bool = False,
) -> tuple[Path, float]:
    """Synthetic train/val/test clips and the train split's pseudo-labels in ``w`` (skips finished work).

    Returns:
        ``(pseudo-label dataset folder, seconds spent on pseudo-labels)``.
    """
    for split, n, seed in (("train", train_clips, 1), ("val", val_clips, 2), ("test", test_clips, 3)):
        sh(
            ["synth", str(w / split), "--clips", str(n), "--frames", str(frames), "--size", size]
            + ["--seed", str(seed), "--camera", "mixed"],
            log,
        )
    pseudo = w / ("pseudo-forearm" if forearm else "pseudo")
    seconds = sh(
        [
            "pseudolabel",
            *sorted(str(c) for c in (w / "train").glob("clip_*")),
            *(["--forearm"] if forearm else []),
            "--out",
            str(pseudo),
            "--background",
            "homography",
            "--offsets",
            "1,2,3",
            "--temperature",
            "2",
        ],
        log,
    )
    return pseudo, seconds


def baseline(w: Path, log: Path, base: str = "responsibility", *, forearm: bool = False) -> dict:
    """Metrics of a baseline on the test split, thresholds fit on val (cached in ``w``).

    The responsibility baseline takes the options of :func:`prepare`'s pseudo-labels (homography
    background, t = 2, offsets ±1..±3, ``--forearm`` when they had it), so it is what the model
    learns from, scored on the test frames.
    """
    out = w / f"baseline-{base}{'-forearm' if forearm else ''}.json"
    if not out.exists():
        sh(
            ["eval", "--baseline", base, "--data", str(w / "test"), "--val", str(w / "val")]
            + ["--background", "homography", "--out", str(out)]
            + (["--forearm"] if forearm and base == "responsibility" else []),
            log,
        )
    return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/cohesiv-exp"))
    ap.add_argument("--train-clips", type=int, default=40)
    ap.add_argument("--val-clips", type=int, default=10)
    ap.add_argument("--test-clips", type=int, default=20)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", default="256x192")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--train-size", type=int, default=160)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument(
        "--forearm",
        action="store_true",
        help="pseudo-labels with the forearm band in the person mask (pseudolabel --forearm; own dataset folder)",
    )
    ap.add_argument("--train-args", default="", help="extra 'cohesiv train' options for every variant")
    ap.add_argument("--calibrate-args", default="", help="extra 'cohesiv calibrate' options")
    ap.add_argument("--tag", default="", help="suffix of the run folders (to keep several configurations)")
    a = ap.parse_args()
    w = a.work
    w.mkdir(parents=True, exist_ok=True)
    log = w / "commands.log"
    times: dict[str, float] = {}

    pseudo, times["pseudolabel"] = prepare(
        w, log, a.train_clips, a.val_clips, a.test_clips, a.frames, a.size, forearm=a.forearm
    )

    results: dict[str, dict] = {}
    for name in a.variants.split(","):
        run = w / f"run-{name}{a.tag}"
        if not (run / "metrics.json").exists():
            times[f"train {name}"] = sh(
                [
                    "train",
                    "--data",
                    str(pseudo),
                    "--out",
                    str(run),
                    "--steps",
                    str(a.steps),
                    "--size",
                    str(a.train_size),
                    "--batch",
                    str(a.batch),
                    "--image-every",
                    "0",
                    "--no-progress",
                    *(["--resume"] if (run / "config.yaml").exists() else []),
                    *VARIANTS[name],
                    *shlex.split(a.train_args),
                ],
                log,
            )
            sh(
                ["calibrate", "--run", str(run), "--val", str(w / "val"), "--no-progress"]
                + shlex.split(a.calibrate_args),
                log,
            )
            sh(
                ["eval", "--run", str(run), "--data", str(w / "test"), "--out", str(run / "metrics.json")],
                log,
            )
        results[f"model: {name}"] = json.loads((run / "metrics.json").read_text())
    for base in ("responsibility", "flow"):
        results[f"baseline: {base} (DIS)"] = baseline(w, log, base, forearm=a.forearm)

    print(
        f"\nSynthetic experiment in {w}: {a.train_clips} train / {a.val_clips} val / {a.test_clips} test clips, "
        f"{a.frames} frames at {a.size}; training {a.steps} steps at {a.train_size}, batch {a.batch}, CPU"
        + (", pseudolabel --forearm" if a.forearm else "")
        + (f", train {a.train_args}" if a.train_args else "")
        + (f", calibrate {a.calibrate_args}" if a.calibrate_args else "")
    )
    print(f"{'method':34s} {'All':>6s} {'Pair':>6s} {'Hand':>6s} {'Obj':>6s} {'FOR':>6s} {'images':>7s}")
    for name, m in results.items():
        cells = [m.get(t, {}).get("mIoU") for t in ("All", "Pair", "Hand", "Obj")]
        fo = m.get("Obj", {}).get("false_object_rate")
        fmt = lambda v: f"{v:6.1f}" if isinstance(v, (int, float)) else f"{'-':>6s}"  # noqa: E731
        print(f"{name:34s} {' '.join(fmt(c) for c in cells)} {fmt(fo)} {m.get('n_images', 0):7d}")
    print(
        "paper 100DOH: COHESIV 51.9/46.5/53.6/29.3; thresholded responsibility 44.5/37.0; flow 29.3/21.5/12.9/12.1"
    )
    print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()))


if __name__ == "__main__":
    main()
