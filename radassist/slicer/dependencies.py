"""First-use install of RadAssist's Python requirements into Slicer's Python.

Slicer ships without PyTorch, MONAI and friends. Before the first run a module calls :func:`ensure_dependencies`:
it finds what is missing or too old (the pure part, :func:`check_requirements`, runs anywhere), asks the user once,
installs PyTorch through Slicer's PyTorch extension (so the CUDA build matching the driver is chosen) and the rest
with ``slicer.util.pip_install``. ``slicer`` is imported only inside the install function, so this file imports
in plain Python and its checks are tested with pytest.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from radassist.errors import RadAssistError
from radassist.requirements import IMPORT_NAMES, RUNTIME_REQUIREMENTS, TORCH_DISTRIBUTION

PYTORCH_EXTENSION_HELP = (
    "RadAssist needs PyTorch ({requirement}), and Slicer's PyTorch extension is not installed. "
    "Open View > Extensions Manager, install the 'PyTorch' extension, restart Slicer and try again: "
    "the extension installs the PyTorch build that matches this computer's GPU."
)


class DependencyError(RadAssistError):
    """Requirements are missing and could not be (or were not allowed to be) installed."""


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


@dataclass
class InstallOutcome:
    """What :func:`ensure_dependencies` did; ``restart_needed`` when an upgraded package was already imported."""

    installed: list[str] = field(default_factory=list)
    restart_needed: bool = False


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
        parsed = Version(version)
    except InvalidVersion:
        # A local build with a free-form version: trust it rather than replace a package Slicer depends on.
        return RequirementStatus(text, name, version)
    if not requirement.specifier.contains(parsed, prereleases=True):
        return RequirementStatus(text, name, version,
                                 f"version {version} installed, {requirement.specifier} needed")
    return RequirementStatus(text, name, version)


def check_requirements(requirements: Iterable[str] = RUNTIME_REQUIREMENTS) -> list[RequirementStatus]:
    return [check_requirement(text) for text in requirements]


def unmet_requirements(requirements: Iterable[str] = RUNTIME_REQUIREMENTS) -> list[RequirementStatus]:
    return [status for status in check_requirements(requirements) if not status.ok]


def install_plan(unmet: Iterable[RequirementStatus]) -> InstallPlan:
    """Split unmet requirements between the PyTorch extension (torch) and pip (the rest)."""
    plan = InstallPlan()
    for status in unmet:
        if status.name == TORCH_DISTRIBUTION:
            plan.torch_requirement = status.requirement
        else:
            plan.pip_requirements.append(status.requirement)
    return plan


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
    lines.append("Downloading and installing may take several minutes. Install now?")
    return "\n".join(lines)


def _pytorch_utils_logic():
    """Slicer's PyTorch extension logic, or None when the extension is not installed."""
    try:
        import PyTorchUtils
    except ImportError:
        return None
    return PyTorchUtils.PyTorchUtilsLogic()


def ensure_dependencies(requirements: Iterable[str] = RUNTIME_REQUIREMENTS) -> InstallOutcome:
    """Install whatever is missing, after asking the user once. Raises DependencyError when it cannot.

    Runs in Slicer's main thread (it shows a confirmation and pip's progress).
    """
    requirements = list(requirements)
    unmet = unmet_requirements(requirements)
    outcome = InstallOutcome()
    if not unmet:
        return outcome
    import slicer

    plan = install_plan(unmet)
    torch_logic = _pytorch_utils_logic() if plan.torch_requirement else None
    if plan.torch_requirement and torch_logic is None:
        raise DependencyError(PYTORCH_EXTENSION_HELP.format(requirement=plan.torch_requirement))
    if not slicer.util.confirmOkCancelDisplay(confirmation_text(unmet), windowTitle="RadAssist: install packages"):
        raise DependencyError("RadAssist cannot run until its Python packages are installed "
                              "(installation was declined).")
    already_imported = {status.name for status in unmet if status.installed is not None
                        and IMPORT_NAMES.get(status.name, status.name) in sys.modules}
    if plan.torch_requirement:
        torch = torch_logic.installTorch(askConfirmation=True,
                                         torchVersionRequirement=torch_version_requirement(plan.torch_requirement))
        if torch is None:
            raise DependencyError("PyTorch installation was declined; RadAssist cannot run without it.")
        outcome.installed.append(plan.torch_requirement)
    if plan.pip_requirements:
        slicer.util.pip_install(plan.pip_requirements)
        outcome.installed.extend(plan.pip_requirements)
    importlib.invalidate_caches()
    still_unmet = unmet_requirements(requirements)
    if still_unmet:
        details = "; ".join(f"{s.requirement}: {s.problem}" for s in still_unmet)
        raise DependencyError(f"some RadAssist requirements are still not met after installing: {details}. "
                              "Restart Slicer and try again.")
    outcome.restart_needed = bool(already_imported)
    return outcome
