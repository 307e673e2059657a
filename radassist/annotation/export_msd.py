"""Segmentation cases (liver, lung infection) in the MSD / nnU-Net v2 layout.

``imagesTr/<case>_0000.nii.gz`` (the image, channel 0), ``labelsTr/<case>.nii.gz`` (the first layer of labels)
and ``dataset.json`` with ``channel_names``, ``labels`` (name -> value, nnU-Net v2), ``numTraining``,
``file_ending`` and the MSD-style ``training`` list. Label values are the dataset's, not the file's: the first
export fixes the table (the task's defaults, e.g. liver 1 and liver tumour 2 as LiTS and RadAssist's liver
training use), and a segment of a later case is matched to it by name, then by terminology; a new kind of
segment gets the next free value.

Overlapping segments are never flattened: a label map with overlaps has several layers, and every layer after
the first is written to ``labelsTr_layers/<case>_layer<N>.nii.gz`` (N from 2), listed in ``dataset.json`` as
``overlap_layers``. nnU-Net trains on ``labelsTr`` only; the extra layers hold the rest for trainers that use
them. When the source was a DICOM series, a DICOM SEG of the corrected labels is written to
``dicomseg/<case>.dcm``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from radassist.annotation.changes import resample_labels, segment_changes
from radassist.annotation.export import CasePlan, ExportResult, export_case, latest_entries, source_summary
from radassist.annotation.provenance import ModelInfo
from radassist.annotation.review import review_items, review_summary, unapproved_names
from radassist.errors import InputError
from radassist.io.images import write_volume
from radassist.results.labelmap import LabelMap
from radassist.results.segments import Segment
from radassist.results.terminology import CATALOGUE
from radassist.volume import Volume

SEGMENTATION_TASKS = ("liver", "lung-infection")
DEFAULT_LABELS: dict[str, dict[str, int]] = {
    "liver": {"background": 0, "liver": 1, "liver tumour": 2},  # LiTS values, radassist.liver's classes
    "lung-infection": {"background": 0},
}
FILE_ENDING = ".nii.gz"


def image_file(case: str, channel: int = 0) -> str:
    return f"imagesTr/{case}_{channel:04d}{FILE_ENDING}"


def label_file(case: str, layer: int = 0) -> str:
    return f"labelsTr/{case}{FILE_ENDING}" if layer == 0 else f"labelsTr_layers/{case}_layer{layer + 1}{FILE_ENDING}"


def _label_value(segment: Segment, table: dict[str, int]) -> int:
    """The dataset's value for a segment: by name, then by terminology (a catalogue key in the table), else a new
    value added to ``table``."""
    names = {name.lower(): value for name, value in table.items()}
    key = segment.name.strip().lower()
    if key in names:
        return names[key]
    if segment.terminology is not None:
        for name, value in table.items():
            entry = CATALOGUE.get(name.lower())
            if entry is not None and (entry.terminology.category, entry.terminology.type,
                                      entry.terminology.type_modifier) == (
                    segment.terminology.category, segment.terminology.type, segment.terminology.type_modifier):
                return value
    value = max(table.values(), default=0) + 1
    table[segment.name.strip()] = value
    return value


def dataset_layers(labels: LabelMap, table: dict[str, int]) -> list[np.ndarray]:
    """One array per layer of ``labels`` holding the dataset's label values (``table`` grows for new kinds)."""
    top = max(table.values(), default=0) + len(labels.segments)
    dtype = np.uint8 if top <= 255 else np.uint16
    layers = []
    for layer in range(labels.layer_count):
        array = np.zeros(labels.geometry.shape, dtype=dtype)
        for segment in (s for s in labels.segments if s.layer == layer):
            array[labels.mask(segment)] = _label_value(segment, table)
        layers.append(array)
    return layers


def render_dataset_json(index: Mapping[str, Any]) -> dict[str, str]:
    """dataset.json from the export index: the nnU-Net v2 keys plus the MSD ``training`` list."""
    training, overlap = [], {}
    for case, entry in latest_entries(index):
        training.append({"image": f"./{image_file(case)}", "label": f"./{label_file(case)}"})
        if entry.get("layers", 1) > 1:
            overlap[case] = [f"./{label_file(case, layer)}" for layer in range(1, entry["layers"])]
    labels = dict(sorted(index.get("labels", {}).items(), key=lambda item: item[1]))
    document = {
        "name": index.get("name", f"RadAssist {index['task']} corrections"),
        "description": "Corrected AI segmentations exported by RadAssist; provenance of every case in "
                       "provenance/<case>/<version>/provenance.json.",
        "channel_names": index.get("channel_names", {"0": "CT"}), "labels": labels,
        "numTraining": len(training), "file_ending": FILE_ENDING, "training": training,
        "overlap_layers": overlap,
        "overlap_note": "segments that overlap others are in labelsTr_layers/<case>_layerN.nii.gz with the same "
                        "label values; labelsTr holds layer 1",
    }
    return {"dataset.json": json.dumps(document, indent=2) + "\n"}


def export_segmentation(root: str | Path, task: str, case: str, image: Volume, ai: LabelMap, corrected: LabelMap,
                        *, model: ModelInfo = ModelInfo(), annotator: str = "", ai_files: Sequence[Path] = (),
                        corrected_files: Sequence[Path] = (), channel_name: str = "CT",
                        dicom_source: Path | None = None, labels: Mapping[str, int] | None = None
                        ) -> ExportResult:
    """Export one corrected segmentation case into the MSD dataset at ``root``.

    ``ai`` and ``corrected`` are brought onto the image's grid; ``dicom_source`` (the image's DICOM folder) adds a
    DICOM SEG; ``labels`` sets the label table of a new dataset (default: the task's)."""
    if task not in SEGMENTATION_TASKS:
        raise InputError(None, f"{task!r} is not a segmentation task ({', '.join(SEGMENTATION_TASKS)})")
    ai = resample_labels(ai, image.geometry)
    corrected = resample_labels(corrected, image.geometry)
    if not corrected.segments:
        raise InputError(corrected.source.path, "the corrected segmentation has no segments")

    def build(version: str, index: dict[str, Any]) -> CasePlan:
        table = dict(index.get("labels") or labels or DEFAULT_LABELS[task])
        layers = dataset_layers(corrected, table)
        files = {image_file(case): lambda path: write_volume(image, path)}
        for layer, array in enumerate(layers):
            files[label_file(case, layer)] = lambda path, array=array: write_volume(image.with_array(array), path)
        if dicom_source is not None:
            from radassist.annotation.dicom_seg import write_dicom_seg

            files[f"dicomseg/{case}.dcm"] = lambda path: write_dicom_seg(
                corrected, dicom_source, path, series_uid=image.source.series_instance_uid, model=model,
                annotator=annotator, series_description=f"RadAssist {task} {case} {version}")
        changes = {"segments": [c.to_dict() for c in segment_changes(ai, corrected)]}
        items = review_items(corrected)
        review = {"counts": review_summary(items), "not_approved": unapproved_names(corrected),
                  "statuses": {item.name: item.status.value for item in items}}
        entry = {"layers": len(layers), "segments": [s.name for s in corrected.segments],
                 "dicom_seg": dicom_source is not None}
        updates = {"labels": table, "channel_names": dict(index.get("channel_names") or {"0": channel_name})}
        return CasePlan(files=files, changes=changes, review=review, entry=entry, index_updates=updates)

    return export_case(root, task, case, build, render_dataset_json, model=model, annotator=annotator,
                       ai_files=ai_files, corrected_files=corrected_files, source=source_summary(image.source))
