"""Mammography exams in the exam-list layout ``radassist train mammo`` reads.

``images/<case>_<view><ext>`` (each view's file copied unchanged: DICOM or PNG), ``masks/<case>_<view>_<kind>.png``
(lesion masks the annotator drew, benign or malignant) and ``exam_list.json`` (GMIC's layout: views, per-breast
``breasts`` labels and ``cancer_label``, ``masks``) with the same flattened in ``exam_list.csv``. The labels are
the confirmed per-breast ones; the provenance compares them with the AI's per-breast probabilities.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from radassist.annotation.changes import label_changes
from radassist.annotation.export import CasePlan, ExportResult, csv_text, export_case, latest_entries
from radassist.annotation.provenance import ModelInfo
from radassist.errors import InputError

VIEWS = ("L-CC", "R-CC", "L-MLO", "R-MLO")
CLASSES = ("benign", "malignant")
CSV_COLUMNS = ("path", "exam", "laterality", "view", "benign", "malignant", "benign_mask", "malignant_mask")


def check_confirmed(confirmed: Mapping[str, Mapping[str, Any]], views: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per-breast labels {"L": {"benign": 0|1, "malignant": 0|1}, "R": ...} for every breast that has a view."""
    out: dict[str, dict[str, int]] = {}
    for side in sorted({view[0] for view in views}):
        labels = confirmed.get(side)
        if not isinstance(labels, Mapping):
            raise InputError(None, f"no confirmed labels for the {'left' if side == 'L' else 'right'} breast "
                                   f"(expected {{\"{side}\": {{\"benign\": 0 or 1, \"malignant\": 0 or 1}}}})")
        out[side] = {}
        for name in CLASSES:
            value = labels.get(name)
            if value not in (0, 1) or isinstance(value, bool):
                raise InputError(None, f"confirmed {side} {name} label must be 0 or 1, got {value!r}")
            out[side][name] = int(value)
    return out


def _check_mask(path: Path) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            array = np.asarray(image)
    except (OSError, UnidentifiedImageError) as error:
        raise InputError(path, f"not a readable mask image ({error})") from None
    if array.ndim != 2:
        raise InputError(path, f"a lesion mask is a one-channel image, got shape {array.shape}")
    return tuple(int(n) for n in array.shape)


def render_exam_list(index: dict[str, Any]) -> dict[str, str]:
    exams, rows = [], []
    for case, entry in latest_entries(index):
        exam: dict[str, Any] = {"id": case, "horizontal_flip": "NO"}
        labels = entry["breasts"]
        for view, image in entry["views"].items():
            exam[view] = [image]
            masks = entry["masks"].get(view, {})
            side = labels[view[0]]
            rows.append([image, case, view[0], view[2:], side["benign"], side["malignant"],
                         masks.get("benign", ""), masks.get("malignant", "")])
        exam["breasts"] = labels
        exam["cancer_label"] = {f"{'left' if s == 'L' else 'right'}_{name}": labels[s][name]
                                for s in sorted(labels) for name in CLASSES}
        exam["masks"] = entry["masks"]
        exams.append(exam)
    return {"exam_list.json": json.dumps(exams, indent=2) + "\n", "exam_list.csv": csv_text(CSV_COLUMNS, rows)}


def export_mammography(root: str | Path, case: str, views: Mapping[str, Path],
                       confirmed: Mapping[str, Mapping[str, Any]], *,
                       ai_probabilities: Mapping[str, Mapping[str, float]] | None = None,
                       masks: Mapping[tuple[str, str], Path] | None = None, model: ModelInfo = ModelInfo(),
                       annotator: str = "", ai_files: Sequence[Path] = (), corrected_files: Sequence[Path] = (),
                       threshold: float = 0.5) -> ExportResult:
    """Export one exam: ``views`` {"L-CC": file, ...}, ``confirmed`` per-breast labels, ``masks``
    {(view, "benign"|"malignant"): PNG}; ``ai_probabilities`` {"L": {"benign": p, ...}, ...} from the AI report."""
    import shutil

    if not views:
        raise InputError(None, "give at least one view image (L-CC, R-CC, L-MLO, R-MLO)")
    for view, path in views.items():
        if view not in VIEWS:
            raise InputError(path, f"view {view!r} is not one of {', '.join(VIEWS)}")
        if not Path(path).is_file():
            raise InputError(path, "file not found")
    labels = check_confirmed(confirmed, list(views))
    masks = dict(masks or {})
    mask_shapes = {}
    for (view, kind), path in masks.items():
        if view not in views:
            raise InputError(path, f"is a mask of view {view}, but the exam has no {view} image")
        if kind not in CLASSES:
            raise InputError(path, f"mask kind {kind!r} is not benign or malignant")
        mask_shapes[f"{view} {kind}"] = list(_check_mask(Path(path)))
    changes = {"labels": [c.to_dict() for c in label_changes(ai_probabilities or {}, labels, threshold)],
               "threshold": threshold, "masks": mask_shapes}

    def build(version: str, index: dict[str, Any]) -> CasePlan:
        files: dict[str, Any] = {}
        images: dict[str, str] = {}
        for view in (v for v in VIEWS if v in views):
            source = Path(views[view])
            suffix = "".join(source.suffixes[-1:]).lower() or ".dcm"
            images[view] = f"images/{case}_{view}{suffix}"
            files[images[view]] = lambda path, source=source: shutil.copyfile(source, path)
        drawn: dict[str, dict[str, str]] = {}
        for (view, kind), source in sorted(masks.items()):
            relative = f"masks/{case}_{view}_{kind}.png"
            drawn.setdefault(view, {})[kind] = relative
            files[relative] = lambda path, source=Path(source): shutil.copyfile(source, path)
        entry = {"views": images, "breasts": labels, "masks": drawn}
        return CasePlan(files=files, changes=changes, review={"confirmed": labels}, entry=entry)

    return export_case(root, "mammo", case, build, render_exam_list, model=model, annotator=annotator,
                       ai_files=ai_files, corrected_files=corrected_files)
