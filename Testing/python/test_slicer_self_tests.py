"""The modules' own self-tests (what `Testing/Slicer/run_self_tests.py` runs inside a real Slicer), run through the
strict stand-in of each supported release, starting from a fresh Slicer: the script installs RadAssist's packages,
then each module's self-test drives its panel (sample, Apply in a job process, review, export, cancel). The LiteMedSAM
effect's self-test, which needs the published weights, runs from test_slicer_flow_litemedsam.py with the session's
installed model."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from slicer_bed import open_standin, releases
from slicer_standin import MODULES, PROJECT_ROOT


def self_test_script():
    spec = importlib.util.spec_from_file_location("run_self_tests", PROJECT_ROOT / "Testing" / "Slicer" /
                                                  "run_self_tests.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@releases
def test_the_self_test_command_installs_then_passes_every_module(release: str, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "cache"))
    with open_standin(release, tmp_path / "slicer", installed=False) as standin:
        standin.load_modules()
        code = self_test_script().main(["--install-dependencies", "--modules", *MODULES, "--report",
                                        str(tmp_path / "report.json")])
        report = json.loads((tmp_path / "report.json").read_text())
        failures = {name: entry.get("traceback") for name, entry in report["modules"].items() if not entry["passed"]}
        assert code == 0 and report["dependencies"] == "installed" and not failures, failures
        assert list(report["modules"]) == list(MODULES)
        assert report["slicer"] == ".".join(release.split(".")[:2])
        assert standin.dialogs.shown == []  # a scripted run asks nothing
