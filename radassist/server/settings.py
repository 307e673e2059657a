"""What an operator decides when starting `radassist serve`: address, token, limits, devices, storage.

One frozen dataclass so the app factory, the job queue and the tests read the same values, and so a test can
start a server with small limits without touching the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

MIB = 2**20


@dataclass(frozen=True)
class ZipLimits:
    """Refuse zipped DICOM series that would fill the disk or hide a zip bomb."""

    max_members: int = 4000                    # files in one archive (a CT series rarely has more than ~1500)
    max_total_bytes: int = 4 * 1024 * MIB      # everything unpacked together
    max_member_bytes: int = 256 * MIB          # one unpacked file
    max_ratio: float = 200.0                   # unpacked / packed size of one member; DICOM compresses ~2-10x


@dataclass(frozen=True)
class ServerSettings:
    """Limits and resources of one server process."""

    token: str                                 # the bearer token every request but /health must carry
    max_upload_bytes: int = 1024 * MIB         # whole request body of a submission; larger gets 413
    queue_size: int = 8                        # jobs waiting per server (running ones not counted); full gets 503
    devices: tuple[str, ...] = ("cpu",)        # one worker per entry, each runs its jobs one after another
    storage_root: Path | None = None           # job folders live here; None: a fresh private temp folder
    keep_finished_jobs: int = 64               # finished jobs (and their files) kept for download, oldest dropped
    zip_limits: ZipLimits = field(default_factory=ZipLimits)
    poll_interval_s: float = 0.05              # how often a worker collects a running job's progress

    def __post_init__(self) -> None:
        if len(self.token) < 16:
            raise ValueError("the server token must be at least 16 characters")
        if self.max_upload_bytes < 1 or self.queue_size < 1 or not self.devices or self.keep_finished_jobs < 1:
            raise ValueError("upload limit, queue size, devices and kept jobs must all be positive")
