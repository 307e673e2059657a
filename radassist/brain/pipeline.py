"""Brain registration + tumour segmentation: two sets of MRI volumes in, a fixed -> moving displacement field, the
warped moving sequences, both tumour segmentations, the Jacobian determinant and a report out.

Two engines behind one entry point (:func:`register_brain_pair`), called by the CLI, the Slicer panel and the
benchmarks; neither reads nor writes files:

* ``joint``: the network of Estienne et al. (2020) (:mod:`radassist.brain.model`) registers and segments in one
  pass. The moving sequences are first resampled onto the fixed grid (identity in world space), so the network's
  sampling grid is in fixed voxel indices and converts exactly to LPS millimetres. The network runs on torch or
  ONNX Runtime (``BrainPipelineConfig.backend``, :mod:`radassist.brain.inference`).
* ``classic``: affine + coarse-to-fine free-form registration (:mod:`radassist.brain.classic`), with a robust
  similarity in the tumour (or none: ``ClassicConfig.tumour_similarity="masked"``);
  the tumour comes from given label maps, or from the joint network when one is given.

``auto`` takes ``joint`` when a network is passed in and ``classic`` otherwise. :func:`find_joint_model` is the one
place that looks for installed weights (through the model catalogue); callers pass its result in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from radassist.brain.classic import ClassicConfig, register_classic
from radassist.runtime.memory import reuse_freed_memory
from radassist.brain.postprocess import jacobian_determinant, registration_report, tumour_labelmap
from radassist.brain.preprocess import (MODALITIES, background_value, brain_mask_from, network_box,
                                        ordered_modalities, resample_onto, resampled_geometry, zscore_in_brain)
from radassist.errors import InputError
from radassist.results.displacement import DisplacementField
from radassist.results.labelmap import LabelMap
from radassist.results.tables import Report
from radassist.results.transforms import warp_volume
from radassist.runtime.progress import Progress
from radassist.volume import Geometry, Volume

ENGINES = ("auto", "joint", "classic")
BACKENDS = ("torch", "onnx")
JOINT_MODEL_ID = "brain-joint"
REGISTRATION_CHANNEL_PREFERENCE = ("t1ce", "t1", "t2", "flair")
"""Classic engine: the sequence that drives the metric when none is named (sharpest anatomy first)."""


@dataclass(frozen=True)
class BrainPipelineConfig:
    """How to register a pair. ``channels``: the joint network's input sequences in its order (None: the
    sequences present, in RadAssist's order flair, t1, t1ce, t2)."""

    engine: str = "auto"
    channels: tuple[str, ...] | None = None
    registration_channel: str | None = None          # classic engine; None: first of t1ce, t1, t2, flair
    classic: ClassicConfig = field(default_factory=ClassicConfig)
    working_spacing_mm: tuple[float, float, float] | None = None  # joint: resample to the model's spacing
    margin_voxels: int = 4                           # joint: brain box margin before rounding to the network size
    backend: str = "torch"                           # joint: "torch" or "onnx" (ONNX Runtime, exported once)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")


@dataclass
class BrainImages:
    """One subject's MRI: sequences by name ('flair', 't1', 't1ce', 't2', or any name for a single image),
    optionally a brain mask (bool, on the first sequence's grid) and tumour labels (network classes 0..3)."""

    images: dict[str, Volume]
    brain_mask: np.ndarray | None = None
    tumour: LabelMap | None = None

    @property
    def reference(self) -> Volume:
        return self.images[ordered_modalities(list(self.images))[0]]


@dataclass
class BrainRegistrationResult:
    """Everything one run produces; the field is on the fixed grid, fixed -> moving, LPS mm."""

    field: DisplacementField
    warped: dict[str, Volume]              # every moving sequence resampled onto the fixed grid
    fixed_tumour: LabelMap | None
    moving_tumour: LabelMap | None
    jacobian: Volume                       # det of the transform's Jacobian on the fixed grid
    report: Report
    engine: str
    fixed: Volume                          # the fixed sequence the warped images are compared with
    moving: Volume
    sequence: str = ""                     # the name of that sequence (a key of ``warped``)

    def status_line(self) -> str:
        summary = self.report.summary
        text = (f"{self.engine} engine: mean displacement {summary['displacement_mean_mm']:.1f} mm, "
                f"folding {summary['folding_percent']:.2f} %")
        if self.fixed_tumour is not None:
            text += f", fixed tumour {summary.get('fixed whole tumour ml', 0.0):.1f} ml"
        return text


