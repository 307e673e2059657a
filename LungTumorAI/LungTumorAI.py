"""LungTumorAI: lung nodule detection on chest CT (Lung-DETR), as a Slicer module over the RadAssist engine."""

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
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleTest

from radassist.runtime.progress import Progress
from radassist.slicer import panel


class LungTumorAI(ScriptedLoadableModule):
    def __init__(self, parent) -> None:
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Lung Nodule Detection"
        self.parent.categories = [panel.CATEGORY]
        self.parent.dependencies = []
        self.parent.contributors = panel.CONTRIBUTORS
        self.parent.helpText = panel.help_text(
            "Finds lung nodules on a chest CT and marks each one with a box (a Markups ROI you can move, resize "
            "or delete) and a row in the nodule table: position, diameter and probability.",
            "Lung-DETR: a deformable detection transformer on 7.5 mm maximum intensity projections, trained with "
            "a focal loss on LUNA16 (Ramezani, Aleman and L&eacute;tourneau, arXiv:2409.05200, 2024).",
            "'Load synthetic sample' builds a chest CT phantom with nodules of known size and position, and "
            "shows its lungs and nodule boxes as ground truth.")
        self.parent.acknowledgementText = panel.ACKNOWLEDGEMENT


@parameterNodeWrapper
class LungTumorAIParameterNode:
    """inputVolume: the chest CT. outputSegmentation/outputTable: where the lungs and the nodule list go."""

    inputVolume: vtkMRMLScalarVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    outputTable: vtkMRMLTableNode
    device: panel.DeviceChoice = "auto"
    sampleSeed: int = 0


class LungTumorAILogic(panel.RadAssistLogic):
    parameterNodeClass = LungTumorAIParameterNode
    requiredInputs = {"inputVolume": "a chest CT"}
    taskTitle = "lung nodule detection"
    pipelineModule = "radassist.lung.pipeline"

    def makeSample(self, seed: int, progress: Progress) -> Any:
        from radassist.synthetic.chest import make_chest_ct

        return panel.build_sample("chest CT", make_chest_ct, seed, progress)

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


class LungTumorAIWidget(panel.RadAssistWidget):
    logicClass = LungTumorAILogic


class LungTumorAITest(ScriptedLoadableModuleTest):
    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        self.setUp()
        self.test_sample_nodes()
        self.setUp()
        self.test_apply_needs_input()

    def test_sample_nodes(self) -> None:
        import numpy as np

        from radassist.synthetic.chest import make_chest_ct

        phantom = make_chest_ct(3)
        logic = LungTumorAILogic()
        parameterNode = logic.getParameterNode()
        loaded = logic.showSample(phantom, parameterNode)

        panel.check_volume_node(self, loaded.volumes["ct"], phantom.volume)
        self.assertEqual(parameterNode.inputVolume.GetID(), loaded.volumes["ct"].GetID())
        panel.check_segment_names(self, loaded.ground_truth["lungs"], phantom.lungs)
        rois = loaded.ground_truth["nodules"]
        self.assertEqual(len(rois), len(phantom.nodules))
        for roi, nodule in zip(rois, phantom.nodules.items):
            center = [0.0, 0.0, 0.0]
            roi.GetCenterWorld(center)
            self.assertTrue(np.allclose(center, panel.lps_to_ras(nodule.center), atol=1e-3))
        self.delayDisplay("Lung sample nodes checked")

    def test_apply_needs_input(self) -> None:
        volume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "any CT")
        panel.check_apply_follows_inputs(self, "LungTumorAI", {"inputVolume": volume})
