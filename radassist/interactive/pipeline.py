"""Box-prompted segmentation of a Volume: the one entry point the CLI, Slicer jobs and the benchmarks call.

``segment_boxes(volume, boxes, engine)`` turns each box (LPS mm, see :mod:`radassist.interactive.boxes`) into
one segment: a 2-D image gets the mask of its one slice, a volume gets the slice-by-slice propagation of
:mod:`radassist.interactive.propagate`. Slices are the canonical axial slices (rows anterior -> posterior,
columns right -> left) whatever order the file stores them in; the masks go back onto the input grid. Slice
embeddings come from :class:`~radassist.interactive.embeddings.SliceEmbeddings`, so with a disk cache a run
after moving a box encodes nothing that was encoded before.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from radassist.interactive.boxes import BoxPrompt, VoxelBox, slice_orientation, voxel_box
from radassist.interactive.crops import SliceCrop, crop_for_box
from radassist.interactive.embedding_cache import EmbeddingCache
from radassist.interactive.embeddings import SliceEmbeddings
from radassist.interactive.engine import LiteMedSamEngine
from radassist.interactive.postprocess import logits_to_mask
from radassist.interactive.preprocess import IntensityWindow, box_scale, default_window, window_to_uint8
from radassist.interactive.propagate import Propagation, PropagationConfig, propagate_box
from radassist.results.labelmap import LabelMap
from radassist.results.segments import Code, Segment, Terminology
from radassist.results.tables import Report
from radassist.runtime.progress import Progress
from radassist.volume import Volume

TISSUE = Code("SCT", "85756007", "Tissue")  # Slicer's generic "Tissue" entry: what a box holds is the user's call
PALETTE = ((0.95, 0.84, 0.57), (0.43, 0.72, 0.94), (0.56, 0.93, 0.56), (0.94, 0.5, 0.5), (0.8, 0.6, 0.95),
           (0.98, 0.7, 0.35), (0.4, 0.85, 0.8), (0.9, 0.9, 0.45))
CT_GUESS_BELOW_HU = -500.0  # an image with values this low and no modality tag is taken to be CT (air in HU)


@dataclass(frozen=True)
class BoxSegmentationConfig:
    """Settings of a run. ``window`` None: the paper's window for ``modality`` (None: the image's DICOM modality,
    else CT when it holds values below -500, as air in Hounsfield units)."""

    window: IntensityWindow | None = None
    modality: str | None = None
    propagation: PropagationConfig = PropagationConfig()
    encode_batch: int = 1  # slices per encoder call
    # the encoder sees a square of about context x the box's size when that is at most half the slice (crops.py);
    # 0 gives it the whole slice, as published
    context: float = 3.0
    # ... and never less than the model's 256-pixel frame: a crop only undoes downsampling, it never magnifies (with
    # 64, a 4x magnification, the demo phantom's 27 mm tumour on a 352-pixel slice lost 0.10 Dice)
    min_crop_px: int = 256


@dataclass
class SegmentedBox:
    """One box's result: its mask on the input grid and what the run did for it."""

    box: BoxPrompt
    voxel_box: VoxelBox
    mask: np.ndarray
    propagation: Propagation
    segment: Segment
    crop: SliceCrop


@dataclass
class BoxSegmentation:
    """Every box's segment in one LabelMap (overlapping boxes go to separate layers), the report, what ran."""

    labelmap: LabelMap
    boxes: list[SegmentedBox]
    report: Report
    window: IntensityWindow
    modality: str
    stats: dict[str, Any] = field(default_factory=dict)


def place_boxes(volume: Volume, boxes: Sequence[BoxPrompt]) -> list[VoxelBox]:
    """Each box on the volume's axial slices; ValueError naming a box that misses the image."""
    reorientation = slice_orientation(volume.geometry)
    return [voxel_box(box, volume.geometry, reorientation) for box in boxes]


def image_modality(volume: Volume, given: str | None = None) -> str:
    """The modality deciding the window: ``given``, the DICOM tag, or CT for images with air in HU."""
    modality = given or volume.source.modality
    if modality:
        return modality.upper()
    return "CT" if float(np.min(volume.array)) < CT_GUESS_BELOW_HU else "OTHER"


