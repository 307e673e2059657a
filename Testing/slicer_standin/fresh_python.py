"""A fresh Slicer's Python, as near as pip allows: a virtual environment holding exactly the packages a release
bundles, at its versions (``--no-deps``, as Slicer's SuperBuild installs them from hashed requirement files), and
the radassist folder on its path. The panels are opened there by :mod:`slicer_standin.open_panels`.

This Python is the test machine's (3.11); Slicer 5.10 and 5.12 ship 3.12. The packages are the release's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

from slicer_standin.surface import surface

READY = "radassist-fresh-slicer-python.json"


def bundled_requirements(release: str) -> list[str]:
    return [f"{name}=={version}" for name, version in surface(release).packages.items() if version]


def build(release: str, folder: Path) -> Path:
    """The environment's python (built once per folder; rebuilt when the release's package list changed)."""
    folder = Path(folder)
    python = folder / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    requirements = bundled_requirements(release)
    marker = folder / READY
    if marker.is_file() and json.loads(marker.read_text()) == requirements:
        return python
    venv.EnvBuilder(clear=True, with_pip=True).create(folder)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
                    *requirements], check=True)
    marker.write_text(json.dumps(requirements))
    return python


def installed(python: Path) -> dict[str, str]:
    """name -> version of every distribution in the environment."""
    code = ("import importlib.metadata as m, json; print(json.dumps({d.metadata['Name']: d.version "
            "for d in m.distributions() if d.metadata['Name']}))")
    return json.loads(subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True,
                                     cwd=str(Path(python).parent)).stdout)  # not a folder with *.egg-info
