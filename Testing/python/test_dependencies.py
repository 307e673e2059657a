"""First-use dependency checks, run against the packages really installed in this Python."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from radassist.requirements import RUNTIME_REQUIREMENTS
from radassist.slicer import dependencies as deps

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _canonical(requirements) -> list[str]:
    return sorted(str(Requirement(text)).lower() for text in requirements)


def test_requirement_list_matches_pyproject():
    with open(PROJECT_ROOT / "pyproject.toml", "rb") as handle:
        declared = tomllib.load(handle)["project"]["dependencies"]
    assert _canonical(RUNTIME_REQUIREMENTS) == _canonical(declared)
    assert len(RUNTIME_REQUIREMENTS) == len(declared)


def test_this_environment_meets_every_runtime_requirement():
    statuses = deps.check_requirements()
    assert [s.requirement for s in statuses] == list(RUNTIME_REQUIREMENTS)
    assert [s for s in statuses if not s.ok] == []
    assert deps.install_plan(deps.unmet_requirements()).empty  # nothing to do


def test_installed_version_agrees_with_pip_metadata():
    status = deps.check_requirement("numpy>=1.0")
    assert status.ok and status.name == "numpy"
    assert status.installed == importlib.metadata.version("numpy")


def test_too_old_is_reported_with_the_needed_version():
    status = deps.check_requirement("numpy>=999")
    assert not status.ok
    assert status.installed == importlib.metadata.version("numpy")
    assert ">=999" in status.problem and status.installed in status.problem


def test_missing_package_is_reported():
    status = deps.check_requirement("radassist-no-such-package>=1.0")
    assert status.installed is None and status.problem == "not installed"
    assert [s.name for s in deps.unmet_requirements(["numpy>=1", "radassist-no-such-package"])] == \
        ["radassist-no-such-package"]


def test_requirement_for_another_python_is_skipped():
    assert deps.check_requirement('radassist-no-such-package>=1; python_version < "3"').ok


def test_module_without_metadata_is_found_by_its_version(tmp_path, monkeypatch):
    """Slicer builds some packages itself (SimpleITK): importable, no pip metadata, a __version__."""
    (tmp_path / "radassist_probe_module.py").write_text('__version__ = "1.2.3"\n')
    (tmp_path / "radassist_probe_local.py").write_text('__version__ = "nightly build"\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    assert deps.installed_version("radassist_probe_module") == "1.2.3"
    assert deps.check_requirement("radassist_probe_module>=1.2").ok
    assert "1.2.3" in deps.check_requirement("radassist_probe_module>=2").problem
    local = deps.check_requirement("radassist_probe_local>=1")
    assert local.ok and local.installed == "nightly build"  # trusted rather than reinstalled over


def test_invalid_requirement_is_refused():
    with pytest.raises(ValueError, match="invalid requirement"):
        deps.check_requirement("numpy >= = 1")


def test_install_plan_sends_torch_to_the_pytorch_extension():
    unmet = deps.unmet_requirements(["torch>=999", "numpy>=999", "radassist-no-such-package>=1"])
    plan = deps.install_plan(unmet)
    assert plan.torch_requirement == "torch>=999"
    # numpy is there at another version: Slicer's, never upgraded; only what is missing goes to pip
    assert plan.pip_requirements == ["radassist-no-such-package>=1"]
    assert [status.name for status in deps.conflicts(unmet)] == ["numpy"]
    assert "numpy" in deps.conflict_text(deps.conflicts(unmet)) and "never changes" in deps.conflict_text(
        deps.conflicts(unmet))
    assert deps.torch_version_requirement(plan.torch_requirement) == ">=999"
    text = deps.confirmation_text(unmet)
    for requirement in ("torch>=999", "numpy>=999", "radassist-no-such-package>=1", "not installed"):
        assert requirement in text
    assert "PyTorch extension" in text
    assert "PyTorch extension" not in deps.confirmation_text(deps.unmet_requirements(["numpy>=999"]))
    assert deps.install_plan([]).empty


def test_help_text_for_a_missing_pytorch_extension_names_what_to_do():
    message = deps.PYTORCH_EXTENSION_HELP.format(requirement="torch>=2.1")
    assert "torch>=2.1" in message and "Extensions Manager" in message and "PyTorch" in message


def test_pip_runs_under_pins_of_everything_installed(tmp_path):
    pins = deps.installed_pins()
    assert f"numpy=={importlib.metadata.version('numpy')}" in pins
    assert all(pin.count("==") == 1 for pin in pins)
    arguments = deps.pip_install_arguments(["slicerio>=1.0"], str(tmp_path / "constraints.txt"))
    assert arguments[:3] == ["install", "--constraint", str(tmp_path / "constraints.txt")]
    assert arguments[-1] == "slicerio>=1.0"


def test_a_pip_failure_is_one_sentence_with_the_package_and_pip_reason():
    log = ("Collecting slicerio>=1.0\n"
           "ERROR: Could not find a version that satisfies the requirement pynrrd>=99 (from versions: 1.0.0)\n"
           "ERROR: No matching distribution found for pynrrd>=99\n")
    text = deps.pip_failure_text(log, ["slicerio>=1.0", "pynrrd>=99"])
    assert text == "Installing pynrrd failed: No matching distribution found for pynrrd>=99"
    assert deps.pip_failure_text("", ["monai>=1.3"]) == "Installing monai failed: pip gave no reason"