def segment_boxes(volume: Volume, boxes: Sequence[BoxPrompt], engine: LiteMedSamEngine,
                  config: BoxSegmentationConfig = BoxSegmentationConfig(), cache: EmbeddingCache | None = None,
                  progress: Progress | None = None) -> BoxSegmentation:
    """Segment the object in each box; ValueError for a box outside the image."""
    progress = progress or Progress()
    if not boxes:
        raise ValueError("give at least one box")
    started = time.perf_counter()
    reorientation = slice_orientation(volume.geometry)
    modality = image_modality(volume, config.modality)
    window = config.window or default_window(modality)
    progress.update(0.0, f"windowing ({window.key})")
    windowed = window_to_uint8(reorientation.to_canonical(volume.array), window)
    embeddings = SliceEmbeddings(windowed, volume.geometry, window, engine, cache, config.encode_batch)
    encoded_before, decoded_before = engine.stats.encoded_slices, engine.stats.decoded_boxes
    _, rows, columns = windowed.shape
    placed = list(zip(boxes, place_boxes(volume, boxes)))

    results = []
    for number, (box, where) in enumerate(placed):
        step = progress.sub(number / len(placed), (number + 1) / len(placed))
        step.update(0.0, f"{box.name}: slices {where.z0}-{where.z1}")
        crop = crop_for_box(where, rows, columns, config.context, config.min_crop_px)
        segment_slice, scale = _slice_segmenter(embeddings, engine, crop, rows, columns)
        propagation = propagate_box(where, segment_slice, 1.0 / scale, config.propagation, step,
                                    reorientation.canonical_spacing(volume.geometry)[0])
        canonical = np.zeros(windowed.shape, dtype=bool)
        canonical[where.z0:where.z1 + 1] = propagation.masks
        mask = np.ascontiguousarray(reorientation.from_canonical(canonical))
        segment = Segment(name=box.name, label_value=number + 1, color=PALETTE[number % len(PALETTE)],
                          terminology=Terminology(TISSUE, TISSUE),
                          extra={"Source": f"LiteMedSAM box prompt ({engine.variant})"})
        results.append(SegmentedBox(box, where, mask, propagation, segment, crop))
    if cache is not None:
        cache.prune()
    labelmap = LabelMap.from_masks([r.mask for r in results], [r.segment for r in results], volume.geometry,
                                   volume.source)
    for result, placed_segment in zip(results, labelmap.segments):
        result.segment = placed_segment
    stats = {"encoded_slices": engine.stats.encoded_slices - encoded_before,
             "cached_slices": embeddings.read, "decoded_slices": engine.stats.decoded_boxes - decoded_before,
             "engine": engine.variant, "seconds": round(time.perf_counter() - started, 3)}
    report = box_report(volume, results, window, modality, stats)
    progress.update(1.0, "done")
    return BoxSegmentation(labelmap, results, report, window, modality, stats)


def _slice_segmenter(embeddings: SliceEmbeddings, engine: LiteMedSamEngine, crop: SliceCrop, rows: int,
                     columns: int):
    """(segment one slice, factor from slice pixels to the network frame) for boxes seen through ``crop``."""
    scale = box_scale(crop.height, crop.width)
    offset = np.array([crop.x0, crop.y0, crop.x0, crop.y0], dtype=np.float64)

    def segment_slice(index: int, pixel_box: np.ndarray, ahead: list[int]) -> tuple[np.ndarray, float]:
        embedding = embeddings.get(index, crop, [i for i in ahead if 0 <= i < embeddings.windowed.shape[0]])
        logits, iou = engine.decode(embedding, (pixel_box - offset) * scale)
        mask = np.zeros((rows, columns), dtype=bool)
        mask[crop.y0:crop.y0 + crop.height, crop.x0:crop.x0 + crop.width] = logits_to_mask(logits, crop.height,
                                                                                           crop.width)
        return mask, iou

    return segment_slice, scale


def box_report(volume: Volume, results: Sequence[SegmentedBox], window: IntensityWindow, modality: str,
               stats: dict[str, Any]) -> Report:
    """Volume (mL), longest axial diameter, short axis and their mean (mm), voxel count and slices per segment."""
    from radassist.metrics.shape import axial_axes

    rows = []
    for result in results:
        voxels = int(np.count_nonzero(result.mask))
        axes = axial_axes(result.mask, volume.geometry)
        segmented = result.propagation.masks.any(axis=(1, 2))
        ious = list(result.propagation.iou.values())
        rows.append({"segment": result.segment.name, "voxels": voxels,
                     "volume_ml": round(voxels * volume.geometry.voxel_volume_mm3 / 1000.0, 3),
                     "longest_axial_diameter_mm": round(axes.long_mm, 2),
                     "short_axis_mm": round(axes.short_mm, 2), "mean_diameter_mm": round(axes.mean_mm, 2),
                     "slices": int(segmented.sum()), "box_slices": result.propagation.masks.shape[0],
                     "mean_predicted_iou": round(float(np.mean(ious)), 3) if ious else None,
                     "encoder_view": "whole slice" if result.crop.full else
                     f"{result.crop.height}x{result.crop.width} pixels around the box",
                     "box_lower_lps": [round(v, 2) for v in result.box.lower_lps],
                     "box_upper_lps": [round(v, 2) for v in result.box.upper_lps]})
    units = {"volume_ml": "mL", "longest_axial_diameter_mm": "mm", "short_axis_mm": "mm", "mean_diameter_mm": "mm",
             "box_lower_lps": "mm (LPS)", "box_upper_lps": "mm (LPS)"}
    summary = {"segments": len(rows), "modality": modality, "window": window.key, "model": "LiteMedSAM", **stats}
    return Report(title="Box-prompted segmentation (LiteMedSAM)", rows=rows, summary=summary, units=units,
                  metadata={"image": volume.source.path or ""})
