"""Write outputs so that a failure never leaves a half-written file or folder behind.

Every writer goes through :func:`atomic_path`: it writes to a hidden temporary name in the destination folder
(same file system, same extension so format detection by suffix still works) and renames at the end.
:class:`RunOutput` does the same for a whole command's output folder: files are staged and moved in only when
the command succeeds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from radassist.errors import OutputError

_TEMP_PREFIX = ".radassist-tmp-"


def full_suffix(path: Path) -> str:
    """The compound extension that decides a format: '.seg.nrrd', '.nii.gz', '.mrk.json', '.png'."""
    name = path.name
    for compound in (".seg.nrrd", ".nii.gz", ".mrk.json", ".tar.gz"):
        if name.lower().endswith(compound):
            return name[-len(compound):]
    return path.suffix


def ensure_writable_dir(folder: str | Path) -> Path:
    """Create ``folder`` if needed and check a file can be written in it; raise OutputError otherwise."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(folder, f"cannot create the output folder ({exc.strerror or exc})") from None
    if not folder.is_dir():
        raise OutputError(folder, "exists and is not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=_TEMP_PREFIX):
            pass
    except OSError as exc:
        raise OutputError(folder, f"the output folder is not writable ({exc.strerror or exc})") from None
    return folder


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = final.parent / f"{_TEMP_PREFIX}{uuid.uuid4().hex[:12]}{full_suffix(final)}"
    try:
        yield temp
        if not temp.exists():
            raise OutputError(final, "the writer produced no file")
        os.replace(temp, final)
    finally:
        if temp.exists():
            temp.unlink()


class RunOutput:
    """Stage a command's output files and publish them together, or not at all.

    Usage::

        with RunOutput(out_dir) as run:
            write_something(run.path("nodules.mrk.json"))
        # files now in out_dir; on an exception nothing new is in out_dir
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.staging: Path | None = None
        self.published: list[Path] = []
        self._created = False  # the folder did not exist before: a failed run removes it again

    def __enter__(self) -> "RunOutput":
        self._created = not self.folder.exists()
        ensure_writable_dir(self.folder)
        self.staging = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX, dir=self.folder))
        return self

    def path(self, relative: str | Path) -> Path:
        """Where to write ``relative`` now (inside the staging folder)."""
        assert self.staging is not None, "RunOutput used outside its with-block"
        target = self.staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def final_path(self, relative: str | Path) -> Path:
        return self.folder / relative

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.staging is not None
        try:
            if exc_type is None:
                for staged in sorted(p for p in self.staging.rglob("*") if p.is_file()):
                    destination = self.folder / staged.relative_to(self.staging)
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(staged, destination)
                    self.published.append(destination)
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)
            if exc_type is not None and self._created:
                with contextlib.suppress(OSError):  # only if still empty: never anything a user put there
                    self.folder.rmdir()
