"""`radassist batch TASK --inputs LIST --out DIR [task options]`: a task over a cohort, one folder per case.

Each batch task is a single-scan command run over a list: ``lung`` is ``radassist lung detect``, ``liver`` is
``radassist liver segment``. The task options are that command's own (copied from its parser, with the same
defaults and checks), the model is loaded once per process, and every case folder holds the files that command
writes. Cases already done are skipped, failing cases are recorded in failures.csv and batch_report.json, and
under ``torchrun --nproc-per-node N -m radassist.cli batch ...`` the cases are split across the processes (one GPU
each). Exit code 0 when every case is done, 1 when some failed, 2 for a bad list or bad options.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radassist.commands.inputs import load_input_volume
from radassist.commands.run_context import plain_arguments

# not copied from the task command: the list gives the inputs (and series), the batch its --out; a batch runs
# here (under torchrun when several GPUs or nodes share it), so the remote-server options do not apply
NOT_COPIED = ("help", "input", "out", "series", "server", "token_file")


@dataclass(frozen=True)
class BatchCommand:
    """A batch task: the single-scan command it repeats and how to prepare it once per process."""

    group: str  # command group of the single-scan command, e.g. "lung"
    action: str  # its action, e.g. "detect"
    summary: str
    build: Callable[[argparse.Namespace], Any]  # options -> radassist.batch.BatchTask (loads the model)

    @property
    def command(self) -> str:
        return f"{self.group} {self.action}"


def _case_arguments(case: Any) -> argparse.Namespace:
    """What load_input_volume reads for one case (a CSV 'series' column picks one DICOM series)."""
    return argparse.Namespace(input=case.path, series=case.fields.get("series") or None)


def _lung_task(args: argparse.Namespace) -> Any:
    from radassist.batch import BatchTask
    from radassist.commands import lung
    from radassist.lung.pipeline import detect_nodules
    from radassist.runtime.device import device_from_args

    config = lung._detection_config(args)
    choice = device_from_args(args)
    engine, model = lung._choose_engine(args, choice)

    def run_case(case, output, record, progress) -> None:
        with record.timed("read"):
            volume = load_input_volume(_case_arguments(case))
        with record.timed("detect"):
            detections = detect_nodules(volume, config, progress, engine=engine, model=model)
        with record.timed("write"):
            lung.write_outputs(volume, detections, output)
        record.summary = lung.run_summary(detections, choice)

    return BatchTask("lung", "lung detect", run_case, plain_arguments(args))


def _liver_task(args: argparse.Namespace) -> Any:
    from radassist.batch import BatchTask
    from radassist.commands import liver
    from radassist.errors import InputError
    from radassist.liver.pipeline import LiverSegmentationConfig, segment_liver
    from radassist.liver.postprocess import PostprocessConfig
    from radassist.liver.preprocess import check_ct
    from radassist.liver.weights import load_liver_model
    from radassist.runtime.device import device_from_args

    if args.batch_size < 1:
        raise InputError(None, "--batch-size must be at least 1")
    device = device_from_args(args)
    model = load_liver_model(args.arch, args.model, device.device)
    backend = model.backend(args.backend, device)
    config = LiverSegmentationConfig(batch_size=args.batch_size,
                                     postprocess=PostprocessConfig(min_tumour_volume_ml=args.min_tumour_ml))

    def run_case(case, output, record, progress) -> None:
        with record.timed("read"):
            volume = load_input_volume(_case_arguments(case))
            check_ct(volume, str(case.path))
        with record.timed("segment"):
            result = segment_liver(volume, model, config, progress, backend=backend)
        with record.timed("write"):
            liver.write_outputs(volume, result, output)
        record.summary = result.report.summary | {"backend": result.backend}

    return BatchTask("liver", "liver segment", run_case, plain_arguments(args))


BATCH_COMMANDS = {
    "lung": BatchCommand("lung", "detect", "lung nodules on chest CTs (the files of 'radassist lung detect')",
                         _lung_task),
    "liver": BatchCommand("liver", "segment", "liver and tumours on abdominal CTs (the files of 'radassist liver "
                                              "segment')", _liver_task),
}


def _command_parser(spec: BatchCommand, formatter: type[argparse.HelpFormatter]) -> argparse.ArgumentParser:
    """The single-scan command's own parser, built by its module's register()."""
    import importlib

    module = importlib.import_module(f"radassist.commands.{spec.group}")
    scratch = argparse.ArgumentParser(add_help=False)
    groups = scratch.add_subparsers()
    module.register(groups, formatter)
    group = groups.choices[spec.group]
    actions = next(a for a in group._actions if isinstance(a, argparse._SubParsersAction))
    return actions.choices[spec.action]


def _copy_task_options(source: argparse.ArgumentParser, target: argparse.ArgumentParser) -> None:
    """The command's options, less those in NOT_COPIED."""
    for action in source._actions:
        if not action.option_strings or action.dest in NOT_COPIED:
            continue
        target._add_action(action)


