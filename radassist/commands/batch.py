"""`radassist batch TASK --inputs LIST --out DIR [task options]`: a task over a cohort, one folder per case.

Each batch task is a single-scan command run over a list: ``lung`` is ``radassist lung detect``, ``liver`` is
``radassist liver segment``, ``lung-infection`` is ``radassist lung infection`` and ``brain-register`` is
``radassist brain register`` (its list is a CSV with ``moving`` and ``fixed`` columns). The task options are that
command's own (copied from its parser, with the same defaults and checks), the model is loaded once per process, and
every case folder holds the files that command writes. Cases already done are skipped, failing cases are recorded in
failures.csv and batch_report.json, and under ``torchrun --nproc-per-node N -m radassist.cli batch ...`` the cases
are split across the processes (one GPU each). All finished cases are also combined in OUT/predictions.csv (nodules
in the LUNA16 submission columns; one row per case with its result.json summary for the other tasks). Exit code 0
when every case is done, 1 when some failed, 2 for a bad list or bad options.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radassist.batch import LUNA16, BatchTask, ListColumns
from radassist.commands.inputs import load_input_volume
from radassist.commands.options import model_folder
from radassist.commands.run_context import KEEPS_OUT, plain_arguments
from radassist.runtime.device import device_from_args
from radassist.runtime.distributed import LONG_TIMEOUT_S, distributed_command
from radassist.runtime.progress import tqdm_progress

# not copied from the task command: the list gives the inputs (and series), the batch its --out; a batch runs
# here (under torchrun when several GPUs or nodes share it), so the remote-server options do not apply
NOT_COPIED = ("help", "input", "out", "overwrite", "series", "server", "token_file")


@dataclass(frozen=True)
class BatchCommand:
    """A batch task: the single-scan command it repeats and how to prepare it once per process."""

    group: str  # command group of the single-scan command, e.g. "lung"
    action: str  # its action, e.g. "detect"
    summary: str
    build: Callable[[argparse.Namespace], Any]  # options -> radassist.batch.BatchTask (loads the model)
    columns: ListColumns = field(default_factory=ListColumns)  # what the case list holds
    per_case: tuple[str, ...] = ()  # the command's options that are list columns here (one value per case)

    @property
    def command(self) -> str:
        return f"{self.group} {self.action}"


def _case_arguments(case: Any) -> argparse.Namespace:
    """What load_input_volume reads for one case (a CSV 'series' column picks one DICOM series)."""
    return argparse.Namespace(input=case.path, series=case.fields.get("series") or None)


def _lung_task(args: argparse.Namespace) -> Any:
    from radassist.commands import lung
    from radassist.lung.pipeline import detect_nodules

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

    return BatchTask("lung", "lung detect", run_case, plain_arguments(args), predictions=LUNA16)


def _liver_task(args: argparse.Namespace) -> Any:
    from radassist.commands import liver
    from radassist.liver.pipeline import segment_liver
    from radassist.liver.preprocess import check_ct
    from radassist.liver.weights import load_liver_model

    config = liver.segmentation_config(args)
    device = device_from_args(args)
    model = load_liver_model(args.arch, model_folder(args.model), device.device)
    backend = model.backend(args.backend, device)

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


BRAIN_PER_CASE = ("moving_labels", "fixed_labels", "moving_brain_mask", "fixed_brain_mask")
BRAIN_COLUMNS = ListColumns(path=("moving",), required=("fixed",), optional=BRAIN_PER_CASE, plain_list=False)
INFECTION_COLUMNS = ListColumns(optional=("lungs",))


def _lung_infection_task(args: argparse.Namespace) -> Any:
    from radassist.commands import lung_infection
    from radassist.lung.infection.pipeline import load_infection_model

    lung_infection.check_batch_size(args.batch_size)
    choice = device_from_args(args)
    model = load_infection_model(args.arch, model_folder(args.model), choice.device)

    def run_case(case, output, record, progress) -> None:
        lungs_file = case.fields.get("lungs") or None
        with record.timed("read"):
            volume = load_input_volume(_case_arguments(case))
            lungs = lung_infection.read_lungs(Path(lungs_file)) if lungs_file else None
        lung_infection.segment_and_write(volume, lungs, model, args.backend, choice, args.batch_size, progress,
                                         output, record)
        record.inputs = [str(case.path)] + ([lungs_file] if lungs_file else [])

    return BatchTask("lung-infection", "lung infection", run_case, plain_arguments(args), INFECTION_COLUMNS)


def _brain_register_task(args: argparse.Namespace) -> Any:
    from radassist.commands import brain

    device = device_from_args(args)
    loaded = brain._joint_model(args, device)
    config = brain._pipeline_config(args, loaded)

    def run_case(case, output, record, progress) -> None:
        given = {name: Path(case.fields[name]) if case.fields.get(name) else None for name in BRAIN_PER_CASE}
        fixed_path = Path(case.fields["fixed"])
        with record.timed("read"):
            moving = brain._images(case.path, given["moving_labels"], given["moving_brain_mask"])
            fixed = brain._images(fixed_path, given["fixed_labels"], given["fixed_brain_mask"])
            brain._name_single_images(moving, fixed)
        brain.register_and_write(moving, fixed, config, loaded, device, progress, output, record)
        record.inputs = [str(case.path), str(fixed_path)]

    return BatchTask("brain-register", "brain register", run_case, plain_arguments(args), BRAIN_COLUMNS)


BATCH_COMMANDS = {
    "lung": BatchCommand("lung", "detect", "lung nodules on chest CTs (the files of 'radassist lung detect')",
                         _lung_task),
    "liver": BatchCommand("liver", "segment", "liver and tumours on abdominal CTs (the files of 'radassist liver "
                                              "segment')", _liver_task),
    "lung-infection": BatchCommand("lung", "infection", "lung infection classes on chest CTs (the files of "
                                                        "'radassist lung infection'); an optional CSV column "
                                                        "'lungs' gives each case's --lungs",
                                   _lung_infection_task, INFECTION_COLUMNS, ("lungs",)),
    "brain-register": BatchCommand("brain", "register", "register brain MRI pairs (the files of 'radassist brain "
                                                        "register'); a CSV with columns id, moving, fixed and "
                                                        "optionally " + ", ".join(BRAIN_PER_CASE),
                                   _brain_register_task, BRAIN_COLUMNS, BRAIN_PER_CASE),
}


def _command_parser(spec: BatchCommand, formatter: type[argparse.HelpFormatter]) -> argparse.ArgumentParser:
    """The single-scan command's own parser, built by its module's register()."""
    module = importlib.import_module(f"radassist.commands.{spec.group}")
    scratch = argparse.ArgumentParser(add_help=False)
    groups = scratch.add_subparsers()
    module.register(groups, formatter)
    group = groups.choices[spec.group]
    actions = next(a for a in group._actions if isinstance(a, argparse._SubParsersAction))
    return actions.choices[spec.action]


def _copy_task_options(source: argparse.ArgumentParser, target: argparse.ArgumentParser,
                       per_case: tuple[str, ...] = ()) -> None:
    """The command's options, less those in NOT_COPIED and those the case list gives per case."""
    for action in source._actions:
        if action.option_strings and action.dest not in NOT_COPIED + per_case:
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
        listing = f"a CSV with columns {spec.columns.describe()}"
        task.add_argument("--inputs", type=Path, required=True, metavar="LIST",
                          help=f"case list: one path per line, or {listing}" if spec.columns.plain_list
                          else f"case list: {listing}")
        task.add_argument("--out", type=Path, required=True, help="output folder: one sub-folder per case")
        _copy_task_options(_command_parser(spec, formatter), task, spec.per_case)
        task.set_defaults(handler=run_batch_command, **{KEEPS_OUT: True})  # resumable: its folder is its own


def run_batch_command(args: argparse.Namespace) -> int:
    from radassist.batch import read_case_list, run_batch

    spec = BATCH_COMMANDS[args.batch_task]
    read_case_list(args.inputs, spec.columns)  # a bad list is refused before a model is loaded or a folder made
    with distributed_command(args, backend="gloo", timeout_s=LONG_TIMEOUT_S):
        task = spec.build(args)
        with tqdm_progress(f"batch {args.batch_task}") as progress:
            report = run_batch(task, args.inputs, args.out, progress)
        done, skipped, failed = report.count("done"), report.count("skipped"), report.count("failed")
        print(f"{len(report.cases)} case(s): {done} done now, {skipped} already done (skipped), {failed} failed; "
              f"wrote {args.out / 'predictions.csv'} (every finished case in one file), "
              f"{args.out / 'batch_report.json'}" + (f" and {args.out / 'failures.csv'}" if failed else ""))
        for case in report.failed:
            print(f"  failed: {case.case_id}: {case.message}")
    return 1 if report.failed else 0
