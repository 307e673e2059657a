"""First use in a fresh Slicer: every panel opens with only what the release bundles, says what is missing, and
installs it without touching Slicer's own packages; a failed install is one sentence; an older Slicer gets one
sentence instead of a traceback. Once per supported release, through the strict stand-in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slicer_bed import open_standin, releases, wait_for
from slicer_standin import MODULES


@releases
def test_every_panel_opens_with_only_the_bundled_packages(release: str, tmp_path: Path):
    with open_standin(release, tmp_path, installed=False) as standin:
        for name in MODULES:
            widget = standin.open_module(name)
            banner = widget.dependencySection
            assert banner.widget.visible and banner.installButton.enabled
            for package in ("torch", "monai", "slicerio"):
                assert package in banner.statusLabel.text
            assert "Install RadAssist's Python packages" in widget.modelsSection.statusLabel.text
            widget.ui.loadSampleButton.click()  # asks for the install instead of failing
            assert "Install RadAssist's Python packages first" in widget.ui.statusLabel.text
        refused = set(standin.guard.refused)
        assert {"torch", "slicerio", "nrrd"} <= refused  # the panels asked and were told no, as in Slicer


@releases
def test_the_installer_adds_packages_without_touching_slicers(release: str, tmp_path: Path):
    with open_standin(release, tmp_path, installed=False) as standin:
        widget = standin.open_module("LiverSeg")
        standin.dialogs.expect("ok/cancel", True)  # RadAssist: install now?
        standin.dialogs.expect("ok/cancel", True)  # the PyTorch extension confirms its own download
        widget.dependencySection.installButton.click()
        wait_for(standin, widget.dependencySection._runner)
        assert widget.dependencySection.ready() and not widget.dependencySection.widget.visible
        asked = [dialog["text"] for dialog in standin.dialogs.shown]
        assert "RadAssist needs these Python packages" in asked[0] and "PyTorch" in asked[1]
        calls = [json.loads(line) for line in (tmp_path / "pip-log.jsonl").read_text().splitlines()]
        (call,) = calls
        requested = [arg.split(">")[0].split("=")[0].lower() for arg in call["args"] if not arg.startswith("-")
                     and arg != "install" and not arg.endswith("constraints.txt")]
        assert "torch" not in requested and "monai" in requested
        assert not set(requested) & set(standin.surface.packages)  # nothing Slicer bundles
        assert "--constraint" in call["args"]
        import torch  # noqa: F401 -- importable now, through the PyTorch extension
        assert widget.modelsSection.table.rowCount > 0  # the Models section filled itself


@releases
def test_a_failed_install_is_one_sentence_naming_the_package_and_pips_reason(release: str, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RADASSIST_STANDIN_PIP_FAIL", "slicerio")
    with open_standin(release, tmp_path, installed=False) as standin:
        widget = standin.open_module("BrainRegSeg")
        standin.dialogs.expect("ok/cancel", True)
        standin.dialogs.expect("ok/cancel", True)
        widget.dependencySection.installButton.click()
        wait_for(standin, widget.dependencySection._runner)
        text = widget.dependencySection.statusLabel.text
        assert text == "Installing slicerio failed: No matching distribution found for slicerio"
        assert widget.dependencySection.installButton.enabled and not widget.dependencySection.ready()


@releases
def test_without_the_pytorch_extension_the_panel_says_how_to_get_it(release: str, tmp_path: Path):
    with open_standin(release, tmp_path, installed=False, pytorch_extension=False) as standin:
        widget = standin.open_module("MammoGMIC")
        widget.dependencySection.installButton.click()
        text = widget.dependencySection.statusLabel.text
        assert "PyTorch" in text and "Extensions Manager" in text
        assert standin.dialogs.shown == []  # nothing was asked, nothing installed


@releases
def test_declining_installs_nothing(release: str, tmp_path: Path):
    with open_standin(release, tmp_path, installed=False) as standin:
        widget = standin.open_module("LungTumorAI")
        standin.dialogs.expect("ok/cancel", False)
        widget.dependencySection.installButton.click()
        assert "cannot run until" in widget.dependencySection.statusLabel.text
        assert not (tmp_path / "pip-log.jsonl").exists()


@pytest.mark.parametrize("name", MODULES)
def test_an_older_slicer_gets_one_sentence(name: str, tmp_path: Path):
    with open_standin("5.10.0", tmp_path, installed=False, version=(5, 8)) as standin:
        widget = standin.open_module(name)
        labels = [child for child in widget.parent.findChildren() if getattr(child, "_qt_name", "") == "QLabel"]
        assert [label.text for label in labels] == [
            "RadAssist needs 3D Slicer 5.10 or later (this is Slicer 5.8 with Python "
            f"{__import__('sys').version_info[0]}.{__import__('sys').version_info[1]}): install a current Slicer "
            "from https://download.slicer.org."]
        assert "radassist.slicer.panel" not in __import__("sys").modules
