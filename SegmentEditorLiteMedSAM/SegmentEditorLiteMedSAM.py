"""SegmentEditorLiteMedSAM: a hidden module whose only job is to add the "LiteMedSAM box" effect to Slicer's Segment
Editor, so annotators of every module (and of any other segmentation) can turn a box into a mask."""

from __future__ import annotations

import os
import sys

# Run from a source checkout (module folder added under "Additional module paths"): import radassist from the
# repository root. A built extension installs radassist next to this file, where Slicer already looks.
_CHECKOUT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(_CHECKOUT_ROOT, "radassist")) and _CHECKOUT_ROOT not in sys.path:
    sys.path.insert(0, _CHECKOUT_ROOT)

import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleTest,
)

EFFECT_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "SegmentEditorLiteMedSAMLib",
                           "SegmentEditorEffect.py")


class SegmentEditorLiteMedSAM(ScriptedLoadableModule):
    def __init__(self, parent) -> None:
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "LiteMedSAM box (Segment Editor effect)"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = ["Segmentations"]
        self.parent.contributors = ["RadAssist developers"]
        self.parent.hidden = True
        self.parent.helpText = ("Adds the 'LiteMedSAM box' effect to the Segment Editor: draw a box (Markups ROI) "
                                "around an object, click Apply, and the selected segment becomes the object's mask.")
        self.parent.acknowledgementText = (
            "LiteMedSAM: Ma et al., Segment anything in medical images (MedSAM), Nature Communications 2024; the "
            "LiteMedSAM weights are the MedSAM authors' (Apache-2.0). Part of RadAssist.")
        slicer.app.connect("startupCompleted()", registerEffect)


def registerEffect() -> None:
    """Register the effect with the Segment Editor's effect factory (once Slicer has started, as effects must)."""
    effect = slicer.qSlicerSegmentEditorScriptedEffect(None)
    effect.setPythonSource(EFFECT_FILE.replace("\\", "/"))
    effect.self().register()


class SegmentEditorLiteMedSAMTest(ScriptedLoadableModuleTest):
    """An annotator's session with the effect (radassist.slicer.box_effect_self_test): no box, a box, Undo and Redo,
    the box moved onto another object and applied again, Cancel."""

    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        self.setUp()
        self.test_box_session()

    def test_box_session(self) -> None:
        from radassist.slicer.box_effect_self_test import run_box_effect_session

        run_box_effect_session(self)
        self.delayDisplay("LiteMedSAM box effect checked")
