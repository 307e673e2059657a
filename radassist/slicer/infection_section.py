"""The "Infection" section of the LungTumorAI panel: ground glass, consolidation and pleural effusion on the chest
CT selected in the panel, with the U-Net or SegNet of issue #5 (the server's and `radassist lung infection`'s task,
run in its own process like every panel job).

It shares the panel's CT selector, device (Models section), "Where to run" section and review section; it has its
own button (which becomes Cancel while it runs) and progress bar. The result is a segmentation node (one segment per
class of the model's label table, with names, colours and terminology) and a table node of the report (volume of
each class in mL, infected share of each lung).
"""

from __future__ import annotations

from typing import Any

import qt

from radassist.slicer.worker import JobSection, SlicerJobRunner, add_job_controls, collapsible_section

ARCHITECTURES = (("U-Net", "unet"), ("SegNet", "segnet"))


def infection_request(volume: Any, architecture: str) -> Any:
    """The lung-infection task for ``volume``, and how its files come back as an InfectionResult."""
    from radassist.slicer.result_files import read_lung_infection
    from radassist.slicer.task_requests import LUNG_INFECTION, TaskRequest, architecture_options

    return TaskRequest([volume], architecture_options(architecture), read_lung_infection, LUNG_INFECTION)


class InfectionSection(JobSection):
    """The collapsible "Infection" section; ``widget`` is the LungTumorAI panel it belongs to."""

    def __init__(self, widget) -> None:
        self.panel = widget
        self.widget = collapsible_section("Infection (COVID-19 pneumonia)")
        form = qt.QFormLayout(self.widget)
        self.architectureComboBox = qt.QComboBox()
        for title, _ in ARCHITECTURES:
            self.architectureComboBox.addItem(title)
        self.architectureComboBox.toolTip = ("U-Net: best multi-class segmenter; SegNet: best binary one (Saood and "
                                             "Hatem, BMC Medical Imaging 2021)")
        form.addRow("Architecture:", self.architectureComboBox)
        self.segmentButton, self.progressBar, self.statusLabel = add_job_controls(
            form, "Segment infection", "Segment the infection classes on the CT selected above")
        self._runner = SlicerJobRunner(self.segmentButton, self.progressBar)
        self.segmentButton.connect("clicked(bool)", self.onSegment)
        widget.layout.addWidget(self.widget)

    @property
    def architecture(self) -> str:
        return ARCHITECTURES[max(self.architectureComboBox.currentIndex, 0)][1]

    def onSegment(self) -> None:
        self._runner.toggle(self._start)

    def _start(self) -> None:
        from radassist.errors import RadAssistError
        from radassist.slicer import nodes

        parameterNode = self.panel._parameterNode
        volumeNode = parameterNode.inputVolume if parameterNode is not None else None
        if volumeNode is None:
            self.statusLabel.text = "Select a chest CT above first."
            return
        if not self.panel.dependencySection.require(self.setStatus):
            return
        try:
            request = infection_request(nodes.volume_from_node(volumeNode), self.architecture)
        except RadAssistError as error:
            self.setStatus(str(error))
            return
        self.setStatus("Segmenting infection...")
        self.panel.startRequest(request, lambda result: self._show(result, volumeNode), "Segmenting infection...",
                                self._runner)

    def _show(self, result: Any, volumeNode) -> None:
        """The segmentation node and the report table; the run is kept for review and export."""
        from radassist.slicer import nodes
        from radassist.slicer.ai_run import AiRun
        from radassist.slicer.export_plan import model_info_from_metadata

        name = f"{volumeNode.GetName()} infection"
        segmentation = nodes.labelmap_to_segmentation_node(result.labelmap, volumeNode, name)
        nodes.report_to_table_node(result.report, f"{name} report")
        self.panel.logic.aiRun = AiRun("lung-infection", result.labelmap,
                                       model_info_from_metadata(result.labelmap.metadata, result.engine),
                                       {"image": volumeNode}, segmentation)
        self.panel.logic.showVolume(volumeNode, segmentation)
        self.statusLabel.text = result.status_line()
        if self.panel.reviewSection is not None:
            self.panel.reviewSection.newRun()
