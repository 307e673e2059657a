"""What every file-writing command shares: a staged output folder (all or nothing) with its result.json, that is
never written into when it already holds something, unless the user gave ``--overwrite``.

``--overwrite`` itself is added to every command with an ``--out`` folder by :func:`add_overwrite_options` (the
CLI calls it once over the whole parser), so a new command gets it, and the refusal, without code of its own.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from radassist.io.atomic import RunOutput
from radassist.runtime.run_record import RunRecord


OVERWRITE_HELP = ("write into a non-empty --out folder, replacing files of the same name (without it, a folder "
                  "that holds anything is refused so earlier results are never lost)")
KEEPS_OUT = "_keeps_out"  # set_defaults marker of commands that manage their --out folder themselves (batch, export)


def plain_arguments(args: argparse.Namespace) -> dict:
    """The parsed arguments as JSON-friendly values (no handler function, no private markers)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
            if k != "handler" and not k.startswith("_")}


def may_overwrite(args: argparse.Namespace) -> bool:
    """Whether this run may write into a folder that already holds files: --overwrite, or --resume (a resumed
    training continues in its own folder)."""
    return bool(getattr(args, "overwrite", False) or getattr(args, "resume", False))


@contextmanager
def command_run(out: Path, command: str, args: argparse.Namespace,
                overwrite: bool | None = None) -> Iterator[tuple[RunOutput, RunRecord]]:
    """Stage the outputs of ``command`` in ``out``; on success publish them together with ``result.json``.

    A non-empty ``out`` is refused (before anything runs) unless ``overwrite`` (default: :func:`may_overwrite`).
    """
    allowed = may_overwrite(args) if overwrite is None else overwrite
    with RunOutput(out, overwrite=allowed) as output:
        record = RunRecord(command=command, arguments=plain_arguments(args))
        yield output, record
        assert output.staging is not None
        record.outputs = sorted(str(p.relative_to(output.staging)) for p in output.staging.rglob("*")
                                if p.is_file()) + ["result.json"]
        record.write(output.path("result.json"))


class OutputFolder:
    """A folder with RunOutput's ``path(name)`` interface, so output writers serve a sub-folder of a run too."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path(self, relative: str | Path) -> Path:
        target = self.folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        return target


def leaf_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every parser of a runnable command under ``parser`` (those without sub-commands)."""
    children = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    if not children:
        yield parser
    for action in children:
        for sub in dict.fromkeys(action.choices.values()):  # aliases share a parser
            yield from leaf_parsers(sub)


def add_overwrite_options(parser: argparse.ArgumentParser) -> None:
    """Give every command that has ``--out`` (and does not keep its own folder) the option ``--overwrite``."""
    for leaf in leaf_parsers(parser):
        options = leaf._option_string_actions
        if "--out" in options and "--overwrite" not in options and not leaf.get_default(KEEPS_OUT):
            group = next((g for g in leaf._action_groups if options["--out"] in g._group_actions), leaf)
            group.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
