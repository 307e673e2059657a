"""The FastAPI application: health, info, job submission, status, cancel and result download.

Every endpoint but ``/health`` needs the bearer token. No value from a client becomes a path: job ids are matched
against the server's own table, uploaded files are stored under server-made names (see storage.py), and a
result is one zip of the files the matching CLI command writes, made by the server.
"""

# no `from __future__ import annotations`: FastAPI reads the endpoint annotations, and the task-name enum is
# made per app inside create_app

import json
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from enum import Enum
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, File, Form, HTTPException, Path as PathParam, UploadFile, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from radassist import __version__
from radassist.errors import InputError, RadAssistError
from radassist.runtime.jobs import JobState
from radassist.server.auth import bearer_checker
from radassist.server.jobs import JobQueue, QueueFull, ServerJob
from radassist.server.limits import BodySizeLimit
from radassist.server.schemas import Health, Info, JobStatus, Problem
from radassist.server.settings import ServerSettings, ZipLimits
from radassist.server.storage import JobStorage, display_name, extract_zip, input_suffix
from radassist.server.tasks import TASKS, ServerTask, TaskInput

UPLOAD_HELP = "the input file(s): NRRD, NIfTI, MHA, a zipped DICOM series, or mammogram DICOM/PNG"
JOB_ID = PathParam(pattern=r"^[0-9a-f]{32}$", description="the id the submission returned")
_COPY_CHUNK = 1024 * 1024


def _problem(code: int, what: str) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": Problem, "description": what}}


