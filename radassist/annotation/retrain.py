"""Fine-tuning from exported corrections: where the starting weights come from, and where the result goes.

* :func:`resolve_init` turns ``--model MODEL_ID_OR_FILE`` into weights: a checkpoint folder, a weights file
  (safetensors or a torch.save state dict, fitted to the task's architecture), or a catalogue model id
  (``ID`` or ``ID@VERSION``) that is installed. Every file's sha256 is recorded, and checked where the
  catalogue or the checkpoint names one.
* :func:`register_finetuned` saves the fine-tuned network as a new version of a model in the local (user)
  catalogue, with the data it was trained on, what it started from and its metrics, so ``radassist models list``
  and every pipeline can use it and the provenance of later exports names it.

Mixing an export with the original training set is :func:`radassist.annotation.mix.mix_datasets`.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radassist.annotation.provenance import ModelInfo
from radassist.errors import InputError
from radassist.io.atomic import make_temp_dir
from radassist.runtime import paths as runtime_paths

if TYPE_CHECKING:
    import torch
    from torch import nn

    from radassist.runtime.catalog import ModelEntry

CATALOGUE_TASKS = {"lung": "lung-nodule-detection", "lung-infection": "lung-infection-segmentation",
                   "liver": "liver-segmentation", "brain": "brain-registration-segmentation",
                   "mammo": "mammography-classification"}
"""Training task (``radassist train TASK``) -> the catalogue's task name."""

_VERSION = re.compile(r"^[0-9]+(\.[0-9]+){1,2}$")
FRACTION_METRICS = ("dice", "iou", "jaccard", "auc", "sensitivity", "specificity", "precision", "recall", "f1",
                    "accuracy", "cpm")
"""Words that mark a metric as a 0..1 score a catalogue can report ("dice", "mean_dice_liver", "auc_malignant")."""


def is_fraction_metric(name: str, value: float) -> bool:
    words = re.split(r"[^a-z0-9]+", name.lower())
    return any(word in FRACTION_METRICS for word in words) and 0.0 <= float(value) <= 1.0


@dataclass
class InitWeights:
    """Starting weights for fine-tuning: the network they fit and where they came from."""

    architecture: str
    config: Any
    state_dict: dict[str, "torch.Tensor"]
    source: str
    model: ModelInfo
    labels: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)  # a checkpoint's training metadata (window, input size)

    def build(self) -> "nn.Module":
        """A network of the recorded architecture and config with these weights loaded (strictly)."""
        from radassist.runtime.registry import build_model

        network = build_model(self.architecture, self.config)
        network.load_state_dict(self.state_dict, strict=True)
        return network

    def to_dict(self) -> dict[str, Any]:
        """What the new checkpoint's metadata records about its starting point."""
        return {"source": self.source, **self.model.to_dict()}


def _from_checkpoint(path: Path, source: str, expected_sha256: str | None = None,
                     model_id: str = "", version: str = "") -> InitWeights:
    from radassist.runtime.checkpoints import load_checkpoint

    loaded = load_checkpoint(path, expected_sha256=expected_sha256)
    metadata = loaded.metadata
    info = ModelInfo(model_id=model_id or str(metadata.get("modelId") or ""),
                     version=version or str(metadata.get("modelVersion") or ""), weights_sha256=loaded.sha256,
                     architecture=loaded.architecture)
    return InitWeights(loaded.architecture, loaded.config, {k: v.detach().clone() for k, v in
                                                            loaded.model.state_dict().items()},
                       source, info, list(loaded.labels), dict(metadata))


def _from_weights_file(path: Path, architecture: str | None, config: Any, source: str, model_id: str = "",
                       version: str = "") -> InitWeights:
    from radassist.runtime.checkpoints import import_state_dict, sha256_file
    from radassist.runtime.registry import make_config

    if architecture is None:
        raise InputError(path, "is a bare weights file; say which architecture it is for (the training task "
                               "decides it) or give a checkpoint folder")
    state = import_state_dict(path, architecture, config=config)
    return InitWeights(architecture, make_config(architecture, config), state, source,
                       ModelInfo(model_id=model_id, version=version, weights_sha256=sha256_file(path),
                                 architecture=architecture))


