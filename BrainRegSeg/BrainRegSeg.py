"""BrainRegSeg: joint brain MRI registration and tumour segmentation, as a Slicer module over the RadAssist engine."""

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
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTransformNode
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleTest

from radassist.slicer import compat
from radassist.slicer.compat import parameterNodeWrapper

panel = compat.load_panel()  # on a Slicer older than 5.10 the panel only says which Slicer RadAssist needs

SEQUENCE_NAMES = {"flair": "FLAIR", "t1": "T1", "t1ce": "T1ce", "t2": "T2"}


class BrainRegSeg(ScriptedLoadableModule):
    def __init__(self, parent) -> None:
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Brain Registration and Tumour Segmentation"
        self.parent.categories = [panel.CATEGORY]
        self.parent.dependencies = []
        self.parent.contributors = panel.CONTRIBUTORS
        self.parent.helpText = panel.help_text(
            "Aligns a moving brain MRI to a fixed one with a deformable transform and segments the tumour "
            "(necrotic core, oedema, enhancing tumour) in the same pass; the registration relaxes its similarity "
            "term inside the tumour, where the two images cannot match.",
            "Joint registration and segmentation network of Estienne et al., 'Deep Learning-Based Concurrent Brain "
            "Registration and Tumor Segmentation', Frontiers in Computational Neuroscience 14:17, 2020 (BraTS).",
            "'Load synthetic sample' builds a fixed and a moving brain phantom (FLAIR, T1, T1ce, T2) related by a "
            "known deformation, and shows the true transform and both tumour segmentations.")
        self.parent.acknowledgementText = panel.ACKNOWLEDGEMENT


@parameterNodeWrapper
class BrainRegSegParameterNode:
    """fixedVolume/movingVolume: the two MRIs (same sequence); fixedVolumeN/movingVolumeN: optional further
    sequences, paired by number. Outputs: fixed->moving transform, fixed tumour segmentation."""

    fixedVolume: vtkMRMLScalarVolumeNode
    movingVolume: vtkMRMLScalarVolumeNode
    fixedVolume2: vtkMRMLScalarVolumeNode
    movingVolume2: vtkMRMLScalarVolumeNode
    fixedVolume3: vtkMRMLScalarVolumeNode
    movingVolume3: vtkMRMLScalarVolumeNode
    fixedVolume4: vtkMRMLScalarVolumeNode
    movingVolume4: vtkMRMLScalarVolumeNode
    outputTransform: vtkMRMLTransformNode
    outputSegmentation: vtkMRMLSegmentationNode
    device: panel.DeviceChoice = "auto"
    sampleSeed: int = 0