AUTH_RESPONSES = _problem(401, "missing or wrong bearer token")
JOB_RESPONSES = AUTH_RESPONSES | _problem(404, "no such job (never submitted, deleted, or expired)")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_options_text(text: str) -> Any:
    """The options form field as JSON; InputError when it is not."""
    try:
        return json.loads(text or "{}", parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise InputError(None, f"options are not valid JSON ({exc})") from None


def store_inputs(uploads: list[UploadFile], folder: Path, task: ServerTask, limits: ZipLimits) -> list[TaskInput]:
    """Copy each upload under a server-made name; unpack a zipped DICOM series into its own folder."""
    stored = []
    for index, upload in enumerate(uploads):
        shown = display_name(upload.filename, f"file {index + 1}")
        suffix = input_suffix(upload.filename, task.accepts)
        target = folder / "inputs" / f"input-{index}{suffix}"
        with open(target, "wb") as handle:
            shutil.copyfileobj(upload.file, handle, _COPY_CHUNK)
        if suffix == ".zip":
            series_folder = folder / "inputs" / f"input-{index}-dicom"
            extract_zip(target, series_folder, shown, limits)
            target.unlink()
            target = series_folder
        stored.append(TaskInput(target, shown))
    return stored


def _describe_task(task: ServerTask, rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {"name": task.name, "title": task.title, "command": task.command, "accepts": list(task.accepts),
            "max_files": task.max_files, "options": [spec.describe() for spec in task.options],
            "models": [row for model_id in task.models for row in rows.get(model_id, [])]}


def gather_info(settings: ServerSettings, tasks: dict[str, ServerTask]) -> dict[str, Any]:
    """What /info answers: versions, tasks with their options and models, workers and limits."""
    from radassist.runtime.device import choose_device
    from radassist.runtime.model_status import model_rows
    from radassist.runtime.run_record import package_versions

    models: list[dict[str, Any]] = []
    try:
        for row in model_rows():
            models.append({"id": row.id, "version": row.version, "task": row.task, "title": row.title,
                           "status": row.status, "architecture": row.architecture})
    except RadAssistError as error:
        models.append({"id": "(catalogue)", "version": "", "task": "", "title": "", "status": f"error: {error}",
                       "architecture": ""})
    by_id: dict[str, list[dict[str, Any]]] = {}
    for row in models:
        by_id.setdefault(row["id"], []).append(row)
    return {"version": __version__, "versions": package_versions(),
            "tasks": [_describe_task(task, by_id) for task in tasks.values()], "models": models,
            "workers": [{"device": name, "description": choose_device(name).describe()}
                        for name in settings.devices],
            "limits": {"max_upload_bytes": settings.max_upload_bytes, "queue_size": settings.queue_size,
                       "zip_max_members": settings.zip_limits.max_members,
                       "zip_max_total_bytes": settings.zip_limits.max_total_bytes}}


def create_app(settings: ServerSettings, tasks: dict[str, ServerTask] | None = None) -> FastAPI:
    """A server with its own job queue and storage; both start and stop with the app's lifespan.

    ``tasks`` defaults to every task RadAssist offers (tasks.TASKS).
    """
    tasks = dict(TASKS if tasks is None else tasks)
    TaskName = Enum("TaskName", {name: name for name in tasks}, type=str)  # type: ignore[misc]
    storage = JobStorage(settings.storage_root)
    jobs = JobQueue(settings, storage)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        jobs.start()
        try:
            yield
        finally:
            jobs.stop()
            storage.close()

    app = FastAPI(title="RadAssist inference server", version=__version__, lifespan=lifespan,
                  description="Run RadAssist tasks on this machine's GPU for Slicer and `radassist --server`. "
                              "Submit files for a task, follow its progress, download the files the matching "
                              "CLI command writes. Every endpoint but /health needs the bearer token.")
    app.add_middleware(BodySizeLimit, limit=settings.max_upload_bytes)
    app.state.jobs = jobs
    app.state.storage = storage
    authorised = [Depends(bearer_checker(settings.token))]

    def find(job_id: str) -> ServerJob:
        job = jobs.get(job_id)
        if job is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such job (never submitted, deleted, or expired)")
        return job

    @app.get("/health", response_model=Health, tags=["server"])
    def health() -> dict[str, Any]:
        """Liveness, without authentication (for load balancers and the client's offline check)."""
        return {"status": "ok", "version": __version__}

    @app.get("/info", response_model=Info, dependencies=authorised, responses=AUTH_RESPONSES, tags=["server"])
    def info() -> dict[str, Any]:
        """Versions, the tasks with their options and models, the workers and the limits."""
        return gather_info(settings, tasks)

    @app.post("/jobs", status_code=status.HTTP_202_ACCEPTED, response_model=JobStatus, dependencies=authorised,
              tags=["jobs"],
              responses=AUTH_RESPONSES | _problem(400, "unusable task, options or files")
              | _problem(413, "upload larger than the server accepts")
              | _problem(503, "the queue is full; try again later"))
    async def submit(task: TaskName = Form(description="the task to run"),
                     files: list[UploadFile] = File(min_length=1, description=UPLOAD_HELP),
                     options: str = Form("{}", description="task options as a JSON object (see /info)")
                     ) -> dict[str, Any]:
        """Queue a job; the answer's id is what status, cancel and result ask for."""
        server_task = tasks[task.value]
        try:
            if not 1 <= len(files) <= server_task.max_files:
                raise InputError(None, f"task {server_task.name} takes 1 to {server_task.max_files} file(s), got "
                                       f"{len(files)}")
            parsed = server_task.parse_options(parse_options_text(options))
        except InputError as error:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(error)) from None
        if jobs.full:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the server's queue is full; try again later",
                                headers={"Retry-After": "5"})
        job = jobs.new_job(server_task, parsed)
        try:
            job.inputs = await run_in_threadpool(store_inputs, files, job.folder, server_task, settings.zip_limits)
            jobs.submit(job)
        except InputError as error:
            storage.remove(job.id)
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(error)) from None
        except QueueFull as error:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error),
                                headers={"Retry-After": "5"}) from None
        except BaseException:
            storage.remove(job.id)
            raise
        return jobs.status(job)

    @app.get("/jobs/{job_id}", response_model=JobStatus, dependencies=authorised, responses=JOB_RESPONSES,
             tags=["jobs"])
    def job_status(job_id: str = JOB_ID) -> dict[str, Any]:
        """State, progress and message of a job; the result files once it succeeded."""
        return jobs.status(find(job_id))

    @app.post("/jobs/{job_id}/cancel", response_model=JobStatus, dependencies=authorised, responses=JOB_RESPONSES,
              tags=["jobs"])
    def cancel(job_id: str = JOB_ID) -> dict[str, Any]:
        """Stop a job: at once when it waits, at its next progress report when it runs; no effect once done."""
        job = find(job_id)
        jobs.cancel(job)
        return jobs.status(job)

    @app.delete("/jobs/{job_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=authorised,
                responses=JOB_RESPONSES, tags=["jobs"])
    def delete(job_id: str = JOB_ID) -> None:
        """Cancel the job if needed and delete it with its files."""
        jobs.delete(find(job_id))

    @app.get("/jobs/{job_id}/result", dependencies=authorised, tags=["jobs"],
             response_class=StreamingResponse,
             responses=JOB_RESPONSES | _problem(409, "the job has not succeeded (yet)")
             | {200: {"content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
                      "description": "the result files as one zip"}})
    def result(job_id: str = JOB_ID) -> StreamingResponse:
        """The files the matching CLI command writes, with result.json, as one zip."""
        job = find(job_id)
        if job.state is not JobState.SUCCEEDED:
            raise HTTPException(status.HTTP_409_CONFLICT, f"the job has no result: it is {job.state.value}")
        try:
            handle = open(job.result_zip, "rb")  # open now: a later delete cannot pull it from under the reply
        except FileNotFoundError:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "the job's files were deleted") from None

        def chunks() -> Iterator[bytes]:
            with handle:
                while chunk := handle.read(_COPY_CHUNK):
                    yield chunk

        return StreamingResponse(chunks(), media_type="application/zip",
                                 headers={"Content-Disposition":
                                          f'attachment; filename="radassist-{job.task.name}-{job.id[:8]}.zip"'})

    return app
