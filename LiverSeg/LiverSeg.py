"""LiverSeg: liver and liver-tumour segmentation on abdominal CT (mU-Net), as a Slicer module over the RadAssist
engine."""

from __future__ import annotations

import os
import sys
from typing import Any

# Run from a source checkout (module folder added under "Additional module paths"): import radassist from the
# repository root. A built extension installs radassist next to this file, where Slicer already looks.
_CHECKOUT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(_CHECKOUT_ROOT, "radassist")) and _CHECKOUT_ROOT not in sys.path:
    sys.path.insert(0, _CHECKOUT_ROOT)

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleTest

from radassist.slicer import compat
from radassist.slicer.compat import parameterNodeWrapper

panel = compat.load_panel()  # on a Slicer older than 5.10 the panel only says which Slicer RadAssist needs


class LiverSeg(ScriptedLoadableModule):
    def __init__(self, parent) -> None:
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Liver Segmentation"
        self.parent.categories = [panel.CATEGORY]
        self.parent.dependencies = []
        self.parent.contributors = panel.CONTRIBUTORS
        self.parent.helpText = panel.help_text(
            "Segments the liver and liver tumours on a contrast-enhanced abdominal CT and measures them: liver "
            "volume, number and volume of tumours, and tumour burden.",
            "U-Net or mU-Net, a U-Net with residual paths and object-dependent high-level features in its skip "
            "connections, trained on LiTS (Seo et al., IEEE Transactions on Medical Imaging 39(5):1316-1325, 2020).",
            "'Load synthetic sample' builds an abdominal CT phantom with a liver and tumours of known size, and "
            "shows their true outlines and a table of the true tumours.")
        self.parent.acknowledgementText = panel.ACKNOWLEDGEMENT


@parameterNodeWrapper
class LiverSegParameterNode:
    """inputVolume: the abdominal CT. outputSegmentation/outputTable: where the liver, tumours and measures go."""

    inputVolume: vtkMRMLScalarVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    outputTable: vtkMRMLTableNode
    device: panel.DeviceChoice = "auto"
    sampleSeed: int = 0


