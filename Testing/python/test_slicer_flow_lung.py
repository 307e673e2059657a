"""LungTumorAI through the strict stand-in, as a radiologist uses it: enter, load the sample, detect with the
classical engine (in its own process), click a table row to jump to a nodule, test the server connection, run on a
server after agreeing to send the CT, decline to send; and the infection part without weights. Once per supported
release. Review, export and cancel are in the module's self-test (test_slicer_self_tests.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from slicer_bed import open_standin, releases, server_process, wait_for

TOKEN = "slicer-flow-token-0123456789"


def _select_small_chest(widget) -> None:
    """A small chest phantom as the panel's CT (for runs whose outcome does not depend on the image)."""
    from radassist.synthetic.chest import ChestPhantomConfig, make_chest_ct
    from radassist.slicer import nodes

    phantom = make_chest_ct(0, ChestPhantomConfig(shape=(24, 64, 64), spacing=(3.0, 3.0, 3.0)))
    widget._parameterNode.inputVolume = nodes.volume_to_node(phantom.volume, "small chest")


def _nodules(slicer) -> list:
    return [roi for roi in slicer.util.getNodesByClass("vtkMRMLMarkupsROINode") if roi.GetName().startswith("Nodule")]


@releases
def test_nodules_from_sample_to_exported_corrections(release: str, tmp_path: Path):
    with open_standin(release, tmp_path / "slicer", installed=True) as standin:
        import qt
        import slicer

        widget = standin.open_module("LungTumorAI")
        assert not widget.dependencySection.widget.visible
        assert widget.ui.engineComboBox.currentIndex == 1  # no Lung-DETR weights: the classical detector

        widget.ui.loadSampleButton.click()  # a job process builds the phantom
        assert widget.ui.applyButton.text == "Cancel"
        wait_for(standin, widget._runner)
        assert "true nodule(s) shown as boxes" in widget.ui.statusLabel.text, widget.ui.statusLabel.text
        ct = widget._parameterNode.inputVolume
        assert ct is not None and ct.GetName() == "Synthetic chest CT 0"
        assert standin.app._slice_layers["background"] == ct.GetID()
        truth = len(slicer.util.getNodesByClass("vtkMRMLMarkupsROINode"))

        widget.ui.applyButton.click()  # detection in its own process
        wait_for(standin, widget._runner)
        status = widget.ui.statusLabel.text
        assert "from the classical detector" in status and "at score >= 0.5" in status, status
        assert "probability >=" not in status
        nodules = _nodules(slicer)
        assert len(nodules) > 0 and len(slicer.util.getNodesByClass("vtkMRMLMarkupsROINode")) == truth + len(nodules)
        table = widget._parameterNode.outputTable
        assert table.GetNumberOfRows() == len(nodules)
        assert widget.ui.resultsTableView.mrmlTableNode() is table
        # the classical detector's number is a heuristic score, and the table calls it so
        assert table.GetColumnIndex("score") >= 0 and table.GetColumnIndex("probability") < 0
        assert ", score " in nodules[0].GetDescription() and "probability" not in nodules[0].GetDescription()
        assert nodules[0].GetAttribute("RadAssist.ScoreName") == "score"

        # a click on a row centres the views on that nodule, where it is now (moved by the user)
        nodules[0].SetCenter(1.0, 2.0, 3.0)
        roi_column = table.GetColumnIndex("roi")
        row = next(r for r in range(table.GetNumberOfRows()) if table.GetCellText(r, roi_column) == nodules[0].GetID())
        widget.ui.resultsTableView._user_clicks_cell(row, 0)
        assert slicer.modules.markups.logic().jumps[-1][:3] == (1.0, 2.0, 3.0)

        # (review, export and cancel: the module's own self-test, run by test_slicer_self_tests.py)
        before = len(_nodules(slicer))

        # the same run on a RadAssist server, after the user agreed to send the CT
        with server_process(tmp_path / "server", TOKEN) as url:
            remote = widget.remoteSection
            remote.serverRadioButton.click()
            remote.urlLineEdit._user_types(url)
            remote.tokenLineEdit._user_types(TOKEN)
            remote.testButton.click()
            wait_for(standin, remote._runner)
            assert remote.statusLabel.text.startswith("Connected to RadAssist") and "lung-detect" in \
                remote.statusLabel.text
            standin.dialogs.expect("message box", (qt.QMessageBox.Yes, False))
            widget.ui.applyButton.click()
            wait_for(standin, widget._runner)
        consent = standin.dialogs.shown[-1]
        assert consent["kind"] == "message box" and url in consent["text"] and "Synthetic chest CT 0" in \
            consent["text"]
        assert "from the classical detector" in widget.ui.statusLabel.text
        assert len(_nodules(slicer)) == 2 * before  # the same nodules again, now from the server
        assert standin.settings["RadAssist/Server/Mode"] == "remote"


@releases
def test_declining_to_send_images_runs_nothing(release: str, tmp_path: Path):
    with open_standin(release, tmp_path / "slicer", installed=True) as standin:
        import qt
        import slicer

        widget = standin.open_module("LungTumorAI")
        import numpy as np

        volume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
        slicer.util.updateVolumeFromArray(volume, np.zeros((4, 8, 8), np.int16))
        widget._parameterNode.inputVolume = volume
        widget.remoteSection.serverRadioButton.click()
        widget.remoteSection.urlLineEdit._user_types("https://radassist.example.org")
        widget.remoteSection.tokenLineEdit._user_types(TOKEN)
        standin.dialogs.expect("message box", qt.QMessageBox.Cancel)
        widget.ui.applyButton.click()
        assert widget.ui.statusLabel.text == "Nothing was sent to the server."
        assert not widget._runner.running
        assert "CT" in standin.dialogs.shown[-1]["text"]  # the user is told which image would go


@releases
def test_lung_detr_without_weights_says_how_to_get_them(release: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch):
    """The engine the user picks travels to the job: Lung-DETR without its weights fails there, in one line."""
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "cache"))
    with open_standin(release, tmp_path / "slicer", installed=True) as standin:
        widget = standin.open_module("LungTumorAI")
        _select_small_chest(widget)
        widget.ui.engineComboBox._user_chooses("Lung-DETR (trained network)")
        standin.dialogs.expect("error", None)
        widget.ui.applyButton.click()
        wait_for(standin, widget._runner)
        status = widget.ui.statusLabel.text
        assert status.startswith("Failed:") and "lung-detr" in status, status


@releases
def test_infection_without_trained_weights_says_how_to_get_them(release: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "cache"))
    with open_standin(release, tmp_path / "slicer", installed=True) as standin:
        import slicer
        widget = standin.open_module("LungTumorAI")
        _select_small_chest(widget)
        section = widget.infectionSection
        for architecture, model in (("U-Net", "unet"), ("SegNet", "segnet")):
            section.architectureComboBox._user_chooses(architecture)
            standin.dialogs.expect("error", None)
            section.segmentButton.click()
            wait_for(standin, section._runner)
            status = widget.ui.statusLabel.text
            assert status.startswith("Failed:") and "radassist train lung-infection" in status, status
            assert model in status.lower()
        assert slicer.util.getNodesByClass("vtkMRMLSegmentationNode") == []
