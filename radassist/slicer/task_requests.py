"""What each panel runs: the task name, its options (named as the server's and the CLI's), the input files, and
how the result folder is read back into the local result type. A panel's job process runs the request here or on a
RadAssist server; either way the same files come back and the same reader turns them into the result the panel
shows. No Slicer here, so requests are tested against the real job runner and a real server.

The task names are those of :mod:`radassist.server.tasks`; ``brain-register`` and ``lung-infection`` follow the CLI
commands ``radassist brain register`` and ``radassist lung infection``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from radassist.volume import Volume

LUNG_DETECT = "lung-detect"
LUNG_INFECTION = "lung-infection"
LIVER_SEGMENT = "liver-segment"
BRAIN_REGISTER = "brain-register"
MAMMO_CLASSIFY = "mammo-classify"
SEGMENT_BOX = "segment-box"


def lung_detect_options(engine: str, threshold: float) -> dict[str, Any]:
    """The panel's engine ("detr" or "classic") and probability threshold (0..1)."""
    return {"engine": engine, "threshold": float(threshold)}


def architecture_options(architecture: str) -> dict[str, Any]:
    """The network the liver and lung-infection panels chose."""
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


def mammo_request(views: Mapping[str, Volume], tta: int, model: str | None = None) -> "TaskRequest":
    """An exam (any subset of the four views, by view name) for the server's mammo-classify with the model chosen
    in the panel (None: the task's default); the answer is placed back on the views' own grids."""
    from radassist.slicer.result_files import read_mammo_classify

    options = mammo_options(list(views), tta) | ({"model": model} if model else {})
    return TaskRequest([named(volume, view) for view, volume in views.items()], options,
                       lambda folder: read_mammo_classify(folder, views), MAMMO_CLASSIFY, write_mammo_inputs)


def input_name(volume: Volume, index: int = 0) -> str:
    """What a volume is called where it goes (consent prompt, job, server): its file's name, else its node's."""
    if volume.source.path:
        return Path(str(volume.source.path)).name
    return volume.source.series_description or f"volume{index}"


def input_stem(volume: Volume, index: int) -> str:
    """The file name (without suffix) a volume is sent under: its name, made safe for a file system."""
    stem = input_name(volume, index).split(".")[0]
    return re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_") or f"volume{index}"


def write_nrrd_inputs(volumes: Sequence[Volume], folder: Path) -> list[tuple[Path, str]]:
    """Each volume as ``<n>/<name>.nrrd`` (the file name is what the task sees; the sub-folder keeps equal names
    apart)."""
    from radassist.io import write_volume

    written = []
    for index, volume in enumerate(volumes):
        target = Path(folder) / str(index) / f"{input_stem(volume, index)}.nrrd"
        write_volume(volume, target)
        written.append((target, target.name))
    return written


def write_mammo_inputs(volumes: Sequence[Volume], folder: Path) -> list[tuple[Path, str]]:
    """Each view as ``<view>.png`` (16-bit greyscale), the form the mammography task reads."""
    paths = write_mammo_pngs({volume.source.path: volume for volume in volumes}, Path(folder))
    return [(path, path.name) for path in paths]


@dataclasses.dataclass
class TaskRequest:
    """One panel run: the volumes (named as the task will see them), the task's options, how they are written as
    input files, and the reader that turns the result folder into the local result type."""

    volumes: list[Volume]
    options: dict[str, Any]
    read: Callable[[Path], Any]
    task: str = ""  # the task; a panel fills in its own when empty
    writer: Callable[[Sequence[Volume], Path], list[tuple[Path, str]]] = write_nrrd_inputs

    def write_inputs(self, folder: Path) -> list[tuple[Path, str]]:
        Path(folder).mkdir(parents=True, exist_ok=True)
        return self.writer(self.volumes, Path(folder))


def prepare_job(request: TaskRequest, folder: Path, device: str = "auto", server_url: str | None = None,
                token: str | None = None) -> None:
    """Write ``request``'s input files and request.json into a job folder, for
    :mod:`radassist.runtime.job_runner` to run here or on the server at ``server_url``."""
    from radassist.runtime import job_folder

    inputs = request.write_inputs(Path(folder) / job_folder.INPUTS)
    job_request = job_folder.TaskJobRequest(
        task=request.task, options=dict(request.options), device=device, server=server_url,
        inputs=[job_folder.JobInput(str(path.relative_to(folder)), name) for path, name in inputs])
    job_folder.write_request(Path(folder), job_request, token=token)


