"""The real-image model: train on pseudo-labels of real unlabeled clips plus synthetic clips, then score
on real images with masks. ``make real-model`` runs it with its defaults.

Every stage is the real command line, resumed in the work folder (a second run skips finished work):

  1. real clips (every video under the data folder, plus the demo's cup clip): ``cohesiv hands``
     (MediaPipe), then ``cohesiv pseudolabel --forearm --background homography --person-rule grabcut``,
     one dataset per clip (the work folder records these options and refuses other ones);
  2. synthetic clips (``cohesiv synth``): a train split (pseudo-labelled like the real clips), a labeled
     val split for calibration and a labeled test split;
  3. with ``--composites N``: ``cohesiv composite`` pastes real hands from the real clips' pseudo-labels
     onto other real frames (N samples, one more dataset);
  4. ``cohesiv train`` (1200 steps) on all the datasets together. They are mixed by sample count (every pseudo-label
     sample is drawn equally often, whichever dataset it is in), so ``--synth-clips`` sets the share of
     synthetic samples;
  5. ``cohesiv calibrate --flip --no-grow`` on the synthetic val split (the only labels there are at training
     time; the test-time flip is kept when it scores higher there). No hand growing: the synthetic hand labels
     include the forearm, so growing each hand through the person-like pixels it touches scores higher on
     them, while on real photos it takes in the forearm and the face that human hand masks leave out;
  6. ``cohesiv eval --images`` on the real image sets with masks (``real-hand-masks-hof``: binary hand
     masks; ``hands23-demo-silver``: EgoHOS labels made from a detector, silver), hands from MediaPipe,
     with the hull of the same hand points as the floor and GrabCut of the points beside it, the model as
     read out, the model kept inside each hand's support (that hull, cut at the wrist) and that mask
     refined by GrabCut (``--support grabcut``, the default); ``cohesiv eval`` on the synthetic test split
     with the Thresholded Responsibility of the same pseudo-labels beside it.

Prints one table and writes it to ``RUN/summary.json``. Examples:

  .venv/bin/python bench/real.py                                   # runs/real, as make real-model
  .venv/bin/python bench/real.py --out runs/real-scratch --train-args "--encoder-weights none"
  .venv/bin/python bench/real.py --out runs/synth-only --no-real   # the synthetic-only ablation

The data folder is ``--data``, else ``$COHESIV_DATA``, else ``../shared/data`` beside the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

from experiment import sh  # one cohesiv subprocess, output to the log, exit on failure

from cohesiv.config import COMPOSITE_SKIN
from cohesiv.io import atomic_write_text
from cohesiv.io.frames import VIDEO_SUFFIXES

REPO = Path(__file__).resolve().parents[1]
#: Real image sets with masks, scored by eval --images (folder name in the data folder).
IMAGE_SETS = ("real-hand-masks-hof", "hands23-demo-silver")
#: Videos used besides the data folder's, when present: the demo's clip and Debian opencv-doc's box.mp4.
EXTRA_CLIPS = (REPO / "cohesiv" / "data" / "cup.mp4", Path("/usr/share/doc/opencv-doc/examples/data/box.mp4"))


def find_clips(data: Path) -> list[Path]:
    """Every video under ``data`` (the folders of flow pairs and images have none), plus the extras."""
    found = sorted(p for p in data.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    return found + [p for p in EXTRA_CLIPS if p.is_file()]


def check_pseudo_args(w: Path, pseudo_args: list[str]) -> None:
    """Record the pseudo-label options in a new work folder; exit when an old one was made with others.

    Finished datasets are reused by name, so a work folder made with other options would silently
    train on pseudo-labels unlike the ones asked for.
    """
    rec = w / "pseudo-args.json"
    if rec.exists():
        made = json.loads(rec.read_text())
        if made != pseudo_args:
            sys.exit(
                f"{w}: its pseudo-labels were made with {' '.join(made) or 'no options'}, not "
                f"{' '.join(pseudo_args) or 'no options'}; use another --work folder (or delete this one)"
            )
    elif any(w.glob("pseudo-*.done")):
        sys.exit(
            f"{w}: pseudo-labels made before the work folder recorded its options; use another --work "
            "folder (or delete this one)"
        )
    else:
        rec.write_text(json.dumps(pseudo_args))


def real_datasets(
    clips: list[Path], w: Path, log: Path, times: dict[str, float], pseudo_args: list[str]
) -> list[Path]:
    """Hands and pseudo-labels of every real clip (skips finished ones); prints what each produced."""
    out = []
    print(f"{'real clip':44s} {'frames':>7s} {'w/ hand':>8s} {'samples':>8s}")
    for clip in clips:
        name = clip.stem[:40]
        hands = w / f"{name}.hands.json"
        if not hands.exists():
            times[f"hands {name}"] = sh(["hands", str(clip), "--out", str(hands), "--no-progress"], log)
        ds = w / f"pseudo-{name}"
        if not (w / f"{ds.name}.done").exists():  # pseudolabel resumes by itself; this skips the re-check
            times[f"pseudolabel {name}"] = sh(
                ["pseudolabel", str(clip), "--hands", str(hands), "--out", str(ds), "--quiet", *pseudo_args],
                log,
            )
            (w / f"{ds.name}.done").write_text("")
        frames = json.loads(hands.read_text())["frames"]
        n = sum(1 for _ in open(ds / "manifest.jsonl"))
        print(f"{name:44s} {len(frames):7d} {sum(1 for v in frames.values() if v):8d} {n:8d}")
        if n:
            out.append(ds)
    return out


def finished(done: Path, clips: int) -> bool:
    """Whether ``done`` marks a finished split of ``clips`` clips; exit when it marks another count.

    A split is reused by name, so a work folder made with another ``--synth-clips`` (``--val-clips``,
    ``--test-clips``) would silently train (calibrate, score) on another number of clips. Marks
    written before the count was recorded are empty and taken as they are.
    """
    if not done.exists():
        return False
    made = done.read_text().strip()
    if made and made != str(clips):
        sys.exit(
            f"{done.parent}: {done.name.removesuffix('.done')} was made with {made} clips, not {clips}; "
            "use another --work folder (or delete that split)"
        )
    return True


def synthetic(
    w: Path, log: Path, a: argparse.Namespace, times: dict[str, float], pseudo_args: list[str]
) -> Path:
    """Synthetic train / val / test clips and the train split's pseudo-labels (skips finished work)."""
    for split, n, seed in (("train", a.synth_clips, 1), ("val", a.val_clips, 2), ("test", a.test_clips, 3)):
        if n and not finished(w / f"synth-{split}.done", n):
            times[f"synth {split}"] = sh(
                ["synth", str(w / f"synth-{split}"), "--clips", str(n), "--frames", "16", "--size", "256x192"]
                + ["--seed", str(seed), "--camera", "mixed"],
                log,
            )
            (w / f"synth-{split}.done").write_text(f"{n}\n")
    ds = w / "pseudo-synth"
    if a.synth_clips and not (w / "pseudo-synth.done").exists():
        times["pseudolabel synth"] = sh(
            ["pseudolabel", *sorted(str(c) for c in (w / "synth-train").glob("clip_*")), "--out", str(ds)]
            + ["--quiet", *pseudo_args],
            log,
        )
        (w / "pseudo-synth.done").write_text("")
    return ds


