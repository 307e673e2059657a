"""Export one corrected case into a dataset folder the training commands read, with versions and provenance.

The generic part every task shares (the task layouts are in ``export_<layout>.py``):

* the dataset folder holds the training layout (latest version of every case under its plain name), the index
  ``radassist-export.json`` (every version of every case, the dataset's label table), ``provenance/<case>/<vN>/``
  (``provenance.json``, the AI result files copied unchanged under ``ai/``, the corrected files as given under
  ``corrected/``) and ``archive/<case>/<vN>/`` (the training files of superseded versions, moved there, never
  overwritten);
* exporting a case again makes version v2, v3, ...; the previous version's training files are archived;
* everything happens under the dataset's lock in one transaction (:mod:`radassist.annotation.store`): two exports
  at once both land, an interrupted one leaves the dataset as it was.

A folder that has files but no index is refused: an export never writes over a data set it did not make (use
:func:`radassist.annotation.mix.mix_datasets` to train on an export together with an original data set).
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radassist import __version__
from radassist.annotation.provenance import (PROVENANCE_NAME, ModelInfo, ProvenanceRecord, now_utc,
                                             provenance_text)
from radassist.annotation import store
from radassist.annotation.store import LOCK_NAME, Transaction, dataset_lock, recover
from radassist.errors import InputError, OutputError
from radassist.io.json_files import read_json
from radassist.runtime.checkpoints import sha256_file

INDEX_NAME = "radassist-export.json"
INDEX_FORMAT = "radassist-export-index"
INDEX_VERSION = 1
PROVENANCE_DIR = "provenance"
ARCHIVE_DIR = "archive"
CASE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
TASK_LAYOUTS = {"liver": "MSD", "lung-infection": "MSD", "lung": "LUNA16", "brain": "BraTS", "mammo": "exam list"}


def check_case_name(case: str) -> str:
    """Case names become file names in every layout: letters, digits, '.', '_' and '-' only."""
    if not CASE_NAME.match(case or "") or case.endswith(".") or ".." in case:
        raise InputError(None, f"case name {case!r} must start with a letter or digit and hold only letters, "
                               f"digits, '.', '_' and '-' (it becomes part of file names)")
    return case


# -- the index ------------------------------------------------------------------------------------------------

def read_index(root: str | Path, task: str | None = None) -> dict[str, Any]:
    """The export index of ``root``; InputError when it is missing, unreadable or for another task."""
    root = Path(root)
    path = root / INDEX_NAME
    if not path.is_file():
        raise InputError(root, f"is not a RadAssist export (no {INDEX_NAME})")
    index = read_json(path, "export index")
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT or not isinstance(index.get("cases"),
                                                                                             dict):
        raise InputError(path, f"is not a RadAssist export index (no \"format\": \"{INDEX_FORMAT}\")")
    if task is not None and index.get("task") != task:
        raise InputError(root, f"holds a {index.get('task')} export; a {task} case cannot be added to it")
    return index


def _open_index(root: Path, task: str) -> dict[str, Any]:
    if (root / INDEX_NAME).is_file():
        return read_index(root, task)
    visible = [p.name for p in root.iterdir() if not p.name.startswith(".")]
    if visible:
        raise InputError(root, f"has files but is not a RadAssist export (no {INDEX_NAME}); export into a new or "
                               f"empty folder, or into an earlier export of the same task")
    return {"format": INDEX_FORMAT, "formatVersion": INDEX_VERSION, "task": task, "layout": TASK_LAYOUTS[task],
            "created": now_utc(), "cases": {}}


def next_version(index: Mapping[str, Any], case: str) -> str:
    versions = index["cases"].get(case, {}).get("versions", [])
    return f"v{len(versions) + 1}"


def latest_entries(index: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(case, entry of its latest version) for every case, sorted by case name."""
    return [(case, next(v for v in info["versions"] if v["version"] == info["latest"]))
            for case, info in sorted(index["cases"].items())]


