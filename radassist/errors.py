"""Errors a user can act on. The CLI prints them as one line and exits with code 2; Slicer shows them in the panel."""

from __future__ import annotations

from pathlib import Path


class RadAssistError(Exception):
    """Base class for problems caused by the input or the environment, not by a bug in RadAssist."""

    exit_code = 2


class InputError(RadAssistError):
    """A file or folder given by the user cannot be used: names the path and says what is wrong."""

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class OutputError(RadAssistError):
    """The output location cannot be written."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class DownloadError(RadAssistError):
    """A model file could not be fetched or failed its check; the message says what to do by hand."""

    def __init__(self, url: str, problem: str) -> None:
        self.url = url
        self.problem = problem
        self.model_id: str | None = None  # the catalogue model the file belongs to, when known
        super().__init__(problem)
