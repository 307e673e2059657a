"""`result.json`: what a run read, wrote, with which versions, and how long each step took."""

from __future__ import annotations

import json
import platform
import sys
import time
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

from radassist.io.atomic import atomic_path

_VERSIONED_PACKAGES = ("radassist", "torch", "monai", "SimpleITK", "numpy", "scipy", "pydicom", "slicerio",
                       "onnxruntime")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that decide a result (missing ones are left out)."""
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _VERSIONED_PACKAGES:
        with suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


@dataclass
class RunRecord:
    """The provenance of one command run; written as ``result.json`` beside its outputs."""

    command: str
    arguments: dict[str, Any]
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=package_versions)
    started: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    finished: str | None = None

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        """Add the wall time of the block to ``timings_s[step]``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings_s[step] = round(self.timings_s.get(step, 0.0) + time.perf_counter() - start, 4)

    def write(self, path: Path) -> None:
        self.finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with atomic_path(path) as temp:
            temp.write_text(json.dumps(asdict(self), indent=2, default=str) + "\n")
