"""Box-prompted segmentation (LiteMedSAM) from inside Slicer: what the Segment Editor effect and the modules'
"segment with LiteMedSAM" buttons share.

ROI nodes become :class:`~radassist.interactive.boxes.BoxPrompt`s (LPS), the segment-box task runs them in a job
process like every RadAssist job (:func:`radassist.slicer.task_requests.segment_box_request`), and the segments
come back in box order. The effect writes its one segment into the selected segment through the Segment Editor
(undoable); a module's button puts its segments into a new segmentation node. The section here is that button:
it runs one job per image (a mammography exam has up to four) one after the other, with progress and Cancel.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import qt
import slicer

from radassist.slicer.worker import JobSection, SlicerJobRunner, add_job_controls, collapsible_section

MODEL_TEXT = "LiteMedSAM (Ma et al., MedSAM, Nature Communications 2024)"


def roi_boxes(roi_nodes: Sequence[Any]) -> list:
    """One box per ROI node, in the given order, named after the node (hand-drawn and moved ROIs included)."""
    from radassist.interactive.boxes import BoxPrompt
    from radassist.slicer import nodes

    boxes = []
    for node in roi_nodes:
        detection = nodes.roi_nodes_to_detections([node]).items[0]
        boxes.append(BoxPrompt.from_center_size(detection.center, detection.size, node.GetName()))
    return boxes


def named_labelmap(labelmap: Any, names: Sequence[str]) -> Any:
    """The job's labelmap with its segments (one per box, in box order) named ``names``."""
    labelmap.segments = [dataclasses.replace(segment, name=name) for segment, name in zip(labelmap.segments, names)]
    return labelmap


def replace_selected_segment(scriptedEffect: Any, labelmap: Any) -> int:
    """The labelmap's first segment replaces the Segment Editor's selected segment (a state is saved first, so
    Undo brings the old one back); returns its voxel count."""
    from radassist.slicer import nodes

    mask = labelmap.mask(labelmap.segments[0])
    image = nodes.mask_to_oriented_image(mask, labelmap.geometry)
    scriptedEffect.saveStateForUndo()
    scriptedEffect.modifySelectedSegmentByLabelmap(image, slicer.qSlicerSegmentEditorAbstractEffect.ModificationModeSet)
    return int(mask.sum())


def segment_mask(segmentationNode: Any, referenceVolumeNode: Any, wanted: Callable[[str], bool]) -> Any:
    """The union of the segments whose name ``wanted`` accepts, on the reference volume's grid (z, y, x)."""
    import numpy as np

    from radassist.errors import InputError
    from radassist.slicer import nodes

    labelmap = nodes.segmentation_node_to_labelmap(segmentationNode, referenceVolumeNode)
    chosen = [segment for segment in labelmap.segments if wanted(segment.name)]
    if not chosen:
        raise InputError(segmentationNode.GetName(), "has no tumour segment to refine")
    return np.logical_or.reduce([labelmap.mask(segment) for segment in chosen]), labelmap.geometry


def tumour_box_jobs(segmentationNode: Any, volumeNode: Any, wanted: Callable[[str], bool],
                    name: str = "Tumour") -> list["BoxJob"]:
    """One job on ``volumeNode`` with a box around each connected tumour part of the segmentation; its result
    becomes a new segmentation node with one refined segment per part."""
    from radassist.errors import InputError
    from radassist.interactive.boxes import component_boxes

    if segmentationNode is None or volumeNode is None:
        raise InputError(None, "run the segmentation first (or select a segmentation and its image)")
    mask, geometry = segment_mask(segmentationNode, volumeNode, wanted)
    boxes = component_boxes(mask, geometry, name)
    if not boxes:
        raise InputError(segmentationNode.GetName(), "its tumour segments are empty")

    def show(result: Any) -> str:
        from radassist.slicer import nodes

        labelmap = named_labelmap(result.labelmap, [box.name for box in boxes])
        nodes.labelmap_to_segmentation_node(labelmap, volumeNode, f"{volumeNode.GetName()} tumours (LiteMedSAM)")
        volumes = ", ".join(f"{row['volume_ml']:.1f} mL" for row in result.report.rows)
        return f"{len(boxes)} tumour(s) refined with LiteMedSAM: {volumes}."

    return [BoxJob(volumeNode, boxes, show)]


@dataclass
class BoxJob:
    """One image and its boxes; ``show`` turns the job's result (a SegmentationRun) into nodes and a status."""

    volume_node: Any
    boxes: list
    show: Callable[[Any], str]