def scored(out: Path, run: Path) -> bool:
    """``out`` holds a score of the run's current calibration (written after ``calibration.json``)."""
    return out.exists() and out.stat().st_mtime >= (run / "calibration.json").stat().st_mtime


def evaluate(
    run: Path, w: Path, data: Path, log: Path, times: dict[str, float], a: argparse.Namespace
) -> dict:
    """Real image sets (model and hull floor) and the synthetic test split (model and its pseudo-labels).

    A run's score is reused only when it is newer than its calibration (a recalibrated run is scored again).
    """
    results: dict[str, dict] = {}
    for name in IMAGE_SETS:
        if not (data / name).is_dir():
            print(f"{data / name}: absent, not scored", file=sys.stderr)
            continue
        out = run / f"eval-{name}.json"
        if not scored(out, run):
            times[f"eval {name}"] = sh(
                ["eval", "--run", str(run), "--images", str(data / name), "--out", str(out)]
                + ["--viz", str(run / f"viz-{name}"), "--quiet"],
                log,
            )
        results[name] = json.loads(out.read_text())
    if a.test_clips:
        out = run / "eval-synth-test.json"
        if not scored(out, run):
            times["eval synth test"] = sh(
                ["eval", "--run", str(run), "--data", str(w / "synth-test"), "--out", str(out), "--quiet"],
                log,
            )
        results["synth-test"] = json.loads(out.read_text())
        # the pseudo-labels' own options (eval takes every pseudo-label option): like with like
        slug = "".join(c if c.isalnum() else "-" for c in a.pseudo_args).strip("-")
        tr = w / f"baseline-responsibility-{slug}.json"
        if not tr.exists():
            sh(
                ["eval", "--baseline", "responsibility", "--data", str(w / "synth-test")]
                + ["--val", str(w / "synth-val"), *shlex.split(a.pseudo_args), "--out", str(tr), "--quiet"],
                log,
            )
        results["synth-test TR"] = json.loads(tr.read_text())
    return results


