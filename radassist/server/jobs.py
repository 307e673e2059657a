"""The job queue: a bounded line of waiting jobs and one worker per device, each running its jobs one at a time.

A GPU runs one model at a time, so jobs on the same device are serialised; a server with two GPUs has two
workers. A submission beyond ``queue_size`` waiting jobs is refused (:class:`QueueFull`, 503 to the client)
instead of piling up. A job runs as a :class:`~radassist.runtime.jobs.BackgroundJob`, so it reports progress and
stops at its next report when cancelled, exactly as in the Slicer panels; its files are staged and appear all
together, with result.json, or not at all.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radassist.errors import RadAssistError
from radassist.io.atomic import atomic_path
from radassist.runtime.jobs import BackgroundJob, JobCancelled, JobDone, JobProgress, JobState
from radassist.runtime.progress import Progress
from radassist.server.settings import ServerSettings
from radassist.server.storage import JobStorage
from radassist.server.tasks import ServerTask, TaskInput
from radassist.server.tasks_base import run_task

log = logging.getLogger("radassist.server")
RESULTS_FOLDER = "results"
RESULTS_ZIP = "results.zip"


class QueueFull(RadAssistError):
    """Every place in the queue is taken; the client should try again later."""


@dataclass
class ServerJob:
    """One submission and what has become of it. Fields change under the queue's lock only."""

    id: str
    task: ServerTask
    options: dict[str, Any]
    folder: Path
    inputs: list[TaskInput] = field(default_factory=list)
    state: JobState = JobState.PENDING
    progress: float = 0.0
    message: str = "waiting in the queue"
    error: str | None = None
    device: str | None = None
    files: list[str] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    cancel_requested: bool = False
    discarded: bool = False
    background: BackgroundJob | None = field(default=None, repr=False)

    @property
    def result_zip(self) -> Path:
        return self.folder / RESULTS_ZIP


def client_message(error: BaseException, job: ServerJob, root: Path) -> str:
    """What the client is told about a failed job: the user's own file names, never a server path."""
    if not isinstance(error, RadAssistError):
        return "the server failed while running the job (an internal error; the server log has the details)"
    text = str(error)
    for item in job.inputs:
        text = text.replace(str(item.path), item.shown)
    return text.replace(str(job.folder), "(job)").replace(str(root), "(server)")


def _zip_results(folder: Path, target: Path) -> list[str]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    with atomic_path(target) as temp, zipfile.ZipFile(temp, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(folder).as_posix())
    return [path.relative_to(folder).as_posix() for path in files]


