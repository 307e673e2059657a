"""What a panel keeps after a run so that the corrected result can be exported beside the AI's: the AI result as it
came (never the edited nodes), the model that made it, and the nodes that show it. Runs inside Slicer only.

A module's ``showResult`` makes one :class:`AiRun` (local and server runs alike); the "Review and export" section
reads its :meth:`target` for the review list and calls :meth:`export` with the dataset folder and annotator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radassist.annotation.export import ExportResult
from radassist.annotation.provenance import ModelInfo
from radassist.errors import InputError
from radassist.slicer import review
from radassist.slicer.export_plan import case_name, exporter_for


@dataclass
class AiRun:
    """One run's result kept for review and export.

    ``task`` is the `radassist export` task; ``ai`` the LabelMap / Detections / Classification as the pipeline
    returned it; ``volume_nodes`` the input nodes by role ("image", "fixed") or view ("L-CC", ...);
    ``result_node`` the segmentation node shown (segmentation tasks, brain); ``roi_ids_before`` the ROI nodes that
    existed before the run (the rest are its boxes and the ones drawn since); ``images`` the fixed Volumes by
    sequence (brain).
    """

    task: str
    ai: Any
    model: ModelInfo
    volume_nodes: dict[str, Any]
    result_node: Any = None
    roi_ids_before: set[str] | None = None
    images: dict[str, Any] = field(default_factory=dict)

    @property
    def case(self) -> str:
        first = next(iter(self.volume_nodes.values()))
        return case_name(first.GetName() if first is not None else "")

    def target(self) -> Any:
        """What the review list shows: the result's segments, else its ROI boxes."""
        if self.result_node is not None:
            return review.SegmentTarget(self.result_node)
        return review.RoiTarget(self.roi_ids_before or set())

    def export(self, folder: Path, annotator: str, confirmed: dict | None = None) -> ExportResult:
        """Export the corrected result (and the AI's, unchanged) with the engine's exporter for ``task``."""
        kind = exporter_for(self.task)
        common = {"model": self.model, "annotator": annotator}
        if kind == "export_segmentation_node":
            return review.export_segmentation_node(folder, self.task, self.case, self.volume_nodes["image"], self.ai,
                                                   self.result_node, **common)
        if kind == "export_roi_nodes":
            return review.export_roi_nodes(folder, self.case, self.volume_nodes["image"], self.ai,
                                           self.target().nodes(), **common)
        if kind == "export_brain_tumour":
            return review.export_brain_tumour(folder, self.case, self.images, self.volume_nodes["fixed"], self.ai,
                                              self.result_node, **common)
        if confirmed is None:
            raise InputError(None, "confirm the labels of each breast before the export")
        return review.export_mammo_exam(folder, self.case, self.volume_nodes, self.ai, confirmed, **common)
