"""Write outputs so that a failure never leaves a half-written file or folder behind, and never overwrites
results without being asked.

Every writer goes through :func:`atomic_path`: it writes to a hidden temporary name in the destination folder
(same file system, same extension so format detection by suffix still works) and renames at the end.
:class:`RunOutput` does the same for a whole command's output folder: files are staged and moved in only when
the command succeeds, and a folder that already holds something is refused unless the caller allows overwriting.

Temporary names carry the host and process id of their writer (``.radassist-tmp-<host>.<pid>.<random>``), so a
later run can tell the leftovers of a killed process (SIGKILL, power loss: no clean-up code ran) from the work
of a live one, and :func:`sweep_stale` removes them. While a run is staging, its temporary folders are known to
:mod:`radassist.runtime.interrupt`, which removes them if a signal stops the process.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from radassist.errors import OutputError
from radassist.runtime import interrupt

_TEMP_PREFIX = ".radassist-tmp-"
_OWNER = re.compile(r"^\.?radassist-[a-z0-9]+-(?P<host>[A-Za-z0-9-]*)\.(?P<pid>[0-9]+)\.")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40]


def temp_name(prefix: str = _TEMP_PREFIX, suffix: str = "") -> str:
    """A temporary name that says which process made it: ``<prefix><host>.<pid>.<random><suffix>``."""
    return f"{prefix}{_host()}.{os.getpid()}.{uuid.uuid4().hex[:12]}{suffix}"


def make_temp_dir(parent: str | Path | None = None, prefix: str = _TEMP_PREFIX) -> Path:
    """Create a private temporary folder (in ``parent``, default the system's temporary folder) named like
    :func:`temp_name`'s names, so :func:`sweep_stale` can remove it should this process be killed."""
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{_host()}.{os.getpid()}.", dir=parent))


@contextlib.contextmanager
def temporary_folder(parent: str | Path | None = None, prefix: str = "radassist-tmp-") -> Iterator[Path]:
    """Like tempfile.TemporaryDirectory: removed when the block ends, and also when a signal stops the process
    (see :mod:`radassist.runtime.interrupt`); after a SIGKILL the next start sweeps it away."""
    folder = make_temp_dir(parent, prefix)
    token = interrupt.remove_on_signal(folder)
    try:
        yield folder
    finally:
        interrupt.forget(token)
        shutil.rmtree(folder, ignore_errors=True)


def temp_owner(name: str) -> tuple[str, int] | None:
    """(host, pid) of the process that made a temporary name, or None when ``name`` is not one of ours."""
    match = _OWNER.match(name)
    return (match.group("host"), int(match.group("pid"))) if match else None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: exists, owned by someone else; others: cannot tell (Windows), keep it
        pass
    return True


def is_stale(path: Path) -> bool:
    """A temporary file or folder made on this host by a process that no longer runs."""
    owner = temp_owner(path.name)
    return owner is not None and owner[0] == _host() and not _alive(owner[1])


def sweep_stale(folder: str | Path) -> list[Path]:
    """Remove the leftovers of killed RadAssist processes in ``folder`` (never anything else); returns them."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in filter(is_stale, entries):
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError:
            pass  # another process swept it first, or it is not ours to remove
    return removed


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
        with tempfile.NamedTemporaryFile(dir=folder, prefix=temp_name()):
            pass
    except OSError as exc:
        raise OutputError(folder, f"the output folder is not writable ({exc.strerror or exc})") from None
    return folder


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = final.parent / temp_name(suffix=full_suffix(final))
    token = interrupt.remove_on_signal(temp)
    try:
        yield temp
        if not temp.exists():
            raise OutputError(final, "the writer produced no file")
        os.replace(temp, final)
    finally:
        interrupt.forget(token)
        if temp.exists():
            temp.unlink()


OVERWRITE_OPTION = "--overwrite"


def refuse_non_empty(folder: Path, option: str = OVERWRITE_OPTION) -> None:
    """OutputError when ``folder`` holds anything but the leftovers of killed runs: results are never replaced
    without being asked."""
    try:
        contents = [entry.name for entry in sorted(folder.iterdir()) if not is_stale(entry)]
    except OSError:  # no folder there
        return
    if not contents:
        return
    busy = [name for name in contents if temp_owner(name) is not None]
    if busy:
        host, pid = temp_owner(busy[0]) or ("", 0)
        raise OutputError(folder, f"another RadAssist run (process {pid} on {host}) is writing into this folder; "
                                  f"choose another output folder")
    shown = ", ".join(contents[:3]) + (f" and {len(contents) - 3} more" if len(contents) > 3 else "")
    raise OutputError(folder, f"the output folder is not empty (it holds {shown}); RadAssist does not overwrite "
                              f"earlier results: choose a new folder, or give {option} to write into this one "
                              f"(files of the same name are replaced)")


class RunOutput:
    """Stage a command's output files and publish them together, or not at all.

    Usage::

        with RunOutput(out_dir) as run:
            write_something(run.path("nodules.mrk.json"))
        # files now in out_dir; on an exception nothing new is in out_dir

    A folder that already holds files is refused (OutputError, nothing touched) unless ``overwrite`` is True;
    then the run's files replace those of the same name and everything else stays. Leftovers of killed runs in
    the folder are removed first.
    """

    def __init__(self, folder: str | Path, overwrite: bool = False, option: str = OVERWRITE_OPTION) -> None:
        self.folder = Path(folder)
        self.overwrite = overwrite
        self.option = option
        self.staging: Path | None = None
        self.published: list[Path] = []
        self._created = False  # the folder did not exist before: a failed run removes it again
        self._tokens: list[int] = []

    def __enter__(self) -> "RunOutput":
        self._created = not self.folder.exists()
        if not self._created:
            if self.folder.is_dir():
                sweep_stale(self.folder)
            if not self.overwrite:
                refuse_non_empty(self.folder, self.option)
        ensure_writable_dir(self.folder)
        if self._created:  # registered before the staging folder: clean_up() removes newest first
            self._tokens.append(interrupt.remove_on_signal(self.folder, only_if_empty=True))
        self.staging = make_temp_dir(self.folder)
        self._tokens.append(interrupt.remove_on_signal(self.staging))
        return self

    def path(self, relative: str | Path) -> Path:
        """Where to write ``relative`` now (inside the staging folder)."""
        assert self.staging is not None, "RunOutput used outside its with-block"
        target = self.staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

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
            for token in self._tokens:
                interrupt.forget(token)
            if exc_type is not None and self._created:
                with contextlib.suppress(OSError):  # only if still empty: never anything a user put there
                    self.folder.rmdir()
