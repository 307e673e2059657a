"""Lung nodule detection: a chest CT in, Detections (LPS mm) out. The one entry point of the CLI, Slicer and
benchmarks.

Two engines:

* ``detr``: Lung-DETR (Ramezani et al., arXiv:2409.05200) on 7.5 mm MIP slabs; needs trained weights (a checkpoint
  folder, an installed catalogue model, a loaded model or an inference backend).
* ``classic``: the classical candidate detector of :mod:`radassist.lung.classic`, which needs no weights and is
  labelled as what it is in every result.

Before either runs, :func:`check_chest_ct` refuses what cannot work: a single slice, a scan that is not CT in
Hounsfield units, slices thicker than the slab, and a scan without lungs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radassist.errors import InputError, RadAssistError
from radassist.lung.classic import ENGINE_DESCRIPTION as CLASSIC_DESCRIPTION
from radassist.lung.classic import ClassicDetectorConfig, detect_candidates
from radassist.lung.postprocess import LinkConfig, slab_boxes_to_detections
from radassist.lung.preprocess import LungMaskConfig, SlabConfig, SlabStack, lung_mask_volume, slabs_from_mask
from radassist.results.detections import Detections
from radassist.runtime.progress import Progress
from radassist.volume import Volume

ENGINES = ("classic", "detr")
DETR_MODEL_ID = "lung-detr"
DETR_ARCHITECTURE = "lung-detr"
TASK = "lung-nodule-detection"


class WeightsMissing(RadAssistError):
    """Lung-DETR was asked for but no trained weights are available."""


def how_to_get_weights(model_id: str = DETR_MODEL_ID) -> str:
    """What to do when Lung-DETR has no weights (every fresh install)."""
    return (f"no trained Lung-DETR weights are installed. Install them with 'radassist models install "
            f"{model_id}' once they are published, bring your own with 'radassist models import {model_id} "
            f"WEIGHTS_FILE' (or a checkpoint folder via --model PATH), or use '--engine classic', the classical "
            f"candidate detector that needs no weights")


@dataclass(frozen=True)
class LungDetectionConfig:
    """Everything that decides a detection run; defaults follow the Lung-DETR paper where it says."""

    slabs: SlabConfig = field(default_factory=SlabConfig)
    mask: LungMaskConfig = field(default_factory=LungMaskConfig)
    classic: ClassicDetectorConfig = field(default_factory=ClassicDetectorConfig)
    link: LinkConfig = field(default_factory=LinkConfig)
    score_threshold: float = 0.5  # findings below this probability (score) get no box in views; every one is listed
    box_threshold: float = 0.05  # Lung-DETR slab boxes below this score are not linked at all
    boxes_per_slab: int = 100  # Lung-DETR: most confident queries read per slab
    batch_size: int = 4  # slabs per network call
    max_slice_thickness_mm: float | None = None  # None: the slab thickness (a slab must hold at least one slice)
    min_hu_range: tuple[float, float] = (-500.0, -200.0)  # a CT in HU has voxels below the first (air, lung)
    #                                                       and above the second (soft tissue)

    def __post_init__(self) -> None:
        if not 0.0 <= self.score_threshold <= 1.0:
            raise InputError(None, f"the score threshold must be within 0..1, got {self.score_threshold}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")


# -- input checks -------------------------------------------------------------------------------------------------

def _name(volume: Volume) -> str | None:
    return volume.source.path or volume.source.series_instance_uid


def check_chest_ct(volume: Volume, config: LungDetectionConfig = LungDetectionConfig()) -> None:
    """Refuse, with a clear InputError, a volume the detector cannot use (before any heavy work)."""
    name = _name(volume)
    if min(volume.shape) < 2:
        raise InputError(name, f"is a single slice ({'x'.join(map(str, volume.shape))} voxels); nodule detection "
                               f"needs a 3-D chest CT")
    modality = (volume.source.modality or "").upper()
    if modality and modality != "CT":
        raise InputError(name, f"is a {modality} series, not CT; nodule detection needs a chest CT in "
                               f"Hounsfield units")
    sample = volume.array[::max(1, volume.shape[0] // 64)].astype(np.float32)
    low, high = np.percentile(sample, [1, 99])
    if not (low <= config.min_hu_range[0] and high >= config.min_hu_range[1]):
        raise InputError(name, f"does not look like CT in Hounsfield units (1st-99th percentile {low:.0f} to "
                               f"{high:.0f}; a chest CT has air near -1000 HU and soft tissue near 0-100 HU). If "
                               f"it is CT, its values lack the DICOM rescale to HU")
    axis_ijk = int(np.argmax(np.abs(volume.geometry.direction_matrix[2])))  # the array axis nearest head-foot
    thickness = float(volume.spacing[axis_ijk])
    limit = config.max_slice_thickness_mm or config.slabs.thickness_mm
    if thickness > limit + 1e-6:
        raise InputError(name, f"has slices {thickness:g} mm apart; the {config.slabs.thickness_mm:g} mm MIP slabs "
                               f"need slices of at most {limit:g} mm (a thin-slice chest CT, ideally 2.5 mm or "
                               f"less), and nodules of 4-10 mm vanish between thicker slices")
    covered = volume.geometry.shape[2 - axis_ijk] * thickness
    if covered < config.slabs.thickness_mm - 1e-6:
        raise InputError(name, f"covers only {covered:g} mm from head to foot; at least one "
                               f"{config.slabs.thickness_mm:g} mm slab is needed")


def find_lungs(volume: Volume, config: LungDetectionConfig = LungDetectionConfig()) -> Volume:
    """The lung mask volume; an InputError when there is no lung in the scan."""
    mask = lung_mask_volume(volume, config.mask)
    lung_ml = float(mask.array.sum()) * mask.geometry.voxel_volume_mm3 / 1000.0
    if lung_ml < config.mask.min_lung_ml:
        raise InputError(_name(volume), "no lung found: there is no air-filled lung tissue inside the body (is "
                                        "this a chest CT? an abdomen or head scan has no lungs to search)")
    return mask


# -- Lung-DETR model ----------------------------------------------------------------------------------------------

@dataclass
class DetrModel:
    """A Lung-DETR ready to run: its inference backend, its config and what identifies its weights."""

    backend: Any  # radassist.runtime.backends.InferenceBackend
    config: Any  # radassist.lung.model.LungDetrConfig
    model_id: str = ""
    version: str = ""
    sha256: str = ""

    def describe(self) -> dict[str, str]:
        return {"id": self.model_id, "version": self.version, "sha256": self.sha256,
                "backend": self.backend.describe()}


def _backend_for(network: Any, kind: str, device: Any, image_size: tuple[int, int]) -> Any:
    from radassist.lung.model import LungDetr, LungDetrInference
    from radassist.runtime.backends import make_backend

    if isinstance(network, LungDetr):
        network = LungDetrInference.folded(network)
    example = np.zeros((1, network.detector.config.in_channels) + tuple(image_size), dtype=np.float32)
    return make_backend(network.eval(), kind, device, example_inputs=example if kind == "onnx" else None,
                        input_names=["images"], output_names=list(LungDetrInference.output_names),
                        model_id=DETR_MODEL_ID, dynamic_axes="batch_and_spatial")


def _installed_checkpoint(model_id: str, version: str | None, device: Any) -> tuple[Any, Any]:
    """(LoadedModel, catalogue entry) of an installed Lung-DETR, or WeightsMissing."""
    from radassist.runtime.catalog import load_catalog
    from radassist.runtime.registry import is_installed, load_installed

    try:
        entry = load_catalog().get(model_id, version)
    except KeyError as error:
        raise InputError(None, str(error.args[0])) from None
    if entry.task != TASK:
        raise InputError(None, f"model {entry.label} is a {entry.task} model, not a lung nodule detector")
    if not is_installed(entry):
        raise WeightsMissing(how_to_get_weights(model_id))
    return load_installed(entry, device), entry


def detr_weights_installed(model_id: str = DETR_MODEL_ID) -> bool:
    """Whether the catalogue model ``model_id`` has its weights installed (what 'auto' engines decide on)."""
    from radassist.runtime.catalog import load_catalog
    from radassist.runtime.registry import is_installed

    try:
        return is_installed(load_catalog().get(model_id))
    except KeyError:
        return False


def load_detr_model(model: Any = None, backend: str = "torch", device: Any = "cpu", version: str | None = None,
                    image_size: tuple[int, int] = (512, 512)) -> DetrModel:
    """A runnable Lung-DETR from: None (the installed ``lung-detr``), a catalogue id, a checkpoint folder or
    .safetensors path, a LoadedModel, a torch module, an inference backend, or a DetrModel (returned as is).
    ``backend`` is "torch" or "onnx" (exported once and cached); ``image_size`` is the export example's size."""
    from radassist.runtime.backends import InferenceBackend
    from radassist.runtime.checkpoints import LoadedModel, load_checkpoint

    if isinstance(model, DetrModel):
        return model
    if isinstance(model, InferenceBackend):
        from radassist.lung.model import LungDetrConfig

        return DetrModel(model, LungDetrConfig(), model_id="backend")
    entry = None
    if model is None or (isinstance(model, str) and not Path(model).exists()):
        loaded, entry = _installed_checkpoint(model or DETR_MODEL_ID, version, device)
    elif isinstance(model, (str, Path)):
        loaded = load_checkpoint(model, device)
    elif isinstance(model, LoadedModel):
        loaded = model
    else:
        import torch

        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"cannot run a {type(model).__name__} as Lung-DETR")
        loaded = LoadedModel(model, DETR_ARCHITECTURE, getattr(model, "config", None))
    if loaded.architecture != DETR_ARCHITECTURE:
        raise InputError(loaded.path, f"is a {loaded.architecture} model, not Lung-DETR ({DETR_ARCHITECTURE})")
    network = loaded.model
    config = getattr(network, "config", None) or getattr(getattr(network, "detector", None), "config", None)
    model_id = entry.id if entry is not None else str(loaded.metadata.get("modelId") or loaded.path or "in-memory")
    return DetrModel(_backend_for(network, backend, device, image_size), config, model_id,
                     entry.version if entry is not None else str(loaded.metadata.get("version", "")),
                     loaded.sha256)


