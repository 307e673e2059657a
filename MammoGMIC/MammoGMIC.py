"""MammoGMIC: screening mammogram classification (GMIC), as a Slicer module over the RadAssist engine."""

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
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLTableNode
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleTest

from radassist.slicer import compat
from radassist.slicer.compat import parameterNodeWrapper

panel = compat.load_panel()  # on a Slicer older than 5.10 the panel only says which Slicer RadAssist needs

# Parameter -> GMIC's name of the view it holds.
VIEW_PARAMETERS = {"lccVolume": "L-CC", "rccVolume": "R-CC", "lmloVolume": "L-MLO", "rmloVolume": "R-MLO"}
_PARAMETER_OF = {view: parameter for parameter, view in VIEW_PARAMETERS.items()}


class MammoGMIC(ScriptedLoadableModule):
    def __init__(self, parent) -> None:
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Mammogram Classification (GMIC)"
        self.parent.categories = [panel.CATEGORY]
        self.parent.dependencies = []
        self.parent.contributors = panel.CONTRIBUTORS
        self.parent.helpText = panel.help_text(
            "Reads the four views of a screening mammogram exam (L-CC, R-CC, L-MLO, R-MLO) and gives, per view "
            "and per breast, the probability of a benign and of a malignant finding, with saliency maps that show "
            "where the network looked.",
            "GMIC, the globally-aware multiple instance classifier: a global saliency network picks informative "
            "patches that a local network reads at full resolution (Shen et al., 'An interpretable classifier for "
            "high-resolution breast cancer screening images utilizing weakly supervised localization', Medical "
            "Image Analysis 68:101908, 2021).",
            "'Load synthetic sample' builds a four-view exam phantom with known benign and malignant findings, "
            "and shows their outlines and the true labels per view and per breast.")
        self.parent.acknowledgementText = panel.ACKNOWLEDGEMENT


@parameterNodeWrapper
class MammoGMICParameterNode:
    """The four views of one exam, and the table that receives the class probabilities."""

    lccVolume: vtkMRMLScalarVolumeNode
    rccVolume: vtkMRMLScalarVolumeNode
    lmloVolume: vtkMRMLScalarVolumeNode
    rmloVolume: vtkMRMLScalarVolumeNode
    outputTable: vtkMRMLTableNode
    device: panel.DeviceChoice = "auto"
    tta: int = 0
    sampleSeed: int = 0