class JobQueue:
    """Accepts jobs, runs them on its workers, and answers what became of each."""

    def __init__(self, settings: ServerSettings, storage: JobStorage) -> None:
        self.settings = settings
        self.storage = storage
        self._waiting: queue.Queue[ServerJob | None] = queue.Queue(maxsize=settings.queue_size)
        self._jobs: OrderedDict[str, ServerJob] = OrderedDict()
        self._lock = threading.Lock()
        self._workers = [threading.Thread(target=self._work, args=(device,), name=f"radassist-worker-{device}",
                                          daemon=True) for device in settings.devices]
        self._stopping = threading.Event()

    # -- life cycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        for worker in self._workers:
            worker.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel what runs and waits, and let the workers end."""
        self._stopping.set()
        with self._lock:
            for job in self._jobs.values():
                self._cancel_locked(job)
        for _ in self._workers:
            try:
                self._waiting.put_nowait(None)
            except queue.Full:
                break
        for worker in self._workers:
            worker.join(timeout)

    # -- submissions ------------------------------------------------------------------------------------------
    @property
    def full(self) -> bool:
        return self._waiting.full()

    def new_job(self, task: ServerTask, options: dict[str, Any]) -> ServerJob:
        """A job with its folder, not yet queued (its inputs are stored next)."""
        job_id = uuid.uuid4().hex
        return ServerJob(job_id, task, options, self.storage.create(job_id))

    def submit(self, job: ServerJob) -> ServerJob:
        """Queue ``job``; QueueFull (and its folder removed) when every place is taken."""
        with self._lock:
            if self._stopping.is_set():
                raise QueueFull("the server is shutting down")
            try:
                self._waiting.put_nowait(job)
            except queue.Full:
                self.storage.remove(job.id)
                raise QueueFull(f"the server's queue is full ({self.settings.queue_size} jobs waiting); "
                                "try again later") from None
            self._jobs[job.id] = job
        return job

    # -- questions and requests -------------------------------------------------------------------------------
    def get(self, job_id: str) -> ServerJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def status(self, job: ServerJob) -> dict[str, Any]:
        with self._lock:
            position = None
            if job.state is JobState.PENDING:
                waiting = [j for j in self._jobs.values() if j.state is JobState.PENDING and not j.cancel_requested]
                position = next((i for i, j in enumerate(waiting) if j is job), None)
            return {"id": job.id, "task": job.task.name, "state": job.state.value,
                    "progress": round(job.progress, 4), "message": job.message, "error": job.error,
                    "device": job.device, "queue_position": position, "files": list(job.files),
                    "created": job.created, "started": job.started, "finished": job.finished}

    def cancel(self, job: ServerJob) -> None:
        with self._lock:
            self._cancel_locked(job)

    def delete(self, job: ServerJob) -> None:
        """Cancel ``job`` if needed and forget it; its files go as soon as nothing uses them."""
        with self._lock:
            self._cancel_locked(job)
            job.discarded = True
            self._jobs.pop(job.id, None)
            finished = job.state.finished
        if finished:
            self.storage.remove(job.id)

    def _cancel_locked(self, job: ServerJob) -> None:
        if job.state.finished:
            return
        job.cancel_requested = True
        if job.state is JobState.PENDING:
            job.state, job.message, job.finished = JobState.CANCELLED, "cancelled before it started", time.time()
        elif job.background is not None:
            job.message = "cancelling"
            job.background.cancel()

    # -- workers ----------------------------------------------------------------------------------------------
    def _work(self, device_name: str) -> None:
        from radassist.runtime.device import choose_device

        choice = choose_device(device_name)
        while True:
            job = self._waiting.get()
            if job is None or self._stopping.is_set():
                return
            try:
                self._run_one(job, choice)
            except Exception:  # noqa: BLE001 -- a worker must outlive any one job
                log.exception("worker %s could not run job %s", device_name, job.id)
                with self._lock:
                    job.state, job.message, job.error = JobState.FAILED, "failed", "the server failed to run the job"
                    self._finish_locked(job)

    def _run_one(self, job: ServerJob, choice: Any) -> None:
        with self._lock:
            if job.state is not JobState.PENDING:       # cancelled while it waited
                self._finish_locked(job)
                return
            job.state, job.started, job.device = JobState.RUNNING, time.time(), str(choice.device)
            job.message = "starting"
            job.background = background = BackgroundJob(lambda progress: self._run(job, choice, progress),
                                                        name=f"radassist-job-{job.id[:8]}")
        background.start()
        while not background.wait(self.settings.poll_interval_s):
            self._collect(job, background)
        self._collect(job, background)

    def _run(self, job: ServerJob, choice: Any, progress: Progress) -> list[str]:
        results = job.folder / RESULTS_FOLDER
        run_task(job.task, job.inputs, job.options, choice, progress, results)
        return _zip_results(results, job.result_zip)

    def _collect(self, job: ServerJob, background: BackgroundJob) -> None:
        for event in background.poll():
            with self._lock:
                if isinstance(event, JobProgress):
                    job.progress = event.fraction
                    job.message = "cancelling" if job.cancel_requested else event.message
                    continue
                if isinstance(event, JobDone):
                    job.state, job.files, job.progress, job.message = JobState.SUCCEEDED, event.result, 1.0, "done"
                elif isinstance(event, JobCancelled):
                    job.state, job.message = JobState.CANCELLED, "cancelled"
                else:  # JobFailed
                    if not isinstance(event.error, RadAssistError):
                        log.error("job %s (%s) failed:\n%s", job.id, job.task.name, event.traceback)
                    job.state, job.message = JobState.FAILED, "failed"
                    job.error = client_message(event.error, job, self.storage.root)
                self._finish_locked(job)

    def _finish_locked(self, job: ServerJob) -> None:
        job.finished = job.finished or time.time()
        job.background = None
        if job.discarded:
            self.storage.remove(job.id)
        self._evict_locked()

    def _evict_locked(self) -> None:
        finished = [j for j in self._jobs.values() if j.state.finished]
        for old in finished[:max(0, len(finished) - self.settings.keep_finished_jobs)]:
            self._jobs.pop(old.id, None)
            self.storage.remove(old.id)
