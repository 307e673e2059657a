"""What each panel asks a RadAssist server for: the task name, its options (named as the CLI's), the files sent,
and how the answer is read back into the local result type. No Slicer here, so it is tested against a real server.

The server's task names are those of :mod:`radassist.server.tasks`; ``brain-register`` and ``lung-infection``
follow the CLI commands ``radassist brain register`` and ``radassist lung infection``.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from radassist.runtime.progress import Progress
from radassist.volume import Volume

LUNG_DETECT = "lung-detect"
LUNG_INFECTION = "lung-infection"
LIVER_SEGMENT = "liver-segment"
BRAIN_REGISTER = "brain-register"
MAMMO_CLASSIFY = "mammo-classify"

T = TypeVar("T")


def lung_detect_options(engine: str, threshold: float) -> dict[str, Any]:
    """The panel's engine ("detr" or "classic") and probability threshold (0..1)."""
    return {"engine": engine, "threshold": float(threshold)}


def liver_options(architecture: str) -> dict[str, Any]:
    return {"arch": architecture}


def infection_options(architecture: str) -> dict[str, Any]:
    return {"arch": architecture}


BRAIN_SEQUENCES = ("flair", "t1", "t1ce", "t2")


def brain_options(engine: str, fixed: Sequence[str], moving: Sequence[str]) -> dict[str, Any]:
    """The engine, and per file (in :func:`brain_volumes` order) its role and, for a known name, its sequence."""
    names = list(fixed) + list(moving)
    return {"engine": engine, "role": ["fixed"] * len(fixed) + ["moving"] * len(moving),
            "sequence": [name if name in BRAIN_SEQUENCES else None for name in names]}


def mammo_options(views: Sequence[str], tta: int) -> dict[str, Any]:
    """Per file (in the order sent) its laterality and view, from the panel's view names "L-CC", ..."""
    return {"laterality": [view.split("-")[0] for view in views], "view": [view.split("-")[1] for view in views],
            "tta": int(tta)}


def named(volume: Volume, name: str) -> Volume:
    """The volume sent under ``name`` (the server sees only the file name; it never sees a local path)."""
    return dataclasses.replace(volume, source=dataclasses.replace(volume.source, path=name))


def brain_volumes(fixed: Mapping[str, Volume], moving: Mapping[str, Volume]) -> list[Volume]:
    """The fixed sequences, then the moving ones, named ``fixed_<sequence>`` / ``moving_<sequence>``."""
    return [named(volume, f"{role}_{name}") for role, images in (("fixed", fixed), ("moving", moving))
            for name, volume in images.items()]


def write_mammo_pngs(volumes: Mapping[str, Volume], folder: Path) -> list[Path]:
    """Each view as ``<view>.png`` (16-bit greyscale), the form the server's mammography task reads."""
    from PIL import Image

    from radassist.errors import InputError
    from radassist.slicer.result_files import mammo_png_pixels

    paths = []
    for view, volume in volumes.items():
        if volume.shape[0] != 1:
            raise InputError(volume.source.path or view, f"is a {volume.shape[0]}-slice volume; a mammogram view "
                                                         "is one 2-D image")
        path = Path(folder) / f"{view}.png"
        Image.fromarray(mammo_png_pixels(volume)).save(path)
        paths.append(path)
    return paths


def run_and_read(client: Any, task: str, volumes: Sequence[Volume], options: dict[str, Any] | None,
                 read: Callable[[Path], T], progress: Progress | None = None) -> T:
    """Run ``task`` on the server with ``volumes`` (sent as NRRD), read its files with ``read`` and delete them."""
    from radassist.client import run_on_volumes

    with tempfile.TemporaryDirectory(prefix="radassist-remote-") as scratch:
        out = Path(scratch) / "result"
        run_on_volumes(client, task, volumes, options, out, progress)
        return read(out)


def mammo_request(views: Mapping[str, Volume], tta: int) -> "RemoteRequest":
    """An exam (any subset of the four views, by view name) for the server's mammo-classify; the answer is placed
    back on the views' own grids."""
    from radassist.slicer.result_files import read_mammo_classify

    return RemoteRequest([named(volume, view) for view, volume in views.items()], mammo_options(list(views), tta),
                         lambda folder: read_mammo_classify(folder, views), MAMMO_CLASSIFY)


def run_mammo_and_read(client: Any, request: "RemoteRequest", progress: Progress | None = None) -> Any:
    """Run a :func:`mammo_request`: the views go as ``<view>.png`` (the server reads DICOM or PNG mammograms)."""
    with tempfile.TemporaryDirectory(prefix="radassist-remote-") as scratch:
        sent = Path(scratch) / "sent"
        sent.mkdir()
        out = Path(scratch) / "result"
        views = {volume.source.path: volume for volume in request.volumes}
        client.run(request.task, write_mammo_pngs(views, sent), request.options, out, progress)
        return request.read(out)


@dataclasses.dataclass
class RemoteRequest:
    """One panel run sent to the server: the volumes (named as the server will see them), the task's options,
    and the reader that turns the returned folder into the local result type."""

    volumes: list[Volume]
    options: dict[str, Any]
    read: Callable[[Path], Any]
    task: str = ""  # the server task, when not the panel's own (LungTumorAI's infection part)


def connection_text(health: dict[str, Any], info: dict[str, Any], task: str) -> str:
    """What "Test connection" reports: the server's version and whether it offers this panel's task."""
    tasks = [t.get("name") for t in info.get("tasks") or [] if isinstance(t, dict)]
    version = info.get("version") or health.get("version") or "?"
    if task in tasks:
        return f"Connected to RadAssist {version}; it offers {task}."
    return (f"Connected to RadAssist {version}, but it does not offer {task} (it offers "
            f"{', '.join(map(str, tasks)) or 'nothing'}): update the server.")


def brain_request(fixed: Mapping[str, Volume], moving: Mapping[str, Volume], engine: str,
                  wrap: Callable[[Any], Any] = lambda result: result) -> RemoteRequest:
    """A registration for the server's brain-register; the answer is read back as a BrainRegistrationResult
    (handed to ``wrap``, which adds what the panel's showResult also needs)."""
    from radassist.slicer.result_files import read_brain_register

    return RemoteRequest(brain_volumes(fixed, moving), brain_options(engine, list(fixed), list(moving)),
                         lambda folder: wrap(read_brain_register(folder, fixed, moving, engine)), BRAIN_REGISTER)