def csv_text(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    """A CSV file's text (``\n`` line ends), for the index files the layouts render."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(header))
    writer.writerows(rows)
    return buffer.getvalue()


# -- one export -----------------------------------------------------------------------------------------------

@dataclass
class CasePlan:
    """What a task hands to :func:`export_case`: writers for its training files (relative path -> function that
    writes that file at the path it is given), the change metrics, review state and index data of the case."""

    files: dict[str, Callable[[Path], Any]]
    changes: dict[str, Any] = field(default_factory=dict)
    review: dict[str, Any] = field(default_factory=dict)
    entry: dict[str, Any] = field(default_factory=dict)
    index_updates: dict[str, Any] = field(default_factory=dict)  # dataset-wide index fields (e.g. label table)


@dataclass
class ExportResult:
    """What an export published."""

    root: Path
    task: str
    case: str
    version: str
    provenance: Path
    files: list[str]
    changes: dict[str, Any]


def _copy_inputs(files: Sequence[Path], folder: str, new_path: Callable[[str], Path]) -> list[dict[str, str]]:
    """Copy files unchanged into ``folder`` of the staging area; returns their records (relative path, sha256)."""
    records = []
    seen: set[str] = set()
    for source in files:
        source = Path(source)
        if not source.is_file():
            raise InputError(source, "file not found")
        name = source.name
        while name in seen:
            name = f"_{name}"
        seen.add(name)
        relative = f"{folder}/{name}"
        shutil.copyfile(source, new_path(relative))
        records.append({"path": relative, "sha256": sha256_file(source), "original": str(source.resolve())})
    return records


def export_case(root: str | Path, task: str, case: str, build: Callable[[str, dict[str, Any]], CasePlan],
                render: Callable[[dict[str, Any]], dict[str, str]], *, model: ModelInfo, annotator: str,
                ai_files: Sequence[Path] = (), corrected_files: Sequence[Path] = (),
                source: Mapping[str, Any] | None = None) -> ExportResult:
    """Export one case version of ``task`` into ``root``.

    ``build(version, index)`` returns the case's :class:`CasePlan` (it may read the index, e.g. the dataset's
    label table); ``render(index)`` returns the dataset-wide files the training reader needs (``annotations.csv``,
    ``dataset.json``, ...) as relative path -> text, computed from the updated index.
    """
    if task not in TASK_LAYOUTS:
        raise InputError(None, f"unknown export task {task!r}; choose one of {', '.join(TASK_LAYOUTS)}")
    check_case_name(case)
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(root, f"cannot create the dataset folder ({error.strerror or error})") from None
    with dataset_lock(root):
        recover(root)
        index = _open_index(root, task)
        version = next_version(index, case)
        plan = build(version, index)
        with Transaction(root) as transaction:
            for relative, writer in plan.files.items():
                writer(transaction.new_path(relative))
            store.crash_point("training files staged")
            new_root = transaction.staging / "new"
            layout_files = sorted(p.relative_to(new_root).as_posix() for p in new_root.rglob("*") if p.is_file())
            folder = f"{PROVENANCE_DIR}/{case}/{version}"
            ai_records = _copy_inputs(ai_files, f"{folder}/ai", transaction.new_path)
            corrected_records = _copy_inputs(corrected_files, f"{folder}/corrected", transaction.new_path)
            for relative in layout_files:
                corrected_records.append({"path": relative, "sha256": sha256_file(new_root / relative),
                                          "role": "training"})
            record = ProvenanceRecord(task=task, case=case, version=version, model=model, annotator=annotator,
                                      ai_result=ai_records, corrected=corrected_records, changes=plan.changes,
                                      review=plan.review, source=dict(source or {}), radassist_version=__version__)
            provenance = f"{folder}/{PROVENANCE_NAME}"
            transaction.new_path(provenance).write_text(provenance_text(record), encoding="utf-8")

            info = index["cases"].setdefault(case, {"versions": []})
            if info["versions"]:
                previous = next(v for v in info["versions"] if v["version"] == info["latest"])
                archived = [f"{ARCHIVE_DIR}/{case}/{previous['version']}/{relative}" for relative in previous["files"]]
                for relative, target in zip(previous["files"], archived):
                    transaction.move(relative, target)
                previous.update(files=archived, archived=True)
            info["versions"].append({
                "version": version, "created": record.created, "annotator": annotator, "model": model.to_dict(),
                "provenance": provenance, "files": layout_files, "archived": False, **plan.entry})
            info["latest"] = version
            index.update(plan.index_updates)
            index["updated"] = record.created
            for relative, text in render(index).items():
                transaction.new_path(relative, replace=True).write_text(text, encoding="utf-8")
            transaction.new_path(INDEX_NAME, replace=True).write_text(json.dumps(index, indent=2) + "\n",
                                                                      encoding="utf-8")
            store.crash_point("staged")
            published = transaction.commit()
    return ExportResult(root=root, task=task, case=case, version=version, provenance=root / provenance,
                        files=published, changes=plan.changes)


def source_summary(source: Any) -> dict[str, Any]:
    """What provenance keeps of the image's SourceInfo: identifiers, not the list of every slice's UID."""
    data = source.to_dict()
    uids = data.pop("sop_instance_uids", None)
    if uids:
        data["images"] = len(uids)
    return data


def dataset_files(root: str | Path) -> dict[str, bytes]:
    """Every file of a dataset folder with its bytes, except the lock file (which only says someone exported);
    the tests compare these before and after an interrupted export."""
    root = Path(root)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != LOCK_NAME}
