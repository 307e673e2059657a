"""Open every RadAssist panel in the strict stand-in of one release, in whatever Python runs this script (a fresh
Slicer Python made by :mod:`slicer_standin.fresh_python`), and report what a user would see as JSON::

    python -m slicer_standin.open_panels RELEASE WORKDIR REPORT.json

The report lists, per module, whether the panel opened, the dependency strip's text and whether it offers to
install; and what the installer would ask pip for (requirements and the constraints that pin what is installed).
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path


def main(argv: list[str]) -> int:
    release, workdir, report_path = argv[0], Path(argv[1]), Path(argv[2])
    from slicer_standin import MODULES, SlicerStandIn

    report: dict = {"release": release, "python": sys.version.split()[0], "modules": {}}
    with SlicerStandIn(release, workdir, pytorch_extension=True) as standin:
        for name in MODULES:
            try:
                widget = standin.open_module(name)
                section = widget.dependencySection
                report["modules"][name] = {"opened": True, "strip_visible": bool(section.widget.visible),
                                           "strip_text": section.statusLabel.text,
                                           "offers_install": bool(section.installButton.enabled)}
            except Exception:  # noqa: BLE001 -- the report says what broke
                report["modules"][name] = {"opened": False, "error": traceback.format_exc()}
        from radassist.requirements import RUNTIME_REQUIREMENTS
        from radassist.slicer import dependencies

        unmet = dependencies.unmet_requirements(RUNTIME_REQUIREMENTS)
        plan = dependencies.install_plan(unmet)
        report["installer"] = {"torch": plan.torch_requirement, "pip": plan.pip_requirements,
                               "conflicts": [s.requirement for s in dependencies.conflicts(unmet)],
                               "constraints": dependencies.installed_pins()}
        report["refused_imports"] = sorted(set(standin.guard.refused))
    report_path.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
