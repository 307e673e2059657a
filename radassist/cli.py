"""The `radassist` command. Each command group lives in radassist/commands/<name>.py and registers itself here.

User errors (bad input, unwritable output, cancelled) print one line that names the command ("radassist lung
detect: error: ...") and exit with code 2; no traceback. Ctrl-C and SIGTERM stop any command within seconds
(exit 130 and 143) and leave no temporary files behind (radassist/runtime/interrupt.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from radassist import __version__
from radassist.commands import COMMAND_MODULES, TASK_MODULES
from radassist.commands.run_context import KEEPS_OUT, add_overwrite_options, leaf_parsers, may_overwrite
from radassist.commands.train_evaluate import register_all
from radassist.errors import RadAssistError
from radassist.io.atomic import refuse_non_empty, sweep_stale
from radassist.runtime import interrupt

PROG = "_prog"  # every command's full name ("radassist lung detect"), for its messages


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show defaults and keep the hand-made line breaks of descriptions. A default of None means "not given" (the
    option's help says what happens then), so it is not printed."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.default is None else super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="radassist", formatter_class=_Formatter,
        description="RadAssist: lung nodules, liver, brain registration and mammography AI from the command line.",
        epilog="Run 'radassist COMMAND --help' for the options of a command.")
    parser.add_argument("--version", action="version", version=f"radassist {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(commands, _Formatter)
    register_all(commands, _Formatter, TASK_MODULES)
    add_overwrite_options(parser)
    for leaf in leaf_parsers(parser):
        leaf.set_defaults(**{PROG: leaf.prog})
    return parser


def _refuse_existing_results(args: argparse.Namespace) -> None:
    """A command with --out refuses a non-empty folder before it reads data or loads a model (its RunOutput
    would refuse it too, but only after that work). Only rank 0 checks under torchrun: the others write a copy
    elsewhere (radassist.runtime.distributed.main_rank_folder)."""
    out = getattr(args, "out", None)
    if out is None or getattr(args, KEEPS_OUT, False) or may_overwrite(args) or os.environ.get("RANK", "0") != "0":
        return
    resumable = hasattr(args, "resume")  # a training that can continue the run saved in its folder
    refuse_non_empty(Path(out), "--resume to continue the run saved there, or --overwrite" if resumable else
                     "--overwrite")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    prog = getattr(args, PROG, f"radassist {args.command}")
    try:
        with interrupt.handling(prog):
            sweep_stale(tempfile.gettempdir())  # what killed RadAssist processes left there (radassist.io.atomic)
            _refuse_existing_results(args)
            return int(args.handler(args) or 0)
    except RadAssistError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return error.exit_code
    except BrokenPipeError:  # the output went to a pipe that was closed (`| head`): not an error of ours
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (Python's own advice: silence the flush at exit)
        return 0
    except KeyboardInterrupt as stop:
        name = stop.signal_name if isinstance(stop, interrupt.Interrupted) else "SIGINT"
        print(f"{prog}: interrupted by {name}; stopped, unfinished output removed", file=sys.stderr)
        return stop.exit_code if isinstance(stop, interrupt.Interrupted) else 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
