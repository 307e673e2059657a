"""LungTumorAI: lung nodule detection on chest CT (Lung-DETR), as a Slicer module over the RadAssist engine."""

from __future__ import annotations

import os
import sys
from typing import Any

# Run from a source checkout (module folder added under "Additional module paths"): import radassist from the
# repository root. A built extension installs radassist next to this file, where Slicer already looks.
_CHECKOUT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(_CHECKOUT_ROOT, "radassist")) and _CHECKOUT_ROOT not in sys.path:
    sys.path.insert(0, _CHECKOUT_ROOT)

import numpy as np
import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLTableNode
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleTest

from radassist.slicer import compat
from radassist.slicer.compat import parameterNodeWrapper

panel = compat.load_panel()  # on a Slicer older than 5.10 the panel only says which Slicer RadAssist needs


class LungTumorAI(ScriptedLoadableModule):
    def __init__(self, parent) -> None:
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Lung Nodule Detection"
        self.parent.categories = [panel.CATEGORY]
        self.parent.dependencies = []
        self.parent.contributors = panel.CONTRIBUTORS
        self.parent.helpText = panel.help_text(
            "Finds lung nodules on a chest CT and marks each one with a box (a Markups ROI you can move, resize, "
            "delete, or add with the Markups toolbar) and a row in the nodule table: rank, probability (Lung-DETR) "
            "or score (classical detector), diameter and position; click a row to jump the slice views to it. "
            "Without trained Lung-DETR weights, the classical candidate detector (blob filters, not a trained "
            "model) runs instead: its score ranks candidates and is not a probability. Findings under the threshold "
            "get no box; the command line's nodules.csv lists them all.",
            "Lung-DETR: a deformable detection transformer on 7.5 mm maximum intensity projections, trained with "
            "a focal loss on LUNA16 (Ramezani, Aleman and L&eacute;tourneau, arXiv:2409.05200, 2024).",
            "'Load synthetic sample' builds a chest CT phantom with nodules of known size and position, and "
            "shows its lungs and nodule boxes as ground truth.")
        self.parent.acknowledgementText = panel.ACKNOWLEDGEMENT


@parameterNodeWrapper
class LungTumorAIParameterNode:
    """inputVolume: the chest CT. outputTable: the nodule list. scoreThresholdPercent: findings below are hidden."""

    inputVolume: vtkMRMLScalarVolumeNode
    outputTable: vtkMRMLTableNode
    device: panel.DeviceChoice = "auto"
    scoreThresholdPercent: int = 50
    sampleSeed: int = 0


