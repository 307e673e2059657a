"""`--server URL [--token-file F]` for task commands: run the same task on a RadAssist server instead.

One helper adds the options to a command and wraps its handler: without ``--server`` the command runs here as
before; with it the input is uploaded, the job's progress is shown, and the server's files (the very files the
local command writes, with result.json) land in ``--out``, all at once or not at all.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from radassist.errors import InputError

OptionsOf = Callable[[argparse.Namespace], dict[str, Any]]
InputsOf = Callable[[argparse.Namespace], list[Path]]


def add_remote_option(parser: argparse.ArgumentParser, task: str, options: Sequence[str] | OptionsOf,
                      inputs: InputsOf = lambda args: [args.input], local_only: Sequence[str] = ("model",)) -> None:
    """Give ``parser`` (whose handler is already set) ``--server`` and ``--token-file``.

    ``task`` is the server's task name; ``options`` names the parsed arguments sent as the task's options (they
    share the CLI's names) or computes them; ``inputs`` gives the files to upload; ``local_only`` arguments
    (such as a local checkpoint path) are refused with ``--server``.
    """
    from radassist.client import default_token_file

    group = parser.add_argument_group("remote server")
    group.add_argument("--server", metavar="URL",
                       help="run on a RadAssist server ('radassist serve') instead of this computer; the input "
                            "is uploaded to it")
    group.add_argument("--token-file", type=Path, metavar="FILE",
                       help=f"file with the server's token (default: $RADASSIST_SERVER_TOKEN, else "
                            f"{default_token_file()})")
    local_handler = parser.get_default("handler")
    if local_handler is None:
        raise ValueError("add_remote_option needs the command's handler set first")

    def handler(args: argparse.Namespace) -> int:
        if not args.server:
            return local_handler(args)
        for name in local_only:
            if getattr(args, name, None) not in (None, [], parser.get_default(name)):
                raise InputError(None, f"--{name.replace('_', '-')} cannot be used with --server (the server "
                                       "runs its own installed models)")
        values = options(args) if callable(options) else {name: getattr(args, name) for name in options}
        return run_remote(args, task, inputs(args), values)

    parser.set_defaults(handler=handler)


def run_remote(args: argparse.Namespace, task: str, inputs: list[Path], options: dict[str, Any]) -> int:
    """Run ``task`` on ``args.server`` and put its files in ``args.out``."""
    from radassist.client import RadAssistClient
    from radassist.runtime.progress import tqdm_progress

    client = RadAssistClient(args.server, token_file=args.token_file)
    if getattr(args, "device", "auto") != "auto":
        print("note: --device is ignored with --server; the server decides its devices", file=sys.stderr)
    with tqdm_progress(f"{task} on {client.url}") as progress:
        written = client.run(task, inputs, options, args.out, progress,
                             overwrite=bool(getattr(args, "overwrite", False)))
    names = sorted(str(path.relative_to(Path(args.out))) for path in written)
    print(f"ran {task} on {client.url}; wrote {', '.join(names)} to {args.out}")
    return 0
