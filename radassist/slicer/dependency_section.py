"""The strip at the top of every panel that says which Python packages RadAssist still needs in this Slicer and
installs them on request: torch through Slicer's PyTorch extension, the rest with pip in its own process, under
constraints that keep every package Slicer has at its version. A failure is one sentence naming the package and
pip's reason; Slicer is never left waiting on pip.

The panel opens with only what Slicer bundles; everything that needs the other packages waits for :meth:`ready`.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from pathlib import Path

import qt
import slicer

from radassist.requirements import RUNTIME_REQUIREMENTS
from radassist.slicer import dependencies
from radassist.slicer.worker import JobSection, SlicerJobRunner, status_label


def _pytorch_utils_logic():
    """Slicer's PyTorch extension logic, or None when the extension is not installed."""
    try:
        import PyTorchUtils
    except ImportError:
        return None
    return PyTorchUtils.PyTorchUtilsLogic()


def pip_install_job(requirements: list[str]):
    """The pip job that adds ``requirements`` under constraints pinning everything installed (not started)."""
    from radassist.slicer import jobs

    def arguments(folder: Path) -> list[str]:
        constraints = folder / "constraints.txt"
        constraints.write_text("\n".join(dependencies.installed_pins()) + "\n", encoding="utf-8")
        return dependencies.pip_install_arguments(requirements, str(constraints))

    return jobs.pip_job(arguments)


def install_without_asking(timeout_s: float = 3600.0) -> str | None:
    """Install what is missing now, asking nothing (scripted runs such as the self-test command); None when
    everything is installed afterwards, else the one sentence that says why not."""
    from radassist.runtime.jobs import JobFailed
    from radassist.slicer.jobs import remove_job_folder

    unmet = dependencies.unmet_requirements(RUNTIME_REQUIREMENTS)
    if not unmet:
        return None
    if dependencies.conflicts(unmet):
        return dependencies.conflict_text(dependencies.conflicts(unmet))
    plan = dependencies.install_plan(unmet)
    if plan.torch_requirement:
        logic = _pytorch_utils_logic()
        if logic is None:
            return dependencies.PYTORCH_EXTENSION_HELP.format(requirement=plan.torch_requirement)
        if logic.installTorch(askConfirmation=False, torchVersionRequirement=dependencies.torch_version_requirement(
                plan.torch_requirement)) is None:
            return "PyTorch was not installed."
    if plan.pip_requirements:
        job = pip_install_job(plan.pip_requirements).start()
        try:
            final = job.wait(timeout_s)[-1]
            if isinstance(final, JobFailed):
                log = (job.folder / "log.txt").read_text(encoding="utf-8", errors="replace")
                return dependencies.pip_failure_text(log, plan.pip_requirements)
        finally:
            remove_job_folder(job.folder)
    importlib.invalidate_caches()
    still = dependencies.unmet_requirements(RUNTIME_REQUIREMENTS)
    return None if not still else "Still missing after installing: " + ", ".join(s.requirement for s in still)


class DependencySection(JobSection):
    """Hidden once everything is installed; calls ``on_ready`` when an install completes."""

    def __init__(self, parent_layout, on_ready: Callable[[], None] | None = None) -> None:
        self.on_ready = on_ready
        self.widget = qt.QWidget()
        layout = qt.QVBoxLayout(self.widget)
        self.statusLabel = status_label()
        layout.addWidget(self.statusLabel)
        self.installButton = qt.QPushButton("Install RadAssist's Python packages")
        layout.addWidget(self.installButton)
        self.progressBar = qt.QProgressBar()
        layout.addWidget(self.progressBar)
        self._runner = SlicerJobRunner(self.installButton, self.progressBar)
        self.installButton.connect("clicked(bool)", self.onInstall)
        parent_layout.addWidget(self.widget)
        self.refresh()

    # -- state --------------------------------------------------------------------------------------------------------
    def unmet(self) -> list[dependencies.RequirementStatus]:
        importlib.invalidate_caches()
        return dependencies.unmet_requirements(RUNTIME_REQUIREMENTS)

    def ready(self) -> bool:
        return not self.unmet()

    def refresh(self) -> None:
        unmet = self.unmet()
        self.widget.visible = bool(unmet)
        if not unmet:
            return
        found = dependencies.conflicts(unmet)
        if found:
            self.statusLabel.text = dependencies.conflict_text(found)
            self.installButton.enabled = False
            return
        names = ", ".join(status.name for status in unmet)
        self.statusLabel.text = (f"RadAssist needs Python packages that Slicer does not include ({names}). "
                                 "Install them once; nothing Slicer already has is changed.")
        self.installButton.enabled = True

    def require(self, say: Callable[[str], None]) -> bool:
        """True when everything is installed; else tells the user (through ``say``) to install first."""
        if self.ready():
            return True
        self.refresh()
        say("Install RadAssist's Python packages first (the button at the top of this panel).")
        return False

    # -- install ------------------------------------------------------------------------------------------------------
    def onInstall(self) -> None:
        self._runner.toggle(self._install)

    def _install(self) -> None:
        unmet = self.unmet()
        if not unmet:
            self.refresh()
            return
        plan = dependencies.install_plan(unmet)
        torch_logic = _pytorch_utils_logic() if plan.torch_requirement else None
        if plan.torch_requirement and torch_logic is None:
            self.statusLabel.text = dependencies.PYTORCH_EXTENSION_HELP.format(requirement=plan.torch_requirement)
            return
        if not slicer.util.confirmOkCancelDisplay(dependencies.confirmation_text(unmet),
                                                  windowTitle="RadAssist: install packages"):
            self.statusLabel.text = "RadAssist cannot run until its Python packages are installed."
            return
        if plan.torch_requirement:
            requirement = dependencies.torch_version_requirement(plan.torch_requirement)
            if torch_logic.installTorch(askConfirmation=True, torchVersionRequirement=requirement) is None:
                self.statusLabel.text = "PyTorch was not installed; RadAssist cannot run without it."
                return
        if not plan.pip_requirements:
            self._finished()
            return
        job = pip_install_job(plan.pip_requirements)
        self.statusLabel.text = f"Installing {', '.join(plan.pip_requirements)}..."
        self._runner.start(job, on_success=lambda folder: self._finished(),
                           on_error=lambda error: self._failed(job.folder, plan.pip_requirements, error),
                           on_cancelled=self._cancelled)

    def _finished(self) -> None:
        unmet = self.unmet()
        if unmet:
            details = "; ".join(f"{status.requirement}: {status.problem}" for status in unmet)
            self.statusLabel.text = f"Some requirements are still not met after installing: {details}."
        self.refresh()
        if not unmet and self.on_ready is not None:
            self.on_ready()

    def _failed(self, folder: Path, requirements: list[str], error: BaseException) -> None:
        log = (folder / "log.txt").read_text(encoding="utf-8", errors="replace") if (folder / "log.txt").exists() \
            else str(error)
        logging.error("RadAssist: pip failed:\n%s", log)
        self.statusLabel.text = dependencies.pip_failure_text(log, requirements)
        self.installButton.enabled = True

    def _cancelled(self) -> None:
        self.statusLabel.text = "Installation cancelled; press Install to try again."
