"""Train on pseudo-labels of the real clips in ``../shared/data`` and predict on their frames.

There are no masks for these clips, so this prints no mIoU: it prints what each stage produced
(hands found, samples, training loss and time) and writes the overlays to look at. Stages, each the
real command line, resumed in the work folder:

  1. ``cohesiv hands``: MediaPipe hand tracks of every clip;
  2. ``cohesiv pseudolabel --hands ... --forearm --background homography --viz``: one dataset per clip;
  3. ``cohesiv train`` on all the datasets together;
  4. ``cohesiv calibrate`` (prototypes only: no labels) and ``cohesiv predict --hands`` on every
     frame of each clip (the model sees one image and the query points, no motion).

  .venv/bin/python bench/real.py --work /tmp/cohesiv-real --steps 600
  .venv/bin/python bench/real.py --data /path/to/data --train-args "--embed-dim 32 --head-dim 32"

The data folder is ``--data``, else ``$COHESIV_DATA``, else ``../shared/data`` beside the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from experiment import sh  # the same runner: one cohesiv subprocess, output to the log, exit on failure

from cohesiv.io.frames import VIDEO_SUFFIXES


def find_clips(data: Path) -> list[Path]:
    """Every video under ``data`` (the folders of flow pairs have none)."""
    return sorted(p for p in data.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = Path(
        os.environ.get("COHESIV_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    ap.add_argument("--data", type=Path, default=default_data, help="folder with the real clips")
    ap.add_argument("--work", type=Path, default=Path("/tmp/cohesiv-real"))
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--train-size", type=int, default=192)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--train-args", default="", help="extra 'cohesiv train' options")
    a = ap.parse_args()
    clips = find_clips(a.data)
    if not clips:
        sys.exit(f"{a.data}: no video files (set --data or COHESIV_DATA)")
    w = a.work
    w.mkdir(parents=True, exist_ok=True)
    log = w / "commands.log"
    times: dict[str, float] = {}
    datasets = []
    print(f"{'clip':44s} {'frames w/ hand':>14s} {'samples':>8s}")
    for clip in clips:
        name = clip.stem[:40]
        hands = w / f"{name}.hands.json"
        if not hands.exists():
            times[f"hands {name}"] = sh(["hands", str(clip), "--out", str(hands), "--no-progress"], log)
        ds = w / f"pseudo-{name}"
        if not (w / f"{ds.name}.done").exists():  # pseudolabel resumes by itself; this skips the re-check
            times[f"pseudolabel {name}"] = sh(
                [
                    "pseudolabel",
                    str(clip),
                    "--hands",
                    str(hands),
                    "--out",
                    str(ds),
                    "--forearm",
                    "--background",
                    "homography",
                    "--viz",
                    "--quiet",
                ],
                log,
            )
            (w / f"{ds.name}.done").write_text("")
        frames = json.loads(hands.read_text())["frames"]
        n_samples = sum(1 for _ in open(ds / "manifest.jsonl"))
        print(f"{name:44s} {sum(1 for v in frames.values() if v):14d} {n_samples:8d}")
        datasets.append((clip, hands, ds))

    run = w / "run"
    if not (run / "calibration.json").exists():
        times["train"] = sh(
            [
                "train",
                "--data",
                *(str(d) for _, _, d in datasets),
                "--out",
                str(run),
                "--steps",
                str(a.steps),
                "--size",
                str(a.train_size),
                "--batch",
                str(a.batch),
                "--no-progress",
                *(["--resume"] if (run / "config.yaml").exists() else []),
                *shlex.split(a.train_args),
            ],
            log,
        )
        times["calibrate"] = sh(["calibrate", "--run", str(run), "--no-progress"], log)
    losses = [json.loads(line) for line in open(run / "log.jsonl") if '"loss"' in line]
    if losses:
        first, last = losses[0], losses[-1]
        print(
            f"train: loss {first['loss']:.3f} (step {first.get('step')}) -> {last['loss']:.3f} (step {last.get('step')})"
        )
    for clip, hands, _ in datasets:
        out = w / f"pred-{clip.stem[:40]}"
        if not (w / f"{out.name}.done").exists():
            times[f"predict {clip.stem[:40]}"] = sh(
                ["predict", "--run", str(run), str(clip), "--hands", str(hands), "--out", str(out)], log
            )
            (w / f"{out.name}.done").write_text("")
        print(f"{clip.name}: overlays in {out}")
    print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()))


if __name__ == "__main__":
    main()