class LungTumorAILogic(panel.RadAssistLogic):
    parameterNodeClass = LungTumorAIParameterNode
    requiredInputs = {"inputVolume": "a chest CT"}
    taskTitle = "lung nodule detection"
    sampleKind = "lung"
    serverTask = "lung-detect"
    engine = "detr"  # set by the panel's engine selector: "detr" (Lung-DETR) or "classic"

    def showSample(self, sample: Any, parameterNode=None) -> panel.LoadedSample:
        """The CT, its lungs as a segmentation and one ROI per true nodule; the CT becomes the input."""
        from radassist.slicer import nodes

        name = f"Synthetic chest CT {sample.seed}"
        volumeNode = nodes.volume_to_node(sample.volume, name)
        lungs = nodes.labelmap_to_segmentation_node(sample.lungs, volumeNode, f"{name} lungs (ground truth)")
        rois = nodes.detections_to_roi_nodes(sample.nodules, f"{name} true nodule ")
        if parameterNode is not None:
            parameterNode.inputVolume = volumeNode
        self.showVolume(volumeNode, lungs)
        return panel.LoadedSample(
            volumes={"ct": volumeNode}, ground_truth={"lungs": lungs, "nodules": rois},
            summary=f"Loaded '{name}': {len(rois)} true nodule(s) shown as boxes, lungs as a segmentation.")

    def gatherInputs(self, parameterNode) -> dict:
        from radassist.slicer import nodes

        return {"volume": nodes.volume_from_node(parameterNode.inputVolume), "engine": self.engine,
                "threshold": parameterNode.scoreThresholdPercent / 100.0}

    def taskRequest(self, inputs: dict) -> Any:
        """The CT, engine and threshold for the lung-detect task (Lung-DETR needs its installed weights)."""
        from radassist.slicer.result_files import read_lung_detect
        from radassist.slicer.task_requests import TaskRequest, lung_detect_options

        return TaskRequest([inputs["volume"]], lung_detect_options(inputs["engine"], inputs["threshold"]),
                           read_lung_detect)

    def showResult(self, result: Any, parameterNode=None) -> str:
        """One ROI per nodule and the nodule table (RAS for Slicer users; the ROI column links rows to boxes)."""
        from radassist.slicer import conversions, nodes, review
        from radassist.slicer.ai_run import AiRun
        from radassist.slicer.export_plan import model_info_from_metadata

        before = review.roi_ids()
        rois = nodes.detections_to_roi_nodes(result, "Nodule ")
        columns = conversions.nodule_table_columns(result, [roi.GetID() for roi in rois])
        self.aiRun = AiRun("lung", result, model_info_from_metadata(result.metadata, result.engine),
                           {"image": parameterNode.inputVolume}, roi_ids_before=before)
        target = parameterNode.outputTable if parameterNode is not None else None
        table = nodes.columns_to_table_node(columns, "Lung nodules", target)
        if parameterNode is not None:
            parameterNode.outputTable = table
        what = {"classic": "candidate(s) from the classical detector (a heuristic score, not a probability)"}
        name = "score" if result.engine == "classic" else "probability"
        return f"{len(rois)} nodule {what.get(result.engine, 'finding(s) of Lung-DETR')} at {name} >= " \
               f"{result.metadata.get('score_threshold', 0):g}."

    def boxJobs(self, parameterNode) -> list:
        """The boxes of "Segment nodules": every nodule box still in the table (moved or resized ones as they are
        now)."""
        from radassist.errors import InputError
        from radassist.slicer.box_segmentation import BoxJob, roi_boxes

        table = parameterNode.outputTable if parameterNode is not None else None
        volumeNode = parameterNode.inputVolume if parameterNode is not None else None
        if volumeNode is None or table is None or table.GetColumnIndex("roi") < 0 or not table.GetNumberOfRows():
            raise InputError(None, "Detect nodules first: each row of the nodule table gives one box to segment.")
        column = table.GetColumnIndex("roi")
        rows = [(row, slicer.mrmlScene.GetNodeByID(table.GetCellText(row, column)))
                for row in range(table.GetNumberOfRows())]
        rows = [(row, roi) for row, roi in rows if roi is not None]  # boxes the user deleted are left out
        if not rows:
            raise InputError(None, "the nodule boxes of the table have been deleted")
        return [BoxJob(volumeNode, roi_boxes([roi for _, roi in rows]),
                       lambda result: self.showNoduleSegments(result, rows, parameterNode))]

    def showNoduleSegments(self, result: Any, rows: list, parameterNode) -> str:
        """One segment per nodule box, and its volume and mean diameter in the nodule table (the measures
        follow-up guidelines ask for)."""
        from radassist.slicer import nodes
        from radassist.slicer.box_segmentation import named_labelmap

        volumeNode = parameterNode.inputVolume
        labelmap = named_labelmap(result.labelmap, [roi.GetName() for _, roi in rows])
        segmentation = nodes.labelmap_to_segmentation_node(labelmap, volumeNode,
                                                           f"{volumeNode.GetName()} nodules (LiteMedSAM)")
        table = parameterNode.outputTable
        volumes, diameters = [None] * table.GetNumberOfRows(), [None] * table.GetNumberOfRows()
        for (row, _), measured in zip(rows, result.report.rows):
            volumes[row], diameters[row] = measured["volume_ml"], measured["mean_diameter_mm"]
        nodes.set_table_column(table, "volume", volumes, "mL", "volume of the nodule's LiteMedSAM segment")
        nodes.set_table_column(table, "mean diameter", diameters, "mm",
                               "mean of the longest axial diameter and the short axis perpendicular to it")
        self.showVolume(volumeNode, segmentation)
        return f"{len(rows)} nodule segment(s) by LiteMedSAM; volume and mean diameter are in the nodule table."

    @staticmethod
    def jumpToNodule(roiId: str) -> bool:
        """Centre the slice views on the ROI ``roiId`` where it is now (the user may have moved it)."""
        roi = slicer.mrmlScene.GetNodeByID(roiId) if roiId else None
        if roi is None:  # deleted by the user
            return False
        center = [0.0, 0.0, 0.0]
        roi.GetCenterWorld(center)
        slicer.modules.markups.logic().JumpSlicesToLocation(center[0], center[1], center[2], True, -1)
        return True


