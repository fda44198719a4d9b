"""Bad input to every ``cohesiv`` subcommand: one clear line and exit status 2, never a traceback.

Builds each bad input in a temporary folder (from a tiny synthetic clip, pseudo-label dataset and
one-step training run made first), runs the real command line on it and prints a table:

    case | command | exit status | error line | verdict

A case is flagged (``FAIL``) when the exit status is not 2, stderr holds a traceback, the error
is not on one line, or the line does not name the expected file. Malicious-pickle cases also fail
when the marker file that the pickle would create exists afterwards.

    .venv/bin/python bench/bad_inputs.py               # subprocess per case (python -m cohesiv ...)
    .venv/bin/python bench/bad_inputs.py --inprocess   # cohesiv.cli.main in this process (faster)
    .venv/bin/python bench/bad_inputs.py --only predict

The cases are owned by the tests (``tests/bad_input_cases.py``, run by ``tests/test_robustness.py``);
this script imports them.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from bad_input_cases import CASES, make_base, run_case  # noqa: E402


def main() -> int:
    """Print the table; exit 1 when any case fails."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inprocess", action="store_true", help="call cohesiv.cli.main instead of a subprocess")
    ap.add_argument("--only", help="only cases of this command")
    ap.add_argument("--keep", help="work in this folder and keep it")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    a = ap.parse_args()
    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="cohesiv-bad-"))
    try:
        t0 = time.perf_counter()
        base = make_base(work / "base")
        print(f"fixtures in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        outcomes = []
        for i, c in enumerate(CASES):
            if a.only and c.command != a.only:
                continue
            o = run_case(c, base, work / f"case{i:02d}", inprocess=a.inprocess)
            outcomes.append(o)
            print(f"  {c.command}: {c.name}: {'ok' if not o.problems else o.problems}", file=sys.stderr)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    sep = " | "
    rows = [("case", "command", "exit", "error line (stderr)", "verdict")]
    for o in outcomes:
        line = o.error_line.replace(str(work), "$TMP")
        if len(line) > 160:
            line = line[:157] + "..."
        rows.append(
            (
                o.case.name,
                o.case.command,
                str(o.status),
                line,
                "ok" if not o.problems else "FAIL: " + ", ".join(o.problems),
            )
        )
    if a.markdown:
        for k, r in enumerate(rows):
            print("| " + sep.join(x.replace("|", "\\|") for x in r) + " |")
            if k == 0:
                print("|" + "---|" * len(r))
    else:
        for r in rows:
            print(sep.join(r))
    bad = sum(1 for o in outcomes if o.problems)
    print(f"\n{len(outcomes)} cases, {bad} flagged ({'subprocess' if not a.inprocess else 'in-process'})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
