"""Lung infection segmentation of a whole CT: the one entry point the CLI, the Slicer panel and the benchmarks call.

``segment_infection(volume, model)`` checks that the image is a CT, runs the network over every axial slice in
batches (lung window, slices resized to the network's input and the answer mapped back to the CT's own grid),
turns the classes into a label map with one segment per class of the model's label table, and reports the volume
of each class and the infected share of each lung. It reads and writes no files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from torch import nn

from radassist.errors import InputError, RadAssistError
from radassist.lung.infection import model as infection_model
from radassist.lung.infection.class_offsets import with_offsets
from radassist.lung.infection.postprocess import infection_labelmap, infection_report
from radassist.lung.infection.preprocess import (LUNG_WINDOW, InfectionInput, LungMasks, check_ct,
                                                 compute_lung_masks)
from radassist.results.labelmap import LabelMap
from radassist.results.segments import Segment
from radassist.results.tables import Report
from radassist.runtime.backends import InferenceBackend, make_backend
from radassist.runtime.progress import Progress
from radassist.runtime.slicewise import SliceInference, predict_slices
from radassist.volume import Volume

Engine = Literal["torch", "onnx"]


@dataclass
class InfectionModel:
    """A network with its label table and input description: everything the pipeline needs to run it."""

    network: nn.Module
    label_table: list[dict[str, Any]]
    input: InfectionInput = field(default_factory=InfectionInput)
    name: str = "lung-infection"

    @property
    def segments(self) -> list[Segment]:
        return infection_model.segments_from_label_table(self.label_table)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: Any = "cpu") -> "InfectionModel":
        """Load a RadAssist checkpoint folder written by ``radassist train lung-infection``."""
        from radassist.runtime.checkpoints import load_checkpoint

        loaded = load_checkpoint(path, device)
        if loaded.architecture not in infection_model.ARCHITECTURES.values():
            raise InputError(path, f"is a {loaded.architecture} checkpoint, not a lung infection network "
                                   f"({', '.join(infection_model.ARCHITECTURES.values())})")
        table = loaded.labels or infection_model.default_label_table()
        offsets = ((loaded.metadata or {}).get("classOffsets") or {}).get("offsets")
        return cls(with_offsets(loaded.model, offsets), table, InfectionInput.from_metadata(loaded.metadata),
                   f"{loaded.architecture} ({Path(path).name})")


def load_infection_model(arch: str = "unet", checkpoint: str | Path | None = None,
                         device: Any = "cpu") -> InfectionModel:
    """The network to run: a checkpoint folder if given, else the installed catalogue model of ``arch``."""
    if checkpoint is not None:
        return InfectionModel.from_checkpoint(checkpoint, device)
    if arch not in infection_model.ARCHITECTURES:
        raise InputError(None, f"unknown architecture '{arch}'; choose {' or '.join(infection_model.ARCHITECTURES)}")
    from radassist.runtime.catalog import installed_path, load_catalog
    from radassist.runtime.checkpoints import CONFIG_NAME, import_state_dict, label_table, sha256_file
    from radassist.runtime.registry import build_model

    model_id = infection_model.ARCHITECTURES[arch]
    try:
        entry = load_catalog().get(model_id)
    except KeyError:
        entry = None
    folder = installed_path(entry) if entry is not None else None
    weights = [f for f in entry.files if f.format in ("safetensors", "pytorch-state-dict")] if entry else []
    if folder is not None and (folder / CONFIG_NAME).is_file():  # installed as a RadAssist checkpoint
        loaded = InfectionModel.from_checkpoint(folder, device)
    elif folder is not None and len(weights) == 1 and (folder / weights[0].name).is_file():  # catalogue weights
        path = folder / weights[0].name
        if weights[0].sha256 and sha256_file(path) != weights[0].sha256.lower():
            raise InputError(path, "sha256 does not match the catalogue: the file is damaged or was replaced; "
                                   "install it again with 'radassist models install'")
        network = build_model(entry.architecture, entry.architecture_config)
        network.load_state_dict(import_state_dict(path, entry.architecture, config=entry.architecture_config))
        import torch

        loaded = InfectionModel(network.to(torch.device(str(getattr(device, "device", device)))).eval(),
                                infection_model.default_label_table())
    else:
        raise RadAssistError(f"no trained weights for {model_id} are installed; train a model with 'radassist train "
                             f"lung-infection --data DIR --out MODEL_DIR --arch {arch}' and pass it with "
                             f"--checkpoint MODEL_DIR, or install one with 'radassist models import'")
    if entry.labels:
        loaded.label_table = label_table(entry.labels)
    if entry.input.image_size:
        loaded.input = InfectionInput(tuple(entry.input.image_size), entry.input.window or LUNG_WINDOW)
    loaded.name = entry.label
    return loaded


@dataclass
class InfectionResult:
    """The label map (one segment per class), the report, and the lungs the shares were computed on."""

    labelmap: LabelMap
    report: Report
    lungs: LungMasks | None
    engine: str

    def status_line(self) -> str:
        """One line for a status bar: infected shares of both lungs, or the total finding volume."""
        summary = self.report.summary
        right, left = summary.get("right_lung_infected_percent"), summary.get("left_lung_infected_percent")
        if right is None and left is None:
            return f"findings: {summary['total_finding_volume_ml']:.1f} mL"
        text = "; ".join(f"{side} lung {value:.1f} % infected" for side, value in (("right", right), ("left", left))
                         if value is not None)
        return f"{text} ({summary['infected_volume_ml']:.1f} mL)"

    def table(self) -> tuple[list[str], list[list[str]]]:
        """(columns, rows) of text for a panel's table: structure, volume mL, infected %."""
        columns = ["Structure", "Volume (mL)", "Infected (%)"]
        rows = [[str(r["structure"]), f"{r['volume_ml']:.1f}",
                 "" if r.get("infected_percent") is None else f"{r['infected_percent']:.1f}"]
                for r in self.report.rows]
        return columns, rows


