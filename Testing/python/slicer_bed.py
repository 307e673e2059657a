"""Shared helpers of the Slicer-side tests: the strict stand-in per supported release, with RadAssist's packages
installed or not, and user actions (click, wait for the job)."""

from __future__ import annotations

from pathlib import Path

import pytest

from slicer_standin import SUPPORTED_RELEASES, SlicerStandIn
from slicer_standin.fake_pip import _with_dependencies

from radassist.requirements import RUNTIME_REQUIREMENTS

JOB_TIMEOUT_S = 300.0


def runtime_distributions() -> tuple[str, ...]:
    """RadAssist's requirements and what they pull in: what the installer leaves in Slicer's Python."""
    from packaging.requirements import Requirement

    return tuple(sorted(_with_dependencies([Requirement(text).name for text in RUNTIME_REQUIREMENTS])))


def open_standin(release: str, folder: Path, installed: bool, **kwargs) -> SlicerStandIn:
    return SlicerStandIn(release, folder, installed=runtime_distributions() if installed else (), **kwargs)


def wait_for(standin: SlicerStandIn, runner, timeout_s: float = JOB_TIMEOUT_S) -> None:
    """Process Slicer's events until ``runner``'s job has ended (and its callbacks ran)."""
    assert standin.run_until(lambda: not runner.running, timeout_s), "the job did not end in time"


releases = pytest.mark.parametrize("release", SUPPORTED_RELEASES)
