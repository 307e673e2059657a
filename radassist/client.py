"""The client of a RadAssist server (`radassist serve`), shared by the CLI's ``--server`` and the Slicer panels.

One ``requests`` session: submit files for a task, follow the job's progress (a :class:`Progress` whose cancel
cancels the job on the server), download the result files into a folder all at once, and turn every HTTP or
network failure into a :class:`ServerError` that says what to do: the server is not reachable, the token is
wrong, the upload is too large, the queue is full. A DICOM folder is zipped on the fly; nothing here imports
FastAPI, so a Slicer workstation needs only requests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import requests

from radassist.errors import InputError, RadAssistError
from radassist.io.atomic import RunOutput, refuse_non_empty, temporary_folder
from radassist.runtime import paths
from radassist.runtime.progress import Cancelled, Progress

MIN_TOKEN_CHARS = 16
_CHUNK = 1024 * 1024


class ServerError(RadAssistError):
    """The server could not be used or refused the request; the message says why and what to do."""


class ServerUnavailable(ServerError):
    """No server answers at the address (offline, wrong address or port, not started)."""


class JobFailed(ServerError):
    """The job ran on the server and failed; the message is the server's, naming the user's own files."""


def default_token_file() -> Path:
    """Where `radassist serve` keeps the token it generates, and where the client looks when given none."""
    return paths.cache_dir() / "server-token"


def read_token_file(path: str | Path) -> str:
    """The token in ``path`` (surrounding whitespace ignored); InputError when missing, empty or too short."""
    path = Path(path)
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise InputError(path, "token file not found (the server's administrator gives it out; a server started "
                               "without --token-file writes one to " + str(default_token_file()) + ")") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read the token file ({exc})") from None
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
        raise InputError(path, f"the token must be one word of at least {MIN_TOKEN_CHARS} characters")
    return token


def token_from_environment() -> str | None:
    """``$RADASSIST_SERVER_TOKEN`` when set (for scripts and containers that pass secrets as variables)."""
    return os.environ.get("RADASSIST_SERVER_TOKEN") or None


def zip_folder(folder: Path, target: Path) -> Path:
    """Zip every file under ``folder`` (a DICOM series) with paths relative to it."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise InputError(folder, "the folder holds no files to send")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(folder).as_posix())
    return target


def _detail(response: requests.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list):  # FastAPI's validation errors
        detail = "; ".join(str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in detail)
    return str(detail or response.text[:300] or response.reason)


_REFUSALS = {  # what an error status means for the user, by status code
    401: "the server at {url} refused the token (401): check the token file or the token in the settings",
    413: "the upload is too large for the server at {url} (413): {detail}",
    503: "the server at {url} is busy, its queue is full (503); try again in a minute",
    400: "the server refused the request: {detail}",
}


