"""Exam lists: which images form an exam, their view and laterality, image-level labels and lesion masks.

Two files describe the same data (``radassist synth mammo`` writes both, :mod:`radassist.synthetic.datasets`):

* ``exam_list.csv``: one row per image, columns ``path, exam, laterality, view, benign, malignant`` and
  optionally ``benign_mask, malignant_mask`` (paths relative to the file; empty when there is none).
* ``exam_list.json``: a list of exams in GMIC's layout: ``id``, the view names ("L-CC", ...) each with a list of
  image paths (the first is used), per-breast labels as ``breasts`` ({"L": {"benign": 0, "malignant": 1}, ...})
  or GMIC's ``cancer_label`` (``left_benign``, ``right_malignant``, ...), and ``masks`` per view.

A folder is read through its ``exam_list.json``, else its ``exam_list.csv``. Labels are per image (a view carries
its breast's labels). Problems are InputErrors naming the file and the row or exam.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from radassist.errors import InputError
from radassist.io.json_files import read_json
from radassist.mammo.preprocess import EXAM_VIEWS

CSV_COLUMNS = ("path", "exam", "laterality", "view", "benign", "malignant")
LIST_NAMES = ("exam_list.json", "exam_list.csv")


@dataclass(frozen=True)
class ViewRecord:
    """One image of an exam list."""

    path: Path
    exam: str
    laterality: str
    view: str
    benign: int
    malignant: int
    benign_mask: Path | None = None
    malignant_mask: Path | None = None

    @property
    def name(self) -> str:
        return f"{self.laterality}-{self.view}"

    @property
    def labels(self) -> tuple[int, int]:
        return self.benign, self.malignant

    def mask(self, kind: str) -> Path | None:
        return self.benign_mask if kind == "benign" else self.malignant_mask


@dataclass(frozen=True)
class ExamRecord:
    """The views of one exam, in L-CC, R-CC, L-MLO, R-MLO order."""

    exam: str
    views: tuple[ViewRecord, ...]

    def breast_labels(self, laterality: str) -> tuple[int, int] | None:
        members = [v for v in self.views if v.laterality == laterality]
        if not members:
            return None
        return max(v.benign for v in members), max(v.malignant for v in members)


def find_exam_list(path: str | Path) -> Path:
    """The exam list file of ``path`` (a file, or a folder holding exam_list.json / exam_list.csv)."""
    path = Path(path)
    if path.is_dir():
        for name in LIST_NAMES:
            if (path / name).is_file():
                return path / name
        raise InputError(path, f"holds no exam list ({' or '.join(LIST_NAMES)}); 'radassist synth mammo --out "
                               f"DIR' writes an example")
    if not path.is_file():
        raise InputError(path, "does not exist")
    return path


def _label(value: Any, where: str, path: Path) -> int:
    try:
        number = int(float(value))
    except (TypeError, ValueError):
        raise InputError(path, f"{where}: label {value!r} is not 0 or 1") from None
    if number not in (0, 1) or float(value) != number:
        raise InputError(path, f"{where}: label {value!r} is not 0 or 1")
    return number


def _file(base: Path, value: Any, where: str, path: Path, required: bool = True) -> Path | None:
    text = str(value or "").strip()
    if not text:
        if required:
            raise InputError(path, f"{where}: no image path")
        return None
    target = Path(text) if Path(text).is_absolute() else base / text
    if not target.is_file():
        raise InputError(path, f"{where}: file {text} not found (looked at {target})")
    return target


def _record(base: Path, path: Path, where: str, image: Any, exam: str, name: str, labels: tuple[Any, Any],
            masks: dict[str, Any]) -> ViewRecord:
    if name not in EXAM_VIEWS:
        raise InputError(path, f"{where}: view {name!r} is not one of {', '.join(EXAM_VIEWS)}")
    laterality, view = name.split("-")
    return ViewRecord(_file(base, image, where, path), exam, laterality, view,
                      _label(labels[0], where, path), _label(labels[1], where, path),
                      _file(base, masks.get("benign"), where, path, False),
                      _file(base, masks.get("malignant"), where, path, False))


def _read_csv(path: Path) -> list[ViewRecord]:
    base = path.parent
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise InputError(path, f"missing column(s) {', '.join(missing)}; an exam list has "
                                       f"{', '.join(CSV_COLUMNS)}")
            rows = list(enumerate(reader, start=2))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(path, f"is not a readable CSV file ({exc})") from None
    records = []
    for line, row in rows:
        name = f"{(row['laterality'] or '').strip().upper()}-{(row['view'] or '').strip().upper()}"
        records.append(_record(base, path, f"line {line}", row["path"], str(row["exam"]).strip(), name,
                               (row["benign"], row["malignant"]),
                               {"benign": row.get("benign_mask"), "malignant": row.get("malignant_mask")}))
    return records


def _breast_label(entry: dict, laterality: str, path: Path, where: str) -> tuple[Any, Any]:
    breasts = entry.get("breasts")
    if isinstance(breasts, dict) and laterality in breasts:
        labels = breasts[laterality]
        return labels.get("benign"), labels.get("malignant")
    cancer = entry.get("cancer_label")
    side = "left" if laterality == "L" else "right"
    if isinstance(cancer, dict) and f"{side}_benign" in cancer:
        return cancer.get(f"{side}_benign"), cancer.get(f"{side}_malignant")
    raise InputError(path, f"{where}: no labels for the {side} breast ('breasts' or 'cancer_label')")


def _read_json(path: Path) -> list[ViewRecord]:
    exams = read_json(path, "exam list", expected=list)
    records = []
    for number, entry in enumerate(exams):
        if not isinstance(entry, dict):
            raise InputError(path, f"exam {number}: not a JSON object")
        exam = str(entry.get("id", number))
        masks = entry.get("masks") or {}
        views = [name for name in EXAM_VIEWS if entry.get(name)]
        if not views:
            raise InputError(path, f"exam {exam}: lists none of the views {', '.join(EXAM_VIEWS)}")
        for name in views:
            images = entry[name]
            image = images[0] if isinstance(images, list) else images
            where = f"exam {exam} {name}"
            records.append(_record(path.parent, path, where, image, exam, name,
                                   _breast_label(entry, name[0], path, where), masks.get(name) or {}))
    return records


def read_exam_list(path: str | Path) -> list[ExamRecord]:
    """Every exam of an exam list (file or folder), views in L-CC, R-CC, L-MLO, R-MLO order."""
    file = find_exam_list(path)
    records = _read_json(file) if file.suffix.lower() == ".json" else _read_csv(file)
    if not records:
        raise InputError(file, "lists no images")
    exams: dict[str, list[ViewRecord]] = {}
    for record in records:
        exams.setdefault(record.exam, []).append(record)
    out = []
    for exam, views in exams.items():
        names = [v.name for v in views]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise InputError(file, f"exam {exam} lists {', '.join(doubled)} more than once")
        out.append(ExamRecord(exam, tuple(sorted(views, key=lambda v: EXAM_VIEWS.index(v.name)))))
    return out


def split_exams(exams: list[ExamRecord], validation_fraction: float, seed: int
                ) -> tuple[list[ExamRecord], list[ExamRecord]]:
    """Training and validation exams (by exam, so no patient's views are on both sides); at least one exam
    is kept for training, and one for validation when the fraction is above 0 and there are two exams."""
    if not 0.0 <= validation_fraction < 1.0:
        raise InputError(None, f"the validation fraction must be within 0..1, got {validation_fraction}")
    order = np.random.default_rng(seed).permutation(len(exams))
    count = int(round(validation_fraction * len(exams)))
    if validation_fraction > 0 and len(exams) > 1:
        count = min(max(count, 1), len(exams) - 1)
    validation = [exams[i] for i in sorted(order[:count])]
    training = [exams[i] for i in sorted(order[count:])]
    return training, validation