class LiverSegLogic(panel.RadAssistLogic):
    parameterNodeClass = LiverSegParameterNode
    requiredInputs = {"inputVolume": "an abdominal CT"}
    taskTitle = "liver segmentation"
    sampleKind = "liver"
    serverTask = "liver-segment"
    architecture = "munet"  # set by the panel's architecture selector
    modelPath = ""  # a checkpoint folder from 'radassist train liver'; empty: the installed model

    def gatherInputs(self, parameterNode) -> dict:
        from radassist.slicer import nodes
        return {"volume": nodes.volume_from_node(parameterNode.inputVolume), "arch": self.architecture,
                "model": self.modelPath or None}

    def taskRequest(self, inputs: dict) -> Any:
        """The CT, architecture and (optionally) a checkpoint folder of the user's for the liver-segment task."""
        from radassist.slicer.result_files import read_liver_segment
        from radassist.slicer.task_requests import TaskRequest, architecture_options

        options = architecture_options(inputs["arch"]) | ({"model": inputs["model"]} if inputs["model"] else {})
        return TaskRequest([inputs["volume"]], options, read_liver_segment)

    def showResult(self, result: Any, parameterNode=None) -> str:
        """The segmentation (in the Segment Editor, ready for correction) and the measurements table."""
        from radassist.slicer import nodes
        from radassist.slicer.ai_run import AiRun
        from radassist.slicer.export_plan import model_info_from_metadata
        volumeNode = parameterNode.inputVolume
        name = f"{volumeNode.GetName()} liver"
        segmentation = nodes.labelmap_to_segmentation_node(result.labelmap, volumeNode, name,
                                                           parameterNode.outputSegmentation)
        parameterNode.outputSegmentation = segmentation
        self.aiRun = AiRun("liver", result.labelmap, model_info_from_metadata(result.labelmap.metadata),
                           {"image": volumeNode}, segmentation)
        self.showVolume(volumeNode, segmentation)
        editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
        editor.setSegmentationNode(segmentation)
        editor.setSourceVolumeNode(volumeNode)
        return (f"{self.showReport(result.report, parameterNode)} Correct it in Segment Editor if needed, then "
                f"press Quantify ({result.backend}, {result.seconds:.1f} s).")

    def boxJobs(self, parameterNode) -> list:
        """The boxes of "Refine tumours": a box around each tumour of the segmentation, segmented again by
        LiteMedSAM."""
        from radassist.slicer.box_segmentation import tumour_box_jobs

        return tumour_box_jobs(parameterNode.outputSegmentation, parameterNode.inputVolume,
                               lambda name: "tumour" in name.lower() or "tumor" in name.lower())

    def quantify(self, parameterNode) -> str:
        """Recompute the measurements from the current (possibly corrected) segmentation."""
        from radassist.liver.quantify import quantify_labelmap
        from radassist.slicer import nodes
        labelmap = nodes.segmentation_node_to_labelmap(parameterNode.outputSegmentation, parameterNode.inputVolume)
        report = quantify_labelmap(labelmap, nodes.volume_from_node(parameterNode.inputVolume)).report()
        return self.showReport(report, parameterNode)

    @staticmethod
    def showReport(report, parameterNode) -> str:
        """The measurements into the output table; returns their one-line summary."""
        from radassist.liver.quantify import summary_line
        from radassist.slicer import nodes
        name = f"{parameterNode.inputVolume.GetName()} liver measurements"
        parameterNode.outputTable = nodes.report_to_table_node(report, name, parameterNode.outputTable)
        return summary_line(report.summary).capitalize() + "."

    @staticmethod
    def tumourReport(sample: Any):
        """The phantom's true tumours as a table: centre (LPS mm), radius, volume and contrast."""
        from radassist.results.tables import Report

        rows = [{"tumour": index + 1, "center_x": t.center[0], "center_y": t.center[1], "center_z": t.center[2],
                 "radius": t.radius_mm, "volume": t.volume_ml, "mean_hu": t.hu}
                for index, t in enumerate(sample.tumours)]
        units = {"center_x": "mm", "center_y": "mm", "center_z": "mm", "radius": "mm", "volume": "ml",
                 "mean_hu": "HU"}
        return Report(title="True liver tumours", rows=rows, units=units)

    def showSample(self, sample: Any, parameterNode=None) -> panel.LoadedSample:
        """The CT, its liver and tumours as a segmentation and the true tumours as a table; the CT is the input."""
        from radassist.slicer import nodes

        name = f"Synthetic abdominal CT {sample.seed}"
        volumeNode = nodes.volume_to_node(sample.volume, name)
        labels = nodes.labelmap_to_segmentation_node(sample.labels, volumeNode, f"{name} liver (ground truth)")
        table = nodes.report_to_table_node(self.tumourReport(sample), f"{name} tumours (ground truth)")
        if parameterNode is not None:
            parameterNode.inputVolume = volumeNode
        self.showVolume(volumeNode, labels)
        return panel.LoadedSample(
            volumes={"ct": volumeNode}, ground_truth={"labels": labels, "tumours": table},
            summary=f"Loaded '{name}': liver and {len(sample.tumours)} true tumour(s) as a segmentation and a table.")


class LiverSegWidget(panel.RadAssistWidget):
    logicClass = LiverSegLogic
    modelTask = "liver-segmentation"  # the catalogue task(s) whose models the shared Models section lists
    boxSegmentButton = ("Refine tumours", "Draw a box around each tumour of the segmentation and segment it again "
                                          "with LiteMedSAM (a new segmentation, one segment per tumour).")

    def setup(self) -> None:
        panel.RadAssistWidget.setup(self)
        self.ui.quantifyButton.connect("clicked(bool)", self.onQuantifyButton)
        self.ui.architectureComboBox.connect("currentTextChanged(QString)",
                                             lambda text: setattr(self.logic, "architecture", text))
        self.ui.modelPathLineEdit.connect("currentPathChanged(QString)",
                                          lambda path: setattr(self.logic, "modelPath", path))

    def onQuantifyButton(self) -> None:
        from radassist.errors import RadAssistError
        try:
            self.setStatus(self.logic.quantify(self._parameterNode))
        except RadAssistError as error:
            self.setStatus(f"Quantify: {error}")


