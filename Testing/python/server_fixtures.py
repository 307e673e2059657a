"""Shared pieces of the server tests: a real uvicorn server on 127.0.0.1, small volumes, and a task whose pace
the test controls (to hold a worker busy, follow progress and cancel deterministically).

Use it from a test module with ``from server_fixtures import ...``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import requests

from radassist.server.options import OptionSpec
from radassist.server.runner import ServerThread
from radassist.server.settings import ServerSettings
from radassist.server.tasks import TASKS, VOLUME_SUFFIXES, ServerTask
from radassist.volume import Geometry, Volume

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Gate:
    """Makes the 'gated' task wait, reporting progress, until the test opens it; records when jobs start."""

    opened: threading.Event = field(default_factory=threading.Event)
    started: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    def wait_started(self, timeout: float = 20.0) -> None:
        assert self.started.acquire(timeout=timeout), "the gated job never started"


def gated_task(gate: Gate) -> ServerTask:
    def run(inputs, options, device, progress, output, record) -> None:
        gate.started.release()
        step = 0
        while not gate.opened.is_set():
            step += 1
            progress.update(min(0.9, step / 1000), f"step {step}")   # raises Cancelled once cancelled
            time.sleep(0.01)
        (output.path("size.txt")).write_text(str(inputs[0].path.stat().st_size))
        record.summary = {"steps": step}

    return ServerTask(name="gated", title="waits for the test", command="gated", accepts=VOLUME_SUFFIXES,
                      max_files=1, options=(OptionSpec("label", str, "", "free text"),), run=run)


@contextmanager
def running_server(tmp_path: Path, gate: Gate | None = None, **overrides: Any) -> Iterator[tuple[str, Any]]:
    """(url, FastAPI app) of a server with the real tasks (plus 'gated' when a gate is given)."""
    tasks = dict(TASKS)
    if gate is not None:
        tasks["gated"] = gated_task(gate)
    settings = ServerSettings(**({"token": TOKEN, "storage_root": tmp_path / "server-storage",
                                  "poll_interval_s": 0.01} | overrides))
    thread = ServerThread(settings, tasks=tasks)
    with thread as url:
        yield url, thread.app


def small_volume(seed: int, shape: tuple[int, int, int] = (6, 12, 10)) -> Volume:
    """A tiny CT-like volume whose voxels and geometry both depend on ``seed`` (so results can be told apart)."""
    rng = np.random.default_rng(seed)
    geometry = Geometry(shape=shape, spacing=(0.5 + seed * 0.01, 0.7, 1.5), origin=(seed * 1.0, -20.0, 5.0))
    return Volume.from_geometry(rng.integers(-1000, 1000, size=shape).astype(np.int16), geometry)


def submit(url: str, task: str, files: list[tuple[str, bytes]], options: str = "{}",
           headers: dict[str, str] | None = None) -> requests.Response:
    parts = [("files", (name, data, "application/octet-stream")) for name, data in files]
    return requests.post(f"{url}/jobs", files=parts, data={"task": task, "options": options},
                         headers=AUTH if headers is None else headers, timeout=60)


def wait_state(url: str, job_id: str, states: tuple[str, ...], timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = requests.get(f"{url}/jobs/{job_id}", headers=AUTH, timeout=10).json()
        if status["state"] in states:
            return status
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} did not reach {states}: {status}")