def run_request(request: TaskRequest, folder: Path, python: str, device: str = "auto",
                server_url: str | None = None, token: str | None = None, timeout_s: float | None = None,
                env: dict[str, str] | None = None) -> Any:
    """Run ``request`` to the end in a job process of ``python`` and read its result (scripts and tests; a panel
    polls the job instead of waiting)."""
    from radassist.runtime.jobs import JobDone, JobFailed
    from radassist.runtime.process_jobs import ProcessJob, task_job_argv

    prepare_job(request, Path(folder), device, server_url, token)
    events = ProcessJob(task_job_argv(python, Path(folder)), Path(folder), env).start().wait(timeout_s)
    final = events[-1]
    if isinstance(final, JobFailed):
        raise final.error
    if not isinstance(final, JobDone):
        raise RuntimeError(f"the {request.task} job ended without a result")
    return request.read(final.result)


def sample_request(kind: str, seed: int) -> "TaskRequest":
    """A panel's synthetic sample, built in the job process and read back as the engine's phantom object."""
    from radassist.runtime.job_runner import SAMPLE, SAMPLE_FILE

    def read(folder: Path) -> Any:
        import pickle

        with open(Path(folder) / SAMPLE_FILE, "rb") as handle:
            return pickle.load(handle)  # noqa: S301 -- written by this RadAssist's own job in its private folder

    return TaskRequest([], {"kind": kind, "seed": int(seed)}, read, SAMPLE)


def read_server_check(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The server's health and info, as the job process saved them for "Test connection"."""
    from radassist.io.json_files import read_json_object

    document = read_json_object(Path(folder) / "server.json", "server check")
    return dict(document.get("health") or {}), dict(document.get("info") or {})


def connection_text(health: dict[str, Any], info: dict[str, Any], task: str) -> str:
    """What "Test connection" reports: the server's version and whether it offers this panel's task."""
    tasks = [t.get("name") for t in info.get("tasks") or [] if isinstance(t, dict)]
    version = info.get("version") or health.get("version") or "?"
    if task in tasks:
        return f"Connected to RadAssist {version}; it offers {task}."
    return (f"Connected to RadAssist {version}, but it does not offer {task} (it offers "
            f"{', '.join(map(str, tasks)) or 'nothing'}): update the server.")


def brain_request(fixed: Mapping[str, Volume], moving: Mapping[str, Volume], engine: str,
                  wrap: Callable[[Any], Any] = lambda result: result) -> TaskRequest:
    """A registration for the server's brain-register; the answer is read back as a BrainRegistrationResult
    (handed to ``wrap``, which adds what the panel's showResult also needs)."""
    from radassist.slicer.result_files import read_brain_register

    return TaskRequest(brain_volumes(fixed, moving), brain_options(engine, list(fixed), list(moving)),
                       lambda folder: wrap(read_brain_register(folder, fixed, moving, engine)), BRAIN_REGISTER)


def box_roi_writer(boxes: Sequence[Any]) -> Callable[[Sequence[Volume], Path], list[tuple[Path, str]]]:
    """Writes the image as NRRD and ``boxes`` (BoxPrompts, LPS) as ``boxes.mrk.json``, one ROI per box in order:
    the two files the segment-box task reads."""
    from radassist.results import Detection, Detections, write_roi_markups

    def write(volumes: Sequence[Volume], folder: Path) -> list[tuple[Path, str]]:
        written = write_nrrd_inputs(volumes, folder)
        path = Path(folder) / "boxes.mrk.json"
        write_roi_markups(Detections([Detection(box.center_lps, box.size_mm, 1.0, box.name) for box in boxes]), path)
        return written + [(path, path.name)]

    return write


def segment_box_request(volume: Volume, boxes: Sequence[Any], options: Mapping[str, Any] | None = None) -> TaskRequest:
    """LiteMedSAM on ``volume`` for each box (one segment per box, in order); read back as a SegmentationRun."""
    from radassist.errors import InputError
    from radassist.slicer.result_files import read_segment_box

    if not boxes:
        raise InputError(input_name(volume), "there is no box to segment")
    return TaskRequest([volume], dict(options or {}), read_segment_box, SEGMENT_BOX, box_roi_writer(list(boxes)))
