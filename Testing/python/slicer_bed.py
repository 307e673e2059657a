"""Shared helpers of the Slicer-side tests: the strict stand-in per supported release, with RadAssist's packages
installed or not, and user actions (click, wait for the job)."""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def server_process(folder: Path, token: str):
    """``radassist serve`` in its own process on a free loopback port (the stand-in's package rules apply to the
    test process only, as a department's server is another machine); yields its URL."""
    import socket
    import subprocess
    import sys
    import time

    import requests

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "token").write_text(token)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with open(folder / "server.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "radassist.cli", "serve", "--port", str(port),
                                    "--token-file", str(folder / "token"), "--storage", str(folder / "jobs"),
                                    "--device", "cpu"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"{url}/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            assert process.poll() is None, (folder / "server.log").read_text()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(30)
