"""What every server task is made of: the task record, its uploaded inputs, and the helpers that read uploads the
way the CLI reads its files. The tasks themselves are in tasks.py and tasks_<name>.py; TASKS (tasks.py) lists them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radassist.errors import InputError
from radassist.io.atomic import RunOutput
from radassist.runtime.progress import Progress
from radassist.runtime.run_record import RunRecord
from radassist.server.options import OptionSpec, parse_options

VOLUME_SUFFIXES = (".nrrd", ".nii", ".nii.gz", ".mha", ".zip")
MAMMOGRAM_SUFFIXES = (".dcm", ".png")


@dataclass(frozen=True)
class TaskInput:
    """One uploaded input: where the server stored it (a file, or a folder for a zipped DICOM series) and the
    client's file name, cleaned, for messages."""

    path: Path
    shown: str


TaskRun = Callable[[list[TaskInput], dict[str, Any], Any, Progress, RunOutput, RunRecord], None]


@dataclass(frozen=True)
class ServerTask:
    """One thing a client can ask for: its inputs, options, the CLI command it matches and the models it uses."""

    name: str
    title: str
    command: str                      # the CLI command that writes the same files
    accepts: tuple[str, ...]          # file extensions of the inputs
    max_files: int
    options: tuple[OptionSpec, ...]
    run: TaskRun
    models: tuple[str, ...] = ()      # catalogue ids it can use

    def parse_options(self, raw: Any) -> dict[str, Any]:
        return parse_options(self.options, raw)


def run_task(task: ServerTask, inputs: list[TaskInput], options: dict[str, Any], device: Any, progress: Progress,
             results: Path) -> None:
    """Run one task into ``results`` with its result.json record, as the server and a local job process both do;
    nothing is left in ``results`` when it fails or is cancelled."""
    from radassist.commands.run_context import command_run

    arguments = argparse.Namespace(task=task.name, inputs=[item.shown for item in inputs], **options)
    with command_run(results, task.command, arguments) as (output, record):
        task.run(inputs, options, device, progress, output, record)
        record.inputs = [item.shown for item in inputs]
    progress.check_cancelled()


def _read_volume(item: TaskInput, series: str | None = None, require_3d: bool = True) -> Any:
    """Read an uploaded volume or unpacked DICOM series the way the CLI reads its input.

    The volume's source path becomes the client's file name (a zipped folder: the folder's name), so names
    derived from it (the LUNA16 seriesuid of a file without DICOM UIDs) match what the CLI writes there.
    """
    import dataclasses

    from radassist.commands.inputs import load_input_volume

    volume = load_input_volume(argparse.Namespace(input=item.path, series=series), require_3d=require_3d)
    shown = item.shown[:-len(".zip")] if item.path.is_dir() and item.shown.lower().endswith(".zip") else item.shown
    return dataclasses.replace(volume, source=dataclasses.replace(volume.source, path=shown))


SERIES = OptionSpec("series", str, None, "SeriesInstanceUID to read when a zipped DICOM folder holds several")
BACKEND = OptionSpec("backend", str, "torch", "inference engine", choices=("torch", "onnx"))


def _per_file(values: list[Any] | None, inputs: list[TaskInput]) -> list[Any] | None:
    if values is None:
        return None
    if len(values) != len(inputs):
        raise InputError(None, f"give one value per file ({len(inputs)} files, {len(values)} values)")
    return values
