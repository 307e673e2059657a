"""Review and export in the Slicer panels: read and set the status of segments (Slicer's ``Segmentation.Status``
tag, through vtkSlicerSegmentationsModuleLogic) and of ROI markups (a node attribute), step to the next result
that is not approved, and export the corrected result with the engine. Runs inside Slicer only.

Every decision (what a status word means, which item is next, what an export writes) is made by
:mod:`radassist.annotation`, which is tested without Slicer; this file only reads nodes and moves the views.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import slicer

from radassist.annotation.export import ExportResult
from radassist.annotation.provenance import ModelInfo
from radassist.annotation.review import (ROI_STATUS_ATTRIBUTE, ReviewItem, next_not_approved, parse_status,
                                         review_summary)
from radassist.errors import InputError
from radassist.results.detections import Detections
from radassist.results.labelmap import LabelMap
from radassist.results.segments import ReviewStatus
from radassist.results.tables import Classification
from radassist.slicer import conversions, nodes


# -- segments ---------------------------------------------------------------------------------------------------

def segment_items(segmentation_node) -> list[ReviewItem]:
    """The segments of a segmentation node with their review status, in the node's order."""
    segmentation = segmentation_node.GetSegmentation()
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    items = []
    for index in range(segmentation.GetNumberOfSegments()):
        segment_id = segmentation.GetNthSegmentID(index)
        segment = segmentation.GetSegment(segment_id)
        items.append(ReviewItem("segment", segment_id, segment.GetName(),
                                conversions.status_from_slicer(logic.GetSegmentStatus(segment))))
    return items


# -- ROI markups ------------------------------------------------------------------------------------------------

def roi_items(roi_nodes: Sequence) -> list[ReviewItem]:
    """One item per ROI node (key = its MRML node ID); a box without the attribute has not been reviewed."""
    return [ReviewItem("box", node.GetID(), node.GetName(),
                       parse_status(node.GetAttribute(ROI_STATUS_ATTRIBUTE) or ReviewStatus.NOT_STARTED.value))
            for node in roi_nodes]


# -- stepping ---------------------------------------------------------------------------------------------------

def _jump_to(ras: Sequence[float]) -> None:
    slicer.modules.markups.logic().JumpSlicesToLocation(float(ras[0]), float(ras[1]), float(ras[2]), True)


def summary_text(items: Sequence[ReviewItem]) -> str:
    """The panel's one-line review state, e.g. '3 approved, 1 flagged, 2 not reviewed of 6'."""
    counts = review_summary(items)
    parts = [f"{n} {word}" for word, n in counts.items() if word != "total" and n]
    return f"{', '.join(parts) or 'nothing'} of {counts['total']}"


# -- export -----------------------------------------------------------------------------------------------------

def export_segmentation_node(dataset: str | Path, task: str, case: str, volume_node, ai: LabelMap,
                             segmentation_node, *, model: ModelInfo, annotator: str) -> ExportResult:
    """Export the corrected segmentation node; ``ai`` (the pipeline's result as it came) is kept as a file.

    A volume loaded from DICOM also gets a DICOM SEG when its series folder is known to the DICOM database."""
    from radassist.annotation.export_msd import export_segmentation
    from radassist.results.seg_nrrd import write_seg_nrrd

    volume = nodes.volume_from_node(volume_node)
    corrected = nodes.segmentation_node_to_labelmap(segmentation_node, volume_node)
    dicom_folder = _dicom_folder(volume.source.series_instance_uid)
    with tempfile.TemporaryDirectory() as scratch:
        ai_file = write_seg_nrrd(ai, Path(scratch) / "ai_result.seg.nrrd")
        corrected_file = write_seg_nrrd(corrected, Path(scratch) / "corrected.seg.nrrd")
        return export_segmentation(dataset, task, case, volume, ai, corrected, model=model, annotator=annotator,
                                   ai_files=[ai_file], corrected_files=[corrected_file], dicom_source=dicom_folder)


def export_roi_nodes(dataset: str | Path, case: str, volume_node, ai: Detections, roi_nodes: Sequence, *,
                     model: ModelInfo, annotator: str) -> ExportResult:
    """Export the corrected nodule ROIs (hand-drawn ones included); ``ai`` is kept as a .mrk.json file."""
    from radassist.annotation.export_luna16 import export_detections
    from radassist.results.markups import write_roi_markups

    volume = nodes.volume_from_node(volume_node)
    corrected = nodes.roi_nodes_to_detections(roi_nodes)
    with tempfile.TemporaryDirectory() as scratch:
        ai_file = write_roi_markups(ai, Path(scratch) / "ai_result.mrk.json")
        corrected_file = write_roi_markups(corrected, Path(scratch) / "corrected.mrk.json")
        return export_detections(dataset, case, volume, ai, corrected, model=model, annotator=annotator,
                                 ai_files=[ai_file], corrected_files=[corrected_file])


def _dicom_folder(series_uid: str | None) -> Path | None:
    """The folder holding a series' files in Slicer's DICOM database (all of them in one folder), else None."""
    if not series_uid or slicer.dicomDatabase is None:
        return None
    files = slicer.dicomDatabase.filesForSeries(series_uid)
    folders = {str(Path(f).parent) for f in files}
    return Path(folders.pop()) if len(folders) == 1 else None