class MammoGMICLogic(panel.RadAssistLogic):
    parameterNodeClass = MammoGMICParameterNode
    anyOfInputs = {"lccVolume": "the L-CC view", "rccVolume": "the R-CC view", "lmloVolume": "the L-MLO view",
                   "rmloVolume": "the R-MLO view"}  # an exam: the four views, or any subset of them
    taskTitle = "mammogram classification"
    sampleKind = "mammo"
    serverTask = "mammo-classify"

    @staticmethod
    def viewVolumes(exam: Any) -> dict:
        """GMIC view name -> one-slice Volume, for the four views of a synthetic exam."""
        return {name: exam.view(name).to_volume() for name in VIEW_PARAMETERS.values()}

    @staticmethod
    def viewFindings(view: Any):
        """A view's true benign and malignant regions as a LabelMap (only the kinds present), or None."""
        from radassist.results.labelmap import LabelMap
        from radassist.results.segments import Segment
        kinds = [("Benign finding", view.benign_mask, (0.3, 0.85, 0.4)),
                 ("Malignant finding", view.malignant_mask, (0.95, 0.25, 0.2))]
        present = [(name, mask[None], color) for name, mask, color in kinds if mask.any()]
        if not present:
            return None
        segments = [Segment(name, index + 1, color=color) for index, (name, _, color) in enumerate(present)]
        volume = view.to_volume()
        return LabelMap.from_masks([mask for _, mask, _ in present], segments, volume.geometry, volume.source)

    @staticmethod
    def truthClassification(exam: Any):
        """The exam's true labels in the layout of GMIC's output: per view, then per breast (0 or 1)."""
        from radassist.results.tables import Classification, ClassifiedImage
        images = [ClassifiedImage(name, {k: float(v) for k, v in exam.view(name).labels.items()})
                  for name in VIEW_PARAMETERS.values()]
        groups = [ClassifiedImage(f"{side} breast", {k: float(v) for k, v in labels.items()})
                  for side, labels in exam.labels.items()]
        return Classification(images=images, groups=groups, model="ground truth")

    def gatherInputs(self, parameterNode) -> dict:
        """The chosen views (any subset) as Volumes (main thread); the engine names each by its selector (L-CC...)."""
        from radassist.slicer import nodes
        from radassist.slicer.inputs import chosen
        views = chosen({p: getattr(parameterNode, p) for p in VIEW_PARAMETERS}, VIEW_PARAMETERS)
        return {"volumes": {VIEW_PARAMETERS[p]: nodes.volume_from_node(n) for p, n in views.items()},
                "tta": int(parameterNode.tta), "model": self.selectedModelId}

    def taskRequest(self, inputs: dict) -> Any:
        """The views as 16-bit PNGs named after their view, for the mammo-classify task (every installed GMIC
        model, an ensemble when several); the answer is placed back on the views' own grids."""
        from radassist.slicer.task_requests import mammo_request
        return mammo_request(inputs["volumes"], inputs["tta"], inputs.get("model"))

    def showResult(self, result: Any, parameterNode=None) -> str:
        """Probabilities table, saliency maps as coloured overlays (benign green, malignant red), patch ROIs."""
        from radassist.slicer import nodes, review
        from radassist.slicer.ai_run import AiRun
        from radassist.slicer.export_plan import model_info_from_metadata
        parameterNode.outputTable = nodes.classification_to_table_node(
            result.classification, "GMIC probabilities", parameterNode.outputTable)
        overlays, before = {}, review.roi_ids()
        for name, view in result.views.items():
            for kind, colour in (("benign", "vtkMRMLColorTableNodeGreen"), ("malignant", "vtkMRMLColorTableNodeRed")):
                node = nodes.volume_to_node(view.saliency[kind], f"{name} saliency {kind}")
                node.GetDisplayNode().SetAndObserveColorNodeID(colour)
                node.GetDisplayNode().SetAutoWindowLevel(False)
                node.GetDisplayNode().SetWindowLevelMinMax(0.0, 1.0)
                overlays[name] = node
            nodes.detections_to_roi_nodes(view.patches, f"{name} patch ")
        viewNodes = {name: getattr(parameterNode, _PARAMETER_OF[name]) for name in result.views}
        self.aiRun = AiRun("mammo", result.classification, model_info_from_metadata(result.classification.metadata),
                           viewNodes, roi_ids_before=before)
        first = next(iter(result.views))
        slicer.util.setSliceViewerLayers(background=viewNodes[first], foreground=overlays[first],
                                         foregroundOpacity=0.4, fit=True)
        lines = [f"{g.image_id}: " + ", ".join(f"{k} {p:.2f}" for k, p in g.probabilities.items())
                 for g in result.classification.groups]
        return f"GMIC ({result.classification.model}): " + "; ".join(lines)

    def boxJobs(self, parameterNode) -> list:
        """The boxes of "Outline lesions": each view's patch boxes (GMIC's, or ones the reader moved or drew named
        like them), one job per view."""
        from radassist.errors import InputError
        from radassist.slicer.box_segmentation import BoxJob, roi_boxes

        jobs = []
        for parameter, view in VIEW_PARAMETERS.items():
            volumeNode = getattr(parameterNode, parameter)
            rois = [roi for roi in slicer.util.getNodesByClass("vtkMRMLMarkupsROINode")
                    if roi.GetName().startswith(f"{view} patch ")]
            if volumeNode is not None and rois:
                def show(result, v=view, n=volumeNode, r=rois) -> str:
                    return self.showLesionOutlines(result, v, n, r)

                jobs.append(BoxJob(volumeNode, roi_boxes(rois), show))
        if not jobs:
            raise InputError(None, "Classify the exam first: each patch box GMIC marks becomes a lesion outline.")
        return jobs

    @staticmethod
    def showLesionOutlines(result: Any, view: str, volumeNode, rois: list) -> str:
        """One segment per patch box, named after it, in a segmentation of the view."""
        from radassist.slicer import nodes
        from radassist.slicer.box_segmentation import named_labelmap

        labelmap = named_labelmap(result.labelmap, [roi.GetName() for roi in rois])
        nodes.labelmap_to_segmentation_node(labelmap, volumeNode, f"{view} lesion outlines (LiteMedSAM)")
        return f"{view}: {len(rois)} lesion outline(s)."

    def showSample(self, sample: Any, parameterNode=None) -> panel.LoadedSample:
        """One volume node per view (they become the inputs), the true findings and the true labels."""
        from radassist.slicer import nodes
        name = f"Synthetic mammogram exam {sample.seed}"
        volumes = {view: nodes.volume_to_node(volume, f"{name} {view}")
                   for view, volume in self.viewVolumes(sample).items()}
        truth = {"labels": nodes.classification_to_table_node(self.truthClassification(sample),
                                                              f"{name} labels (ground truth)")}
        for view in VIEW_PARAMETERS.values():
            findings = self.viewFindings(sample.view(view))
            if findings is not None:
                truth[f"{view} findings"] = nodes.labelmap_to_segmentation_node(
                    findings, volumes[view], f"{name} {view} findings (ground truth)")
        if parameterNode is not None:
            for parameter, view in VIEW_PARAMETERS.items():
                setattr(parameterNode, parameter, volumes[view])
        self.showVolume(volumes["L-CC"], truth.get("L-CC findings"))
        return panel.LoadedSample(volumes=volumes, ground_truth=truth,
                                  summary=f"Loaded '{name}': four views selected as inputs, true labels as a "
                                          f"table, findings outlined on {len(truth) - 1} view(s).")


