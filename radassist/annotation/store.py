"""Change a dataset folder all at once or not at all, one writer at a time.

Labels are the expensive part of a data set, so an export must never lose or half-write one:

* **one writer at a time**: every export holds the dataset's file lock (``filelock``, an OS lock that a killed
  process releases) from the first read of the index to the last rename, so two exports at once run one after
  the other and both land;
* **all or nothing**: files are first written into a hidden staging folder inside the dataset (same file system,
  so the final moves are renames). Before the first rename a journal listing every planned rename is written
  atomically; then the renames run; then the journal is deleted, which is the commit. An exception undoes the
  renames at once; a killed process leaves the journal behind, and the next writer (or :func:`recover`) undoes
  them before doing anything else. Files the dataset already had are only replaced with their old copy kept in
  the staging folder until the commit, so undoing restores them byte for byte.

:func:`crash_point` is called between the steps; it does nothing, and exists so the tests can inject a failure
or a SIGKILL exactly there.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from radassist.errors import OutputError
from radassist.io.atomic import atomic_path

LOCK_NAME = ".radassist-export.lock"
JOURNAL_NAME = ".radassist-export-journal.json"
STAGING_PREFIX = ".radassist-export-staging-"
LOCK_TIMEOUT_S = 600.0


def crash_point(step: str) -> None:
    """Called between the steps of a commit (see the module docstring); intentionally does nothing."""


@contextlib.contextmanager
def dataset_lock(root: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the dataset's export lock; OutputError when another export holds it longer than ``timeout_s``."""
    from filelock import FileLock, Timeout

    root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(root / LOCK_NAME), timeout=timeout_s)
    try:
        lock.acquire()
    except Timeout:
        raise OutputError(root, f"another export has held this dataset's lock for over {timeout_s:.0f} s; "
                                f"try again when it has finished") from None
    try:
        yield
    finally:
        lock.release()


def _rollback(root: Path, journal: dict) -> None:
    """Undo the renames of a journal, last first; each undo checks what was actually done, so a half-done
    operation and a repeated recovery are both safe."""
    staging = root / journal["staging"]
    for op in reversed(journal["ops"]):
        target = root / op["to"]
        if op["op"] == "put":
            source = staging / op["from"]
            backup = staging / op["backup"] if op.get("backup") else None
            if backup is not None and backup.exists():
                os.replace(backup, target)
            elif backup is None and target.exists() and not source.exists():
                source.parent.mkdir(parents=True, exist_ok=True)
                os.replace(target, source)
        elif op["op"] == "move":
            source = root / op["from"]
            if target.exists() and not source.exists():
                os.replace(target, source)
    for folder in sorted(journal.get("created_dirs", []), key=lambda p: p.count("/"), reverse=True):
        with contextlib.suppress(OSError):
            (root / folder).rmdir()


def recover(root: str | Path) -> bool:
    """Undo an export that was killed half way and remove leftover staging folders. Call it holding the lock
    (every export does, first). Returns True when an unfinished export was undone."""
    root = Path(root)
    journal_path = root / JOURNAL_NAME
    undone = False
    if journal_path.is_file():
        try:
            journal = json.loads(journal_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise OutputError(journal_path, f"the journal of an interrupted export is unreadable ({error}); "
                                            f"restore the dataset from a backup") from None
        _rollback(root, journal)
        journal_path.unlink()
        undone = True
    for leftover in root.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(leftover, ignore_errors=True)
    return undone


@dataclass
class Transaction:
    """Staged changes to the dataset at ``root``: write new files at :meth:`new_path`, plan moves with
    :meth:`move`, then :meth:`commit`. Use as a context manager; leaving it without a commit undoes everything."""

    root: Path
    staging: Path = field(init=False)
    moves: list[tuple[str, str]] = field(default_factory=list)
    replaceable: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.root))

    def new_path(self, relative: str, replace: bool = False) -> Path:
        """Where to write the file that will appear at ``root/relative``. ``replace`` allows an existing file
        there to be replaced (its old copy is kept until the commit); otherwise an existing file is an error."""
        relative = Path(relative).as_posix()
        if replace:
            self.replaceable.add(relative)
        path = self.staging / "new" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def move(self, source: str, target: str) -> None:
        """Move an existing file of the dataset elsewhere inside it (archiving an earlier version)."""
        self.moves.append((Path(source).as_posix(), Path(target).as_posix()))

    def _plan(self) -> dict:
        ops: list[dict] = []
        moved_away = {source for source, _ in self.moves}
        for source, target in self.moves:
            if not (self.root / source).is_file():
                raise OutputError(self.root / source, "is listed in the dataset index but missing")
            if (self.root / target).exists():
                raise OutputError(self.root / target, "already exists; an export never overwrites a file")
            ops.append({"op": "move", "from": source, "to": target})
        new_root = self.staging / "new"
        for staged in sorted(p for p in new_root.rglob("*") if p.is_file()):
            relative = staged.relative_to(new_root).as_posix()
            exists = (self.root / relative).exists()
            if exists and relative not in self.replaceable and relative not in moved_away:
                raise OutputError(self.root / relative, "already exists and this export did not write it; an "
                                                        "export never overwrites a file")
            backup = f"old/{relative}" if exists and relative not in moved_away else None
            ops.append({"op": "put", "from": f"new/{relative}", "to": relative, "backup": backup})
        created: list[str] = []
        for op in ops:
            folder = Path(op["to"]).parent
            while folder != Path(".") and not (self.root / folder).exists():
                if folder.as_posix() not in created:
                    created.append(folder.as_posix())
                folder = folder.parent
        return {"staging": self.staging.name, "ops": ops, "created_dirs": created}

    def commit(self) -> list[str]:
        """Publish everything; returns the relative paths that appeared or changed."""
        journal = self._plan()
        journal_path = self.root / JOURNAL_NAME
        with atomic_path(journal_path) as temp:
            temp.write_text(json.dumps(journal, indent=1), encoding="utf-8")
        try:
            crash_point("journal written")
            for number, op in enumerate(journal["ops"]):
                target = self.root / op["to"]
                target.parent.mkdir(parents=True, exist_ok=True)
                if op["op"] == "move":
                    os.replace(self.root / op["from"], target)
                else:
                    if op["backup"]:
                        backup = self.staging / op["backup"]
                        backup.parent.mkdir(parents=True, exist_ok=True)
                        os.replace(target, backup)
                    os.replace(self.staging / op["from"], target)
                crash_point(f"operation {number + 1} of {len(journal['ops'])}")
        except BaseException:
            _rollback(self.root, journal)
            journal_path.unlink()
            raise
        journal_path.unlink()  # the commit
        crash_point("committed")
        return [op["to"] for op in journal["ops"]]

    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
