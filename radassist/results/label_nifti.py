"""LabelMap <-> NIfTI label image plus a JSON label table beside it (what nnU-Net, MONAI and most tools read).

A NIfTI label image holds one label per voxel, so overlapping segments cannot share a file. A one-layer label map
is written to ``name.nii.gz``; a label map with several layers is written as ``name_layer1.nii.gz``,
``name_layer2.nii.gz``... and never flattened. Each image gets a sidecar ``<stem>.json`` listing its labels:
value, name, colour, review status and terminology codes.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from radassist.errors import InputError
from radassist.io.atomic import atomic_path, full_suffix
from radassist.io.json_files import read_json
from radassist.io.sitk_bridge import array_to_sitk, geometry_of
from radassist.results.labelmap import LabelMap
from radassist.results.segments import ReviewStatus, Segment
from radassist.results.terminology import terminology_from_dict, terminology_to_dict
from radassist.volume import SourceInfo

LABEL_TABLE_FORMAT = "radassist-label-table-1"
_NIFTI_SUFFIXES = (".nii.gz", ".nii")


def _stem_and_suffix(path: Path) -> tuple[str, str]:
    suffix = full_suffix(path)
    if suffix.lower() not in _NIFTI_SUFFIXES:
        raise ValueError(f"{path}: a NIfTI label file must end in .nii.gz or .nii")
    return path.name[: -len(suffix)], suffix


def sidecar_path(nifti_path: str | Path) -> Path:
    """The label table that belongs to a NIfTI label file: same folder, same stem, ``.json``."""
    nifti_path = Path(nifti_path)
    stem, _ = _stem_and_suffix(nifti_path)
    return nifti_path.with_name(f"{stem}.json")


def layer_paths(path: str | Path, layer_count: int) -> list[Path]:
    """The files a label map with ``layer_count`` layers is written to."""
    path = Path(path)
    if layer_count == 1:
        return [path]
    stem, suffix = _stem_and_suffix(path)
    return [path.with_name(f"{stem}_layer{index + 1}{suffix}") for index in range(layer_count)]


def label_table(segments: list[Segment], layer: int | None = None) -> dict[str, Any]:
    """The JSON label table for ``segments`` (plain JSON; ``layer`` recorded when the map had several)."""
    labels = []
    for segment in sorted(segments, key=lambda s: s.label_value):
        entry: dict[str, Any] = {"value": segment.label_value, "name": segment.name,
                                 "color": [round(float(c), 6) for c in segment.color],
                                 "status": segment.status.value, "segment_id": segment.segment_id}
        if segment.terminology is not None:
            entry["terminology"] = terminology_to_dict(segment.terminology)
        labels.append(entry)
    table: dict[str, Any] = {"format": LABEL_TABLE_FORMAT, "labels": labels}
    if layer is not None:
        table["layer"] = layer
    return table


def write_labelmap_nifti(labelmap: LabelMap, path: str | Path) -> list[Path]:
    """Write one NIfTI per layer (see the module docstring) with its JSON label table; returns the image paths."""
    paths = layer_paths(path, labelmap.layer_count)
    several = labelmap.layer_count > 1
    dtype = np.uint8 if labelmap.labels.max(initial=0) <= 255 else np.uint16
    # All files are staged first and renamed together at the end, so a failure leaves none of them behind.
    with contextlib.ExitStack() as stack:
        for layer, image_path in enumerate(paths):
            segments = [s for s in labelmap.segments if s.layer == layer]
            image = array_to_sitk(labelmap.labels[layer].astype(dtype, copy=False), labelmap.geometry)
            table = label_table(segments, layer if several else None)
            temp_image = stack.enter_context(atomic_path(image_path))
            temp_table = stack.enter_context(atomic_path(sidecar_path(image_path)))
            sitk.WriteImage(image, str(temp_image), True)
            temp_table.write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    return paths


def _segments_from_table(table: Any, source: Path, layer: int) -> list[Segment]:
    if isinstance(table, dict) and "labels" in table:
        entries = table["labels"]
    elif isinstance(table, dict):  # a plain {value: name} mapping
        entries = [{"value": value, "name": name} for value, name in table.items()]
    else:
        raise InputError(source, "a label table is a JSON object with a 'labels' list or a {value: name} mapping")
    segments = []
    for entry in entries:
        try:
            terminology = terminology_from_dict(entry["terminology"]) if entry.get("terminology") else None
            segments.append(Segment(
                name=str(entry["name"]), label_value=int(entry["value"]),
                color=tuple(entry.get("color", (0.5, 0.5, 0.5))), terminology=terminology,
                status=ReviewStatus(entry.get("status", ReviewStatus.NOT_STARTED.value)), layer=layer,
                segment_id=entry.get("segment_id")))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(source, f"bad label table entry {entry!r} ({exc})") from None
    return segments


def _load_table(label_table: str | Path | dict | None, image_path: Path) -> tuple[Any, Path] | None:
    if isinstance(label_table, dict):
        return label_table, image_path
    table_path = Path(label_table) if label_table is not None else sidecar_path(image_path)
    if not table_path.is_file():
        if label_table is not None:
            raise InputError(table_path, "label table not found")
        return None
    return read_json(table_path, "label table"), table_path


def _read_layer(image_path: Path, label_table: str | Path | dict | None, layer: int):
    try:
        image = sitk.ReadImage(str(image_path))
    except RuntimeError as exc:
        raise InputError(image_path, f"not a readable NIfTI image ({str(exc).strip().splitlines()[-1]})") from None
    if image.GetNumberOfComponentsPerPixel() != 1 or image.GetDimension() != 3:
        raise InputError(image_path, "a label image must be 3-D with one value per voxel")
    array = sitk.GetArrayFromImage(image)
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.equal(np.mod(array, 1), 0)):
            raise InputError(image_path, "label values must be whole numbers")
        array = array.astype(np.int64)
    if array.min(initial=0) < 0:
        raise InputError(image_path, "label values must not be negative")
    array = array.astype(np.uint8 if array.max(initial=0) <= 255 else np.uint16)
    loaded = _load_table(label_table, image_path)
    if loaded is not None:
        segments = _segments_from_table(loaded[0], loaded[1], layer)
        missing = sorted(set(np.unique(array).tolist()) - {0} - {s.label_value for s in segments})
        if missing:
            raise InputError(loaded[1], f"label values {missing} in {image_path.name} have no entry in the table")
    else:
        segments = [Segment(name=f"Segment_{v}", label_value=int(v), layer=layer)
                    for v in np.unique(array) if v > 0]
    return array, geometry_of(image), segments


def read_labelmap_nifti(path: str | Path, label_table: str | Path | dict | None = None) -> LabelMap:
    """Read a NIfTI label file (or the ``_layerN`` files written for ``path``) with its label table.

    ``label_table`` is a JSON file or an already-loaded table; by default the sidecar beside each image is used,
    and without one every label value becomes a segment named ``Segment_<value>``.
    """
    path = Path(path)
    if full_suffix(path).lower() not in _NIFTI_SUFFIXES:
        raise InputError(path, "expected a NIfTI label file ending in .nii.gz or .nii")
    if path.is_file():
        image_paths = [path]
    else:
        stem, suffix = _stem_and_suffix(path)
        pattern = re.compile(rf"^{re.escape(stem)}_layer(\d+){re.escape(suffix)}$")
        found = sorted(((int(m.group(1)), p) for p in path.parent.glob(f"{stem}_layer*{suffix}")
                        if (m := pattern.match(p.name))), key=lambda item: item[0])
        if not found:
            raise InputError(path, "file not found (and no _layerN files beside it)")
        if [index for index, _ in found] != list(range(1, len(found) + 1)):
            raise InputError(path, f"layer files are not numbered 1..{len(found)}: {[p.name for _, p in found]}")
        image_paths = [p for _, p in found]
    arrays, segments, geometry = [], [], None
    for layer, image_path in enumerate(image_paths):
        array, layer_geometry, layer_segments = _read_layer(image_path, label_table, layer)
        if geometry is not None and not geometry.same_grid(layer_geometry):
            raise InputError(image_path, "this layer is not on the same grid as the first layer")
        geometry = geometry or layer_geometry
        arrays.append(array)
        segments.extend(layer_segments)
    dtype = np.result_type(*arrays)
    return LabelMap(labels=np.stack([a.astype(dtype) for a in arrays]), geometry=geometry, segments=segments,
                    source=SourceInfo(path=str(path)))