class LungTumorAIWidget(panel.RadAssistWidget):
    logicClass = LungTumorAILogic
    modelTask = "lung"  # the catalogue task(s) whose models the shared Models section lists
    engines = ("detr", "classic")  # the order of the items in engineComboBox
    boxSegmentButton = ("Segment nodules", "Turn every nodule box of the table into a nodule segment and add its "
                                           "volume (mL) and mean diameter (mm) to the nodule table.")

    def setup(self) -> None:
        super().setup()
        from radassist.slicer.infection_section import InfectionSection

        self.chooseDefaultEngine()
        self.ui.resultsTableView.connect("clicked(QModelIndex)", self.onResultClicked)
        self.infectionSection = InfectionSection(self)  # issue #5: the infection part of the lung panel

    def chooseDefaultEngine(self) -> None:
        """Lung-DETR when its weights are installed, else the classical detector (known once packages are in)."""
        detr = False
        if self.dependencySection.ready():
            from radassist.lung.pipeline import detr_weights_installed

            detr = detr_weights_installed()
        self.ui.engineComboBox.currentIndex = 0 if detr else 1

    def onDependenciesReady(self) -> None:
        super().onDependenciesReady()
        self.chooseDefaultEngine()

    def cleanup(self) -> None:
        if getattr(self, "infectionSection", None) is not None:
            self.infectionSection.cancel()
        super().cleanup()

    def onApplyButton(self) -> None:
        self.logic.engine = self.engines[max(self.ui.engineComboBox.currentIndex, 0)]
        super().onApplyButton()

    def _onTaskDone(self, result: Any) -> None:
        super()._onTaskDone(result)
        self.ui.resultsTableView.setMRMLTableNode(self._parameterNode.outputTable)  # rows jump to nodules

    def onResultClicked(self, index) -> None:
        """The row's ROI id, read through the view's own model (right also when the user sorted the table)."""
        table = self._parameterNode.outputTable if self._parameterNode is not None else None
        if table is not None and table.GetColumnIndex("roi") >= 0:
            self.logic.jumpToNodule(index.sibling(index.row(), table.GetColumnIndex("roi")).data())


class LungTumorAITest(ScriptedLoadableModuleTest):
    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        for test in (self.test_sample_nodes, self.test_apply_needs_input, self.test_detect_on_sample,
                     self.test_panel_workflow):
            self.setUp()
            test()

    def test_sample_nodes(self) -> None:
        from radassist.synthetic.chest import make_chest_ct

        phantom = make_chest_ct(3)
        logic = LungTumorAILogic()
        parameterNode = logic.getParameterNode()
        loaded = logic.showSample(phantom, parameterNode)

        panel.check_volume_node(self, loaded.volumes["ct"], phantom.volume)
        self.assertEqual(parameterNode.inputVolume.GetID(), loaded.volumes["ct"].GetID())
        panel.check_segment_names(self, loaded.ground_truth["lungs"], phantom.lungs)
        self.assertEqual(len(loaded.ground_truth["nodules"]), len(phantom.nodules))
        for roi, nodule in zip(loaded.ground_truth["nodules"], phantom.nodules.items):
            center = [0.0, 0.0, 0.0]
            roi.GetCenterWorld(center)
            self.assertTrue(np.allclose(center, panel.lps_to_ras(nodule.center), atol=1e-3))
        self.delayDisplay("Lung sample nodes checked")

    def test_apply_needs_input(self) -> None:
        volume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "any CT")
        panel.check_apply_follows_inputs(self, "LungTumorAI", {"inputVolume": volume})

    def test_detect_on_sample(self) -> None:
        """The classical engine in its job process: ROIs and table rows match, rows jump."""
        logic = LungTumorAILogic()
        logic.engine = "classic"
        parameterNode = logic.getParameterNode()
        logic.loadSample(3, parameterNode)
        status = logic.runTask(parameterNode, "cpu")
        rois = slicer.util.getNodesByClass("vtkMRMLMarkupsROINode")
        found = [roi for roi in rois if roi.GetName().startswith("Nodule ")]
        self.assertGreater(len(found), 0, status)
        table = parameterNode.outputTable
        self.assertEqual(table.GetNumberOfRows(), len(found))
        # the classical detector's number is a heuristic score, never called a probability
        self.assertGreaterEqual(table.GetColumnIndex("score"), 0)
        self.assertLess(table.GetColumnIndex("probability"), 0)
        self.assertIn("at score >=", status)
        self.assertTrue(logic.jumpToNodule(table.GetCellText(0, table.GetColumnIndex("roi"))))
        self.delayDisplay(status)

    def test_panel_workflow(self) -> None:
        """As a user: the sample, classical detection in its job process, a row jumps, review, export, cancel."""
        import tempfile
        from pathlib import Path

        from radassist.slicer import self_test

        widget = self_test.widget_of("LungTumorAI")
        self_test.load_sample_through_panel(self, widget)
        widget.ui.engineComboBox.currentIndex = 1  # the classical detector: no weights needed
        self_test.apply_through_panel(self, widget, "classical detector")
        table = widget._parameterNode.outputTable
        self.assertGreater(table.GetNumberOfRows(), 0)
        self.assertTrue(widget.logic.jumpToNodule(table.GetCellText(0, table.GetColumnIndex("roi"))))
        with tempfile.TemporaryDirectory() as folder:
            record = self_test.review_and_export(self, widget, Path(folder) / "dataset")
            self.assertIn("classic", str(record["model"]))  # the provenance names the engine that made the boxes
        self_test.cancel_through_panel(self, widget, "vtkMRMLMarkupsROINode")
        self.delayDisplay("Lung panel workflow checked")

