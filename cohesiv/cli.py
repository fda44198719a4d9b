"""The ``cohesiv`` command line: argparse subcommands, each thin (parse, build config, call a stage).

Every subcommand lives in ``cohesiv/commands/<name>.py`` with ``HELP``, ``DESCRIPTION``,
``add_arguments(parser)`` and ``run(args) -> int``; command modules import heavy libraries
(torch, OpenCV) inside ``run`` so that ``cohesiv --help`` is instant.
Errors the user can fix (:class:`cohesiv.errors.CohesivError`) are printed on one line and
the exit status is 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from cohesiv import __version__
from cohesiv.commands import (
    calibrate,
    composite,
    demo,
    flow,
    hands,
    predict,
    pseudolabel,
    synth,
    train,
)
from cohesiv.commands import eval as eval_command
from cohesiv.errors import CohesivError

#: Subcommand modules in the order of the pipeline.
COMMAND_MODULES: dict[str, ModuleType] = {
    "demo": demo,
    "synth": synth,
    "flow": flow,
    "hands": hands,
    "pseudolabel": pseudolabel,
    "composite": composite,
    "train": train,
    "calibrate": calibrate,
    "predict": predict,
    "eval": eval_command,
}
#: Subcommand names in the order of the pipeline.
COMMANDS = tuple(COMMAND_MODULES)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions as written; shows a default only when it says something."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        d = action.default
        if (
            "default" in text.lower()
            or d is None
            or d is False
            or d == argparse.SUPPRESS
            or action.option_strings == []
        ):
            return text
        return f"{text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="cohesiv",
        description=(
            "Segment hands and held objects from unlabeled video, without mask labels.\n"
            "Pipeline: flow -> hands -> pseudolabel -> train -> calibrate -> predict / eval.\n"
            "Run 'cohesiv demo' to see it end to end; 'cohesiv COMMAND --help' for details."
        ),
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"cohesiv {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, mod in COMMAND_MODULES.items():
        p = sub.add_parser(
            name, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP), formatter_class=_Formatter
        )
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 2 bad input or a file-system error, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except CohesivError as e:
        print(f"cohesiv {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the file system refused (permission, disk full, a folder where a file goes)
        where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
        what = e.strerror or str(e) or type(e).__name__
        print(f"cohesiv {args.command}: error: {where + ': ' if where else ''}{what}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"cohesiv {args.command}: interrupted (finished work is kept; re-run to resume)", file=sys.stderr
        )
        return 130
