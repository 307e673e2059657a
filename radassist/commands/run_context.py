"""What every file-writing command shares: staged output folder (all or nothing) and its result.json."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from radassist.io.atomic import RunOutput
from radassist.runtime.run_record import RunRecord


def plain_arguments(args: argparse.Namespace) -> dict:
    """The parsed arguments as JSON-friendly values (no handler function)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "handler"}


@contextmanager
def command_run(out: Path, command: str, args: argparse.Namespace) -> Iterator[tuple[RunOutput, RunRecord]]:
    """Stage the outputs of ``command`` in ``out``; on success publish them together with ``result.json``."""
    with RunOutput(out) as output:
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
