"""GMIC on a screening exam: mammograms in (any of L-CC, R-CC, L-MLO, R-MLO), a :class:`MammoResult` out.

Per view: benign and malignant probabilities, the two saliency maps on the view's own pixel grid, and the K
patches GMIC read at full resolution with their attention weights (boxes in image pixels and LPS mm). Per breast:
the mean of its CC and MLO views (of the views given). Optional test-time augmentation averages the published
window with ``tta`` shifted/upside-down windows; several networks (e.g. the five published checkpoints) are
averaged as an ensemble. Patches come from the first network's published window, as in the published
visualisation.

Weights: ``radassist models install gmic-N`` downloads a published checkpoint once the user accepts its licence
(AGPL-3.0; ``gmic-ensemble`` installs all five, which :func:`expand_models` turns into the five networks whose
probabilities are averaged, as the authors' ensemble does); ``radassist models import gmic-N FILE`` installs a
file fetched by hand, ``radassist train mammo`` trains one. Without weights :func:`load_gmic` raises
:class:`WeightsMissing` saying so: a randomly initialised network never produces a result here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radassist.errors import InputError, RadAssistError
from radassist.io.mammogram import Mammogram
from radassist.mammo.preprocess import EXAM_VIEWS, PreparedView, PreprocessConfig, augmented_windows, prepare_view
from radassist.results.tables import Classification, ClassifiedImage
from radassist.runtime.progress import Progress

TASK = "mammography-classification"
ARCHITECTURE = "gmic"
DEFAULT_MODEL = "gmic-1"
CLASS_NAMES = ("benign", "malignant")
BACKENDS = ("torch", "onnx")


class WeightsMissing(RadAssistError):
    """No trained GMIC network is installed (every fresh install: the published weights are not redistributed)."""


def how_to_get_weights(model_id: str = DEFAULT_MODEL) -> str:
    """What to do when there are no GMIC weights."""
    number = model_id.rsplit("-", 1)[-1] if model_id[-1:].isdigit() and model_id.startswith("gmic-") else "1"
    return (f"no trained GMIC weights are installed for {model_id}. The published checkpoints are not shipped "
            f"with RadAssist (GNU AGPL-3.0): 'radassist models install {model_id}' shows their licence and, once "
            f"you accept it, downloads them from https://github.com/nyukat/GMIC (offline: download "
            f"models/sample_model_{number}.p yourself and run 'radassist models import gmic-{number} "
            f"sample_model_{number}.p'), or train your own with 'radassist train mammo --data EXAM_LIST_DIR --out "
            f"MODEL_DIR' and pass '--model MODEL_DIR'")


@dataclass(frozen=True)
class MammoConfig:
    """What decides a classification run besides the networks."""

    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    tta: int = 0  # extra randomly shifted/flipped windows averaged with the published one (0: published only)
    tta_seed: int = 0  # seed of the augmentation windows, so a run can be repeated exactly
    batch_size: int = 2  # windows per network call

    def __post_init__(self) -> None:
        if self.tta < 0:
            raise InputError(None, f"the number of test-time augmentations must not be negative, got {self.tta}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")


# -- networks -------------------------------------------------------------------------------------------------------

@dataclass
class GmicRunner:
    """One GMIC network ready to run with torch or ONNX Runtime (the two halves joined by the numpy patch
    selection), and what identifies its weights."""

    network: Any  # radassist.mammo.model.Gmic
    backend: str = "torch"
    device: Any = "cpu"
    model_id: str = "in-memory"
    version: str = ""
    sha256: str = ""
    cache_dir: Path | None = None
    input_size: tuple[int, int] | None = None  # the window it was trained on (None: the published 2944 x 1920)
    _halves: tuple[Any, Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise InputError(None, f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        self.network.eval()

    @property
    def config(self) -> Any:
        return self.network.config

    def describe(self) -> dict[str, str]:
        return {"id": self.model_id, "version": self.version, "sha256": self.sha256, "backend": self.backend,
                "top_t_percent": str(self.config.top_t_percent)}

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """(N, 1, H, W) standardised windows -> y_fusion (N, C), saliency_maps (N, C, h, w), patch_locations
        (N, K, 2) upper-left corners in window pixels, attention (N, K)."""
        images = np.ascontiguousarray(images, dtype=np.float32)
        if self.backend == "onnx":
            return self._run_onnx(images)
        import torch

        from radassist.runtime.onnx_backend import resolve_device

        device = resolve_device(self.device).torch_device
        self.network.to(device)
        with torch.no_grad():
            out = self.network(torch.from_numpy(images).to(device))
        return {"y_fusion": out.y_fusion.cpu().numpy(), "saliency_maps": out.saliency_maps.cpu().numpy(),
                "patch_locations": out.patch_locations.cpu().numpy(), "attention": out.attention.cpu().numpy()}

    def _run_onnx(self, images: np.ndarray) -> dict[str, np.ndarray]:
        from radassist.mammo.model import select_patches_numpy

        global_half, local_half = self._onnx_halves(images)
        glob = global_half({"image": images})
        corners, patches = select_patches_numpy(images, glob["saliency_maps"], self.config)
        local = local_half({"patches": patches, "global_vector": glob["global_vector"]})
        return {"y_fusion": local["y_fusion"], "saliency_maps": glob["saliency_maps"], "patch_locations": corners,
                "attention": local["attention"]}

    def _onnx_halves(self, images: np.ndarray) -> tuple[Any, Any]:
        """The exported global half (any batch and size) and local half (any batch), exported once, cached."""
        if self._halves is None:
            from radassist.mammo.model import (GLOBAL_EXPORT_OUTPUTS, LOCAL_EXPORT_OUTPUTS, GmicGlobalExport,
                                               GmicLocalExport)
            from radassist.runtime.backends import make_backend

            c = self.config
            global_axes = {"image": {0: "batch", 2: "height", 3: "width"},
                           "saliency_maps": {0: "batch", 2: "h", 3: "w"}, "y_global": {0: "batch"},
                           "global_vector": {0: "batch"}}
            local_axes = {name: {0: "batch"} for name in ("patches", "global_vector", *LOCAL_EXPORT_OUTPUTS)}
            example_patches = np.zeros((1, c.num_patches, *c.crop_shape), dtype=np.float32)
            example_vector = np.zeros((1, c.global_channels), dtype=np.float32)
            self._halves = (
                make_backend(GmicGlobalExport(self.network), "onnx", self.device, example_inputs=images[:1],
                             input_names=["image"], output_names=list(GLOBAL_EXPORT_OUTPUTS),
                             dynamic_axes=global_axes, cache_dir=self.cache_dir, model_id=f"{self.model_id}-global"),
                make_backend(GmicLocalExport(self.network), "onnx", self.device,
                             example_inputs={"patches": example_patches, "global_vector": example_vector},
                             input_names=["patches", "global_vector"], output_names=list(LOCAL_EXPORT_OUTPUTS),
                             dynamic_axes=local_axes, cache_dir=self.cache_dir, model_id=f"{self.model_id}-local"))
        return self._halves


def _entry(model_id: str) -> Any:
    from radassist.runtime.catalog import load_catalog

    try:
        entry = load_catalog().get(model_id)
    except KeyError as error:
        raise InputError(None, str(error.args[0])) from None
    if entry.task != TASK:
        raise InputError(None, f"model {entry.label} is a {entry.task} model, not a mammogram classifier")
    return entry


def expand_models(models: list[Any] | None) -> list[Any]:
    """The networks to run for ``models`` (ids, folders, loaded models): an ensemble id such as
    ``gmic-ensemble`` becomes its members, in order, so their probabilities are averaged; None is the default
    model."""
    from radassist.runtime.catalog import load_catalog

    expanded: list[Any] = []
    catalog = None
    for model in models or [None]:
        if isinstance(model, str) and not Path(model).exists():
            catalog = catalog or load_catalog()
            if model in catalog.ids() and catalog.get(model).is_ensemble:
                expanded.extend(member.id for member in catalog.members(_entry(model)))
                continue
        expanded.append(model)
    return expanded


def _load_entry(entry: Any) -> tuple[Any, str]:
    """(network, sha256) of an installed catalogue entry: a RadAssist checkpoint folder, or a published
    ``sample_model_N.p`` (checked against the catalogue's hashes: the git blob id upstream lists; renamed and
    loaded strictly)."""
    from radassist.mammo.checkpoint_mapping import load_published_state_dict
    from radassist.runtime.catalog import installed_path
    from radassist.runtime.checkpoints import CONFIG_NAME, load_checkpoint, read_weights_file
    from radassist.runtime.download import check_model_file
    from radassist.runtime.registry import build_from_entry

    folder = installed_path(entry)
    if (folder / CONFIG_NAME).is_file():
        loaded = load_checkpoint(folder)
        return loaded.model, loaded.sha256
    weights = folder / entry.files[0].name
    actual = check_model_file(weights, entry.files[0])  # the catalogue's git blob id / sha256, before unpickling
    content, _ = read_weights_file(weights)
    network = build_from_entry(entry)
    return load_published_state_dict(network, content, weights), actual


def load_gmic(model: Any = None, backend: str = "torch", device: Any = "cpu",
              cache_dir: str | Path | None = None) -> GmicRunner:
    """A runnable GMIC from: None (the installed ``gmic-1``), a catalogue id, a checkpoint folder written by
    ``radassist train mammo`` (or its .safetensors), a LoadedModel, a Gmic module, or a GmicRunner (as is)."""
    from radassist.runtime.checkpoints import LoadedModel, load_checkpoint
    from radassist.runtime.registry import is_installed

    if isinstance(model, GmicRunner):
        return model
    cache = Path(cache_dir) if cache_dir is not None else None
    if model is None or (isinstance(model, str) and not Path(model).exists()):
        entry = _entry(model or DEFAULT_MODEL)
        if entry.is_ensemble:
            raise InputError(None, f"{entry.id} is an ensemble of {', '.join(entry.members)}: load each of them "
                                   f"(expand_models) and classify with all of them")
        if not is_installed(entry):
            raise WeightsMissing(how_to_get_weights(entry.id))
        network, sha = _load_entry(entry)
        size = tuple(entry.input.image_size) if entry.input.image_size else None
        return GmicRunner(network, backend, device, entry.id, entry.version, sha, cache, size)
    if isinstance(model, (str, Path)):
        path = Path(model)
        if path.is_file() and path.suffix.lower() != ".safetensors":
            raise InputError(path, "is a weights file, not a RadAssist checkpoint; install published GMIC weights "
                                   "with 'radassist models import gmic-N FILE' (N = the checkpoint's number) and "
                                   "pass --model gmic-N")
        model = load_checkpoint(path, "cpu")
    if isinstance(model, LoadedModel):
        if model.architecture != ARCHITECTURE:
            raise InputError(model.path, f"is a {model.architecture} model, not GMIC ({ARCHITECTURE})")
        size = (model.metadata.get("input") or {}).get("imageSize")
        return GmicRunner(model.model, backend, device, str(model.metadata.get("modelId") or model.path or
                                                            "checkpoint"), str(model.metadata.get("version", "")),
                          model.sha256, cache, tuple(size) if size else None)
    from radassist.mammo.model import Gmic

    if not isinstance(model, Gmic):
        raise TypeError(f"cannot run a {type(model).__name__} as GMIC")
    return GmicRunner(model, backend, device, cache_dir=cache)


def installed_models() -> list[str]:
    """Ids of the installed mammogram classifiers (published checkpoints and the user's own; not ensembles, whose
    members are listed themselves), catalogue order."""
    from radassist.runtime.catalog import load_catalog
    from radassist.runtime.registry import is_installed

    return [entry.id for entry in load_catalog().for_task(TASK) if not entry.is_ensemble and is_installed(entry)]


# -- results --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PatchBox:
    """One retrieved patch: its box in image pixels (upper-left, size; it may reach into the padding) and in the
    model window, and its attention weight."""

    index: int
    attention: float
    top: float
    left: float
    height: float
    width: float
    window_corner: tuple[int, int]


@dataclass
class ViewResult:
    """Everything GMIC said about one view."""

    prepared: PreparedView
    probabilities: dict[str, float]
    saliency: np.ndarray  # (C, rows, cols) float32 in 0..1 on the view's grid; 0 where no window reached
    patches: list[PatchBox]
    model_input: np.ndarray  # (H, W) the standardised published window (for pictures)
    patch_pixels: np.ndarray  # (K, ph, pw) cut from model_input
    runs: int  # network runs averaged (networks x windows)

    @property
    def name(self) -> str:
        return self.prepared.name

    @property
    def mammogram(self) -> Mammogram:
        return self.prepared.mammogram


@dataclass
class MammoResult:
    """Per-view and per-breast probabilities, saliency maps and patches of one exam."""

    classification: Classification
    views: list[ViewResult]
    models: list[dict[str, str]]

    def view(self, name: str) -> ViewResult:
        for item in self.views:
            if item.name == name:
                return item
        raise KeyError(f"no view {name!r}; have {[v.name for v in self.views]}")


# -- the pipeline ---------------------------------------------------------------------------------------------------

def prepare_exam(images: list[Mammogram], config: MammoConfig, crop_shape: tuple[int, int]) -> list[PreparedView]:
    """Check and window every view; two images of the same view are refused."""
    if not images:
        raise InputError(None, "no mammogram given; give one or more views of an exam (L-CC, R-CC, L-MLO, R-MLO)")
    prepared = [prepare_view(image, config.preprocess, crop_shape) for image in images]
    seen: dict[str, PreparedView] = {}
    for view in prepared:
        if view.name in seen:
            raise InputError(view.mammogram.path, f"is a second {view.name} view (the first is "
                                                  f"{seen[view.name].mammogram.path}); give one image per view")
        seen[view.name] = view
    return sorted(prepared, key=lambda v: EXAM_VIEWS.index(v.name))


def _upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, C, h, w) -> (N, C, H, W), bilinear with pixel-centre alignment (as cv2.resize)."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        return F.interpolate(torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32)), size=size,
                             mode="bilinear", align_corners=False).numpy()


def _classify_view(view: PreparedView, runners: list[GmicRunner], config: MammoConfig, rng: np.random.Generator,
                   progress: Progress) -> ViewResult:
    windows = [view.window] + augmented_windows(view.window, config.tta, rng, config.preprocess)
    names = CLASS_NAMES[:runners[0].config.num_classes]
    probability_sum = np.zeros(len(names))
    saliency_sum = np.zeros((len(names),) + view.mammogram.shape, dtype=np.float32)
    first: dict[str, np.ndarray] | None = None
    model_input = view.model_input()
    total = len(runners) * len(windows)
    done = 0
    for runner in runners:
        for start in range(0, len(windows), config.batch_size):
            progress.update(done / total, f"GMIC on {view.name} ({done + 1}/{total})")
            batch_windows = windows[start:start + config.batch_size]
            batch = np.stack([model_input if w is view.window else view.model_input(w) for w in batch_windows])
            out = runner.run(batch[:, None])
            probability_sum += out["y_fusion"].sum(axis=0)
            maps = _upsample(out["saliency_maps"], view.window.input_shape)
            for window, window_maps in zip(batch_windows, maps):
                saliency_sum += window.to_image(window_maps)
            if first is None:
                first = {key: value[0] for key, value in out.items()}
            done += len(batch_windows)
    assert first is not None
    crop = runners[0].config.crop_shape
    patches, pixels = [], []
    for index, ((top, left), weight) in enumerate(zip(first["patch_locations"], first["attention"])):
        box = view.window.box_to_image(top, left, crop[0], crop[1])
        patches.append(PatchBox(index, float(weight), *box, window_corner=(int(top), int(left))))
        pixels.append(model_input[int(top):int(top) + crop[0], int(left):int(left) + crop[1]])
    probabilities = {name: float(np.clip(p, 0.0, 1.0)) for name, p in zip(names, probability_sum / total)}
    return ViewResult(view, probabilities, np.clip(saliency_sum / total, 0.0, 1.0), patches, model_input,
                      np.stack(pixels), total)


def classify_exam(images: list[Mammogram], models: GmicRunner | list[GmicRunner],
                  config: MammoConfig = MammoConfig(), progress: Progress | None = None) -> MammoResult:
    """Classify the views of one exam with one network or an ensemble (see the module docstring)."""
    from radassist.mammo.postprocess import breast_groups, view_attributes

    progress = progress or Progress()
    runners = list(models) if isinstance(models, (list, tuple)) else [models]
    if not runners:
        raise WeightsMissing(how_to_get_weights())
    classes = {runner.config.num_classes for runner in runners}
    crops = {tuple(runner.config.crop_shape) for runner in runners}
    if len(classes) != 1:
        raise InputError(None, f"the ensemble's networks predict different numbers of classes {sorted(classes)}")
    sizes = {runner.input_size for runner in runners if runner.input_size is not None}
    if len(sizes) > 1:
        raise InputError(None, f"the ensemble's networks were trained on different window sizes {sorted(sizes)}")
    if sizes:
        config = dataclasses.replace(config, preprocess=dataclasses.replace(config.preprocess,
                                                                              input_size=sizes.pop()))
    prepared = prepare_exam(images, config, max(crops))
    rng = np.random.default_rng(config.tta_seed)
    results = []
    for number, view in enumerate(prepared):
        progress.check_cancelled()
        results.append(_classify_view(view, runners, config, rng,
                                      progress.sub(number / len(prepared), (number + 1) / len(prepared))))
    images_out = [ClassifiedImage(v.name, v.probabilities, view_attributes(v)) for v in results]
    descriptions = [runner.describe() for runner in runners]
    classification = Classification(images=images_out, groups=breast_groups(results),
                                    model=" + ".join(d["id"] for d in descriptions),
                                    metadata={"models": descriptions, "tta": config.tta, "tta_seed": config.tta_seed,
                                              "breast_probability": "mean of the breast's CC and MLO views"})
    progress.update(1.0, "done")
    return MammoResult(classification, results, descriptions)