# -- checks -------------------------------------------------------------------------------------------------------

def _label(volume: Volume, name: str) -> str:
    return volume.source.path or name


def check_images(images: BrainImages, role: str) -> None:
    """Refuse what no brain registration can use: no images, 2-D images, an empty brain or tumour mask."""
    if not images.images:
        raise InputError(None, f"the {role} image set is empty")
    for name, volume in images.images.items():
        if volume.array.ndim != 3 or min(volume.shape) < 2:
            raise InputError(_label(volume, name), f"is a 2-D image ({'x'.join(map(str, volume.shape))}); brain "
                                                   f"registration needs 3-D MRI volumes")
    reference = images.reference
    if images.brain_mask is not None:
        if images.brain_mask.shape != reference.shape:
            raise InputError(_label(reference, role), f"the {role} brain mask {images.brain_mask.shape} does not "
                                                      f"match the image {reference.shape}")
        if not images.brain_mask.any():
            raise InputError(_label(reference, role), f"the {role} brain mask is empty")
    if images.tumour is not None and not np.any(images.tumour.labels):
        raise InputError(images.tumour.source.path or f"{role} tumour labels",
                         "the tumour label map is empty: nothing to exclude from the registration")


def check_pair(moving: BrainImages, fixed: BrainImages) -> None:
    """Both sets usable and made of the same sequences."""
    check_images(moving, "moving")
    check_images(fixed, "fixed")
    if set(moving.images) != set(fixed.images):
        raise InputError(_label(moving.reference, "moving"),
                         f"the moving image has sequences {ordered_modalities(list(moving.images))} but the fixed "
                         f"one has {ordered_modalities(list(fixed.images))}: give both the same sequences")


# -- shared steps -------------------------------------------------------------------------------------------------

def _brain(images: BrainImages) -> np.ndarray:
    """The brain mask on the reference grid: the given one, or where any sequence differs from its background."""
    if images.brain_mask is not None:
        return np.asarray(images.brain_mask, dtype=bool)
    reference = images.reference.geometry
    arrays = [resample_onto(v, reference, default=background_value(v.array)).array for v in images.images.values()]
    mask = brain_mask_from(arrays)
    if not mask.any():
        raise InputError(_label(images.reference, "image"), "is zero everywhere: no brain to register")
    return mask


def _nearest(labels: np.ndarray, source: Geometry, geometry: Geometry) -> np.ndarray:
    """A mask or class array on ``source`` as uint8 on ``geometry`` (nearest neighbour)."""
    return resample_onto(Volume.from_geometry(labels.astype(np.uint8), source), geometry,
                         sitk.sitkNearestNeighbor).array


def _resample_field(field_: DisplacementField, geometry: Geometry) -> DisplacementField:
    if field_.geometry.same_grid(geometry):
        return field_
    components = [resample_onto(Volume.from_geometry(field_.vectors[..., c], field_.geometry), geometry).array
                  for c in range(3)]
    return DisplacementField(np.stack(components, axis=-1), geometry, dict(field_.metadata))


def _finish(field_: DisplacementField, moving: BrainImages, fixed: BrainImages, engine: str,
            fixed_tumour: LabelMap | None, moving_tumour: LabelMap | None, progress: Progress,
            extra: Mapping[str, Any] | None = None) -> BrainRegistrationResult:
    progress.update(0.0, "warping the moving images")
    # out-of-view voxels take each image's own background (about -3.6 for z-scored BraTS), not 0
    warped = {name: warp_volume(volume, field_, default_value=background_value(volume.array))
              for name, volume in moving.images.items()}
    progress.update(0.6, "Jacobian determinant")
    determinant = jacobian_determinant(field_)
    brain = _brain(fixed) if fixed.reference.geometry.same_grid(field_.geometry) else None
    report = registration_report(field_, determinant, engine, fixed_tumour, moving_tumour, brain, extra)
    jacobian = Volume.from_geometry(determinant.astype(np.float32), field_.geometry, fixed.reference.source)
    progress.update(1.0, "done")
    return BrainRegistrationResult(field_, warped, fixed_tumour, moving_tumour, jacobian, report, engine,
                                   fixed.reference, moving.reference, ordered_modalities(list(fixed.images))[0])


