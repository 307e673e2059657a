"""Liver and liver-tumour segmentation of a CT: the one entry point the CLI, Slicer and the benchmarks call.

``segment_liver(volume, model)`` checks the CT, runs the network slice by slice (torch or ONNX Runtime), cleans
the answer (:mod:`radassist.liver.postprocess`), and returns the label map with segments "Liver" and
"Liver tumour" (SNOMED CT coded) plus the quantification table. It never reads or writes files; a CT in which no
liver is found is an :class:`InputError` naming the file, never an empty result shown as if it were one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from radassist.errors import InputError
from radassist.liver.inference import InferenceSettings, predict_labels
from radassist.liver.model import TUMOUR_LABEL, liver_segments
from radassist.liver.postprocess import PostprocessConfig, PostprocessSummary, clean_liver_labels
from radassist.liver.preprocess import SEED_WINDOW, LiverPreprocessing, check_ct
from radassist.liver.quantify import LiverQuantification, quantify_labelmap
from radassist.results.labelmap import LabelMap
from radassist.results.tables import Report
from radassist.runtime.backends import InferenceBackend, make_backend
from radassist.runtime.folding import folded_inference_copy
from radassist.runtime.progress import Progress
from radassist.volume import Volume


class NoLiverFound(InputError):
    """The network found no liver (or too little to be one) in the CT."""


@dataclass
class LiverModel:
    """A liver network with what inference must know about how it was trained.

    ``network`` is a torch module (the backend is built per run) or a ready backend (an ONNX session).
    """

    network: torch.nn.Module | InferenceBackend
    architecture: str
    preprocessing: LiverPreprocessing = field(default_factory=LiverPreprocessing)
    input_size: tuple[int, int] | None = None  # the training slice size; None = native size
    size_multiple: int = 16
    label_table: list[dict[str, Any]] = field(default_factory=list)
    source: str = ""  # checkpoint folder or catalogue entry, for the report
    identity: dict[str, str] = field(default_factory=dict)  # {"id", "version", "sha256"}: names the weights
    #                                                          wherever the result is read (a server's client too)

    @classmethod
    def from_checkpoint(cls, loaded: Any, window: tuple[float, float] | None = None,
                        image_size: tuple[int, ...] | None = None, entry: Any = None) -> "LiverModel":
        """From a :class:`radassist.runtime.checkpoints.LoadedModel` of ``liver-unet``/``liver-munet``; the window,
        context and slice size come from its training metadata, else from ``window``/``image_size`` (a catalogue
        entry's input description), else the seed recipe's window at native size. ``entry`` (the catalogue entry
        of an installed model) names the weights when the checkpoint does not."""
        metadata = loaded.metadata or {}
        identity = {"id": str(metadata.get("modelId") or (entry.id if entry is not None else "")),
                    "version": str(metadata.get("modelVersion") or (entry.version if entry is not None else "")),
                    "sha256": str(loaded.sha256 or "")}
        window = tuple(float(v) for v in metadata.get("window") or window or SEED_WINDOW)
        size = metadata.get("image_size") or image_size
        config = loaded.config
        return cls(network=loaded.model, architecture=loaded.architecture,
                   preprocessing=LiverPreprocessing(window=window, context_slices=int(config.context_slices)),
                   input_size=tuple(int(v) for v in size) if size else None,
                   size_multiple=2 ** (len(config.channels) - 1), label_table=list(loaded.labels or []),
                   source=str(loaded.path or ""), identity=identity)

    def backend(self, kind: str = "torch", device: Any = "cpu", cache_dir: Any = None) -> InferenceBackend:
        """A torch or ONNX Runtime backend for an inference copy of the network with its batch norms folded (for
        ONNX exported once, into ``cache_dir`` or the RadAssist cache)."""
        if isinstance(self.network, InferenceBackend):
            return self.network
        size = self.input_size or (self.size_multiple * 2, self.size_multiple * 2)
        example = np.zeros((1, self.preprocessing.channels, *size), dtype=np.float32)
        return make_backend(folded_inference_copy(self.network), kind, device, example_inputs=example,
                            input_names=["image"], output_names=["logits"], model_id=self.architecture,
                            cache_dir=cache_dir)


@dataclass(frozen=True)
class LiverSegmentationConfig:
    """Inference batch size and the cleaning steps."""

    batch_size: int = 8
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)


@dataclass
class LiverResult:
    """The segmentation, its measures and how it was made."""

    labelmap: LabelMap
    quantification: LiverQuantification
    report: Report
    cleaning: PostprocessSummary
    backend: str
    seconds: float

    @property
    def largest_tumour_center(self) -> tuple[float, float, float] | None:
        tumours = self.quantification.tumours
        return tumours[0].center_lps if tumours else None


def segment_liver(volume: Volume, model: LiverModel, config: LiverSegmentationConfig = LiverSegmentationConfig(),
                  progress: Progress | None = None, backend: InferenceBackend | None = None,
                  device: Any = "cpu") -> LiverResult:
    """Segment liver and tumours in ``volume`` (a CT in HU); ``backend`` overrides the model's torch backend."""
    started = time.perf_counter()
    progress = progress or Progress()
    check_ct(volume)
    progress.update(0.0, "preparing the network")
    runner = backend or model.backend("torch", device)
    settings = InferenceSettings(model.input_size, model.size_multiple, config.batch_size)
    raw = predict_labels(volume, runner, model.preprocessing, settings, progress.sub(0.02, 0.9))
    progress.update(0.92, "cleaning the segmentation")
    labels, cleaning = clean_liver_labels(raw, volume.geometry, config.postprocess)
    liver_ml = float(np.count_nonzero(labels)) * volume.geometry.voxel_volume_mm3 / 1000.0
    if liver_ml < config.postprocess.min_liver_volume_ml or not labels.any():
        minimum = config.postprocess.min_liver_volume_ml
        raise NoLiverFound(volume.source.path, f"no liver found: the network marked {liver_ml:.1f} mL as liver "
                                             f"(less than {minimum:g} mL). Give an abdominal CT that shows the "
                                             f"liver, and a model trained on such scans "
                                             f"({model.source or model.architecture})")
    labelmap = LabelMap(labels=labels, geometry=volume.geometry, segments=liver_segments(model.label_table),
                        source=volume.source,
                        metadata={"model": model.architecture, "modelSource": model.source,
                                  "modelIdentity": model.identity, "tumourLabel": TUMOUR_LABEL})
    progress.update(0.96, "measuring")
    quantification = quantify_labelmap(labelmap, volume)
    report = quantification.report()
    report.metadata.update({"model": model.architecture, "model_source": model.source,
                            "model_identity": model.identity,
                            "backend": runner.describe(), "cleaning": vars(cleaning)})
    progress.update(1.0, "done")
    return LiverResult(labelmap, quantification, report, cleaning, runner.describe(),
                       time.perf_counter() - started)
