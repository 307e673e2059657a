"""Where a job's files live on the server, and how client files get there without a client path ever being used.

Every job gets a folder named by its server-made id under a private root the server creates and removes. An
upload is stored under a server-made name (``input-0.nrrd``); the client's file name only decides the format
(by its extension, from a fixed list) and appears in messages. A zipped DICOM series is unpacked member by
member into numbered files: member names are checked (no absolute paths, no ``..``, no links) only to refuse
archives built to attack, never used as paths, and sizes are counted while unpacking so a zip bomb that lies in
its headers is stopped too.
"""

from __future__ import annotations

import re
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath

from radassist.errors import InputError
from radassist.io.atomic import full_suffix, make_temp_dir
from radassist.server.settings import ZipLimits

JOB_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
_CHUNK = 1024 * 1024
_UNPRINTABLE = re.compile(r"[^\w .,()+@=-]", re.ASCII)


def display_name(client_name: str | None, fallback: str = "upload") -> str:
    """A client's file name made safe to show in a message: last path part, plain characters, short."""
    if not client_name:
        return fallback
    last = re.split(r"[/\\]", client_name)[-1]
    cleaned = _UNPRINTABLE.sub("_", last).strip(" .")[:100]
    return cleaned or fallback


def input_suffix(client_name: str | None, accepted: tuple[str, ...]) -> str:
    """The accepted extension of an uploaded file (lower case, '.nii.gz' kept whole); InputError otherwise."""
    shown = display_name(client_name)
    suffix = full_suffix(Path(shown)).lower() if client_name else ""
    if suffix not in accepted:
        raise InputError(shown, f"unsupported file type '{suffix or '(none)'}'; this task accepts "
                                f"{', '.join(accepted)}")
    return suffix


class JobStorage:
    """A private root folder holding one folder per job; removed with everything in it on :meth:`close`."""

    def __init__(self, parent: Path | None = None) -> None:
        if parent is not None:
            parent.mkdir(parents=True, exist_ok=True)
        self.root = make_temp_dir(parent, prefix="radassist-server-")  # swept by the next start if killed

    def folder(self, job_id: str) -> Path:
        """The folder of ``job_id`` (a server-made id; anything else is a programming error)."""
        if not JOB_ID_PATTERN.match(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.root / job_id

    def create(self, job_id: str) -> Path:
        folder = self.folder(job_id)
        (folder / "inputs").mkdir(parents=True)
        return folder

    def remove(self, job_id: str) -> None:
        shutil.rmtree(self.folder(job_id), ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _unsafe_member(name: str) -> str | None:
    """Why a member name is refused, or None. Names are never used as paths; these are signs of an attack."""
    if "\x00" in name:
        return "a name with a NUL character"
    for flavour in (PurePosixPath(name), PureWindowsPath(name)):
        if flavour.is_absolute() or flavour.drive or flavour.anchor:
            return f"an absolute path ({display_name(name)})"
        if ".." in flavour.parts:
            return f"a path that climbs out of the archive ({display_name(name)})"
    return None


def check_zip_members(infos: list[zipfile.ZipInfo], shown: str, limits: ZipLimits) -> list[zipfile.ZipInfo]:
    """The file members to unpack; InputError for unsafe names, links, encryption or sizes beyond the limits."""
    files = [info for info in infos if not info.is_dir()]
    if not files:
        raise InputError(shown, "the zip archive holds no files")
    if len(files) > limits.max_members:
        raise InputError(shown, f"the zip archive holds {len(files)} files; at most {limits.max_members} are "
                                "accepted")
    total = 0
    for info in files:
        problem = _unsafe_member(info.filename)
        if problem:
            raise InputError(shown, f"the zip archive holds {problem}; refused")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise InputError(shown, f"the zip archive holds a symbolic link ({display_name(info.filename)}); "
                                    "refused")
        if info.flag_bits & 0x1:
            raise InputError(shown, "the zip archive is encrypted")
        if info.file_size > limits.max_member_bytes:
            raise InputError(shown, f"a file in the zip archive unpacks to {info.file_size} bytes, more than the "
                                    f"{limits.max_member_bytes} accepted")
        if info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise InputError(shown, "the zip archive is compressed far beyond what DICOM allows (a zip bomb?); "
                                    "refused")
        total += info.file_size
    if total > limits.max_total_bytes:
        raise InputError(shown, f"the zip archive unpacks to {total} bytes, more than the "
                                f"{limits.max_total_bytes} accepted")
    return files


def extract_zip(archive: Path, folder: Path, shown: str, limits: ZipLimits) -> int:
    """Unpack the files of ``archive`` into ``folder`` as 00000.dcm, 00001.dcm, ...; returns how many.

    Sizes are counted as bytes come out, so headers that understate them do not help a zip bomb.
    """
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = check_zip_members(zipped.infolist(), shown, limits)
            folder.mkdir(parents=True, exist_ok=True)
            total = 0
            for index, info in enumerate(members):
                written = 0
                with zipped.open(info) as source, open(folder / f"{index:05d}.dcm", "wb") as target:
                    while chunk := source.read(_CHUNK):
                        written += len(chunk)
                        total += len(chunk)
                        if written > min(info.file_size, limits.max_member_bytes) or \
                                total > limits.max_total_bytes:
                            raise InputError(shown, "a file in the zip archive unpacks to more than its header "
                                                    "says (a zip bomb?); refused")
                        target.write(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError) as exc:
        raise InputError(shown, f"is not a readable zip archive ({exc})") from None
    return len(members)
