"""Run RadAssist's self-tests (the four modules' and the LiteMedSAM effect's) inside a real 3D Slicer (5.10 or later)
and write a report.

From the repository root, with the modules loaded straight from this checkout::

    /path/to/Slicer --no-splash --no-main-window \\
        --additional-module-paths LungTumorAI LiverSeg BrainRegSeg MammoGMIC SegmentEditorLiteMedSAM \\
        --python-script Testing/Slicer/run_self_tests.py --install-dependencies --report slicer-self-tests.json

``--install-dependencies`` installs RadAssist's Python packages first without asking (PyTorch through Slicer's
PyTorch extension, which must be installed; the rest with pip, never changing what Slicer bundles). Each module's
self-test then runs as a user would use the panel (sample, Apply in a job process, review, export, cancel); the
"LiteMedSAM box" effect's self-test installs the published LiteMedSAM weights when they are missing (from the package
index) and runs an annotator's session with the effect (box, Apply, Undo, move the box, Apply again, Cancel). The
report (JSON) lists each module's result, time and error; Slicer exits with 0 when all passed, 1 otherwise.
The same script runs in the test suite against the strict Slicer stand-in (``Testing/python``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from pathlib import Path

PANELS = ("LungTumorAI", "LiverSeg", "BrainRegSeg", "MammoGMIC")
EFFECTS = ("SegmentEditorLiteMedSAM",)  # hidden modules that add a Segment Editor effect: no panel to open
MODULES = PANELS + EFFECTS


def run(report_path: Path, modules=MODULES, install_dependencies: bool = False) -> dict:
    """Run the self-tests of ``modules`` and write the report; returns it."""
    import slicer

    report = {"slicer": f"{slicer.app.majorVersion}.{slicer.app.minorVersion}",
              "python": platform.python_version(), "platform": platform.platform(), "modules": {}}
    if install_dependencies:
        from radassist.slicer.dependency_section import install_without_asking

        problem = install_without_asking()
        report["dependencies"] = problem or "installed"
        if problem:
            report["passed"] = False
            _write(report_path, report)
            return report
    for name in modules:
        started = time.monotonic()
        entry = {"passed": False}
        try:
            if name in PANELS:
                getattr(slicer.modules, name.lower()).widgetRepresentation().enter()  # no main window needed
            slicer.selfTests[name]()
            entry["passed"] = True
        except Exception as error:  # noqa: BLE001 -- one module's failure is reported, the others still run
            entry["error"] = f"{type(error).__name__}: {error}"
            entry["traceback"] = traceback.format_exc()
        entry["seconds"] = round(time.monotonic() - started, 1)
        report["modules"][name] = entry
        print(f"{name}: {'passed' if entry['passed'] else 'FAILED'} ({entry['seconds']} s)", flush=True)
    report["passed"] = all(entry["passed"] for entry in report["modules"].values())
    _write(report_path, report)
    return report


def _write(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1), encoding="utf-8")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Run RadAssist's module self-tests inside Slicer.")
    parser.add_argument("--report", type=Path, default=Path("slicer-self-tests.json"))
    parser.add_argument("--modules", nargs="+", default=list(MODULES), choices=MODULES)
    parser.add_argument("--install-dependencies", action="store_true",
                        help="install RadAssist's Python packages first, without asking")
    args = parser.parse_args(argv)
    report = run(args.report, args.modules, args.install_dependencies)
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    import slicer

    code = main(sys.argv[1:])
    slicer.util.exit(code)
