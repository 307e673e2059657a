"""Ctrl-C and SIGTERM stop any command within seconds, and leave no temporary files behind.

Python runs a signal handler only between bytecodes of the main thread, so a command busy inside one long C
call (a SimpleITK registration, a big numpy or torch operation) would not notice Ctrl-C until the call returns,
possibly minutes later. While :func:`handling` is active:

* the first SIGINT or SIGTERM raises :class:`Interrupted` in the main thread (as soon as it runs Python again),
  so ``with`` blocks clean up as usual: staged outputs are removed, a folder the run created is removed again;
* a watchdog thread learns of the signal at once, through ``signal.set_wakeup_fd`` (written by the C-level
  handler even while the main thread is stuck). If the process is still alive ``grace`` seconds later, or on a
  second signal, it removes every temporary path registered with :func:`remove_on_signal`, prints one line and
  ends the process with ``os._exit(128 + signal)``: 130 for SIGINT, 143 for SIGTERM, as shells report them.

SIGKILL cannot be caught; the temporary names of :mod:`radassist.io.atomic` say which process made them, so the
next run sweeps them away.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import select
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

GRACE_SECONDS = 5.0
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The process received SIGINT (Ctrl-C) or SIGTERM; ``exit_code`` is 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        super().__init__(self.signal_name)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@dataclass(frozen=True)
class _Registered:
    path: Path
    only_if_empty: bool


_lock = threading.Lock()
_paths: dict[int, _Registered] = {}
_tokens = itertools.count(1)
_state: dict[str, object] = {"label": "radassist", "signalled": None}  # read by the signal handler and _hard_exit


def remove_on_signal(path: str | Path, only_if_empty: bool = False) -> int:
    """Remember a temporary file or folder to delete should a signal end the process; returns a token for
    :func:`forget`. ``only_if_empty``: a folder removed only when nothing is left in it."""
    token = next(_tokens)
    with _lock:
        _paths[token] = _Registered(Path(path), only_if_empty)
    return token


def forget(token: int) -> None:
    """The path of ``token`` was published or removed by its owner: leave it alone from now on."""
    with _lock:
        _paths.pop(token, None)


def clean_up() -> None:
    """Delete every registered path, newest first (files and staging folders before the folders holding them)."""
    with _lock:
        items = [item for _, item in sorted(_paths.items(), reverse=True)]
        _paths.clear()
    for item in items:
        with contextlib.suppress(OSError):
            if item.only_if_empty:
                item.path.rmdir()
            elif item.path.is_dir() and not item.path.is_symlink():
                shutil.rmtree(item.path, ignore_errors=True)
            elif item.path.exists():
                item.path.unlink()


def _hard_exit(signum: int) -> None:
    clean_up()
    name = signal.Signals(signum).name
    with contextlib.suppress(Exception):
        sys.stderr.write(f"{_state['label']}: interrupted by {name}; stopped, unfinished output removed\n")
        sys.stderr.flush()
    os._exit(128 + signum)


def _signals_in(data: bytes) -> list[int]:
    return [number for number in data if number in SIGNALS]


def _watchdog(reader: socket.socket, grace: float, finished: threading.Event) -> None:
    """Wait for signal numbers on the wakeup socket; after the first, give the command ``grace`` seconds to wind
    down, and end the process if it has not (or if a second signal comes)."""
    with reader:
        first, deadline = None, None
        while deadline is None or not finished.is_set():
            if deadline is not None:  # after the first signal: look again until the grace time is up
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    _hard_exit(first)
                if not select.select([reader], [], [], min(remaining, 0.1))[0]:
                    continue
            data = reader.recv(64)
            if not data:  # closed: the command ended
                return
            numbers = _signals_in(data)
            if len(numbers) > 1 or (numbers and first is not None):  # a second signal: no more waiting
                _hard_exit(numbers[-1])
            if numbers:
                first, deadline = numbers[0], time.monotonic() + grace


def _handler(signum: int, frame: object) -> None:
    if _state["signalled"] is not None:  # a second signal: no more waiting
        _hard_exit(signum)
    _state["signalled"] = signum
    raise Interrupted(signum)


@contextlib.contextmanager
def handling(label: str, grace: float = GRACE_SECONDS) -> Iterator[None]:
    """Handle SIGINT and SIGTERM as the module docstring says while the block runs (main thread only; elsewhere
    a no-op), then put the previous handlers back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.getsignal(number) for number in SIGNALS}
    finished = threading.Event()
    _state.update(label=label, signalled=None)
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    threading.Thread(target=_watchdog, args=(reader, grace, finished), name="radassist-interrupt",
                     daemon=True).start()
    for number in SIGNALS:
        signal.signal(number, _handler)
    try:
        yield
    finally:
        finished.set()  # the command wound down: no watchdog exit
        for number, handler in previous.items():
            signal.signal(number, handler)
        signal.set_wakeup_fd(previous_fd)
        writer.close()  # the watchdog reads end-of-file, closes its end and ends
        _state["signalled"] = None


__all__ = ["GRACE_SECONDS", "Interrupted", "clean_up", "forget", "handling", "remove_on_signal"]