def register(commands: argparse._SubParsersAction, formatter: type[argparse.HelpFormatter]) -> None:
    parser = commands.add_parser(
        "batch", help="run a task over a cohort: one output folder per case, resumable", formatter_class=formatter,
        description="Run a single-scan task over every case of a list. Each case gets OUT/<id>/ with the files "
                    "the task's own command writes, and its result.json. Run the same command again to resume: "
                    "cases whose result.json lists outputs that are all there are skipped; failed cases are tried "
                    "again. A failing case is recorded in OUT/failures.csv and OUT/batch_report.json and the batch "
                    "goes on. Under 'torchrun --nproc-per-node N -m radassist.cli batch ...' (one or several "
                    "nodes) the cases are split across the processes, one GPU each.\n\n"
                    "LIST is a text file with one image file or DICOM folder per line (the case id is the file "
                    "name without its extension; '#' starts a comment), or a CSV with columns id and path (and "
                    "optionally series). Relative paths are relative to the list file.")
    tasks = parser.add_subparsers(dest="batch_task", metavar="TASK", required=True)
    for name, spec in BATCH_COMMANDS.items():
        task = tasks.add_parser(
            name, help=spec.summary, formatter_class=formatter,
            description=f"Run 'radassist {spec.command}' on every case of --inputs. The options after --out are "
                        f"those of 'radassist {spec.command}' (see its --help for what it writes).")
        task.add_argument("--inputs", type=Path, required=True, metavar="LIST",
                          help="case list: one path per line, or a CSV with id and path columns")
        task.add_argument("--out", type=Path, required=True, help="output folder: one sub-folder per case")
        _copy_task_options(_command_parser(spec, formatter), task)
        task.set_defaults(handler=run_batch_command)


def run_batch_command(args: argparse.Namespace) -> int:
    from radassist.batch import read_case_list, run_batch
    from radassist.runtime.distributed import LONG_TIMEOUT_S, distributed_command
    from radassist.runtime.progress import tqdm_progress

    spec = BATCH_COMMANDS[args.batch_task]
    read_case_list(args.inputs)  # a bad list is refused before a model is loaded or a folder made
    with distributed_command(args, backend="gloo", timeout_s=LONG_TIMEOUT_S):
        task = spec.build(args)
        with tqdm_progress(f"batch {args.batch_task}") as progress:
            report = run_batch(task, args.inputs, args.out, progress)
        done, skipped, failed = report.count("done"), report.count("skipped"), report.count("failed")
        print(f"{len(report.cases)} case(s): {done} done now, {skipped} already done (skipped), {failed} failed; "
              f"wrote {args.out / 'batch_report.json'}" + (f" and {args.out / 'failures.csv'}" if failed else ""))
        for case in report.failed:
            print(f"  failed: {case.case_id}: {case.message}")
    return 1 if report.failed else 0