# -- the engines --------------------------------------------------------------------------------------------------

def run_detr(stack: SlabStack, detr: DetrModel, config: LungDetectionConfig, progress: Progress) -> list:
    """Per-slab pixel boxes and scores from Lung-DETR (torch or ONNX Runtime, whichever the backend is)."""
    from radassist.lung.slab_inference import detect_on_slabs
    from radassist.runtime.memory import reuse_freed_memory

    with reuse_freed_memory():  # every slab batch allocates the same large activations again: keep them
        return detect_on_slabs(stack, detr.backend, int(getattr(detr.config, "in_channels", 1)), config.batch_size,
                               config.box_threshold, config.boxes_per_slab, progress)


def slab_config_for(model_config: Any, slabs: SlabConfig) -> SlabConfig:
    """``slabs`` with what the weights are tied to taken from the model's config (slab thickness, lung windows)."""
    if model_config is None:
        return slabs
    return dataclasses.replace(slabs, thickness_mm=float(getattr(model_config, "mip_slab_mm", slabs.thickness_mm)),
                               lung_windows=bool(getattr(model_config, "lung_windows", slabs.lung_windows)))


def detect_nodules(volume: Volume, config: LungDetectionConfig | None = None, progress: Progress | None = None,
                   engine: str = "classic", model: Any = None) -> Detections:
    """Lung nodules of a chest CT (HU) as Detections in LPS mm, best first: every candidate the engine gives (at
    most its ``max_candidates``), whatever its score, so that a FROC can be drawn from them. The score threshold
    (``config.score_threshold``, in the metadata) is what views use to decide which ones get a box
    (:func:`shown_findings`).

    ``engine`` is "classic" (no weights needed; its number is a heuristic ``score``) or "detr" (a ``probability``;
    ``model``: anything :func:`load_detr_model` takes; None means the installed catalogue model). The Detections
    carry the engine, what their number is (``score_name``), the model's id/version/sha256 and the lung volume in
    their metadata. Raises InputError for unusable input and WeightsMissing for Lung-DETR without weights; reports
    through ``progress`` and stops when it is cancelled.
    """
    config = config or LungDetectionConfig()
    progress = progress or Progress()
    if engine not in ENGINES:
        raise InputError(None, f"unknown engine '{engine}'; choose {' or '.join(ENGINES)}")
    detr = load_detr_model(model) if engine == "detr" else None
    if detr is not None:
        config = dataclasses.replace(config, slabs=slab_config_for(detr.config, config.slabs))
    check_chest_ct(volume, config)
    progress.update(0.02, "finding the lungs")
    mask_volume = find_lungs(volume, config)
    lung_ml = float(mask_volume.array.sum()) * mask_volume.geometry.voxel_volume_mm3 / 1000.0
    metadata: dict[str, Any] = {"lung_volume_ml": round(lung_ml, 1), "score_threshold": config.score_threshold,
                                "slab_thickness_mm": config.slabs.thickness_mm}
    if detr is None:
        found = detect_candidates(volume, config.classic, progress.sub(0.1, 1.0), mask_volume)
        metadata |= {"engine_description": CLASSIC_DESCRIPTION, "model": None, "score_name": "score"}
        items, engine_name = found.items, found.engine
    else:
        progress.update(0.1, "building the MIP slabs")
        stack = slabs_from_mask(volume, mask_volume, config.slabs)
        per_slab = run_detr(stack, detr, config, progress.sub(0.2, 0.95))
        items = slab_boxes_to_detections(per_slab, stack, config.link, label="nodule")
        metadata |= {"engine_description": "Lung-DETR (Deformable DETR on MIP slabs, arXiv:2409.05200)",
                     "model": detr.describe(), "slabs": len(stack), "score_name": "probability"}
        engine_name = "lung-detr"
    detections = Detections(items, volume.geometry, volume.source, engine_name, {"engine": engine_name, **metadata})
    detections = detections.sorted()
    shown = len(shown_findings(detections))
    progress.update(1.0, f"{len(detections)} candidate(s), {shown} at {detections.score_name} >= "
                         f"{config.score_threshold:g}")
    return detections