class BrainRegSegLogic(panel.RadAssistLogic):
    parameterNodeClass = BrainRegSegParameterNode
    requiredInputs = {"fixedVolume": "a fixed MRI", "movingVolume": "a moving MRI"}
    taskTitle = "brain registration and tumour segmentation"
    sampleKind = "brain"
    serverTask = "brain-register"
    engine = "auto"  # set by the widget's engine selector

    def gatherInputs(self, parameterNode) -> Any:
        """Selected nodes -> (moving, fixed) BrainImages; sequence slots are paired by number."""
        from radassist.brain.pipeline import paired_sequences
        from radassist.slicer import nodes

        slots = [(node.GetName() if node else "", nodes.volume_from_node(node) if node else None)
                 for suffix in ("", "2", "3", "4") for node in (getattr(parameterNode, f"fixedVolume{suffix}"),
                                                                getattr(parameterNode, f"movingVolume{suffix}"))]
        moving, fixed = paired_sequences([slots[i] + slots[i + 1] for i in range(0, len(slots), 2)])
        return moving, fixed, parameterNode.fixedVolume, parameterNode.movingVolume

    def boxJobs(self, parameterNode) -> list:
        """The boxes of "Refine tumours": a box around each part of the fixed image's tumour (all its sub-regions
        together, the whole tumour), segmented again by LiteMedSAM on the fixed image."""
        from radassist.slicer.box_segmentation import tumour_box_jobs

        return tumour_box_jobs(parameterNode.outputSegmentation, parameterNode.fixedVolume, lambda name: True)

    def taskRequest(self, inputs: Any) -> Any:
        """Fixed then moving sequences for the brain-register task; its files come back as the result."""
        from radassist.slicer.task_requests import brain_request

        moving, fixed, fixedNode, movingNode = inputs
        return brain_request(fixed.images, moving.images, self.engine,
                             lambda result: (result, fixedNode, movingNode, fixed.images))

    def showResult(self, result: Any, parameterNode=None) -> str:
        """Transform (grid display over the fixed image), warped volumes, both tumour segmentations, report."""
        from radassist.slicer import nodes
        from radassist.slicer.ai_run import AiRun
        from radassist.slicer.export_plan import model_info_from_metadata

        result, fixedNode, movingNode, fixedImages = result
        name = movingNode.GetName()
        transform = nodes.displacement_to_transform_node(result.field, f"{name} to {fixedNode.GetName()}")
        transform.CreateDefaultDisplayNodes()
        display = transform.GetDisplayNode()
        display.SetAndObserveRegionNode(fixedNode)
        display.SetVisualizationMode(display.VIS_MODE_GRID)  # shown when the user turns its visibility on
        warped = [nodes.volume_to_node(volume, f"{name} warped {sequence}")
                  for sequence, volume in result.warped.items()]
        target = parameterNode.outputSegmentation if parameterNode is not None else None
        tumours = {role: nodes.labelmap_to_segmentation_node(labels, node, f"{node.GetName()} tumour",
                                                             target if role == "fixed" else None)
                   for role, labels, node in (("fixed", result.fixed_tumour, fixedNode),
                                              ("moving", result.moving_tumour, movingNode)) if labels is not None}
        nodes.report_summary_to_table_node(result.report, f"{name} registration report")
        if parameterNode is not None:
            parameterNode.outputTransform = transform
            parameterNode.outputSegmentation = tumours.get("fixed", target)
        self.aiRun = None if result.fixed_tumour is None else AiRun(
            "brain", result.fixed_tumour, model_info_from_metadata(result.report.metadata, result.engine),
            {"fixed": fixedNode}, tumours["fixed"], images=fixedImages)
        self.showVolume(warped[0], tumours.get("fixed"))
        return result.status_line()

    def showSample(self, sample: Any, parameterNode=None) -> panel.LoadedSample:
        """Every sequence of both brains, their tumour labels and the true deformation; FLAIRs become the inputs."""
        from radassist.slicer import nodes

        name = f"Synthetic brain {sample.seed}"
        volumes = {}
        for role, images in (("fixed", sample.fixed), ("moving", sample.moving)):
            for sequence, volume in images.items():
                label = SEQUENCE_NAMES.get(sequence, sequence)
                volumes[f"{role} {sequence}"] = nodes.volume_to_node(volume, f"{name} {role} {label}")
        fixedNode, movingNode = volumes["fixed flair"], volumes["moving flair"]
        fixedLabels = nodes.labelmap_to_segmentation_node(sample.fixed_labels, fixedNode,
                                                          f"{name} fixed tumour (ground truth)")
        movingLabels = nodes.labelmap_to_segmentation_node(sample.moving_labels, movingNode,
                                                           f"{name} moving tumour (ground truth)")
        transform = nodes.displacement_to_transform_node(sample.deformation,
                                                         f"{name} fixed to moving (ground truth)")
        if parameterNode is not None:  # FLAIR first, then every other sequence in its own slot: both engines run
            parameterNode.fixedVolume = fixedNode
            parameterNode.movingVolume = movingNode
            others = [sequence for sequence in sample.fixed if sequence != "flair" and sequence in sample.moving]
            for slot, sequence in zip(("2", "3", "4"), others):
                setattr(parameterNode, f"fixedVolume{slot}", volumes[f"fixed {sequence}"])
                setattr(parameterNode, f"movingVolume{slot}", volumes[f"moving {sequence}"])
        self.showVolume(fixedNode, fixedLabels)
        return panel.LoadedSample(
            volumes=volumes,
            ground_truth={"fixed labels": fixedLabels, "moving labels": movingLabels, "deformation": transform},
            summary=f"Loaded '{name}': {len(volumes)} MRI volumes, the true deformation as a grid transform and "
                    "the tumour on both brains.")


class BrainRegSegWidget(panel.RadAssistWidget):
    logicClass = BrainRegSegLogic
    modelTask = "brain-registration-segmentation"  # the catalogue task(s) whose models the shared Models section lists
    boxSegmentButton = ("Refine tumours", "Draw a box around each part of the fixed image's tumour segmentation "
                                          "and segment the whole tumour again with LiteMedSAM (a new segmentation).")

    def setup(self) -> None:
        panel.RadAssistWidget.setup(self)
        self.ui.engineComboBox.connect("currentTextChanged(QString)",
                                       lambda text: setattr(self.logic, "engine", text))


