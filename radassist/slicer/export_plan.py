"""What a panel's "Export corrected labels..." needs to decide before it calls the engine, without Slicer: which
exporter a task uses, the case name, the model that made the AI result, and the mammography labels to confirm.

The model is identified the way `radassist export --model` does it (:func:`model_info_for`): a catalogue id
gets its version and weights sha256 from the catalogue, a checkpoint folder from its config.json; what the run
itself recorded (a result's metadata, a server's result.json) wins where it is more precise.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from radassist.annotation.export import CASE_NAME, TASK_LAYOUTS
from radassist.annotation.provenance import ModelInfo, model_info_for
from radassist.errors import InputError
from radassist.results.tables import Classification

EXPORTERS = {"liver": "export_segmentation_node", "lung-infection": "export_segmentation_node",
             "lung": "export_roi_nodes", "brain": "export_brain_tumour", "mammo": "export_mammo_exam"}
"""Export task -> the function of :mod:`radassist.slicer.review` that exports a panel's result for it."""


def exporter_for(task: str) -> str:
    if task not in EXPORTERS:
        raise InputError(None, f"no export for task {task!r}; known: {', '.join(sorted(TASK_LAYOUTS))}")
    return EXPORTERS[task]


def case_name(text: str, fallback: str = "case") -> str:
    """A case name the dataset accepts, from a node or series name: other characters become '_'."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text or "")).strip("._-")
    cleaned = re.sub(r"\.{2,}", ".", cleaned)[:128].rstrip(".")
    return cleaned if CASE_NAME.match(cleaned) else fallback


def model_info(reference: str | None, version: str = "", weights_sha256: str = "",
               architecture: str = "") -> ModelInfo:
    """As `radassist export --model` resolves it; a reference the catalogue does not know (an in-memory model,
    a checkpoint folder on a server) keeps what the run recorded instead of failing the export."""
    try:
        found = model_info_for(reference or None, version or None, weights_sha256 or None)
    except InputError:
        found = ModelInfo(model_id=Path(reference).name if reference and "/" in reference else reference or "",
                          version=version, weights_sha256=weights_sha256)
    if architecture and not found.architecture:
        found = dataclasses.replace(found, architecture=architecture)
    return found


def _from_description(description: Mapping[str, Any]) -> ModelInfo:
    return model_info(str(description.get("id") or ""), str(description.get("version") or ""),
                      str(description.get("sha256") or ""))


def model_info_from_metadata(metadata: Mapping[str, Any] | None, engine: str = "") -> ModelInfo:
    """The model behind a result, from what the pipelines record: ``model`` as a description
    (``{"id", "version", "sha256"}``, Lung-DETR) or a name (``"id version"`` or an architecture), ``models`` (a
    GMIC ensemble: ids and hashes joined with '+'), ``modelIdentity``/``model_identity`` (``{"id", "version",
    "sha256"}`` of the weights, liver), ``modelSource``/``model_source`` (a checkpoint folder).
    A run without a trained model (a classical engine) is named after ``engine``."""
    metadata = metadata or {}
    models = metadata.get("models")
    if isinstance(models, list) and models:
        infos = [_from_description(m) for m in models if isinstance(m, Mapping)]
        return ModelInfo(" + ".join(i.model_id for i in infos), " + ".join(i.version for i in infos),
                         " + ".join(i.weights_sha256 for i in infos))
    model = metadata.get("model")
    if isinstance(model, Mapping):
        return _from_description(model)
    identity = metadata.get("modelIdentity") or metadata.get("model_identity")
    if isinstance(identity, Mapping) and identity.get("sha256"):  # names the weights, also from a server's result
        return ModelInfo(model_id=str(identity.get("id") or model or ""), version=str(identity.get("version") or ""),
                         weights_sha256=str(identity["sha256"]), architecture=str(model or ""))
    source = metadata.get("modelSource") or metadata.get("model_source")
    if source and Path(str(source)).exists():
        return model_info(str(source), architecture=str(model or ""))
    if isinstance(model, str) and model:
        model_id, _, version = model.partition(" ")
        if version and not version.startswith("("):  # "id version" of a catalogue model
            return model_info(model_id, version)
        return ModelInfo(model_id=model_id, architecture=model_id)  # an architecture run from a local checkpoint
    return ModelInfo(model_id=engine, architecture=engine) if engine else ModelInfo()


def breast_labels(classification: Classification) -> dict[str, dict[str, float]]:
    """Per breast the AI's probabilities, {"L": {"benign": p, "malignant": p}, "R": ...}, as the export compares."""
    from radassist.commands.annotation import breast_probabilities

    groups = [{"image_id": g.image_id, "probabilities": g.probabilities} for g in classification.groups]
    return breast_probabilities({"groups": groups}, Path("GMIC result"))


def proposed_labels(classification: Classification, threshold: float = 0.5) -> dict[str, dict[str, int]]:
    """The labels the panel proposes for the reader to confirm: 1 where the AI's probability reaches ``threshold``."""
    return {side: {name: int(p >= threshold) for name, p in probabilities.items()}
            for side, probabilities in breast_labels(classification).items()}