class MammoGMICWidget(panel.RadAssistWidget):
    logicClass = MammoGMICLogic
    modelTask = "mammography-classification"
    confirmsLabels = True  # the review section asks the reader to confirm each breast's labels before export
    boxSegmentButton = ("Outline lesions", "Turn each patch box into a lesion outline (LiteMedSAM): one segment per "
                                           "box, one segmentation per view.")


class MammoGMICTest(ScriptedLoadableModuleTest):
    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        for test in (self.test_sample_nodes, self.test_apply_needs_any_view, self.test_panel_workflow):
            self.setUp()
            test()

    def test_sample_nodes(self) -> None:
        from radassist.synthetic.mammo import make_mammogram_exam

        exam = make_mammogram_exam(4)
        logic = MammoGMICLogic()
        parameterNode = logic.getParameterNode()
        loaded = logic.showSample(exam, parameterNode)
        expected = logic.viewVolumes(exam)
        self.assertEqual(set(loaded.volumes), set(VIEW_PARAMETERS.values()))
        for view, volume in expected.items():
            panel.check_volume_node(self, loaded.volumes[view], volume)
        for parameter, view in VIEW_PARAMETERS.items():
            self.assertEqual(getattr(parameterNode, parameter).GetID(), loaded.volumes[view].GetID())
        for view in VIEW_PARAMETERS.values():
            findings = logic.viewFindings(exam.view(view))
            if findings is None:
                self.assertNotIn(f"{view} findings", loaded.ground_truth)
            else:
                panel.check_segment_names(self, loaded.ground_truth[f"{view} findings"], findings)
        table = loaded.ground_truth["labels"]
        self.assertEqual(table.GetNumberOfRows(), 4 + len(exam.labels))  # four views, then one row per breast
        self.assertEqual(table.GetCellText(0, 0), "L-CC")
        self.delayDisplay("Mammography sample nodes checked")

    def test_apply_needs_any_view(self) -> None:
        """Apply waits for a view; any one of the four (or more) is an exam the engine classifies."""
        view = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "R-MLO")
        panel.check_apply_follows_inputs(self, "MammoGMIC", {"rmloVolume": view})

    def test_panel_workflow(self) -> None:
        """As a user: GMIC weights imported (untrained here, in a private models folder: the published ones are
        AGPL and not shipped), the sample, classification in its job process, table, overlays and patches,
        review with confirmed labels, export, cancel."""
        import tempfile
        from pathlib import Path

        from radassist.runtime.plumbing_weights import SMALL_GMIC, untrained_gmic_weights
        from radassist.runtime.registry import import_model
        from radassist.slicer import self_test

        with self_test.scratch_models_folder() as models:
            # a model of its own: the catalogue's gmic-1 accepts only the published file (its git blob id)
            import_model("gmic", untrained_gmic_weights(models / "gmic-untrained.pt", SMALL_GMIC), "gmic-untrained",
                         task="mammography-classification", title="GMIC (untrained, self-test)", config=SMALL_GMIC)
            widget = self_test.widget_of("MammoGMIC")
            self_test.select_model(self, widget, "gmic-untrained")
            self_test.load_sample_through_panel(self, widget)
            self_test.apply_through_panel(self, widget, "GMIC (")
            self.assertGreaterEqual(widget._parameterNode.outputTable.GetNumberOfRows(), 4)
            self.assertTrue([n for n in slicer.util.getNodesByClass("vtkMRMLMarkupsROINode") if "patch" in n.GetName()])
            with tempfile.TemporaryDirectory() as folder:
                self_test.review_and_export(self, widget, Path(folder) / "dataset")
            self_test.cancel_through_panel(self, widget, "vtkMRMLTableNode")
        self.delayDisplay("Mammography panel workflow checked")