def resolve_init(reference: str | Path, architecture: str | None = None, config: Any = None) -> InitWeights:
    """The weights ``--model`` names (see the module docstring). ``architecture``/``config`` size a bare weights
    file; a checkpoint or catalogue entry brings its own. InputError says what is missing and how to get it."""
    from radassist.runtime.catalog import installed_path, load_catalog
    from radassist.runtime.checkpoints import CONFIG_NAME

    text = str(reference)
    path = Path(text).expanduser()
    if path.exists():
        if path.is_dir() or (path.parent / CONFIG_NAME).is_file():
            return _from_checkpoint(path, text)
        return _from_weights_file(path, architecture, config, text)
    model_id, _, version = text.partition("@")
    try:
        entry = load_catalog().get(model_id, version or None)
    except KeyError as error:
        raise InputError(None, f"--model {text}: neither a file nor a model of the catalogue ({error.args[0]})") \
            from None
    folder = installed_path(entry)
    weights = [f for f in entry.files if f.format in ("safetensors", "pytorch-state-dict")]
    if (folder / CONFIG_NAME).is_file():
        expected = weights[0].sha256 if len(weights) == 1 and weights[0].name.endswith(".safetensors") else None
        return _from_checkpoint(folder, text, expected, entry.id, entry.version)
    present = [f for f in weights if (folder / f.name).is_file()]
    if not present:
        raise InputError(None, f"--model {text}: model {entry.label} is not installed; install it with 'radassist "
                               f"models install {entry.id}' or import weights with 'radassist models import "
                               f"{entry.id} FILE'")
    from radassist.runtime.checkpoints import sha256_file

    weights_path = folder / present[0].name
    if present[0].sha256 and sha256_file(weights_path) != present[0].sha256:
        raise InputError(weights_path, f"sha256 does not match the catalogue's for {entry.label}; install it again")
    return _from_weights_file(weights_path, entry.architecture, config or entry.architecture_config, text,
                              entry.id, entry.version)


def check_init(init: InitWeights, architecture: str, overrides: Mapping[str, Any] | None = None) -> Any:
    """``init``'s network config, when it is an ``architecture`` network that agrees with ``overrides`` (the
    network settings a training command was given); else an InputError naming the source and the difference,
    so fine-tuning never starts from weights that do not fit."""
    from radassist.runtime.registry import config_to_dict, make_config

    if init.architecture != architecture:
        raise InputError(None, f"--model {init.source}: is a {init.architecture} network; this training needs "
                               f"{architecture}")
    current = config_to_dict(init.config)
    wanted = config_to_dict(make_config(architecture, {**current, **dict(overrides or {})}))
    different = sorted(name for name in wanted if wanted[name] != current.get(name))
    if different:
        raise InputError(None, f"--model {init.source}: its network has "
                               + ", ".join(f"{name} {current.get(name)}" for name in different)
                               + "; the training asks for "
                               + ", ".join(f"{name} {wanted[name]}" for name in different)
                               + " (leave those options out to keep the network's own)")
    return init.config


def next_version(model_id: str, start_from: str | None = None) -> str:
    """The next minor version of ``model_id`` after every version the catalogue knows (and ``start_from``);
    '1.0.0' for a new id."""
    from radassist.runtime.catalog import load_catalog, version_key

    known = load_catalog().versions(model_id) + ([start_from] if start_from else [])
    if not known:
        return "1.0.0"
    major, minor, _ = version_key(max(known, key=version_key))
    return f"{major}.{minor + 1}.0"


def _template(task: str, base: InitWeights | None) -> "ModelEntry":
    from radassist.runtime.catalog import load_catalog

    catalog = load_catalog()
    if base is not None and base.model.model_id in catalog.ids():
        return catalog.get(base.model.model_id)
    candidates = catalog.for_task(task)
    if not candidates:
        raise InputError(None, f"the catalogue has no model for task {task}; cannot describe the new model")
    return candidates[0]


