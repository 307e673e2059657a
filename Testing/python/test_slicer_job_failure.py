"""What the modules' self-tests cannot show inside Slicer without a popup: a job that fails reports in the panel
(and an error dialog) while Slicer goes on. Once per supported release. The successful runs of every module (sample,
Apply with each engine, review, export, cancel) are the modules' self-tests, run by test_slicer_self_tests.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from slicer_bed import open_standin, releases, wait_for


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
