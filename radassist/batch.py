"""Cohort batch inference: one task over a list of scans, one output folder per case, resumable and failure-proof.

A research group runs a task over thousands of scans; a crash, a bad scan or a lost node must not cost the cases
already finished. So :func:`run_batch`

* reads a list file: one path per line (``#`` comments and blank lines skipped), or a CSV with an ``id`` column
  and a ``path`` column (relative paths are relative to the list file);
* writes each case to ``OUT/<id>/`` exactly as the task's own command does (the same files and ``result.json``),
  staged and published all at once, so a case folder is either complete or absent;
* skips a case that is done: its ``result.json`` exists and every output it lists is there. Running the same
  command again resumes; failed cases are tried again;
* records a failing case (``failures.csv``, ``batch_report.json``) and goes on with the next;
* writes ``predictions.csv``: every finished case in one file, for the cohort's analysis (nodules in the
  LUNA16 submission columns; for the other tasks one row per case with its result.json summary);
* under ``torchrun --nproc-per-node N`` (one or several nodes) splits the cases that are not done across the
  processes, each case on exactly one; rank 0 decides what is done, and writes the summary once every rank has
  finished its share.

What a task does with one case is a :class:`BatchTask`: the CLI builds them (radassist/commands/batch.py) from the
task commands' own model loading and output writers, so the model is loaded once per process, not once per case.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import re
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from radassist.errors import InputError, RadAssistError
from radassist.io.atomic import RunOutput, atomic_path, ensure_writable_dir, full_suffix
from radassist.runtime.progress import Cancelled, Progress
from radassist.runtime.run_record import RunRecord

RESULT_FILE = "result.json"
REPORT_FILE = "batch_report.json"
FAILURES_FILE = "failures.csv"
PREDICTIONS_FILE = "predictions.csv"
LUNA16, SUMMARY = "luna16", "summary"  # how a task's cases are combined into predictions.csv
FAILURE_COLUMNS = ("id", "input", "rank", "error_type", "message")
PATH_COLUMNS = ("path", "input", "image", "file")
CASE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class CaseInput:
    """One line of the list: the case's id (its output folder's name), its input path and any other CSV columns."""

    case_id: str
    path: Path
    line: int = 0
    fields: Mapping[str, str] = field(default_factory=dict)


CaseRunner = Callable[[CaseInput, RunOutput, RunRecord, Progress], None]


@dataclass(frozen=True)
class ListColumns:
    """The columns of a task's case list. A case's input is the first of ``path`` the CSV has; a task with more
    than one input per case (a registration's moving and fixed image) names the others: ``required`` ones every
    case must fill, ``optional`` ones it may. Their values are paths, resolved like the input's (relative to the
    list file) and handed to the task in ``CaseInput.fields``. ``plain_list``: one path per line is allowed too."""

    path: tuple[str, ...] = PATH_COLUMNS
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    plain_list: bool = True

    def describe(self) -> str:
        return ", ".join(["id", self.path[0], *self.required]) + (
            f" (optional: {', '.join(self.optional)})" if self.optional else "")


@dataclass(frozen=True)
class BatchTask:
    """A task as a batch runs it. ``run_case`` reads the case's input, runs the pipeline, writes the task's files
    into the staged ``RunOutput`` and fills the record's summary; the batch owns the folder and result.json."""

    name: str  # the batch task name, e.g. "lung"
    command: str  # the command whose files a case gets, recorded in result.json, e.g. "lung detect"
    run_case: CaseRunner
    arguments: Mapping[str, Any] = field(default_factory=dict)  # the task options, recorded in each result.json
    columns: ListColumns = field(default_factory=ListColumns)  # what its case list holds
    predictions: str = SUMMARY  # LUNA16: each case's nodules.csv; SUMMARY: one row per case from result.json


@dataclass
class CaseOutcome:
    """What happened to one case in this run."""

    case_id: str
    input: str
    status: str  # "done" (processed now), "skipped" (done before) or "failed"
    rank: int | None = None  # the process that ran it (None: skipped, decided by rank 0)
    seconds: float = 0.0
    outputs: list[str] = field(default_factory=list)
    error_type: str | None = None
    message: str | None = None
    traceback: str | None = None  # for errors that are not the input's fault (a bug to report)