def shown_findings(detections: Detections, threshold: float | None = None) -> Detections:
    """The findings that get a box in views (ROI markups, PNG, Slicer): those at or above ``threshold`` (default:
    the run's score threshold, from the metadata). Tables and CSV files list every finding."""
    if threshold is None:
        threshold = float(detections.metadata.get("score_threshold", 0.0))
    return detections.above(threshold)


def detections_table(detections: Detections) -> list[dict[str, Any]]:
    """One row per finding for tables (Slicer, reports): rank, probability or score (as the findings' ``score_name``
    says), diameter, LPS centre."""
    name = detections.score_name
    return [{"rank": rank, name: round(d.probability, 4),
             "diameter_mm": None if d.diameter_mm is None else round(d.diameter_mm, 1),
             "x_mm": round(d.center[0], 1), "y_mm": round(d.center[1], 1), "z_mm": round(d.center[2], 1),
             "label": d.label} for rank, d in enumerate(detections.items, start=1)]


__all__: Sequence[str] = ("DetrModel", "ENGINES", "LungDetectionConfig", "WeightsMissing", "check_chest_ct",
                          "detect_nodules", "detections_table", "detr_weights_installed", "find_lungs",
                          "how_to_get_weights", "load_detr_model", "run_detr", "shown_findings", "slab_config_for")
