"""Keep freed memory in the process while a network runs on a volume, so large arrays reuse it.

Why: glibc's malloc serves every block above 128 KiB with a fresh ``mmap`` and gives it back on ``free``. A brain
joint pass at the paper's size allocates a few hundred activation tensors and field arrays of 25-100 MB each, so the
kernel maps and zero-fills ~5 GB of new pages per pair: on two CPU cores that was ~40 % of the network's CPU time
(system time, measured with ``getrusage``). While :func:`reuse_freed_memory` is active, large blocks come from the
heap and freed ones stay there for the next tensor (what PyTorch's tuning guide gets by preloading jemalloc or
tcmalloc); on leaving, glibc's defaults come back and the free heap pages are returned to the system. On other C
libraries (macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

M_TRIM_THRESHOLD = -1          # glibc mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
GLIBC_DEFAULT_THRESHOLD = 128 * 1024
KEEP_THRESHOLD = 1 << 30       # blocks up to 1 GiB come from the heap; a free heap up to 2 GiB is kept
KEEP_TRIM = (1 << 31) - 1

_lock = threading.Lock()
_active = 0          # blocks inside reuse_freed_memory right now
_changed = False     # whether the first of them could change the settings


def _glibc() -> Any | None:
    """The C library when it is glibc with ``mallopt`` and ``malloc_trim``, else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def _set(libc: Any, threshold: int, trim: int) -> bool:
    return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold)) and bool(libc.mallopt(M_TRIM_THRESHOLD, trim))


@contextmanager
def reuse_freed_memory() -> Iterator[bool]:
    """Within the block, large freed blocks stay in the process for reuse; yields whether that could be arranged.

    Nesting and concurrent use from several threads are fine: the first entry changes the settings, the last exit
    restores glibc's defaults and trims the heap.
    """
    global _active, _changed
    libc = _glibc()
    if libc is None:
        yield False
        return
    with _lock:
        if _active == 0:
            _changed = _set(libc, KEEP_THRESHOLD, KEEP_TRIM)
        _active += 1
        changed = _changed
    try:
        yield changed
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                _set(libc, GLIBC_DEFAULT_THRESHOLD, GLIBC_DEFAULT_THRESHOLD)
                libc.malloc_trim(0)
