"""The "LiteMedSAM box" Segment Editor effect: a box (Markups ROI) in, the selected segment replaced by the mask
LiteMedSAM finds in it. The work runs in a job process (radassist.slicer.box_segmentation.BoxEffectController);
this file only builds the options and forwards clicks."""

import qt
import slicer
from SegmentEditorEffects import AbstractScriptedSegmentEditorEffect

EFFECT_NAME = "LiteMedSAM box"


class SegmentEditorEffect(AbstractScriptedSegmentEditorEffect):
    def __init__(self, scriptedEffect) -> None:
        scriptedEffect.name = EFFECT_NAME
        scriptedEffect.title = "LiteMedSAM"
        scriptedEffect.perSegment = True
        scriptedEffect.requireSegments = True
        AbstractScriptedSegmentEditorEffect.__init__(self, scriptedEffect)
        self.controller = None

    def clone(self):
        cloned = slicer.qSlicerSegmentEditorScriptedEffect(None)
        cloned.setPythonSource(__file__.replace("\\", "/"))
        return cloned

    def helpText(self) -> str:
        return ("<html>Segment what a box holds with LiteMedSAM (box-prompted, any modality, runs on the CPU).<p>"
                "Draw or move a Markups ROI around the object, choose it below, and click Apply: the selected "
                "segment is replaced by the object's mask, slice by slice through the box (Undo restores it). "
                "Install the model once in any RadAssist module's Models section ('litemedsam').</html>")

    def setupOptionsFrame(self) -> None:
        from radassist.slicer.box_segmentation import BoxEffectController
        from radassist.slicer.worker import add_job_controls

        frame = qt.QWidget()
        form = qt.QFormLayout(frame)
        self.roiSelector = slicer.qMRMLNodeComboBox()
        self.roiSelector.nodeTypes = ["vtkMRMLMarkupsROINode"]
        self.roiSelector.addEnabled = True
        self.roiSelector.removeEnabled = False
        self.roiSelector.noneEnabled = True
        self.roiSelector.toolTip = "The box around the object (a Markups ROI; move or resize it, then Apply again)"
        self.roiSelector.setMRMLScene(slicer.mrmlScene)
        form.addRow("Box:", self.roiSelector)
        self.applyButton, self.progressBar, self.statusLabel = add_job_controls(
            form, "Apply", "Replace the selected segment with the object in the box")
        self.scriptedEffect.addOptionsWidget(frame)
        self.controller = BoxEffectController(self.scriptedEffect, self.roiSelector, self.applyButton,
                                              self.progressBar, self.statusLabel)
        self.applyButton.connect("clicked(bool)", self.controller.onApply)