# -- joint network ------------------------------------------------------------------------------------------------

def _channels(config: BrainPipelineConfig, available: Sequence[str], model_channels: int) -> list[str]:
    if config.channels is not None:
        missing = [c for c in config.channels if c not in available]
        if missing:
            raise InputError(None, f"the joint model needs sequences {list(config.channels)}; missing {missing} "
                                   f"(have {ordered_modalities(list(available))})")
        channels = list(config.channels)
    else:
        channels = ordered_modalities(list(available))
    if len(channels) != model_channels:
        raise InputError(None, f"the joint model takes {model_channels} sequence(s) per image, got "
                               f"{len(channels)} ({channels}); name them with channels in the model's order")
    return channels


@dataclass
class JointPrediction:
    """The network's answer on the fixed working grid: the field and both tumours' classes (working grid)."""

    field: DisplacementField
    fixed_classes: np.ndarray
    moving_classes: np.ndarray


def predict_joint(model: Any, moving: BrainImages, fixed: BrainImages, config: BrainPipelineConfig,
                  device: Any = "cpu", progress: Progress | None = None) -> JointPrediction:
    """Run the joint network on a pair: resample, z-score inside the brain, crop to the brain, infer, uncrop.

    ``model``: a BrainJointNet (run on ``config.backend``) or a ready :class:`~radassist.brain.inference.JointRunner`.
    """
    from radassist.brain.inference import joint_runner
    from radassist.brain.spatial import shift_to_displacement

    progress = progress or Progress()
    runner = joint_runner(model, config.backend, device)
    net_config = runner.config
    channels = _channels(config, list(fixed.images), net_config.channels_per_image)
    geometry = fixed.reference.geometry
    if config.working_spacing_mm is not None:
        geometry = resampled_geometry(geometry, config.working_spacing_mm)
    progress.update(0.05, "resampling onto the fixed grid")
    fixed_arrays = [resample_onto(fixed.images[c], geometry, default=background_value(fixed.images[c].array)).array
                    for c in channels]
    moving_arrays = [resample_onto(moving.images[c], geometry, default=background_value(moving.images[c].array)).array
                     for c in channels]
    fixed_brain = _nearest(_brain(fixed), fixed.reference.geometry, geometry) > 0
    moving_brain = brain_mask_from(moving_arrays)
    if moving.brain_mask is not None:
        moving_brain = _nearest(moving.brain_mask, moving.reference.geometry, geometry) > 0
    if not moving_brain.any():
        raise InputError(_label(moving.reference, "moving"), "does not overlap the fixed image in space: "
                                                             "register them affinely first (engine classic)")
    box = network_box(fixed_brain | moving_brain, net_config.size_multiple, config.margin_voxels)
    fixed_input = box.extract(np.stack([zscore_in_brain(a, fixed_brain) for a in fixed_arrays]))
    moving_input = box.extract(np.stack([zscore_in_brain(a, moving_brain) for a in moving_arrays]))
    progress.update(0.2, f"running the joint network ({runner.describe()})")
    output = runner(moving_input[None], fixed_input[None])
    progress.update(0.85, "converting the sampling grid")
    fixed_classes = output["segmentation_fixed"][0].argmax(0).astype(np.uint8)
    moving_classes = output["segmentation_moving"][0].argmax(0).astype(np.uint8)
    shift = output["grid"][0].astype(np.float64) - np.indices(box.size, dtype=np.float64)
    field_ = shift_to_displacement(box.insert(shift, geometry.shape), geometry)  # outside the box: the identity
    progress.update(1.0, "network done")
    return JointPrediction(field_, box.insert(fixed_classes, geometry.shape),
                           box.insert(moving_classes, geometry.shape))


