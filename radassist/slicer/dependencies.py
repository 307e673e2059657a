"""First-use install of RadAssist's Python requirements into Slicer's Python: what is missing, and how to get it.

Slicer ships without PyTorch, MONAI and friends. The plan (the pure part here, tested in plain Python) says what is
missing; torch then comes through Slicer's PyTorch extension (it picks the CUDA build that matches the driver) and
the rest through pip, run in its own process by :mod:`radassist.slicer.dependency_section`.

Rules: a package Slicer bundles (numpy, scipy, SimpleITK, pydicom, requests, vtk...) or that is already installed is
never installed, upgraded or downgraded; pip runs with a constraints file that pins every installed distribution
to its installed version, so what it adds must work with them; torch never comes from pip.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass, field

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from radassist.requirements import IMPORT_NAMES, RUNTIME_REQUIREMENTS, TORCH_DISTRIBUTION

PYTORCH_EXTENSION_HELP = (
    "RadAssist needs PyTorch ({requirement}), and Slicer's PyTorch extension is not installed. "
    "Open View > Extensions Manager, install the 'PyTorch' extension, restart Slicer and try again: "
    "the extension installs the PyTorch build that matches this computer's GPU."
)


@dataclass(frozen=True)
class RequirementStatus:
    """One requirement checked against this Python: ``problem`` is None when it is satisfied."""

    requirement: str
    name: str
    installed: str | None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass
class InstallPlan:
    """What to install: torch goes through the PyTorch extension, everything else through pip."""

    torch_requirement: str | None = None
    pip_requirements: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.torch_requirement is None and not self.pip_requirements


def parse_requirement(text: str) -> Requirement:
    try:
        return Requirement(text)
    except InvalidRequirement as error:
        raise ValueError(f"invalid requirement {text!r}: {error}") from error


def installed_version(distribution: str, import_name: str | None = None) -> str | None:
    """The installed version of ``distribution``, or None when it is absent.

    Falls back to the module's ``__version__`` when the package is importable but has no pip metadata
    (Slicer builds SimpleITK itself), so Slicer's own builds are never reinstalled over.
    """
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        pass
    module_name = import_name or IMPORT_NAMES.get(canonicalize_name(distribution), distribution)
    try:
        if importlib.util.find_spec(module_name) is None:
            return None
        module = importlib.import_module(module_name)
    except (ImportError, ValueError):
        return None
    version = getattr(module, "__version__", None)
    return str(version) if version is not None else None


def check_requirement(text: str) -> RequirementStatus:
    """Compare one requirement string with what this Python has installed."""
    requirement = parse_requirement(text)
    name = canonicalize_name(requirement.name)
    if requirement.marker is not None and not requirement.marker.evaluate():
        return RequirementStatus(text, name, None)
    version = installed_version(requirement.name)
    if version is None:
        return RequirementStatus(text, name, None, "not installed")
    try:
        satisfied = requirement.specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        satisfied = True  # a local build with a free-form version: trust it rather than replace one Slicer depends on
    problem = None if satisfied else f"version {version} installed, {requirement.specifier} needed"
    return RequirementStatus(text, name, version, problem)


def check_requirements(requirements: Iterable[str] = RUNTIME_REQUIREMENTS) -> list[RequirementStatus]:
    return [check_requirement(text) for text in requirements]


def unmet_requirements(requirements: Iterable[str] = RUNTIME_REQUIREMENTS) -> list[RequirementStatus]:
    return [status for status in check_requirements(requirements) if not status.ok]


def install_plan(unmet: Iterable[RequirementStatus]) -> InstallPlan:
    """Split what is missing between the PyTorch extension (torch) and pip (the rest). A package that is installed
    at another version is not in the plan: it belongs to Slicer (see :func:`conflicts`)."""
    plan = InstallPlan()
    for status in unmet:
        if status.name == TORCH_DISTRIBUTION:
            plan.torch_requirement = status.requirement
        elif status.installed is None:
            plan.pip_requirements.append(status.requirement)
    return plan


def conflicts(unmet: Iterable[RequirementStatus]) -> list[RequirementStatus]:
    """Requirements met by no installable change: the package is there at a version RadAssist cannot use, and it is
    Slicer's (or the user's) to keep. torch is not one of them: the PyTorch extension replaces it."""
    return [status for status in unmet if status.installed is not None and status.name != TORCH_DISTRIBUTION]


def conflict_text(found: list[RequirementStatus]) -> str:
    items = "; ".join(f"{status.name} {status.installed} is installed, RadAssist needs {status.requirement}"
                      for status in found)
    return (f"RadAssist cannot run with this Slicer's Python packages ({items}), and it never changes packages "
            "that Slicer brings: use Slicer 5.10 or later.")


def installed_pins() -> list[str]:
    """``name==version`` for every distribution in this Python: the constraints pip installs under."""
    pins = {}
    for distribution in importlib.metadata.distributions():
        name = distribution.metadata.get("Name")
        version = distribution.version
        if not name or not version:
            continue
        try:
            Version(version)
        except InvalidVersion:
            continue
        pins[canonicalize_name(name)] = f"{canonicalize_name(name)}=={version}"
    return sorted(pins.values())


def pip_install_arguments(requirements: Iterable[str], constraints_file: str) -> list[str]:
    """pip's arguments for the plan: the requirements, under constraints that pin everything already installed."""
    return ["install", "--constraint", str(constraints_file), "--disable-pip-version-check",
            "--no-warn-script-location", *requirements]


def pip_failure_text(log: str, requirements: Iterable[str]) -> str:
    """One sentence for the panel: which package failed and pip's own reason (its last ERROR line)."""
    errors = [line.split("ERROR:", 1)[1].strip() for line in log.splitlines() if "ERROR:" in line]
    reason = errors[-1] if errors else (log.strip().splitlines()[-1] if log.strip() else "pip gave no reason")
    names = [parse_requirement(text).name for text in requirements]
    named = next((name for name in names if name.lower() in " ".join(errors).lower()), None)
    subject = named or ", ".join(names)
    return f"Installing {subject} failed: {reason}"


def torch_version_requirement(torch_requirement: str) -> str:
    """The bare specifier (``>=2.1``) PyTorchUtils' ``torchVersionRequirement`` expects."""
    return str(parse_requirement(torch_requirement).specifier)


def confirmation_text(unmet: list[RequirementStatus]) -> str:
    """The one question asked before installing: what is missing and how it will be installed."""
    lines = ["RadAssist needs these Python packages in Slicer:", ""]
    for status in unmet:
        lines.append(f"  {status.requirement}  ({status.problem})")
    lines.append("")
    if any(status.name == TORCH_DISTRIBUTION for status in unmet):
        lines.append("PyTorch is installed by Slicer's PyTorch extension, which will confirm the build to use.")
    lines.append("The others are installed with pip, without changing any package Slicer already has.")
    lines.append("Downloading and installing may take several minutes. Install now?")
    return "\n".join(lines)