class BrainRegSegTest(ScriptedLoadableModuleTest):
    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        for test in (self.test_sample_nodes, self.test_apply_needs_inputs, self.test_panel_workflow):
            self.setUp()
            test()

    def test_sample_nodes(self) -> None:
        import numpy as np

        from radassist.synthetic.brain import make_brain_pair

        pair = make_brain_pair(1)
        logic = BrainRegSegLogic()
        parameterNode = logic.getParameterNode()
        loaded = logic.showSample(pair, parameterNode)

        for sequence, volume in pair.fixed.items():
            panel.check_volume_node(self, loaded.volumes[f"fixed {sequence}"], volume)
        for sequence, volume in pair.moving.items():
            panel.check_volume_node(self, loaded.volumes[f"moving {sequence}"], volume)
        self.assertEqual(parameterNode.fixedVolume.GetID(), loaded.volumes["fixed flair"].GetID())
        self.assertEqual(parameterNode.movingVolume.GetID(), loaded.volumes["moving flair"].GetID())
        panel.check_segment_names(self, loaded.ground_truth["fixed labels"], pair.fixed_labels)
        panel.check_segment_names(self, loaded.ground_truth["moving labels"], pair.moving_labels)

        # The grid transform moves the tumour centre (fixed space) by the true displacement there.
        transform = loaded.ground_truth["deformation"]
        self.assertTrue(transform.IsA("vtkMRMLGridTransformNode"))
        center_lps = np.asarray(pair.tumour_center)
        ijk = np.round(pair.deformation.geometry.world_to_ijk(center_lps)).astype(int)
        grid_point_lps = pair.deformation.geometry.ijk_to_world(ijk)
        displacement_lps = pair.deformation.vectors[ijk[2], ijk[1], ijk[0]]
        moved_ras = transform.GetTransformFromParent().TransformPoint(panel.lps_to_ras(grid_point_lps))
        self.assertTrue(np.allclose(moved_ras, panel.lps_to_ras(grid_point_lps + displacement_lps), atol=1e-2))
        self.delayDisplay("Brain sample nodes checked")

    def test_apply_needs_inputs(self) -> None:
        fixed = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "any fixed MRI")
        moving = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "any moving MRI")
        panel.check_apply_follows_inputs(self, "BrainRegSeg", {"fixedVolume": fixed, "movingVolume": moving})

    def test_panel_workflow(self) -> None:
        """As a user: the sample; classical registration in its job process (the grid transform over the fixed
        image, warped volumes; no tumour, so nothing to review); then the joint engine with imported weights (an
        untrained network that calls everything tumour, in a private models folder: the path is what is checked),
        review, export, cancel."""
        import tempfile
        from pathlib import Path

        from radassist.runtime.plumbing_weights import tumour_everywhere_brain_weights
        from radassist.runtime.registry import import_model
        from radassist.slicer import self_test

        widget = self_test.widget_of("BrainRegSeg")
        self_test.load_sample_through_panel(self, widget)
        widget.ui.engineComboBox.currentIndex = widget.ui.engineComboBox.findText("classic")
        self_test.apply_through_panel(self, widget, "classic engine")
        display = widget._parameterNode.outputTransform.GetDisplayNode()
        self.assertIs(display.GetRegionNode(), widget._parameterNode.fixedVolume)
        self.assertEqual(display.GetVisualizationMode(), display.VIS_MODE_GRID)
        self.assertTrue([n for n in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
                         if " warped " in n.GetName()])
        self.assertEqual(widget.reviewSection.table.rowCount, 0)
        with self_test.scratch_models_folder() as models:
            import_model("brain-joint", tumour_everywhere_brain_weights(models / "joint.pt"))
            widget.ui.engineComboBox.currentIndex = widget.ui.engineComboBox.findText("joint")
            self_test.apply_through_panel(self, widget, "joint engine")
            with tempfile.TemporaryDirectory() as folder:
                self_test.review_and_export(self, widget, Path(folder) / "dataset")
            self_test.cancel_through_panel(self, widget, "vtkMRMLGridTransformNode")
        self.delayDisplay("Brain panel workflow checked")