def register_finetuned(network: "nn.Module", architecture: str, config: Any, *, model_id: str, task: str,
                       metrics: Mapping[str, float], training_data: Sequence[str | Path],
                       base: InitWeights | None = None, version: str | None = None, title: str | None = None,
                       metrics_dataset: str = "validation split of the fine-tuning data",
                       metadata: Mapping[str, Any] | None = None) -> "ModelEntry":
    """Save ``network`` as ``model_id`` ``version`` (default: the next minor version) in the user catalogue.

    ``task`` is a training task (lung, liver, ...) or a catalogue task name. Labels and input description come
    from the starting model's catalogue entry (else the task's first model). ``metrics`` are all kept in the
    checkpoint's metadata; scores named like :data:`FRACTION_METRICS` with values within 0..1 are also the
    entry's reported metrics (unit: fraction). ``metadata`` (the training run's own checkpoint metadata: window,
    input size, history) is kept in the new checkpoint too, so the pipelines prepare inputs as the training did.
    Returns the new catalogue entry; on any failure nothing is installed."""
    from radassist.runtime.catalog import load_catalog
    from radassist.runtime.checkpoints import CONFIG_NAME, WEIGHTS_NAME, label_table, save_checkpoint, sha256_file
    from radassist.runtime.registry import (MODEL_ID_PATTERN, add_user_entry, config_to_dict, input_spec_json,
                                            make_config)

    task = CATALOGUE_TASKS.get(task, task)
    if task not in CATALOGUE_TASKS.values():
        raise InputError(None, f"unknown task {task!r}; one of {', '.join(CATALOGUE_TASKS)}")
    if not MODEL_ID_PATTERN.match(model_id):
        raise InputError(None, f"model id '{model_id}' must be lower-case letters and digits joined by '-'")
    version = version or next_version(model_id, base.model.version if base and base.model.model_id == model_id
                                      else None)
    if not _VERSION.match(version):
        raise InputError(None, f"version '{version}' must be numbers joined by dots, e.g. 1.1.0")
    config = make_config(architecture, config)
    template = _template(task, base)
    folder = runtime_paths.models_dir() / model_id / version
    if folder.exists():
        raise InputError(folder, f"model {model_id} {version} already exists; give another version")
    when = datetime.now(timezone.utc)
    data = [str(Path(p).resolve()) for p in training_data]
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = make_temp_dir(folder.parent)
    run = dict(metadata or {})
    try:
        save_checkpoint(network, architecture, config, staging, labels=template.labels, metadata={
            **run, "modelId": model_id, "modelVersion": version, "task": task,
            "finetunedFrom": base.to_dict() if base else run.get("finetunedFrom"), "trainingData": data,
            "metrics": {k: float(v) for k, v in metrics.items()}, "created": when.isoformat(timespec="seconds")})
        files = [{"name": name, "format": fmt, "sha256": sha256_file(staging / name),
                  "size": (staging / name).stat().st_size}
                 for name, fmt in ((WEIGHTS_NAME, "safetensors"), (CONFIG_NAME, "json"))]
        staging.rename(folder)
        started = f" from {base.model.label if base.model.model_id else base.source}" if base else ""
        entry = {
            "id": model_id, "version": version,
            "title": title or f"{template.title}, fine-tuned on corrections ({when.date().isoformat()})",
            "description": f"Fine-tuned by the user{started} on {', '.join(data)}.",
            "task": task, "status": "user-import",
            "obtain": f"fine-tuned locally with RadAssist on {when.date().isoformat()}",
            "architecture": {"name": architecture, "config": config_to_dict(config)},
            "files": files, "labels": label_table(template.labels), "input": input_spec_json(template.input),
            "licence": {"name": "unknown", "note": "set by whoever owns the training data and the starting weights"},
            "trainingData": {"datasets": [{"name": path, "note": "fine-tuning data"} for path in data]},
            "reportedMetrics": [
                {"name": name, "value": float(value), "unit": "fraction", "dataset": metrics_dataset,
                 "source": f"RadAssist fine-tuning run of {when.isoformat(timespec='seconds')}"}
                for name, value in metrics.items() if is_fraction_metric(name, value)],
        }
        add_user_entry(entry)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return load_catalog().get(model_id, version)
