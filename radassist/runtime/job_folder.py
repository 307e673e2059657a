"""The folder a job process and its parent share: what to run, how far it got, what went wrong, what it wrote.

A GUI (Slicer) never runs a model in its own process: it writes a job folder, starts a process on it and polls the
folder. The contract is files, so both sides stay plain Python and either side can be tested alone::

    request.json     what to run: {"task", "inputs": [{"path", "name"}], "options", "device", "server"}
    token            the server's token, when the job runs on a server (owner-only permissions)
    inputs/          the input files the parent wrote (NRRD volumes, PNG mammograms)
    progress.jsonl   one {"fraction", "message"} line per report, appended by the job
    error.json       {"kind": "input" | "crash", "message", "traceback"} when the job failed
    log.txt          everything the job process printed
    output/          the result folder: the task's Slicer-native files and result.json
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from radassist.errors import InputError

REQUEST = "request.json"
TOKEN = "token"
INPUTS = "inputs"
PROGRESS = "progress.jsonl"
ERROR = "error.json"
LOG = "log.txt"
OUTPUT = "output"
PROGRESS_FILE_ENV = "RADASSIST_PROGRESS_FILE"
"""When set, a CLI command reports its progress as JSON lines to this file (how a GUI follows a command job)."""


@dataclass
class JobInput:
    path: str   # relative to the job folder
    name: str   # the name shown in messages and results (the node's name, a view name...)


@dataclass
class TaskJobRequest:
    """One task to run: the same task names and options as the RadAssist server's."""

    task: str
    inputs: list[JobInput]
    options: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    server: str | None = None  # a server URL: run there (the token is in the job folder's ``token`` file)


def write_request(folder: Path, request: TaskJobRequest, token: str | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / REQUEST).write_text(json.dumps(asdict(request), indent=1), encoding="utf-8")
    if token is not None:
        descriptor = os.open(folder / TOKEN, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(token)


def read_request(folder: Path) -> TaskJobRequest:
    path = folder / REQUEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return TaskJobRequest(task=str(data["task"]), inputs=[JobInput(**item) for item in data["inputs"]],
                              options=dict(data.get("options") or {}), device=str(data.get("device") or "auto"),
                              server=data.get("server"))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(path, f"not a RadAssist job request ({error})") from None


class ProgressFile:
    """A Progress callback that appends JSON lines, at most one every ``interval_s`` (and always the finish)."""

    def __init__(self, path: Path, interval_s: float = 0.2, clock: Callable[[], float] = time.monotonic) -> None:
        self.path, self.interval_s, self.clock = Path(path), interval_s, clock
        self._last = float("-inf")

    def __call__(self, fraction: float, message: str) -> None:
        now = self.clock()
        if fraction < 1.0 and now - self._last < self.interval_s:
            return
        self._last = now
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"fraction": round(float(fraction), 4), "message": message}) + "\n")


class ProgressReader:
    """The reports a job appended since the last read (a half-written last line waits for the next read)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._offset = 0

    def read(self) -> list[tuple[float, str]]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        complete = data[:data.rfind(b"\n") + 1]
        self._offset += len(complete)
        reports = []
        for line in complete.decode("utf-8", errors="replace").splitlines():
            try:
                item = json.loads(line)
                reports.append((float(item["fraction"]), str(item.get("message", ""))))
            except (ValueError, KeyError, TypeError):
                continue  # a line from something else sharing the file: not a report
        return reports


def write_error(folder: Path, kind: str, message: str, trace: str = "") -> None:
    (folder / ERROR).write_text(json.dumps({"kind": kind, "message": message, "traceback": trace}),
                                encoding="utf-8")


def read_error(folder: Path) -> dict[str, str] | None:
    try:
        return json.loads((folder / ERROR).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def log_tail(folder: Path, lines: int = 20) -> str:
    try:
        text = (folder / LOG).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])
