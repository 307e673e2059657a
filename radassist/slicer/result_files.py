"""A server's result folder read back into the very objects a local run gives the panel (no Slicer needed).

The server writes what the CLI command writes (see :mod:`radassist.server.tasks`); these readers turn those
files into the pipeline's result types, so a panel shows a remote result with the same ``showResult`` code as a
local one. Each reader names the file it misses or cannot read (InputError), and keeps nothing on disk: the
panel deletes the folder once it is read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radassist.errors import InputError
from radassist.io.json_files import read_json_object
from radassist.results.detections import Detections
from radassist.results.labelmap import LabelMap
from radassist.results.tables import Classification, ClassifiedImage, Report
from radassist.volume import Geometry, Volume

RECORD_NAME = "result.json"


def _file(folder: Path, name: str) -> Path:
    path = Path(folder) / name
    if not path.is_file():
        raise InputError(path, "the server's result lacks this file (is the server's RadAssist older than this "
                               "panel's?)")
    return path


def read_json(folder: Path, name: str) -> dict[str, Any]:
    return read_json_object(_file(folder, name), "result file")


def read_record(folder: Path) -> dict[str, Any]:
    """The run's result.json record (command, arguments, summary, timings)."""
    return read_json(folder, RECORD_NAME)


def read_report(folder: Path, name: str) -> Report:
    """A Report from the JSON that :func:`radassist.results.write_report` wrote."""
    document = read_json(folder, name)
    return Report(title=str(document.get("title", "")), rows=list(document.get("rows") or []),
                  summary=dict(document.get("summary") or {}), units=dict(document.get("units") or {}),
                  metadata=dict(document.get("metadata") or {}))


def read_classification(folder: Path, name: str = "report.json") -> Classification:
    """A Classification from the JSON that :func:`radassist.results.write_classification` wrote."""
    document = read_json(folder, name)

    def items(key: str) -> list[ClassifiedImage]:
        return [ClassifiedImage(str(i["image_id"]), dict(i["probabilities"]), dict(i.get("attributes") or {}))
                for i in document.get(key) or []]

    try:
        return Classification(items("images"), items("groups"), str(document.get("model", "")),
                              dict(document.get("metadata") or {}))
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(Path(folder) / name, f"not a classification report ({error})") from None


def read_segmentation(folder: Path, name: str) -> LabelMap:
    from radassist.results.seg_nrrd import read_seg_nrrd

    return read_seg_nrrd(_file(folder, name))


# -- per task ---------------------------------------------------------------------------------------------------

def read_lung_detect(folder: Path) -> Detections:
    """Nodules as ``detect_nodules`` returns them: the ROI boxes, with engine and metadata from result.json."""
    from radassist.results.markups import read_roi_markups

    boxes = read_roi_markups(_file(folder, "nodules.mrk.json"))
    summary = read_record(folder).get("summary") or {}
    metadata = {k: v for k, v in summary.items() if k not in ("nodules", "findings", "device", "seriesuid")}
    return Detections(boxes.items, boxes.geometry, boxes.source, str(summary.get("engine", boxes.engine)),
                      metadata).sorted()


@dataclass
class SegmentationRun:
    """A segmentation and its measurements as a panel shows them (the liver panel reads these four fields)."""

    labelmap: LabelMap
    report: Report
    backend: str
    seconds: float


def read_liver_segment(folder: Path) -> SegmentationRun:
    record = read_record(folder)
    summary = record.get("summary") or {}
    report = read_report(folder, "report.json")
    labelmap = read_segmentation(folder, "segmentation.seg.nrrd")
    labelmap.metadata.update({k: report.metadata[k] for k in ("model", "model_source", "model_identity")
                              if k in report.metadata})
    return SegmentationRun(labelmap, report, f"{summary.get('backend', 'server')} on the server",
                           float(sum((record.get("timings_s") or {}).values())))


def read_segment_box(folder: Path) -> SegmentationRun:
    """The segment-box task's segmentation (one segment per box, in the ROI file's order) and its report."""
    record = read_record(folder)
    summary = record.get("summary") or {}
    return SegmentationRun(read_segmentation(folder, "segmentation.seg.nrrd"), read_report(folder, "report.json"),
                           str(summary.get("engine", "LiteMedSAM")),
                           float(sum((record.get("timings_s") or {}).values())))


def read_lung_infection(folder: Path) -> Any:
    """An InfectionResult (no lung masks: the server keeps them) from infection.seg.nrrd and its report."""
    from radassist.lung.infection.pipeline import InfectionResult

    summary = read_record(folder).get("summary") or {}
    labelmap = read_segmentation(folder, "infection.seg.nrrd")
    labelmap.metadata["model"] = summary.get("model", "")
    return InfectionResult(labelmap, read_report(folder, "infection_report.json"), None,
                           str(summary.get("engine", "server")))


