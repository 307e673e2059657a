"""Train on an export together with the original training set: one folder in the layout the training reads.

:func:`mix_datasets` makes a new folder that links (symbolic links; hard links or copies where those are not
allowed) to the files of both, in the original set's layout, with the index files merged. A case that was
corrected replaces the original's version of it (LUNA16 by seriesuid, LiTS by ``volume-N`` case name, BraTS by
subject folder, exam lists by exam id); the other corrected cases are added. Nothing is copied or changed in
either source, and ``mix.json`` records what came from where.

:func:`training_data` is what ``radassist train TASK --data BASE --data EXPORT ...`` reads: one folder as it is,
several mixed in order (the first is the base set, each later one's cases replace or join it) into a temporary
folder that lives as long as the training.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from radassist.annotation.export import csv_text
from radassist.errors import InputError
from radassist.io.atomic import RunOutput, temporary_folder

MIX_TASKS = ("lung", "liver", "brain", "mammo")


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    source = source.resolve()
    try:
        os.symlink(source, target)
    except OSError:
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)


def _read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _mix_lung(original: Path, export: Path, run: RunOutput) -> dict[str, Any]:
    from radassist.lung.datasets import read_luna16

    corrected = {path.name[:-4]: path for path in sorted(export.glob("subset*/*.mhd"))}  # seriesuid -> .mhd
    kept = 0
    for scan in read_luna16(original).scans:
        if scan.uid in corrected:
            continue
        for part in (scan.path, scan.path.with_suffix(".raw"), scan.path.with_suffix(".zraw")):
            if part.is_file():
                _link(part, run.path(f"{scan.subset}/{part.name}"))
        kept += 1
    for uid, path in corrected.items():
        for part in (path, path.with_suffix(".raw"), path.with_suffix(".zraw")):
            if part.is_file():
                _link(part, run.path(f"subset_corrected/{part.name}"))
    for name in ("annotations.csv", "annotations_excluded.csv"):
        if not (original / name).is_file():
            continue
        header, rows = _read_rows(original / name)
        rows = [r for r in rows if r.get("seriesuid") not in corrected]
        if name == "annotations.csv":
            rows += _read_rows(export / name)[1]
        run.path(name).write_text(csv_text(header, ([r.get(c, "") for c in header] for r in rows)),
                                  encoding="utf-8")
    if (original / "patients.csv").is_file():
        _link(original / "patients.csv", run.path("patients.csv"))
    return {"original_scans": kept, "corrected_scans": sorted(corrected)}


def _mix_liver(original: Path, export: Path, run: RunOutput) -> dict[str, Any]:
    from radassist.annotation.msd import find_liver_cases, read_msd_dataset

    cases = {f"volume-{c.number}": (c.volume, c.segmentation) for c in find_liver_cases(original)}
    msd = read_msd_dataset(export)
    if len(msd.channel_names) != 1:
        raise InputError(export, "the liver training reads one CT channel; this export has several")
    replaced, added = [], []
    next_number = max((int(name.split("-")[1]) for name in cases), default=-1) + 1
    for case in msd.cases:
        if re.fullmatch(r"volume-\d+", case.name) and case.name in cases:
            cases[case.name] = (case.images[0], case.label)
            replaced.append(case.name)
        else:
            cases[f"volume-{next_number}"] = (case.images[0], case.label)
            added.append({"case": case.name, "as": f"volume-{next_number}"})
            next_number += 1
    for name, (volume, segmentation) in cases.items():
        number = name.split("-")[1]
        for prefix, file in (("volume", volume), ("segmentation", segmentation)):
            _link(file, run.path(f"{prefix}-{number}{'.nii.gz' if file.name.endswith('.gz') else '.nii'}"))
    return {"replaced": replaced, "added": added, "cases": len(cases)}


def _mix_brain(original: Path, export: Path, run: RunOutput) -> dict[str, Any]:
    from radassist.brain.datasets import subject_folders

    subjects = {p.name: p for p in subject_folders(original)}
    corrected = {p.name: p for p in subject_folders(export)}
    subjects.update(corrected)
    for name, folder in subjects.items():
        for file in sorted(p for p in folder.iterdir() if p.is_file()):
            _link(file, run.path(f"{name}/{file.name}"))
    return {"subjects": len(subjects), "corrected": sorted(corrected)}


def _mix_mammo(original: Path, export: Path, run: RunOutput) -> dict[str, Any]:
    from radassist.annotation.export_exam_list import CSV_COLUMNS
    from radassist.mammo.datasets import read_exam_list

    exams = {exam.exam: exam for exam in read_exam_list(original)}
    corrected = {exam.exam: exam for exam in read_exam_list(export)}
    exams.update(corrected)
    rows = [[str(view.path.resolve()), exam.exam, view.laterality, view.view, view.benign, view.malignant,
             str(view.benign_mask.resolve()) if view.benign_mask else "",
             str(view.malignant_mask.resolve()) if view.malignant_mask else ""]
            for exam in exams.values() for view in exam.views]
    run.path("exam_list.csv").write_text(csv_text(CSV_COLUMNS, rows), encoding="utf-8")
    return {"exams": len(exams), "corrected": sorted(corrected)}


_MIXERS = {"lung": _mix_lung, "liver": _mix_liver, "brain": _mix_brain, "mammo": _mix_mammo}


def mix_datasets(task: str, original: str | Path, export: str | Path, out: str | Path) -> Path:
    """A new folder ``out`` in ``task``'s training layout holding the original set with the export's corrections
    (see the module docstring). ``out`` must not exist or be empty; returns it."""
    if task not in _MIXERS:
        raise InputError(None, f"cannot mix {task!r} data; tasks: {', '.join(MIX_TASKS)}")
    original, export, out = Path(original), Path(export), Path(out)
    for folder in (original, export):
        if not folder.is_dir():
            raise InputError(folder, "is not a folder")
    if out.exists() and any(out.iterdir()):
        raise InputError(out, "already has files; give a new folder for the mixed data set")
    with RunOutput(out) as run:
        details = _MIXERS[task](original, export, run)
        run.path("mix.json").write_text(json.dumps({
            "task": task, "original": str(original.resolve()), "export": str(export.resolve()), **details},
            indent=2) + "\n", encoding="utf-8")
    return out


@contextmanager
def training_data(task: str, folders: Sequence[str | Path]) -> Iterator[Path]:
    """The folder a training of ``task`` reads: ``folders[0]`` alone, or all of them mixed in order (the first is
    the base set; each later one, usually a 'radassist export' folder, replaces the cases it holds and adds its
    new ones) into a temporary folder of links, removed when the block ends."""
    if not folders:
        raise InputError(None, "give at least one --data folder")
    if len(folders) == 1:
        yield Path(folders[0])
        return
    with temporary_folder(prefix="radassist-mix-") as temporary:
        mixed = Path(folders[0])
        for number, export in enumerate(folders[1:], start=1):
            mixed = mix_datasets(task, mixed, export, Path(temporary) / f"mix{number}")
        yield mixed