class LiverSegTest(ScriptedLoadableModuleTest):
    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        for test in (self.test_sample_nodes, self.test_apply_needs_input, self.test_quantify_ground_truth,
                     self.test_panel_workflow):
            self.setUp()
            test()

    def test_quantify_ground_truth(self) -> None:
        from radassist.liver.quantify import quantify_labelmap
        from radassist.synthetic.abdomen import make_abdomen_ct
        phantom = make_abdomen_ct(2)
        logic = LiverSegLogic()
        parameterNode = logic.getParameterNode()
        loaded = logic.showSample(phantom, parameterNode)
        parameterNode.outputSegmentation = loaded.ground_truth["labels"]
        logic.quantify(parameterNode)
        table = parameterNode.outputTable
        # the liver, then one row per tumour as it lies in the image (tumours that touch are one)
        expected = quantify_labelmap(phantom.labels, phantom.volume).report()
        self.assertEqual(table.GetNumberOfRows(), len(expected.rows))
        volume = table.GetTable().GetColumnByName("volume_ml").GetValue(0)
        self.assertAlmostEqual(volume, phantom.labels.labels.astype(bool).sum() * 1.28e-3, places=2)

    def test_sample_nodes(self) -> None:
        from radassist.synthetic.abdomen import make_abdomen_ct

        phantom = make_abdomen_ct(2)
        logic = LiverSegLogic()
        parameterNode = logic.getParameterNode()
        loaded = logic.showSample(phantom, parameterNode)

        panel.check_volume_node(self, loaded.volumes["ct"], phantom.volume)
        self.assertEqual(parameterNode.inputVolume.GetID(), loaded.volumes["ct"].GetID())
        panel.check_segment_names(self, loaded.ground_truth["labels"], phantom.labels)
        table = loaded.ground_truth["tumours"]
        self.assertEqual(table.GetNumberOfRows(), len(phantom.tumours))
        column = table.GetTable().GetColumnByName("volume")
        volumes = [column.GetValue(row) for row in range(column.GetNumberOfTuples())]
        self.assertEqual(volumes, [tumour.volume_ml for tumour in phantom.tumours])
        self.assertEqual(table.GetColumnUnitLabel("volume"), "ml")
        self.delayDisplay("Liver sample nodes checked")

    def test_apply_needs_input(self) -> None:
        volume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "any CT")
        panel.check_apply_follows_inputs(self, "LiverSeg", {"inputVolume": volume})

    def test_panel_workflow(self) -> None:
        """As a user: the sample, a U-Net checkpoint folder of one's own (an untrained one that calls everything
        liver: the path from the panel to the job and back is what is checked), the result in Segment Editor,
        review, export, cancel."""
        import tempfile
        from pathlib import Path

        from radassist.runtime.plumbing_weights import liver_everywhere_checkpoint
        from radassist.slicer import self_test

        widget = self_test.widget_of("LiverSeg")
        with tempfile.TemporaryDirectory() as folder:
            checkpoint = liver_everywhere_checkpoint(Path(folder) / "liver-unet")
            self_test.load_sample_through_panel(self, widget)
            widget.ui.architectureComboBox.currentIndex = widget.ui.architectureComboBox.findText("unet")
            widget.ui.modelPathLineEdit.currentPath = str(checkpoint)
            self_test.apply_through_panel(self, widget, "Correct it in Segment Editor")
            editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
            self.assertIs(editor.segmentationNode(), widget._parameterNode.outputSegmentation)
            record = self_test.review_and_export(self, widget, Path(folder) / "dataset")
            self.assertEqual(record["model"]["architecture"], "liver-unet")
            self_test.cancel_through_panel(self, widget, "vtkMRMLSegmentationNode")
        self.delayDisplay("Liver panel workflow checked")

