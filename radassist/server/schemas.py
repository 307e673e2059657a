"""The shapes of the server's answers, for the OpenAPI spec (and so for schemathesis and any client)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: str = Field(description="'ok' while the server accepts work")
    version: str = Field(description="RadAssist version of the server")


class JobStatus(BaseModel):
    id: str = Field(description="job id (32 hex digits)")
    task: str
    state: str = Field(description="pending, running, succeeded, failed or cancelled")
    progress: float = Field(ge=0.0, le=1.0)
    message: str
    error: str | None = Field(default=None, description="why the job failed, naming the user's own files")
    device: str | None = None
    queue_position: int | None = Field(default=None, description="jobs ahead of this one while it waits")
    files: list[str] = Field(default_factory=list, description="result files (paths inside the results zip)")
    created: float
    started: float | None = None
    finished: float | None = None


class TaskInfo(BaseModel):
    name: str
    title: str
    command: str = Field(description="the CLI command that writes the same files")
    accepts: list[str] = Field(description="file extensions of the inputs")
    max_files: int
    options: list[dict[str, Any]]
    models: list[dict[str, Any]] = Field(description="catalogue models the task can use, with install state")


class Info(BaseModel):
    version: str
    versions: dict[str, str]
    tasks: list[TaskInfo]
    models: list[dict[str, Any]]
    workers: list[dict[str, Any]]
    limits: dict[str, Any]


class Problem(BaseModel):
    detail: str
