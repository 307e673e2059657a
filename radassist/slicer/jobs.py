"""Jobs of the panels, each in its own ``PythonSlicer`` process (as SlicerTotalSegmentator and SlicerMONAIAuto3DSeg
do): PythonQt keeps Python's interpreter lock while Qt's event loop runs, so a thread inside Slicer would only
advance while the main thread happens to run Python, and a crash or an out-of-memory kill would take Slicer down.

A task job writes its inputs and request into a job folder under Slicer's temporary folder and runs
:mod:`radassist.runtime.job_runner` on it, locally or against a server; a command job runs a ``radassist`` command
(model install, import); a pip job runs pip. The panel polls each with :class:`radassist.slicer.worker.SlicerJobRunner`
and reads the result folder with the task's reader.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import slicer

from radassist.errors import RadAssistError
from radassist.runtime.process_jobs import ProcessJob, cli_argv, task_job_argv

STALE_AFTER_S = 24 * 3600.0  # job folders left by a Slicer that was killed are removed after a day


def python_slicer() -> str:
    """Slicer's own Python without the application: on Slicer's PATH, else in its ``bin`` folder."""
    found = shutil.which("PythonSlicer")
    if found:
        return found
    candidate = Path(slicer.app.slicerHome) / "bin" / ("PythonSlicer.exe" if os.name == "nt" else "PythonSlicer")
    if candidate.is_file():
        return str(candidate)
    raise RadAssistError(f"Slicer's PythonSlicer was not found (looked on PATH and in {candidate.parent}); "
                         "RadAssist runs its jobs with it")


def radassist_root() -> Path:
    """The folder that holds the ``radassist`` package (a checkout, or the extension's install folder)."""
    import radassist

    return Path(radassist.__file__).resolve().parent.parent


def job_environment() -> dict[str, str]:
    """Slicer's environment, with the radassist package importable in the job process."""
    env = dict(os.environ)
    paths = [str(radassist_root())] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def jobs_root() -> Path:
    return Path(slicer.app.temporaryPath) / "RadAssist" / "jobs"


def new_job_folder(kind: str) -> Path:
    root = jobs_root()
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_job_folders(root)
    folder = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    folder.mkdir()
    return folder


def remove_stale_job_folders(root: Path) -> None:
    now = time.time()
    for folder in root.iterdir():
        try:
            if folder.is_dir() and now - folder.stat().st_mtime > STALE_AFTER_S:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            continue


def remove_job_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def task_job(request, device: str, server=None) -> ProcessJob:
    """A job that runs ``request`` (a :class:`radassist.slicer.task_requests.TaskRequest`) here or on ``server``
    (the panel's RemoteSettings, after the user agreed to send the images)."""
    from radassist.slicer.task_requests import prepare_job

    folder = new_job_folder(request.task)
    try:
        prepare_job(request, folder, device, server.url.strip().rstrip("/") if server is not None else None,
                    server.token.strip() if server is not None else None)
    except BaseException:
        remove_job_folder(folder)
        raise
    return ProcessJob(task_job_argv(python_slicer(), folder), folder, env=job_environment())


def command_job(*args: str, kind: str = "command") -> ProcessJob:
    """A ``radassist ARGS`` command in its own process (model install, import...)."""
    folder = new_job_folder(kind)
    return ProcessJob(cli_argv(python_slicer(), *args), folder, env=job_environment())


def pip_job(arguments: Callable[[Path], list[str]]) -> ProcessJob:
    """pip in Slicer's Python, in its own process (the installer's); ``arguments(folder)`` may write files (a
    constraints file) into the job's folder."""
    folder = new_job_folder("pip")
    return ProcessJob([python_slicer(), "-m", "pip", *arguments(folder)], folder, env=job_environment())
