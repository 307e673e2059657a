"""The `radassist` command. Each command group lives in radassist/commands/<name>.py and registers itself here.

User errors (bad input, unwritable output, cancelled) print one line and exit with code 2; no traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from radassist import __version__
from radassist.commands import COMMAND_MODULES, TASK_MODULES
from radassist.commands.train_evaluate import register_all
from radassist.errors import RadAssistError


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show defaults and keep the hand-made line breaks of descriptions. A default of None means "not given" (the
    option's help says what happens then), so it is not printed."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except RadAssistError as error:
        print(f"radassist {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"radassist {args.command}: interrupted; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