@dataclass
class BatchReport:
    """The whole cohort: every case's outcome, in list order."""

    task: str
    command: str
    out: str
    inputs: str | None
    world_size: int
    cases: list[CaseOutcome]
    started: str
    finished: str

    def count(self, status: str) -> int:
        return sum(1 for case in self.cases if case.status == status)

    @property
    def failed(self) -> list[CaseOutcome]:
        return [case for case in self.cases if case.status == "failed"]

    def to_dict(self) -> dict[str, Any]:
        counts = {"total": len(self.cases), **{status: self.count(status) for status in ("done", "skipped", "failed")}}
        return {"task": self.task, "command": self.command, "out": self.out, "inputs": self.inputs,
                "world_size": self.world_size, "counts": counts, "started": self.started,
                "finished": self.finished, "cases": [asdict(case) for case in self.cases]}


# -- the list file ---------------------------------------------------------------------------------------------------

def case_id_for(path: Path) -> str:
    """A folder name for a case listed by path alone: the file name without its format suffix (a DICOM folder's
    own name), characters other than letters, digits, '.', '_' and '-' replaced by '_'."""
    name = path.name
    suffix = full_suffix(path)
    if suffix and name.lower().endswith(suffix.lower()) and len(name) > len(suffix):
        name = name[:-len(suffix)]
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip("._-")
    return name or "case"


def _resolve(text: str, base: Path) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def _read_csv(path: Path, text: str, wanted: ListColumns) -> list[CaseInput]:
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in reader.fieldnames or []]
    reader.fieldnames = columns
    path_column = next((c for c in wanted.path if c in columns), None)
    absent = [c for c in wanted.required if c not in columns]
    if "id" not in columns or path_column is None or absent:
        others = f" (or one of {', '.join(wanted.path[1:])})" if len(wanted.path) > 1 else ""
        more = "".join(f", a '{c}' column" for c in wanted.required)
        raise InputError(path, f"a CSV case list needs an 'id' column, a '{wanted.path[0]}' column{others}{more}; "
                               f"found {', '.join(columns) or 'no header'}")
    paths = (*wanted.required, *wanted.optional)
    cases = []
    for number, row in enumerate(reader, start=2):
        case_id, value = (row.get("id") or "").strip(), (row.get(path_column) or "").strip()
        if not case_id and not value:
            continue
        if not CASE_ID_PATTERN.match(case_id) or case_id in (".", ".."):
            raise InputError(path, f"line {number}: id {case_id!r} cannot name a folder; use letters, digits, '.', "
                                   f"'_' and '-', starting with a letter or digit")
        extra = {k: (v or "").strip() for k, v in row.items() if k not in ("id", path_column) and k is not None}
        empty = [c for c in (path_column, *wanted.required) if not (row.get(c) or "").strip()]
        if empty:
            raise InputError(path, f"line {number}: case '{case_id}' has no {empty[0]}")
        for column in paths:
            if extra.get(column):
                extra[column] = str(_resolve(extra[column], path.parent))
        cases.append(CaseInput(case_id, _resolve(value, path.parent), number, extra))
    return cases


def _read_lines(path: Path, text: str) -> list[CaseInput]:
    cases = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        case_path = _resolve(line, path.parent)
        cases.append(CaseInput(case_id_for(case_path), case_path, number))
    return cases


