"""A fresh Slicer's Python: an environment with only what the release bundles (at its versions) and the radassist
folder. Every panel opens there, says what is missing and offers to install it; and what the installer would ask
pip for resolves, under its constraints, without changing any package the release bundles (real pip, real index,
``--dry-run``)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from slicer_standin import MODULES, SUPPORTED_RELEASES
from slicer_standin.fresh_python import build, installed
from slicer_standin.surface import surface

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CACHE = PROJECT_ROOT / ".slicer-python"  # environments are kept between runs (gitignored)


@pytest.fixture(scope="module", params=SUPPORTED_RELEASES)
def fresh(request) -> tuple[str, Path]:
    release = request.param
    return release, build(release, CACHE / release)


def _run(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PROJECT_ROOT), str(PROJECT_ROOT / "Testing")]))
    env.pop("RADASSIST_CACHE_DIR", None)
    return subprocess.run([str(python), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_the_environment_holds_only_what_the_release_bundles(fresh):
    release, python = fresh
    have = {canonicalize_name(name): version for name, version in installed(python).items()}
    bundled = surface(release).packages
    assert {name: version for name, version in have.items() if name in bundled} == \
        {name: version for name, version in bundled.items() if version}
    assert not {"torch", "monai", "slicerio", "pynrrd", "jsonschema", "radassist"} & set(have)


def test_every_panel_opens_and_offers_the_install(fresh, tmp_path: Path):
    release, python = fresh
    done = _run(python, "-m", "slicer_standin.open_panels", release, str(tmp_path / "slicer"),
                str(tmp_path / "report.json"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    for name in MODULES:
        panel = report["modules"][name]
        assert panel["opened"], panel.get("error")
        assert panel["strip_visible"] and panel["offers_install"]
        assert "torch" in panel["strip_text"] and "monai" in panel["strip_text"]
    installer = report["installer"]
    assert installer["torch"] == "torch>=2.1" and installer["conflicts"] == []
    names = {canonicalize_name(text.split(">")[0].split("=")[0]) for text in installer["pip"]}
    assert "torch" not in names and not names & set(surface(release).packages)
    (tmp_path / "installer.json").write_text(json.dumps(installer))


def test_what_the_installer_adds_resolves_without_touching_slicers_packages(fresh, tmp_path: Path):
    """pip itself, against the real index, under the installer's constraints (torch as the PyTorch extension left
    it): it finds versions of everything RadAssist adds that work with the release's own packages."""
    import sys

    sys.path.insert(0, str(PROJECT_ROOT))
    from radassist.requirements import RUNTIME_REQUIREMENTS

    release, python = fresh
    bundled = surface(release).packages
    constraints = tmp_path / "constraints.txt"
    pins = [f"{name}=={version}" for name, version in installed(python).items()]
    constraints.write_text("\n".join(pins + ["torch==2.13.0"]) + "\n")
    wanted = [text for text in RUNTIME_REQUIREMENTS
              if canonicalize_name(text.split(">")[0].split("=")[0]) not in set(bundled) | {"torch"}]
    done = _run(python, "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(tmp_path / "r.json"),
                "--constraint", str(constraints), "--disable-pip-version-check", *wanted, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    planned = {canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"] for item in report["install"]}
    assert not set(planned) & {name for name in bundled if bundled[name]}, planned
    assert {"monai", "slicerio", "scikit-image"} <= set(planned)
    if release == "5.10.0":  # 5.12 bundles highdicom itself
        assert planned["highdicom"].startswith("0.22")  # the last highdicom that works with Slicer 5.10's pydicom 2.4
