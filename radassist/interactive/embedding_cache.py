"""Slice embeddings kept on disk, so moving a box and running again costs only the mask decoder.

Each run of ``radassist segment box`` (and each Slicer job) is a new process, so the cache lives in the RadAssist
cache folder (``<cache>/embeddings``), not in memory. A key is the sha256 of: a digest of the image (its voxels
as the model sees them after windowing, plus the grid's geometry), the slice index (and the part of the slice,
when the encoder sees only a part: see crops.py), the intensity window, the
model weights' sha256 and the encoder variant (torch / ONNX / int8 give slightly different numbers). Entries are
float16 ``.npy`` files (2 MiB per 256 x 64 x 64 slice); a run uses the float16 values whether it encoded the
slice or read it, so a cached re-run gives the identical mask.

Concurrent writers are safe: an entry is written to a unique temporary name and renamed into place (the rename
is atomic; two processes writing the same key write the same bytes). The folder is kept under a size bound
(``$RADASSIST_EMBEDDING_CACHE_MB``, default 2048) by deleting the least recently used entries; only one process
prunes at a time (a lock file), and an entry deleted while another process reads it is simply a miss there.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radassist.runtime import paths

CACHE_ENV = "RADASSIST_EMBEDDING_CACHE_MB"
DEFAULT_LIMIT_MB = 2048
KEY_VERSION = "litemedsam-embedding-v1"
STORED_DTYPE = np.float16


def default_folder() -> Path:
    return paths.cache_dir() / "embeddings"


def default_limit_bytes() -> int:
    text = os.environ.get(CACHE_ENV, "")
    try:
        megabytes = float(text) if text.strip() else DEFAULT_LIMIT_MB
    except ValueError:
        megabytes = DEFAULT_LIMIT_MB
    return max(int(megabytes * 1024 * 1024), 0)


def image_digest(windowed: np.ndarray, geometry_parts: Iterable[float]) -> str:
    """sha256 of the windowed voxels (shape, dtype, bytes) and the numbers that place them (spacing, origin, ...)."""
    digest = hashlib.sha256()
    array = np.ascontiguousarray(windowed)
    digest.update(f"{array.shape}|{array.dtype}|".encode())
    digest.update(array.tobytes())
    digest.update(repr(tuple(round(float(v), 6) for v in geometry_parts)).encode())
    return digest.hexdigest()


@dataclass
class EmbeddingCache:
    """Disk store of slice embeddings; ``limit_bytes`` 0 turns it off (nothing read or written)."""

    folder: Path = field(default_factory=default_folder)
    limit_bytes: int = field(default_factory=default_limit_bytes)
    hits: int = 0
    misses: int = 0

    @property
    def enabled(self) -> bool:
        return self.limit_bytes > 0

    @staticmethod
    def key(image: str, slice_index: int | str, window: str, weights_sha256: str, variant: str) -> str:
        """``slice_index`` is the slice number, or ``"number@crop"`` for a part of the slice."""
        text = f"{KEY_VERSION}|{image}|{slice_index}|{window}|{weights_sha256}|{variant}"
        return hashlib.sha256(text.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        """The stored embedding (float16), or None; a damaged entry is deleted and counts as a miss."""
        if not self.enabled:
            return None
        path = self._path(key)
        try:
            array = np.load(path, allow_pickle=False)
            os.utime(path)  # recently used: pruned last
        except (OSError, ValueError, EOFError) as error:
            if not isinstance(error, FileNotFoundError):
                path.unlink(missing_ok=True)
            self.misses += 1
            return None
        self.hits += 1
        return array

    def put(self, key: str, embedding: np.ndarray) -> None:
        """Store ``embedding`` (converted to float16) under ``key``; a full disk only costs the cache entry."""
        if not self.enabled:
            return
        path = self._path(key)
        temp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}.tmp.npy")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(temp, np.ascontiguousarray(embedding, dtype=STORED_DTYPE), allow_pickle=False)
            os.replace(temp, path)
        except OSError:
            temp.unlink(missing_ok=True)

    def size_bytes(self) -> int:
        return sum(size for _, size, _ in self._entries())

    def _entries(self) -> list[tuple[Path, int, float]]:
        found = []
        for path in self.folder.glob("*/*.npy"):
            if path.name.startswith("."):
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            found.append((path, stat.st_size, stat.st_mtime))
        return found

    def prune(self) -> int:
        """Delete least recently used entries until the folder is within 90% of the limit; returns how many.
        Skipped (0) when another process is pruning."""
        if not self.enabled or not self.folder.is_dir():
            return 0
        from filelock import FileLock, Timeout

        try:
            with FileLock(str(self.folder / ".prune.lock"), timeout=0):
                entries = self._entries()
                total = sum(size for _, size, _ in entries)
                if total <= self.limit_bytes:
                    return 0
                removed = 0
                for path, size, _ in sorted(entries, key=lambda entry: entry[2]):
                    if total <= 0.9 * self.limit_bytes:
                        break
                    path.unlink(missing_ok=True)
                    total -= size
                    removed += 1
                return removed
        except Timeout:
            return 0