def _lungs_from(lungs: LungMasks | LabelMap | None, volume: Volume) -> LungMasks | None:
    if lungs is None or isinstance(lungs, LungMasks):
        return lungs
    if not lungs.geometry.same_grid(volume.geometry, tolerance=1e-3):
        from radassist.annotation.changes import resample_labels  # nearest neighbour, layer by layer

        lungs = resample_labels(lungs, volume.geometry)
    return LungMasks.from_labelmap(lungs, lungs.source.path)


def segment_infection(volume: Volume, model: InfectionModel, lungs: LungMasks | LabelMap | None = None,
                      *, find_lungs: bool = True, engine: Engine = "torch", device: Any = "cpu",
                      batch_size: int = 8, progress: Progress | None = None,
                      onnx_cache: str | Path | None = None) -> InfectionResult:
    """Segment infection classes in every axial slice of a chest CT and report them per lung.

    ``lungs``: the patient's lungs if known (a label map with right/left lung segments, on any grid), else, with
    ``find_lungs``, they come from the lung preprocessing. No lung in the image is an InputError. ``engine``
    "onnx" exports the network once (cached) and runs it with ONNX Runtime.
    """
    progress = progress or Progress()
    check_ct(volume)
    progress.update(0.0, "checking the CT")
    network = _backend(model, engine, device, onnx_cache)
    multiple = int(getattr(model.network, "size_multiple", 1))
    settings = SliceInference(input_size=model.input.image_size, size_multiple=multiple, batch_size=batch_size,
                              pad_value=-1024.0)
    prediction = predict_slices(volume, network, model.input.prepare_ct, settings,
                                progress.sub(0.0, 0.85), device=device)
    segments = model.segments
    labelmap = infection_labelmap(prediction.labels, volume.geometry, segments, volume.source,
                                  {"model": model.name, "engine": prediction.backend})
    progress.update(0.88, "finding the lungs")
    lung_masks = _lungs_from(lungs, volume)
    if lung_masks is None and find_lungs:
        lung_masks = compute_lung_masks(volume)
    if lung_masks is not None and not lung_masks.both.any():
        raise InputError(volume.source.path, "no lung was found in the image; infection segmentation needs a chest "
                                             "CT that shows the lungs")
    report = infection_report(labelmap, lung_masks, model.name)
    progress.update(1.0, "done")
    return InfectionResult(labelmap, report, lung_masks, prediction.backend)