def _tumours_from_prediction(prediction: JointPrediction, moving: BrainImages,
                             fixed: BrainImages) -> tuple[LabelMap, LabelMap]:
    working = prediction.field.geometry
    fixed_classes = _nearest(prediction.fixed_classes, working, fixed.reference.geometry)
    # the moving segmentation was made on the moving image resampled onto the working grid: take it home
    moving_classes = _nearest(prediction.moving_classes, working, moving.reference.geometry)
    return (tumour_labelmap(fixed_classes, fixed.reference.geometry, fixed.reference.source, "joint network"),
            tumour_labelmap(moving_classes, moving.reference.geometry, moving.reference.source, "joint network"))


# -- entry point --------------------------------------------------------------------------------------------------

def resolve_engine(engine: str, model: Any) -> str:
    """``auto`` -> ``joint`` with a network, ``classic`` without; ``joint`` without a network is an error."""
    if engine == "auto":
        return "joint" if model is not None else "classic"
    if engine == "joint" and model is None:
        raise InputError(None, f"the joint engine needs trained weights: install '{JOINT_MODEL_ID}' "
                               f"('radassist models install {JOINT_MODEL_ID}'), train one with 'radassist train "
                               f"brain', or use --engine classic")
    return engine


def register_brain_pair(moving: BrainImages, fixed: BrainImages, config: BrainPipelineConfig | None = None,
                        progress: Progress | None = None, model: Any = None,
                        device: Any = "cpu") -> BrainRegistrationResult:
    """Register ``moving`` to ``fixed`` and segment the tumour in both, with the engine ``config`` asks for.

    ``model``: the joint network (a BrainJointNet, run on ``config.backend``, or a ready JointRunner) or None.
    When it runs, freed memory is kept for reuse meanwhile: a pass allocates hundreds of 25-200 MB arrays
    (:mod:`radassist.runtime.memory`).
    """
    config = config or BrainPipelineConfig()
    progress = progress or Progress()
    check_pair(moving, fixed)
    with reuse_freed_memory() if model is not None else nullcontext():
        return _register_checked_pair(moving, fixed, config, progress, model, device)


def _register_checked_pair(moving: BrainImages, fixed: BrainImages, config: BrainPipelineConfig,
                           progress: Progress, model: Any, device: Any) -> BrainRegistrationResult:
    engine = resolve_engine(config.engine, model)
    if engine == "joint":
        prediction = predict_joint(model, moving, fixed, config, device, progress.sub(0.0, 0.7))
        fixed_tumour, moving_tumour = _tumours_from_prediction(prediction, moving, fixed)
        field_ = _resample_field(prediction.field, fixed.reference.geometry)
        return _finish(field_, moving, fixed, engine, fixed_tumour, moving_tumour, progress.sub(0.7, 1.0))

    fixed_tumour, moving_tumour = fixed.tumour, moving.tumour
    classic_progress = progress.sub(0.0, 0.85)
    if model is not None and (fixed_tumour is None or moving_tumour is None):
        prediction = predict_joint(model, moving, fixed, config, device, progress.sub(0.0, 0.2))
        predicted_fixed, predicted_moving = _tumours_from_prediction(prediction, moving, fixed)
        fixed_tumour = fixed_tumour or predicted_fixed
        moving_tumour = moving_tumour or predicted_moving
        classic_progress = progress.sub(0.2, 0.85)
    channel = config.registration_channel or next(c for c in (*REGISTRATION_CHANNEL_PREFERENCE,
                                                              *ordered_modalities(list(fixed.images)))
                                                  if c in fixed.images)
    if channel not in fixed.images:
        raise InputError(None, f"registration channel {channel!r} is not among the sequences "
                               f"{ordered_modalities(list(fixed.images))}")
    fixed_volume, moving_volume = fixed.images[channel], moving.images[channel]
    masks = {
        "fixed_brain": _nearest(_brain(fixed), fixed.reference.geometry, fixed_volume.geometry) > 0,
        "moving_brain": _nearest(_brain(moving), moving.reference.geometry, moving_volume.geometry) > 0,
        "fixed_tumour": None if fixed_tumour is None else _nearest(fixed_tumour.flattened(), fixed_tumour.geometry,
                                                                   fixed_volume.geometry) > 0,
        "moving_tumour": None if moving_tumour is None else _nearest(moving_tumour.flattened(), moving_tumour.geometry,
                                                                     moving_volume.geometry) > 0,
    }
    result = register_classic(moving_volume, fixed_volume, config.classic, classic_progress, **masks)
    extra = {"registration_channel": channel,
             "tumour_similarity": (config.classic.tumour_similarity
                                   if fixed_tumour is not None or moving_tumour is not None else None),
             **{f"{stage}_loss": info["loss"][-1] for stage, info in result.stages.items()}}
    return _finish(result.field, moving, fixed, engine, fixed_tumour, moving_tumour, progress.sub(0.85, 1.0), extra)