def read_case_list(path: str | Path, columns: ListColumns = ListColumns()) -> list[CaseInput]:
    """The cases of a list file (see the module text and :class:`ListColumns`); refuses an empty list and ids used
    twice."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "case list not found")
    if path.is_dir():
        raise InputError(path, "is a folder; give a list file: one input path per line, or a CSV with 'id' and "
                               "'path' columns")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(path, "is not a UTF-8 text file; a case list holds one input path per line") from None
    if path.suffix.lower() != ".csv" and not columns.plain_list:
        raise InputError(path, f"this task needs a CSV case list (.csv) with the columns {columns.describe()}")
    cases = _read_csv(path, text, columns) if path.suffix.lower() == ".csv" else _read_lines(path, text)
    if not cases:
        raise InputError(path, "lists no cases")
    check_unique_ids(cases, path)
    return cases


def check_unique_ids(cases: Sequence[CaseInput], source: Path | None = None) -> None:
    """Two cases cannot share an output folder."""
    seen: dict[str, CaseInput] = {}
    for case in cases:
        if case.case_id in seen:
            first = seen[case.case_id]
            raise InputError(source, f"lines {first.line} and {case.line} both give case id '{case.case_id}' "
                                     f"({first.path.name}, {case.path.name}); list the cases in a CSV with an 'id' "
                                     f"column to name them apart")
        seen[case.case_id] = case


# -- one case --------------------------------------------------------------------------------------------------------

def is_case_done(folder: Path) -> bool:
    """True when ``folder/result.json`` exists, lists the outputs, and each of them is there."""
    try:
        record = json.loads((folder / RESULT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    outputs = record.get("outputs") if isinstance(record, dict) else None
    if not isinstance(outputs, list) or not outputs:
        return False
    return all(isinstance(name, str) and (folder / name).is_file() for name in outputs)


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()  # only succeeds on an empty folder: a failed case leaves no empty folder behind


def run_case(task: BatchTask, case: CaseInput, out: Path, rank: int = 0,
             progress: Progress | None = None) -> CaseOutcome:
    """Run one case into ``out/<id>/`` (staged: all of its files or none); an error becomes a failed outcome.
    Only a cancel or an interrupt stops the batch."""
    from radassist.commands.run_context import command_run

    progress = progress or Progress()
    folder = Path(out) / case.case_id
    started = time.perf_counter()
    arguments = argparse.Namespace(**(dict(task.arguments) | {"input": case.path, "out": folder}))
    try:
        with command_run(folder, task.command, arguments, overwrite=True) as (output, record):  # the batch's own
            record.inputs = [str(case.path)]
            task.run_case(case, output, record, progress)
    except (Cancelled, KeyboardInterrupt):
        _remove_if_empty(folder)
        raise
    except Exception as error:  # noqa: BLE001 - one bad case must not stop the cohort; it is recorded instead
        _remove_if_empty(folder)
        expected = isinstance(error, RadAssistError)
        return CaseOutcome(case.case_id, str(case.path), "failed", rank, round(time.perf_counter() - started, 3),
                           error_type=type(error).__name__,
                           message=str(error) if expected else f"{type(error).__name__}: {error}",
                           traceback=None if expected else traceback.format_exc(limit=20))
    return CaseOutcome(case.case_id, str(case.path), "done", rank, round(time.perf_counter() - started, 3),
                       outputs=list(record.outputs))


# -- the cohort ------------------------------------------------------------------------------------------------------

def _flat(summary: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A result.json summary as CSV cells: numbers and text as they are, nested mappings as ``key.sub``."""
    cells: dict[str, Any] = {}
    for key, value in summary.items():
        if isinstance(value, Mapping):
            cells.update(_flat(value, f"{prefix}{key}."))
        elif value is None or isinstance(value, (str, int, float, bool)):
            cells[f"{prefix}{key}"] = value
    return cells


