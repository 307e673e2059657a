"""The Models section of a panel through the strict stand-in: a model whose licence must be accepted (GMIC, AGPL)
is downloaded only after the user read and accepted it, by a `radassist models install` job in its own process,
here from a loopback server that stands in for GitHub. Once per supported release."""

from __future__ import annotations

from pathlib import Path

import pytest

from http_fixtures import LoopbackServer, http_server  # noqa: F401 (http_server is a fixture)
from slicer_bed import open_standin, releases, wait_for
from test_gmic_install import checkpoints, serve, site_catalogue  # noqa: F401 (checkpoints is a fixture)


@releases
def test_gmic_is_installed_only_after_its_licence_is_accepted(release: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             http_server: LoopbackServer, checkpoints):  # noqa: F811
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "cache"))
    site_catalogue(tmp_path, serve(http_server, checkpoints, [2]), monkeypatch)
    with open_standin(release, tmp_path / "slicer", installed=True) as standin:
        widget = standin.open_module("MammoGMIC")
        section = widget.modelsSection
        rows = {section.table.item(r, 0).text(): r for r in range(section.table.rowCount)}
        section.table.selectRow(rows["gmic-2"])
        assert section.installButton.enabled

        standin.dialogs.expect("ok/cancel", False)
        section.installButton.click()
        terms = standin.dialogs.shown[-1]["text"]
        assert "GNU Affero General Public License" in terms and "Do you accept the licence of gmic-2" in terms
        assert "was not installed" in section.statusLabel.text and not section._runner.running
        assert http_server.requests_for("sample_model_2.p") == []

        standin.dialogs.expect("ok/cancel", True)
        section.installButton.click()
        assert section._runner.running and section.installButton.text == "Cancel"
        wait_for(standin, section._runner)
        assert section.statusLabel.text.startswith("Installed gmic-2"), section.statusLabel.text
        rows = {section.table.item(r, 0).text(): r for r in range(section.table.rowCount)}
        assert section.table.item(rows["gmic-2"], 2).text() == "installed"
        assert len(http_server.requests_for("sample_model_2.p")) == 1
        assert (tmp_path / "cache" / "models" / "gmic-2" / "1.0.0" / "sample_model_2.p").read_bytes() == checkpoints[2]