def read_brain_register(folder: Path, fixed: Mapping[str, Volume], moving: Mapping[str, Volume],
                        engine: str) -> Any:
    """A BrainRegistrationResult from `radassist brain register`'s files; ``fixed``/``moving`` are the inputs by
    sequence name (warped.nii.gz is the registration sequence, warped_<name>.nii.gz the others)."""
    from radassist.brain.pipeline import BrainRegistrationResult
    from radassist.io.images import read_volume
    from radassist.results.transforms import read_displacement

    names = list(moving)
    others = [n for n in names if (Path(folder) / f"warped_{n}.nii.gz").is_file()]
    first = next((n for n in names if n not in others), names[0])
    warped = {n: read_volume(_file(folder, "warped.nii.gz" if n == first else f"warped_{n}.nii.gz"),
                             require_3d=False) for n in [first] + others}
    tumours = {role: read_segmentation(folder, f"tumour_{role}.seg.nrrd")
               if (Path(folder) / f"tumour_{role}.seg.nrrd").is_file() else None for role in ("fixed", "moving")}
    report = read_report(folder, "report.json")
    return BrainRegistrationResult(read_displacement(_file(folder, "transform.h5")), warped, tumours["fixed"],
                                   tumours["moving"], read_volume(_file(folder, "jacobian.nii.gz"), require_3d=False),
                                   report, str(report.summary.get("engine", engine)), fixed[first], moving[first],
                                   first)


# -- mammography ------------------------------------------------------------------------------------------------

@dataclass
class ViewDisplay:
    """What the panel draws on one view: a saliency map per class (0..1) and the patches as boxes."""

    saliency: dict[str, Volume]
    patches: Detections


@dataclass
class MammoDisplay:
    classification: Classification
    views: dict[str, ViewDisplay]


def regrid_detections(detections: Detections, source: Geometry, target: Geometry) -> Detections:
    """Boxes placed on ``source``'s grid moved to the same voxels of ``target`` (same shape, other placement):
    how a server's boxes on a PNG's 1 mm pixels land on the Slicer node's own grid."""
    import numpy as np

    scale = np.asarray(target.spacing, dtype=float) / np.asarray(source.spacing, dtype=float)
    items = [dataclasses.replace(d, center=tuple(target.ijk_to_world(source.world_to_ijk(np.asarray(d.center)))),
                                 size=tuple(np.asarray(d.size) * scale)) for d in detections.items]
    return Detections(items, target, detections.source, detections.engine, dict(detections.metadata))


def png_grid(volume: Volume) -> Geometry:
    """Where the server places a PNG view: 1 mm pixels at the origin (a PNG has no spacing)."""
    return Geometry(shape=volume.geometry.shape)


def read_mammo_classify(folder: Path, volumes: Mapping[str, Volume]) -> MammoDisplay:
    """The server's report, saliency maps and patches, moved onto the grids of the views that were sent."""
    from radassist.io.images import read_volume
    from radassist.mammo.pipeline import CLASS_NAMES
    from radassist.results.markups import read_roi_markups

    classification = read_classification(folder)
    views = {}
    for item in classification.images:
        grid = volumes[item.image_id]
        saliency = {}
        for name in CLASS_NAMES:
            path = Path(folder) / item.image_id / f"saliency_{name}.nrrd"
            if path.is_file():
                sent = read_volume(path, require_3d=False)
                saliency[name] = grid.with_array(sent.array.reshape(grid.shape).astype("float32"))
        patches = read_roi_markups(_file(folder, f"{item.image_id}/patches.mrk.json"))
        views[item.image_id] = ViewDisplay(saliency, regrid_detections(patches, png_grid(grid), grid.geometry))
    return MammoDisplay(classification, views)


def mammo_png_pixels(volume: Volume) -> Any:
    """A one-slice view as 16-bit PNG pixels for the server (which takes DICOM or PNG mammograms): unchanged when
    they are whole numbers in 0..65535, else stretched linearly onto that range (GMIC standardises every image, so
    a linear change of grey values does not change its answer)."""
    import numpy as np

    pixels = np.asarray(volume.array[0], dtype=np.float64)
    low, high = float(pixels.min()), float(pixels.max())
    if low >= 0 and high <= 65535 and np.array_equal(pixels, np.round(pixels)):
        return pixels.astype(np.uint16)
    return np.round((pixels - low) / max(high - low, 1e-12) * 65535.0).astype(np.uint16)