def write_predictions(report: BatchReport, out: Path, kind: str = SUMMARY) -> Path:
    """``predictions.csv``: the finished cases (done now or before) in list order, in one file. LUNA16: the rows
    of every case's ``nodules.csv`` (seriesuid, coordX, coordY, coordZ, probability, diameter_mm: the LUNA16
    submission columns; ``score`` instead of ``probability`` when the cases were ranked by the classical detector's
    heuristic score), every candidate of every case, as ``radassist evaluate lung`` needs for its FROC; SUMMARY:
    ``case`` and the scalar values of each case's result.json summary."""
    from radassist.results.csv_json import read_detections_csv, write_detections_csv

    finished = [case for case in report.cases if case.status in ("done", "skipped")]
    path = out / PREDICTIONS_FILE
    if kind == LUNA16:
        groups = [group for case in finished if (out / case.case_id / "nodules.csv").is_file()
                  for group in read_detections_csv(out / case.case_id / "nodules.csv").values()]
        return write_detections_csv(groups, path)
    rows = []
    for case in finished:
        record = out / case.case_id / RESULT_FILE
        summary = json.loads(record.read_text(encoding="utf-8")).get("summary", {}) if record.is_file() else {}
        rows.append({"case": case.case_id, **_flat(summary if isinstance(summary, Mapping) else {})})
    columns = list(dict.fromkeys(name for row in rows for name in row)) or ["case"]
    with atomic_path(path) as temp, open(temp, "w", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_batch_report(report: BatchReport, out: Path) -> None:
    """``batch_report.json`` (every case) and ``failures.csv`` (the failed ones; just the header when none)."""
    with atomic_path(out / REPORT_FILE) as temp:
        temp.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    with atomic_path(out / FAILURES_FILE) as temp, open(temp, "w", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(FAILURE_COLUMNS)
        writer.writerows([case.case_id, case.input, case.rank, case.error_type, case.message]
                         for case in report.failed)


def run_batch(task: BatchTask, inputs: str | Path | Sequence[CaseInput], out: str | Path,
              progress: Progress | None = None, timeout_s: float | None = None) -> BatchReport:
    """Run ``task`` over the cases of ``inputs`` (a list file, or CaseInputs) into ``out``; see the module text.

    Under torchrun this joins the process group (Gloo: only small objects are exchanged) when the caller has
    not; ``timeout_s`` bounds how long a rank that finished waits for the others (default: 48 hours). Every rank
    returns the whole cohort's report; rank 0 has written it."""
    from radassist.runtime.distributed import (LONG_TIMEOUT_S, barrier, broadcast_object, gather_objects, get_rank,
                                               get_world_size, distributed_session, is_main_process, shard)

    progress = progress or Progress()
    source = Path(inputs) if isinstance(inputs, (str, Path)) else None
    cases = read_case_list(source, task.columns) if source is not None else list(inputs)
    check_unique_ids(cases, source)
    out = ensure_writable_dir(out)
    with distributed_session(backend="gloo", timeout_s=timeout_s or LONG_TIMEOUT_S):
        started = _now()
        rank, main = get_rank(), is_main_process()

        done = broadcast_object([c.case_id for c in cases if is_case_done(out / c.case_id)] if main else None)
        done_ids = set(done)
        pending = [case for case in cases if case.case_id not in done_ids]
        mine = shard(pending)
        outcomes: list[CaseOutcome] = []
        for number, case in enumerate(mine):
            case_progress = progress.sub(number / len(mine), (number + 1) / len(mine))
            case_progress.update(0.0, f"{case.case_id} ({number + 1}/{len(mine)})")
            outcomes.append(run_case(task, case, out, rank, case_progress))
        progress.update(1.0, f"{len(mine)} case(s) on this process")

        processed = {outcome.case_id: outcome for shares in gather_objects(outcomes) for outcome in shares}
        ordered = [processed.get(case.case_id) or CaseOutcome(case.case_id, str(case.path), "skipped")
                   for case in cases]
        report = BatchReport(task.name, task.command, str(out), None if source is None else str(source),
                             get_world_size(), ordered, started, _now())
        if main:
            write_batch_report(report, out)
            write_predictions(report, out, task.predictions)
        barrier()  # every rank returns once the summary is written
    return report


__all__ = ["BatchReport", "BatchTask", "CaseInput", "CaseOutcome", "FAILURES_FILE", "LUNA16", "ListColumns",
           "PREDICTIONS_FILE", "REPORT_FILE", "SUMMARY", "case_id_for", "check_unique_ids", "is_case_done",
           "read_case_list", "run_batch", "run_case", "write_batch_report", "write_predictions"]