class BoxSegmentSection(JobSection):
    """A panel's collapsible "LiteMedSAM" section: one button that segments the boxes ``gather`` returns (the
    module's own results), one job per image, in the panel's job machinery (progress, Cancel, server)."""

    def __init__(self, panel: Any, button_text: str, tooltip: str, gather: Callable[[], list[BoxJob]]) -> None:
        self.panel = panel
        self.gather = gather
        self.widget = collapsible_section("Box segmentation (LiteMedSAM)")
        form = qt.QFormLayout(self.widget)
        self.segmentButton, self.progressBar, self.statusLabel = add_job_controls(
            form, button_text, f"{tooltip} Model: {MODEL_TEXT}; install it in the Models section.")
        self._runner = SlicerJobRunner(self.segmentButton, self.progressBar)
        self._queue: list[BoxJob] = []
        self._lines: list[str] = []
        self.segmentButton.connect("clicked(bool)", self.onSegment)
        panel.layout.addWidget(self.widget)

    def onSegment(self) -> None:
        self._runner.toggle(self._start)

    def _start(self) -> None:
        from radassist.errors import RadAssistError

        if not self.panel.dependencySection.require(self.setStatus):
            return
        try:
            self._queue = list(self.gather())
        except RadAssistError as error:
            self.setStatus(str(error))
            return
        self._lines = []
        self._next()

    def _next(self) -> None:
        from radassist.errors import RadAssistError
        from radassist.slicer import nodes
        from radassist.slicer.task_requests import segment_box_request

        job = self._queue.pop(0)
        try:
            request = segment_box_request(nodes.volume_from_node(job.volume_node), job.boxes)
        except RadAssistError as error:
            self._queue = []
            self.setStatus(str(error))
            return
        status = f"Segmenting {len(job.boxes)} box(es) on {job.volume_node.GetName()} with LiteMedSAM..."
        self.setStatus(status)
        self.panel.startRequest(request, lambda result: self._done(job, result), status, self._runner)

    def _done(self, job: BoxJob, result: Any) -> None:
        self._lines.append(job.show(result))
        if self._queue:
            self._next()
            return
        self.setStatus(" ".join(self._lines))
        self.panel.setStatus(self.statusLabel.text)

    def cancel(self) -> None:
        self._queue = []
        self._runner.cancel()


class BoxEffectController(JobSection):
    """What the Segment Editor effect does when Apply is clicked: the source volume and the chosen ROI go to a job
    process, and its one segment replaces the segment that was selected at Apply (undoable). The effect file only
    builds the widgets and forwards clicks here."""

    def __init__(self, scriptedEffect: Any, roiSelector: Any, button: Any, progressBar: Any, statusLabel: Any) -> None:
        self.scriptedEffect = scriptedEffect
        self.roiSelector = roiSelector
        self.statusLabel = statusLabel
        self._runner = SlicerJobRunner(button, progressBar)

    def onApply(self) -> None:
        self._runner.toggle(self._start)

    def _start(self) -> None:
        from radassist.errors import RadAssistError
        from radassist.requirements import RUNTIME_REQUIREMENTS
        from radassist.slicer import dependencies, jobs, nodes
        from radassist.slicer.task_requests import segment_box_request

        editorNode = self.scriptedEffect.parameterSetNode()
        source = editorNode.GetSourceVolumeNode() if editorNode is not None else None
        segmentId = editorNode.GetSelectedSegmentID() if editorNode is not None else ""
        roi = self.roiSelector.currentNode()
        if source is None or not segmentId:
            self.setStatus("Select a source volume and the segment to replace first.")
            return
        if roi is None:
            self.setStatus("Draw a box first: a Markups ROI around the object (Markups toolbar, or 'Create new ROI' "
                           "in the box selector).")
            return
        if dependencies.unmet_requirements(RUNTIME_REQUIREMENTS):
            self.setStatus("Install RadAssist's Python packages first (the button at the top of any RadAssist "
                           "module's panel).")
            return
        try:
            request = segment_box_request(nodes.volume_from_node(source), roi_boxes([roi]))
            job = jobs.task_job(request, "auto")
        except (RadAssistError, OSError) as error:
            self.setStatus(str(error))
            return

        def succeeded(folder: Any) -> None:
            result = request.read(folder)
            editorNode.SetSelectedSegmentID(segmentId)  # the segment chosen at Apply, even if the user moved on
            voxels = replace_selected_segment(self.scriptedEffect, result.labelmap)
            row = result.report.rows[0]
            self.setStatus(f"'{roi.GetName()}' segmented: {voxels} voxels, {row['volume_ml']:.2f} mL, longest axial "
                           f"diameter {row['longest_axial_diameter_mm']:.1f} mm (Undo restores the segment).")

        self.setStatus(f"Segmenting '{roi.GetName()}' with LiteMedSAM...")
        self._runner.start(job, on_success=succeeded, on_error=lambda error: self.setStatus(f"Failed: {error}"),
                           on_cancelled=lambda: self.setStatus("Cancelled; the segment is unchanged."))
