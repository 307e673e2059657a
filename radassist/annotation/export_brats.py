"""Brain registration cases: corrected tumour labels in the BraTS layout, plus landmark pairs with their TRE.

``subjects/<case>/<case>_<sequence>.nii.gz`` (the subject's sequences), ``subjects/<case>/<case>_seg.nii.gz``
(the corrected tumour in BraTS values: 1 necrosis / non-enhancing core, 2 oedema, 4 enhancing tumour) and, when
the user placed landmarks, ``subjects/<case>/<case>_landmarks_fixed.mrk.json`` and ``..._moving.mrk.json``
(control points paired by order) whose target registration error before and after registration is in the
provenance and in ``landmarks.csv``. ``radassist train brain --data <export>`` reads it: the subjects have a folder
of their own, apart from ``provenance/`` and ``archive/``, and the BraTS reader
(:func:`radassist.brain.datasets.subject_folders`) takes the subjects of an export folder from there.

BraTS labels are exclusive, so a correction with overlapping tumour segments is refused (never flattened).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from radassist.annotation.changes import segment_changes, target_registration_error
from radassist.annotation.export import (CasePlan, ExportResult, csv_text, export_case, latest_entries,
                                         source_summary)
from radassist.annotation.provenance import ModelInfo
from radassist.annotation.review import review_items, review_summary, unapproved_names
from radassist.errors import InputError
from radassist.io.images import write_volume
from radassist.liver.grid import align_to_grid
from radassist.reorient import array_on_grid_of
from radassist.results.displacement import DisplacementField
from radassist.results.labelmap import LabelMap
from radassist.results.markups import write_point_markups
from radassist.results.segments import Segment
from radassist.volume import Volume

SUBJECTS = "subjects"
_BRATS_BY_CODE = {"6574001": 1, "79654002": 2, "C113842": 4}
_BRATS_BY_NAME = (("non-enhanc", 1), ("necro", 1), ("core", 1), ("oedema", 2), ("edema", 2), ("enhanc", 4))


def brats_value(segment: Segment) -> int:
    """BraTS label value of a tumour segment, by its terminology code, else by its name; InputError otherwise."""
    if segment.terminology is not None and segment.terminology.type.value in _BRATS_BY_CODE:
        return _BRATS_BY_CODE[segment.terminology.type.value]
    name = segment.name.lower()
    for word, value in _BRATS_BY_NAME:
        if word in name:
            return value
    raise InputError(None, f"segment {segment.name!r} is not a tumour class BraTS knows (necrosis / non-enhancing "
                           f"core, oedema, enhancing tumour); name or code it as one")


def brats_labels(labels: LabelMap) -> np.ndarray:
    """One (z, y, x) array of BraTS values; InputError when segments overlap."""
    out = np.zeros(labels.geometry.shape, dtype=np.uint8)
    covered = np.zeros(labels.geometry.shape, dtype=bool)
    for segment in labels.segments:
        mask = labels.mask(segment)
        if np.any(covered & mask):
            raise InputError(labels.source.path, f"segment {segment.name!r} overlaps another tumour segment; "
                                                 f"BraTS labels are exclusive, so fix the overlap before export")
        out[mask] = brats_value(segment)
        covered |= mask
    return out


def render_landmarks(index: dict[str, Any]) -> dict[str, str]:
    rows = []
    for case, entry in latest_entries(index):
        tre = entry.get("landmarks") or {}
        after = tre.get("after_mm") or [None] * len(tre.get("labels", []))
        rows += [[case, label, before, later] for label, before, later in zip(tre.get("labels", []),
                                                                               tre.get("before_mm", []), after)]
    return {"landmarks.csv": csv_text(["case", "landmark", "tre_before_mm", "tre_after_mm"], rows)}


def export_registration(root: str | Path, case: str, images: Mapping[str, Volume], ai: LabelMap,
                        corrected: LabelMap, *, fixed_landmarks: np.ndarray | None = None,
                        moving_landmarks: np.ndarray | None = None, landmark_labels: Sequence[str] | None = None,
                        field: DisplacementField | None = None, model: ModelInfo = ModelInfo(),
                        annotator: str = "", ai_files: Sequence[Path] = (), corrected_files: Sequence[Path] = ()
                        ) -> ExportResult:
    """Export a subject's sequences with the corrected tumour labels (and landmark pairs) at ``root``.

    ``images`` maps a sequence name (flair, t1, t1ce, t2) to its volume, all on one grid; the labels are brought
    onto it. Landmarks: (N, 3) LPS mm each, fixed and moving paired by order; ``field`` (fixed -> moving) gives
    the TRE after registration."""
    if not images:
        raise InputError(None, "give at least one image sequence of the subject")
    reference = next(iter(images.values()))
    # a sequence or label map stored in another axis order (the same voxels) is put in the first sequence's order
    # exactly; a cropped segmentation (Slicer's default) is padded back; any other grid is refused, naming both
    images = {name: Volume.from_geometry(array_on_grid_of(volume, reference.geometry, f"{name} sequence"),
                                         reference.geometry, volume.source)
              for name, volume in images.items()}
    ai = align_to_grid(ai, reference.geometry, image_name="image")
    corrected = align_to_grid(corrected, reference.geometry, image_name="image")
    labels = brats_labels(corrected)
    tre = None
    if (fixed_landmarks is None) != (moving_landmarks is None):
        raise InputError(None, "landmarks come in pairs: give both the fixed and the moving landmarks")
    if fixed_landmarks is not None:
        try:
            tre = target_registration_error(fixed_landmarks, moving_landmarks, field, landmark_labels)
        except ValueError as error:
            raise InputError(None, str(error)) from None

    def build(version: str, index: dict[str, Any]) -> CasePlan:
        folder = f"{SUBJECTS}/{case}"
        files = {f"{folder}/{case}_{name}.nii.gz": (lambda path, volume=volume: write_volume(volume, path))
                 for name, volume in images.items()}
        files[f"{folder}/{case}_seg.nii.gz"] = lambda path: write_volume(reference.with_array(labels), path)
        if tre is not None:
            files[f"{folder}/{case}_landmarks_fixed.mrk.json"] = lambda path: write_point_markups(
                fixed_landmarks, path, tre.labels, name="fixed landmarks")
            files[f"{folder}/{case}_landmarks_moving.mrk.json"] = lambda path: write_point_markups(
                moving_landmarks, path, tre.labels, name="moving landmarks")
        changes: dict[str, Any] = {"segments": [c.to_dict() for c in segment_changes(ai, corrected)]}
        if tre is not None:
            changes["landmarks"] = tre.to_dict()
        items = review_items(corrected)
        review = {"counts": review_summary(items), "not_approved": unapproved_names(corrected),
                  "statuses": {item.name: item.status.value for item in items}}
        entry = {"sequences": sorted(images), "landmarks": tre.to_dict() if tre is not None else None}
        return CasePlan(files=files, changes=changes, review=review, entry=entry)

    return export_case(root, "brain", case, build, render_landmarks, model=model, annotator=annotator,
                       ai_files=ai_files, corrected_files=corrected_files, source=source_summary(reference.source))