def export_brain_tumour(dataset: str | Path, case: str, images: dict, fixed_node, ai: LabelMap,
                        segmentation_node, *, model: ModelInfo, annotator: str) -> ExportResult:
    """Export the corrected fixed-image tumour in the BraTS layout with the subject's sequences (``images``: the
    fixed Volumes by sequence); ``ai`` is kept as a file."""
    from radassist.annotation.export_brats import export_registration
    from radassist.results.seg_nrrd import write_seg_nrrd

    corrected = nodes.segmentation_node_to_labelmap(segmentation_node, fixed_node)
    with tempfile.TemporaryDirectory() as scratch:
        ai_file = write_seg_nrrd(ai, Path(scratch) / "ai_result.seg.nrrd")
        corrected_file = write_seg_nrrd(corrected, Path(scratch) / "corrected.seg.nrrd")
        return export_registration(dataset, case, images, ai, corrected, model=model, annotator=annotator,
                                   ai_files=[ai_file], corrected_files=[corrected_file])


def view_file(volume_node, view: str, scratch: Path) -> Path:
    """The file a mammogram view came from (PNG or DICOM, copied unchanged by the export); a view with no such
    file (made in Slicer) is written as a 16-bit PNG."""
    from PIL import Image

    from radassist.slicer.result_files import mammo_png_pixels

    storage = volume_node.GetStorageNode()
    name = storage.GetFileName() if storage is not None else ""
    if name and Path(name).suffix.lower() in (".png", ".dcm") and Path(name).is_file():
        return Path(name)
    uid = nodes.volume_from_node(volume_node).source.series_instance_uid
    folder = _dicom_folder(uid)
    files = sorted(folder.glob("*")) if folder is not None else []
    if len(files) == 1:
        return files[0]
    path = scratch / f"{view}.png"
    Image.fromarray(mammo_png_pixels(nodes.volume_from_node(volume_node))).save(path)
    return path


def export_mammo_exam(dataset: str | Path, case: str, view_nodes: dict, ai: Classification,
                      confirmed: dict, *, model: ModelInfo, annotator: str) -> ExportResult:
    """Export the exam's views with the labels the reader confirmed; the AI report is kept as report.json."""
    from radassist.annotation.export_exam_list import export_mammography
    from radassist.results.csv_json import write_classification
    from radassist.slicer.export_plan import breast_labels

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        views = {view: view_file(node, view, folder) for view, node in view_nodes.items()}
        write_classification(ai, folder / "report.json", folder / "report.csv")
        (folder / "confirmed.json").write_text(json.dumps(confirmed, indent=2) + "\n", encoding="utf-8")
        return export_mammography(dataset, case, views, confirmed, ai_probabilities=breast_labels(ai), model=model,
                                  annotator=annotator, ai_files=[folder / "report.json"],
                                  corrected_files=[folder / "confirmed.json"])


class SegmentTarget:
    """The segments of a result segmentation node, for the review section."""

    def __init__(self, node) -> None:
        self.node = node

    def items(self) -> list[ReviewItem]:
        return segment_items(self.node) if self.node is not None and self.node.GetScene() else []

    def set_status(self, key: str, status: ReviewStatus | str) -> None:
        segment = self.node.GetSegmentation().GetSegment(key)
        if segment is None:
            raise InputError(self.node.GetName(), f"has no segment {key!r}")
        slicer.vtkSlicerSegmentationsModuleLogic.SetSegmentStatus(segment,
                                                                  conversions.status_to_slicer(parse_status(status)))

    def step(self, current: str | None) -> ReviewItem | None:
        """Centre the views on the next segment that is not approved; None when all are approved."""
        item = next_not_approved(segment_items(self.node), current)
        if item is not None:
            center = self.node.GetSegmentCenterRAS(item.key)
            if center is not None:
                _jump_to(center)
        return item


class RoiTarget:
    """The ROI nodes of a result: the run's boxes still in the scene plus any drawn since (``before``: the ROI
    node IDs that were in the scene before the run, which are not part of it)."""

    def __init__(self, before: set[str]) -> None:
        self.before = set(before)

    def nodes(self) -> list:
        return [n for n in slicer.util.getNodesByClass("vtkMRMLMarkupsROINode") if n.GetID() not in self.before]

    def items(self) -> list[ReviewItem]:
        return roi_items(self.nodes())

    def set_status(self, key: str, status: ReviewStatus | str) -> None:
        slicer.mrmlScene.GetNodeByID(key).SetAttribute(ROI_STATUS_ATTRIBUTE, parse_status(status).value)

    def step(self, current: str | None) -> ReviewItem | None:
        """Centre the views on the next ROI that is not approved and select it; None when all are approved."""
        item = next_not_approved(self.items(), current)
        if item is not None:
            node = slicer.mrmlScene.GetNodeByID(item.key)
            center = [0.0, 0.0, 0.0]
            node.GetCenterWorld(center)
            _jump_to(center)
            slicer.modules.markups.logic().SetActiveList(node)
        return item


def roi_ids() -> set[str]:
    """The IDs of the ROI nodes in the scene now (call before a run adds its boxes)."""
    return {node.GetID() for node in slicer.util.getNodesByClass("vtkMRMLMarkupsROINode")}
