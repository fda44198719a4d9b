"""Nothing half-written: ``kill -9`` ``cohesiv pseudolabel`` and ``cohesiv train`` at random points, resume,
and compare the end result with an uninterrupted run; prints the figures.

The scenarios (what is killed, when, and what is compared) are owned by the tests
(``tests/interrupt_cases.py``, run by ``tests/test_interrupt.py``); this script imports them.

    .venv/bin/python bench/interrupt.py                 # both, 5 kills each
    .venv/bin/python bench/interrupt.py --only train --kills 3 --seed 1
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from interrupt_cases import (  # noqa: E402
    bench_pseudolabel,
    bench_train,
    cohesiv_cmd,
    make_clips,
    pseudolabel_ok,
    run_ok,
    train_ok,
)


def main() -> int:
    """Run the benchmarks and print the figures; exit 1 when a result differs."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["pseudolabel", "train"])
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", help="work in this folder and keep it")
    a = ap.parse_args()
    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="cohesiv-interrupt-"))
    work.mkdir(parents=True, exist_ok=True)
    ok = True
    try:
        if a.only in (None, "pseudolabel"):
            r = bench_pseudolabel(work, kills=a.kills, seed=a.seed)
            c, d = r["result"], r["determinism"]
            print(
                f"pseudolabel: {r['kills']} kills (finished samples at each kill: {r['progress_at_kill']} of "
                f"{r['total']}), {r['launches']} launches, {r['missed']} finished before the kill; reference "
                f"run {r['reference_seconds']:.1f} s"
            )
            print(
                f"  vs uninterrupted: {c['samples']} samples, {c['arrays_compared']} arrays, max abs diff "
                f"{c['max_abs_diff']:g}; manifest equal {c['manifest_equal']} (bytes {c['manifest_bytes_equal']}), "
                f"images equal {c['images_equal']}, sidecars equal {c['sidecars_equal']}, same files "
                f"{c['same_file_list']}, temporaries left {len(c['temporaries_left'])}"
            )
            print(
                f"  two uninterrupted runs: max abs diff {d['max_abs_diff']:g}, manifest equal {d['manifest_equal']}"
            )
            ok &= pseudolabel_ok(r)
            print(f"  -> {'SAME' if pseudolabel_ok(r) else 'DIFFERENT'}")
        if a.only in (None, "train"):
            ds = work / "pl_ref"
            if not ds.is_dir():
                clips = make_clips(work / "clips")
                run_ok(cohesiv_cmd("pseudolabel", *clips, "--out", ds, "--quiet"))
            r = bench_train(work, ds, kills=a.kills, seed=a.seed)
            c = r["result"]
            print(
                f"train: {r['kills']} kills (logged step at each kill: {r['progress_at_kill']} of "
                f"{r['total']}), {r['launches']} launches, {r['missed']} finished before the kill; reference "
                f"run {r['reference_seconds']:.1f} s"
            )
            print(
                f"  final weights vs uninterrupted: {c['tensors']} tensors, {c['n_different']} differ, max abs "
                f"diff {c['max_abs_diff']:g}; final step {c['final_step']}; logged losses equal "
                f"{c['loss_log_equal']}; temporaries left {len(c['temporaries_left'])}"
            )
            ok &= train_ok(r)
            print(f"  -> {'SAME' if train_ok(r) else 'DIFFERENT'}")
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