def print_summary(results: dict, title: str) -> None:
    """One table: real sets (model vs hull) and the synthetic test split (model vs its pseudo-labels)."""
    print(f"\n{title}")
    fmt = lambda v: f"{v:6.1f}" if isinstance(v, (int, float)) else f"{'-':>6s}"  # noqa: E731
    print(
        f"{'data':26s} {'method':22s} {'All':>6s} {'Pair':>6s} {'Hand':>6s} {'Obj':>6s}  hands found/missed/false"
    )
    for name, r in results.items():
        if "methods" in r:  # an image set
            d = r["detection"]
            det = f"{d['found']}/{d['missed']}/{d['false']} of {d['gt_hands']}"
            for method, m in r["methods"].items():
                label = {
                    "hull": "hull of the points",
                    "grabcut": "GrabCut of the points",
                    "model+support": "model + hand support",
                    "model+grabcut": "model + GrabCut",
                }.get(method, method)
                if r["kind"] == "binary":
                    cells = [m["All-hands"]["mIoU"], None, None, None]
                else:
                    cells = [m.get(t, {}).get("mIoU") for t in ("All", "Pair", "Hand", "Obj")]
                print(f"{name:26s} {label:22s} {' '.join(fmt(c) for c in cells)}  {det}")
        else:
            cells = [r.get(t, {}).get("mIoU") for t in ("All", "Pair", "Hand", "Obj")]
            label = "its pseudo-labels (TR)" if name.endswith("TR") else "model"
            print(f"{name.removesuffix(' TR'):26s} {label:22s} {' '.join(fmt(c) for c in cells)}")
    print(
        "real-hand-masks-hof: binary masks, All = union of the hand masks (All-hands IoU); hands23: silver labels"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = Path(os.environ.get("COHESIV_DATA", REPO.parent / "shared" / "data"))
    ap.add_argument(
        "--data", type=Path, default=default_data, help="folder with the real clips and image sets"
    )
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "real", help="the run folder")
    ap.add_argument("--work", type=Path, help="folder for clips and pseudo-labels (default: OUT-data)")
    ap.add_argument("--no-real", action="store_true", help="train on the synthetic clips only (ablation)")
    ap.add_argument("--synth-clips", type=int, default=24, help="synthetic training clips (16 frames each)")
    ap.add_argument("--val-clips", type=int, default=6, help="labeled synthetic clips for calibration")
    ap.add_argument("--test-clips", type=int, default=10, help="labeled synthetic test clips (0: none)")
    ap.add_argument("--composites", type=int, default=300, help="composited real samples (cohesiv composite)")
    ap.add_argument(
        "--skin",
        type=float,
        default=COMPOSITE_SKIN,
        help="share of composites pasted over a skin patch, a hard negative (cohesiv composite --skin)",
    )
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--train-size", type=int, default=160)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--train-args", default="", help="extra 'cohesiv train' options")
    ap.add_argument(
        "--pseudo-args",
        default="--forearm --background homography --person-rule grabcut",
        help="'cohesiv pseudolabel' options (a work folder keeps the ones it was made with)",
    )
    ap.add_argument(
        "--stop-at-wrist",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="pseudo-label the real clips with --stop-at-wrist (training labels their forearms past the wrist "
        "background, as human hand masks do; their composites inherit it); the synthetic clips keep the "
        "forearm that their labels include",
    )
    ap.add_argument(
        "--calibrate-args",
        default="--size 256 --flip --no-grow",
        help="extra 'cohesiv calibrate' options (default '--size 256 --flip --no-grow': the synthetic clips' "
        "size; the test-time flip, kept only if it scores higher on the val clips; no hand growing, which the "
        "val clips' forearm-including hand labels favour and real hand masks do not; each size tried costs a "
        "full calibration pass and the flip one more)",
    )
    a = ap.parse_args()
    t_start = time.perf_counter()
    run = a.out
    w = a.work or run.with_name(run.name + "-data")
    w.mkdir(parents=True, exist_ok=True)
    log = w / "commands.log"
    times: dict[str, float] = {}
    pseudo_args = shlex.split(a.pseudo_args)
    real_extra = ["--stop-at-wrist"] if a.stop_at_wrist else []
    real_args = pseudo_args + real_extra
    check_pseudo_args(w, pseudo_args + (["(real clips:)", *real_extra] if real_extra else []))

    datasets = []
    if not a.no_real:
        clips = find_clips(a.data)
        if not clips:
            sys.exit(f"{a.data}: no video files (set --data or COHESIV_DATA)")
        datasets += real_datasets(clips, w, log, times, real_args)
        if a.composites:
            comp = w / (f"composite-{a.composites}" + (f"-skin{a.skin:g}" if a.skin else ""))
            if not (w / f"{comp.name}.done").exists():
                times["composite"] = sh(
                    ["composite", *map(str, datasets), "--out", str(comp), "--samples", str(a.composites)]
                    + ["--skin", str(a.skin), "--no-progress"],
                    log,
                )
                (w / f"{comp.name}.done").write_text("")
            datasets.append(comp)
    if a.synth_clips or a.val_clips:
        synth_ds = synthetic(w, log, a, times, pseudo_args)
        if a.synth_clips:
            datasets.append(synth_ds)
    n_samples = {d.name: sum(1 for _ in open(d / "manifest.jsonl")) for d in datasets}
    print(
        f"training samples: {sum(n_samples.values())} ({', '.join(f'{k} {v}' for k, v in n_samples.items())})"
    )

    calibrated_with = run / "calibrate-args.txt"  # the options of the run's calibration.json
    if (run / "calibration.json").exists() and (
        not calibrated_with.exists() or calibrated_with.read_text() != a.calibrate_args
    ):
        had = calibrated_with.read_text() if calibrated_with.exists() else "unrecorded options"
        print(f"{run}: calibrated with {had}, asked for {a.calibrate_args!r}: calibrating again")
        (run / "calibration.json").unlink()
    if not (run / "calibration.json").exists():
        times["train"] = sh(
            ["train", "--data", *map(str, datasets), "--out", str(run), "--steps", str(a.steps)]
            + ["--size", str(a.train_size), "--batch", str(a.batch), "--image-every", "0", "--no-progress"]
            + (["--resume"] if (run / "config.yaml").exists() else [])
            + shlex.split(a.train_args),
            log,
        )
        val = ["--val", str(w / "synth-val")] if a.val_clips else []
        times["calibrate"] = sh(
            ["calibrate", "--run", str(run), *val, "--no-progress", *shlex.split(a.calibrate_args)], log
        )
        atomic_write_text(calibrated_with, a.calibrate_args)
    results = evaluate(run, w, a.data, log, times, a)
    cfg = (run / "config.yaml").read_text()
    title = (
        f"{run}: {a.steps} steps at {a.train_size}, batch {a.batch}, "
        + (
            "synthetic only"
            if a.no_real
            else f"{len(datasets) - bool(a.synth_clips) - bool(a.composites)} real clips"
        )
        + (f" + {a.composites} composites" if a.composites and not a.no_real else "")
        + f" + {a.synth_clips} synthetic clips; {a.train_args or 'default model'}"
    )
    print_summary(results, title)
    wall = time.perf_counter() - t_start
    print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()) + f"; this invocation {wall:.0f}")
    summary = {"title": title, "results": results, "seconds": times, "samples": n_samples, "config": cfg}
    (run / "summary.json").write_text(json.dumps(summary, indent=1, default=float))


if __name__ == "__main__":
    main()
