"""LiverSeg, BrainRegSeg and MammoGMIC through the strict stand-in: sample, Apply in a job process with each engine
the panel offers, the result in the scene, review and export; once per supported release.

The liver and GMIC runs use untrained weights the test writes (RadAssist publishes no liver weights, and GMIC's are
AGPL and not redistributed): what is checked is the panel's path from nodes to the job and back to nodes, not the
networks, which their own tests train."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slicer_bed import open_standin, releases, wait_for


def _liver_checkpoint(folder: Path) -> Path:
    from radassist.liver.model import UNET, LiverUNetConfig
    from radassist.runtime.checkpoints import save_checkpoint
    from radassist.runtime.registry import build_model

    config = LiverUNetConfig(channels=(4, 8))
    return save_checkpoint(build_model(UNET, config), UNET, config, folder)


@releases
def test_liver_sample_apply_quantify_review_export(release: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "cache"))
    checkpoint = _liver_checkpoint(tmp_path / "my-liver-unet")
    with open_standin(release, tmp_path / "slicer", installed=True) as standin:
        import slicer

        widget = standin.open_module("LiverSeg")
        widget.ui.loadSampleButton.click()
        wait_for(standin, widget._runner)
        assert "Loaded" in widget.ui.statusLabel.text, widget.ui.statusLabel.text
        (truth,) = slicer.util.getNodesByClass("vtkMRMLSegmentationNode")
        assert truth.GetSegmentation().GetNumberOfSegments() >= 2

        # Quantify works on any segmentation, here the ground truth the user picks: no model, no job
        widget.ui.outputSegmentationSelector.setCurrentNode(truth)
        assert widget._parameterNode.outputSegmentation is truth
        widget.ui.quantifyButton.click()
        assert "tumour burden" in widget.ui.statusLabel.text and widget._parameterNode.outputTable.GetNumberOfRows() > 0

        # Apply with the user's own checkpoint folder (U-Net), in a job process
        widget.ui.architectureComboBox._user_chooses("unet")
        widget.ui.modelPathLineEdit.currentPath = str(checkpoint)
        assert widget.logic.modelPath == str(checkpoint)
        widget.ui.applyButton.click()
        wait_for(standin, widget._runner)
        status = widget.ui.statusLabel.text
        assert "Correct it in Segment Editor" in status, status
        result = widget._parameterNode.outputSegmentation
        names = [result.GetSegmentation().GetNthSegment(i).GetName()
                 for i in range(result.GetSegmentation().GetNumberOfSegments())]
        assert any("liver" in name.lower() for name in names), names
        editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
        assert editor.segmentationNode() is result and editor.sourceVolumeNode() is widget._parameterNode.inputVolume

        review = widget.reviewSection
        assert review.table.rowCount == len(names)
        review.table._user_clicks_cell(0)
        review.statusComboBox._user_chooses("flagged")
        assert slicer.vtkSlicerSegmentationsModuleLogic.GetSegmentStatus(
            result.GetSegmentation().GetNthSegment(0)) == 3
        review.folderButton.directory = str(tmp_path / "dataset")
        review.annotatorLineEdit._user_types("annotator-1")
        review.exportButton.click()
        assert review.statusLabel.text.startswith("Exported"), review.statusLabel.text
        provenance = json.loads(next((tmp_path / "dataset").rglob("provenance.json")).read_text())
        assert provenance["annotator"] == "annotator-1" and provenance["model"]["architecture"] == "liver-unet"


@releases
def test_liver_without_weights_fails_in_the_job_and_slicer_goes_on(release: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "cache"))
    with open_standin(release, tmp_path / "slicer", installed=True) as standin:
        import numpy as np
        import slicer

        widget = standin.open_module("LiverSeg")
        ct = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
        voxels = np.full((4, 32, 32), -1000, np.int16)  # air, and a block of soft tissue: a CT, without a model
        voxels[:, 8:24, 8:24] = 40
        slicer.util.updateVolumeFromArray(ct, voxels)
        widget._parameterNode.inputVolume = ct
        standin.dialogs.expect("error", None)
        widget.ui.applyButton.click()
        wait_for(standin, widget._runner)
        assert widget.ui.statusLabel.text.startswith("Failed:") and "radassist" in widget.ui.statusLabel.text
        assert "LiverSeg failed" in standin.app._errors[-1]
        assert widget.ui.applyButton.enabled and widget.ui.loadSampleButton.enabled


@releases
def test_brain_sample_register_and_show_the_transform(release: str, tmp_path: Path):
    with open_standin(release, tmp_path / "slicer", installed=True) as standin:
        import slicer

        widget = standin.open_module("BrainRegSeg")
        widget.ui.loadSampleButton.click()
        wait_for(standin, widget._runner)
        assert "MRI volumes" in widget.ui.statusLabel.text, widget.ui.statusLabel.text
        widget.ui.engineComboBox._user_chooses("classic")
        assert widget.logic.engine == "classic"
        widget.ui.applyButton.click()
        wait_for(standin, widget._runner, 900)
        status = widget.ui.statusLabel.text
        assert "classic engine" in status, status
        transform = widget._parameterNode.outputTransform
        assert transform.IsA("vtkMRMLGridTransformNode")
        display = transform.GetDisplayNode()
        assert display.GetRegionNode() is widget._parameterNode.fixedVolume
        assert display.GetVisualizationMode() == display.VIS_MODE_GRID
        warped = [n for n in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode") if " warped " in n.GetName()]
        assert warped and slicer.util.arrayFromVolume(warped[0]).shape == slicer.util.arrayFromVolume(
            widget._parameterNode.fixedVolume).shape
        tables = [n for n in slicer.util.getNodesByClass("vtkMRMLTableNode") if "registration report" in n.GetName()]
        assert len(tables) == 1 and tables[0].GetNumberOfRows() > 0


def _gmic_checkpoint(path: Path) -> Path:
    """GMIC-shaped weights with GMIC's own key names, untrained (the published ones are AGPL: not shipped)."""
    import torch
    from test_mammo_mapping import published_state

    torch.save(published_state(), path)
    return path


@releases
def test_mammography_sample_classify_and_review(release: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import subprocess
    import sys

    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "cache"))
    weights = _gmic_checkpoint(tmp_path / "sample_model_1.p")
    imported = subprocess.run([sys.executable, "-m", "radassist.cli", "models", "import", "gmic-1", str(weights)],
                              capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr
    with open_standin(release, tmp_path / "slicer", installed=True) as standin:
        import slicer

        widget = standin.open_module("MammoGMIC")
        assert any(widget.modelsSection.table.item(r, 0).text() == "gmic-1" and
                   widget.modelsSection.table.item(r, 2).text() == "installed"
                   for r in range(widget.modelsSection.table.rowCount))
        widget.ui.loadSampleButton.click()
        wait_for(standin, widget._runner)
        assert "Loaded" in widget.ui.statusLabel.text, widget.ui.statusLabel.text
        widget.ui.applyButton.click()
        wait_for(standin, widget._runner)
        table = widget._parameterNode.outputTable
        assert table is not None and table.GetNumberOfRows() >= 4  # four views, then the breasts
        patches = [n for n in slicer.util.getNodesByClass("vtkMRMLMarkupsROINode") if "patch" in n.GetName().lower()]
        assert patches
        review = widget.reviewSection
        assert review.labelBoxes and review.table.rowCount > 0
