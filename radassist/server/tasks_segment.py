"""The ``segment-box`` task: `radassist segment box IMAGE --roi FILE.mrk.json` on uploaded files.

It is what the Slicer Segment Editor effect and the modules' "segment with LiteMedSAM" buttons run in their job
process (or on a server): the image (a volume, or a greyscale PNG for a 2-D image) and one Slicer ROI file with
one box per segment. The files are the CLI's, written by its own writer: ``segmentation.seg.nrrd`` with one
segment per ROI in the file's order, named after the ROI, and the report (volume, diameters per segment).
"""

from __future__ import annotations

from typing import Any

from radassist.errors import InputError
from radassist.io.atomic import RunOutput
from radassist.runtime.progress import Progress
from radassist.runtime.run_record import RunRecord
from radassist.server.options import OptionSpec
from radassist.server.tasks_base import SERIES, VOLUME_SUFFIXES, ServerTask, TaskInput, _read_volume

ROI_SUFFIX = ".mrk.json"


def split_inputs(inputs: list[TaskInput]) -> tuple[TaskInput, TaskInput]:
    """(image, ROI file) of the two uploads, in either order."""
    rois = [item for item in inputs if item.shown.lower().endswith(ROI_SUFFIX)]
    images = [item for item in inputs if not item.shown.lower().endswith(ROI_SUFFIX)]
    if len(rois) != 1 or len(images) != 1:
        raise InputError(None, f"send one image and one ROI file ({ROI_SUFFIX}); got {len(images)} image(s) and "
                               f"{len(rois)} ROI file(s)")
    return images[0], rois[0]


def _run_segment_box(inputs: list[TaskInput], options: dict[str, Any], device: Any, progress: Progress,
                     output: RunOutput, record: RunRecord) -> None:
    import dataclasses

    from radassist.commands import segment as command
    from radassist.interactive.boxes import boxes_from_roi_file
    from radassist.interactive.embedding_cache import EmbeddingCache
    from radassist.interactive.pipeline import segment_boxes

    image, roi = split_inputs(inputs)
    with record.timed("read"):
        if image.shown.lower().endswith(".png"):
            volume = command.read_image(image.path)
            volume = dataclasses.replace(volume, source=dataclasses.replace(volume.source, path=image.shown))
        else:
            volume = _read_volume(image, options["series"], require_3d=False)
        boxes = boxes_from_roi_file(roi.path)
    command.check_boxes(volume, boxes, roi.shown)
    config = command.box_config(options["window"], options["modality"], options["step_mm"], options["context"])
    with record.timed("load model"):
        engine = command.box_engine(None, options["backend"], options["int8"], device)
    with record.timed("segment"):
        result = segment_boxes(volume, boxes, engine, config, EmbeddingCache(), progress)
    with record.timed("write"):
        command.write_outputs(volume, result, output)
    record.summary = result.report.summary


SEGMENT_BOX = ServerTask(
    name="segment-box", title="the object in each ROI box as a segment (LiteMedSAM, box-prompted)",
    command="segment box", accepts=(*VOLUME_SUFFIXES, ".png", ROI_SUFFIX), max_files=2, run=_run_segment_box,
    models=("litemedsam",),
    options=(SERIES,
             OptionSpec("window", str, None, "intensity window: ct, ct-lung, ct-bone, percentile or LOW,HIGH "
                        "(default: by modality)", pattern=r"[A-Za-z0-9.,-]{1,40}"),
             OptionSpec("modality", str, None, "CT, MR, MG, ... (default: from the image)",
                        pattern=r"[A-Za-z]{1,10}"),
             OptionSpec("step_mm", float, 3.0, "segment slices about this far apart on thin slices (0: every "
                        "slice)", minimum=0.0, maximum=100.0),
             OptionSpec("context", float, 3.0, "encoder view around a small box, in box sizes (0: whole slice)",
                        minimum=0.0, maximum=100.0),
             OptionSpec("backend", str, "onnx", "inference engine", choices=("onnx", "torch")),
             OptionSpec("int8", bool, False, "int8 image encoder (ONNX Runtime)")))