@dataclass
class PictureResult:
    """One segmented picture: labels and 8-bit class probabilities at the picture's size, and the segments."""

    labels: np.ndarray  # (y, x) uint8 class values
    probabilities: np.ndarray  # (classes, y, x) uint8, 0..255
    segments: list[Segment]

    def pixel_counts(self) -> dict[str, int]:
        """Pixels of each finding class (a picture has no spacing, so no area in mm^2 or volume in mL)."""
        return {segment.name: int(np.count_nonzero(self.labels == segment.label_value)) for segment in self.segments}

    def report(self, model_name: str) -> Report:
        """Pixels and share of the picture per class; no mL or mm^2, since a picture carries no spacing."""
        total = int(self.labels.size)
        counts = self.pixel_counts()
        rows = [{"structure": name, "pixels": count, "percent_of_picture": round(100.0 * count / total, 3)}
                for name, count in counts.items()]
        infected = int(np.count_nonzero(self.labels > 0))
        return Report("Lung infection (picture)", rows,
                      {"infected_pixels": infected, "infected_percent_of_picture": round(100.0 * infected / total, 3),
                       "picture_pixels": total},
                      {"pixels": "pixels", "percent_of_picture": "%"},
                      {"model": model_name, "note": "a display picture has no pixel spacing: sizes are in pixels"})


def segment_picture(picture: np.ndarray, model: InfectionModel, device: Any = "cpu",
                    name: str | None = None) -> PictureResult:
    """Segment one display-windowed 8-bit grey picture of a CT slice (a COVID-SemiSeg-style crop), with the
    intensity handling the model was trained with (:meth:`InfectionInput.prepare_picture`).

    Refused (InputError naming ``name``): a model trained on CT in HU (a picture has no HU to window), and anything
    but a (y, x) 8-bit picture.
    """
    from radassist.lung.infection.predict import predict_prepared

    picture = np.asarray(picture)
    if picture.ndim != 2 or picture.dtype != np.uint8 or min(picture.shape) < 2:
        raise InputError(name, f"is a {picture.dtype} array of shape {picture.shape}; a picture to segment is one "
                               "8-bit grey slice")
    if not model.input.takes_pictures:
        raise InputError(name, f"is a display picture without Hounsfield units, but {model.name} was trained on CT "
                               "in HU; give a CT volume, or a model trained on pictures (radassist train "
                               "lung-infection --layout covid-semiseg)")
    predicted = predict_prepared([model.network], [model.input.prepare_picture(picture)], model.input.image_size,
                                 device=device)
    return PictureResult(predicted.labels[0], predicted.probabilities[0], model.segments)


def _backend(model: InfectionModel, engine: Engine, device: Any, onnx_cache: str | Path | None
             ) -> nn.Module | InferenceBackend:
    if engine == "torch":
        return make_backend(model.network, "torch", device)
    if engine != "onnx":
        raise ValueError(f"engine must be 'torch' or 'onnx', got {engine!r}")
    size = model.input.image_size or (256, 256)
    example = np.zeros((1, 1, *size), dtype=np.float32)
    return make_backend(model.network, "onnx", device, example_inputs=example, input_names=["image"],
                        output_names=["logits"], cache_dir=onnx_cache, model_id=model.name.split(" ")[0])


def class_names(model: InfectionModel) -> Sequence[str]:
    """Names of the network's output classes, background first."""
    return infection_model.class_names(model.label_table, int(getattr(model.network, "out_channels", 4)))