# -- weights ------------------------------------------------------------------------------------------------------

def find_joint_model(checkpoint: str | Path | None = None, device: Any = "cpu") -> Any | None:
    """The joint network to use: the given checkpoint folder, else the installed catalogue model ``brain-joint``,
    else None (the classic engine then runs). Returns a runtime LoadedModel (``.model``, ``.metadata``)."""
    from radassist.brain.model import ARCHITECTURE_NAME
    from radassist.runtime.checkpoints import load_checkpoint

    if checkpoint is not None:
        loaded = load_checkpoint(checkpoint, device)
        if loaded.architecture != ARCHITECTURE_NAME:
            raise InputError(checkpoint, f"is a {loaded.architecture} checkpoint, not {ARCHITECTURE_NAME}")
        return loaded
    from radassist.runtime.catalog import load_catalog
    from radassist.runtime.registry import is_installed, load_installed

    try:
        entry = load_catalog().get(JOINT_MODEL_ID)
    except KeyError:
        return None
    if not is_installed(entry):
        return None
    loaded = load_installed(entry, device)
    # Weights without RadAssist's training metadata: the catalogue's input channels say the sequence order.
    loaded.metadata.setdefault("channels", [c.lower().replace("t1gd", "t1ce") for c in entry.input.channels])
    return loaded


def model_channels(loaded: Any) -> tuple[str, ...] | None:
    """The sequence order a checkpoint was trained with (recorded by ``radassist train brain``), if known."""
    channels = (getattr(loaded, "metadata", None) or {}).get("channels")
    if not channels:
        return None
    unknown = [c for c in channels if c not in MODALITIES]
    if unknown:
        raise InputError(getattr(loaded, "path", None), f"records unknown sequences {unknown}")
    return tuple(channels)



def paired_sequences(slots: Sequence[tuple[str, Volume | None, str, Volume | None]]) -> tuple[BrainImages,
                                                                                               BrainImages]:
    """(moving, fixed) image sets from numbered slots of (fixed name, fixed volume, moving name, moving volume), as
    a panel offers them. A slot's sequence is named after the fixed (else the moving) name, e.g. 'Case1 FLAIR' ->
    'flair', so both sides always carry the same names; empty slots are skipped, half-filled ones refused."""
    from radassist.brain.preprocess import modality_of

    moving: dict[str, Volume] = {}
    fixed: dict[str, Volume] = {}
    for index, (fixed_name, fixed_volume, moving_name, moving_volume) in enumerate(slots):
        if fixed_volume is None and moving_volume is None:
            continue
        if fixed_volume is None or moving_volume is None:
            raise InputError(fixed_name or moving_name, f"sequence {index + 1} is selected for only one of the two "
                                                        f"images; select it for both or for neither")
        name = modality_of(fixed_name) or modality_of(moving_name) or f"sequence{index + 1}"
        if name in fixed:
            name = f"sequence{index + 1}"
        fixed[name], moving[name] = fixed_volume, moving_volume
    return BrainImages(moving), BrainImages(fixed)
