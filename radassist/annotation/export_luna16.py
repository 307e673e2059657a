"""Nodule detection cases in the LUNA16 layout that ``radassist train lung`` reads.

``subset0/<case>.mhd`` + ``.raw`` (the CT), ``annotations.csv`` (seriesuid, coordX, coordY, coordZ,
diameter_mm; world LPS mm, one row per confirmed nodule of the latest version of every case) and
``markups/<case>.mrk.json`` (the corrected boxes as Slicer ROIs, review status included). The case name is the
``seriesuid``. A box's diameter is the mean of its x and y sides (the box an annotator resized in Slicer
no longer matches the AI's diameter estimate); a box without size keeps its ``diameter_mm``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from radassist.annotation.changes import match_boxes
from radassist.annotation.export import (CasePlan, ExportResult, csv_text, export_case, latest_entries,
                                         source_summary)
from radassist.annotation.provenance import ModelInfo
from radassist.annotation.review import review_items, review_summary, unapproved_names
from radassist.errors import InputError
from radassist.io.images import write_volume
from radassist.results.detections import Detection, Detections
from radassist.results.markups import write_roi_markups
from radassist.volume import Volume

ANNOTATION_COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm")


def diameter_of(detection: Detection) -> float:
    """The LUNA16 diameter of a corrected box (mm)."""
    if detection.size[0] > 0 and detection.size[1] > 0:
        return (detection.size[0] + detection.size[1]) / 2.0
    if detection.diameter_mm and detection.diameter_mm > 0:
        return float(detection.diameter_mm)
    raise InputError(None, f"the box at {detection.center} has no size and no diameter")


def render_annotations(index: dict[str, Any]) -> dict[str, str]:
    rows = ([case, *(repr(float(v)) for v in row)] for case, entry in latest_entries(index)
            for row in entry.get("nodules", []))
    return {"annotations.csv": csv_text(ANNOTATION_COLUMNS, rows)}


def export_detections(root: str | Path, case: str, image: Volume, ai: Detections, corrected: Detections, *,
                      model: ModelInfo = ModelInfo(), annotator: str = "", ai_files: Sequence[Path] = (),
                      corrected_files: Sequence[Path] = (), tolerance_mm: float = 1.0) -> ExportResult:
    """Export one scan with its corrected nodule boxes into the LUNA16 dataset at ``root``."""
    rows = [[*d.center, diameter_of(d)] for d in corrected.items]
    changes = match_boxes(ai, corrected, tolerance_mm)

    def build(version: str, index: dict[str, Any]) -> CasePlan:
        files = {f"subset0/{case}.mhd": lambda path: write_volume(image, path, compress=False),
                 f"markups/{case}.mrk.json": lambda path: write_roi_markups(corrected, path)}
        items = review_items(corrected)
        review = {"counts": review_summary(items), "not_approved": unapproved_names(corrected),
                  "statuses": [item.status.value for item in items]}
        return CasePlan(files=files, changes={"boxes": changes.to_dict(), "ai_boxes": len(ai),
                                              "corrected_boxes": len(corrected)},
                        review=review, entry={"nodules": rows})

    return export_case(root, "lung", case, build, render_annotations, model=model, annotator=annotator,
                       ai_files=ai_files, corrected_files=corrected_files, source=source_summary(image.source))