class RadAssistClient:
    """Talk to one server. The token is ``token``, else read from ``token_file``, else
    ``$RADASSIST_SERVER_TOKEN``, else read from :func:`default_token_file`."""

    def __init__(self, url: str, token: str | None = None, token_file: str | Path | None = None,
                 timeout_s: float = 60.0, session: requests.Session | None = None) -> None:
        url = url.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise InputError(None, f"the server address must start with http:// or https://, got {url!r}")
        self.url = url
        if token is None:
            token = read_token_file(token_file) if token_file else (token_from_environment()
                                                                    or read_token_file(default_token_file()))
        self.token = token
        self.timeout_s = timeout_s
        self.session = session or requests.Session()

    # -- plumbing ---------------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, auth: bool = True, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if auth else {}
        try:
            response = self.session.request(method, self.url + path, headers=headers,
                                            timeout=kwargs.pop("timeout", self.timeout_s), **kwargs)
        except requests.exceptions.Timeout:
            raise ServerUnavailable(f"the RadAssist server at {self.url} did not answer within {self.timeout_s:g} s"
                                    ) from None
        except requests.exceptions.ConnectionError as exc:
            raise ServerUnavailable(f"cannot reach the RadAssist server at {self.url}: is it running, and are the "
                                    f"address and port right? ({type(exc).__name__})") from None
        except requests.exceptions.RequestException as exc:
            raise ServerError(f"talking to the RadAssist server at {self.url} failed: {exc}") from None
        if response.ok:
            return response
        template = _REFUSALS.get(response.status_code, "the server at {url} answered {code}: {detail}")
        raise ServerError(template.format(url=self.url, code=response.status_code, detail=_detail(response)))

    # -- questions --------------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """The unauthenticated liveness answer; ServerUnavailable when nothing answers."""
        return self._request("GET", "/health", auth=False, timeout=min(self.timeout_s, 10.0)).json()

    def info(self) -> dict[str, Any]:
        """Versions, tasks with options and models, workers and limits."""
        return self._request("GET", "/info").json()

    def status(self, job_id: str) -> dict[str, Any]:
        return self._request("GET", f"/jobs/{job_id}").json()

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._request("POST", f"/jobs/{job_id}/cancel").json()

    def delete(self, job_id: str) -> None:
        self._request("DELETE", f"/jobs/{job_id}")

    # -- a job ------------------------------------------------------------------------------------------------
    def submit(self, task: str, inputs: Sequence[str | Path], options: dict[str, Any] | None = None) -> dict[str, Any]:
        """Upload ``inputs`` (files; a folder is sent as a zipped DICOM series) for ``task``; the job's status."""
        import json

        inputs = [Path(p) for p in inputs]
        for path in inputs:
            if not path.exists():
                raise InputError(path, "does not exist")
        with temporary_folder(prefix="radassist-upload-") as scratch, contextlib.ExitStack() as handles:
            parts = []
            for index, path in enumerate(inputs):
                if path.is_dir():
                    name = (path.name or "dicom") + ".zip"
                    path = zip_folder(path, Path(scratch) / f"{index}.zip")
                else:
                    name = path.name
                parts.append(("files", (name, handles.enter_context(open(path, "rb")), "application/octet-stream")))
            data = {"task": task, "options": json.dumps(options or {})}
            return self._request("POST", "/jobs", files=parts, data=data).json()

    def wait(self, job_id: str, progress: Progress | None = None, poll_interval_s: float = 0.25,
             timeout_s: float | None = None) -> dict[str, Any]:
        """Follow the job until it ends; its progress drives ``progress``, whose cancel cancels the job.

        Returns the final status of a job that succeeded; raises JobFailed, Cancelled or ServerError otherwise.
        """
        progress = progress or Progress()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            state = self.status(job_id)
            try:
                if state["state"] == "pending" and state.get("queue_position") is not None:
                    progress.update(0.0, f"waiting, {state['queue_position']} job(s) ahead")
                else:
                    progress.update(float(state["progress"]), state["message"])
            except Cancelled:
                self.cancel(job_id)
                raise
            if state["state"] == "succeeded":
                return state
            if state["state"] == "failed":
                raise JobFailed(f"{state.get('error') or 'the job failed'} (on the server at {self.url})")
            if state["state"] == "cancelled":
                raise Cancelled()
            if deadline is not None and time.monotonic() > deadline:
                raise ServerError(f"job {job_id} did not finish within {timeout_s:g} s (it goes on on the server)")
            time.sleep(poll_interval_s)

    def download(self, job_id: str, folder: str | Path, overwrite: bool = False) -> list[Path]:
        """Put the job's result files into ``folder``: all of them, or none when anything goes wrong. A folder
        that already holds files is refused unless ``overwrite``."""
        response = self._request("GET", f"/jobs/{job_id}/result", stream=True)
        with temporary_folder(prefix="radassist-download-") as scratch:
            archive = Path(scratch) / "result.zip"
            with open(archive, "wb") as handle:
                for chunk in response.iter_content(_CHUNK):
                    handle.write(chunk)
            try:
                with zipfile.ZipFile(archive) as zipped, RunOutput(folder, overwrite=overwrite) as output:
                    for info in zipped.infolist():
                        if info.is_dir():
                            continue
                        relative = PurePosixPath(info.filename)
                        if relative.is_absolute() or ".." in relative.parts or "\\" in info.filename:
                            raise ServerError(f"the server's result holds an unsafe file name {info.filename!r}")
                        with zipped.open(info) as source, open(output.path(relative), "wb") as target:
                            shutil.copyfileobj(source, target, _CHUNK)
                    published = output
            except zipfile.BadZipFile as exc:
                raise ServerError(f"the server's result for job {job_id} is not a readable zip ({exc})") from None
        return sorted(published.published)

    def run(self, task: str, inputs: Sequence[str | Path], options: dict[str, Any] | None, out: str | Path,
            progress: Progress | None = None, keep_on_server: bool = False, overwrite: bool = False) -> list[Path]:
        """Submit, wait, download into ``out``; the job is deleted on the server afterwards unless kept. A
        non-empty ``out`` is refused before anything is sent, unless ``overwrite``."""
        if not overwrite:
            refuse_non_empty(Path(out))
        job = self.submit(task, inputs, options)
        try:
            self.wait(job["id"], progress)
            return self.download(job["id"], out, overwrite)
        finally:
            if not keep_on_server:
                with contextlib.suppress(ServerError):
                    self.delete(job["id"])


def upload_consent_text(url: str, names: Sequence[str]) -> str:
    """What a user is asked before image data leaves the machine (the Slicer panels show it)."""
    listed = ", ".join(names) or "the input images"
    return (f"RadAssist will send {listed} to the server at {url} and run the task there.\n\n"
            "Only the voxels and their geometry are sent (as NRRD), no DICOM header fields; the image itself can "
            "still identify a patient. The server keeps the files until the result is downloaded, then deletes "
            "them.\n\nSend only if this server is approved for patient data at your site."
            + ("" if url.startswith("https://") or _is_loopback_url(url) else
               "\n\nWarning: this address is not https://, so the images travel unencrypted."))


def _is_loopback_url(url: str) -> bool:
    from urllib.parse import urlsplit

    return (urlsplit(url).hostname or "") in ("127.0.0.1", "localhost", "::1")
