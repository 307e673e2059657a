"""Model checkpoints: safetensors weights plus a config.json that says how to rebuild the network.

A RadAssist checkpoint is a folder with ``model.safetensors`` and ``config.json`` (architecture name, config
fields, label table, RadAssist version, sha256 of the weights). Loading checks the sha256 before reading a single
tensor. Foreign PyTorch files are read only with ``torch.load(weights_only=True)``: a pickle that holds anything
but tensors and plain containers is refused, because unpickling arbitrary objects can run code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radassist.errors import InputError
from radassist.io.atomic import atomic_path
from radassist.io.json_files import read_json
from radassist.runtime.registry import KeyMapping, config_to_dict, get_architecture, make_config

if TYPE_CHECKING:
    import torch
    from torch import nn

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CHECKPOINT_FORMAT = "radassist-checkpoint"
FORMAT_VERSION = 1

# Keys under which training scripts commonly nest the weights (Lightning, MONAI bundles, nnU-Net, GMIC, ...).
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "network_weights", "net", "weights")
# Prefixes added by torch.nn.DataParallel / DistributedDataParallel and by torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_LISTED = 12  # keys shown per category in a mismatch message


@dataclass
class LoadedModel:
    """A model rebuilt from a checkpoint, in eval mode on the requested device, with what described it."""

    model: nn.Module
    architecture: str
    config: Any
    metadata: dict[str, Any] = field(default_factory=dict)
    labels: list[dict[str, Any]] = field(default_factory=list)
    sha256: str = ""
    path: Path | None = None


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (weights can be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def label_table(labels: Sequence[Any] | Mapping[int, str] | None) -> list[dict[str, Any]]:
    """Labels as JSON objects with at least value and name, from {value: name}, dicts, or catalogue LabelEntry
    objects (written in the catalogue's own JSON form: colour 0..255, terminology codes as lists)."""
    if labels is None:
        return []
    if isinstance(labels, Mapping):
        return [{"value": int(value), "name": str(name)} for value, name in sorted(labels.items())]
    from radassist.results.segments import Terminology
    from radassist.results.terminology import terminology_to_dict

    table = []
    for label in labels:
        if isinstance(getattr(label, "terminology", None), Terminology):  # a catalogue LabelEntry
            entry = {"name": label.name, "value": int(label.value),
                     "color": [int(round(c * 255)) for c in label.color],
                     "terminology": terminology_to_dict(label.terminology),
                     **({"description": label.description} if getattr(label, "description", "") else {})}
        else:
            entry = dataclasses.asdict(label) if dataclasses.is_dataclass(label) else dict(label)
        if "value" not in entry or "name" not in entry:
            raise ValueError(f"label {entry!r} needs a 'value' and a 'name'")
        table.append(entry)
    return table


def plain_tensors(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors with no shared storage (safetensors refuses tied weights; they are copied)."""
    seen: set[int] = set()
    plain = {}
    for key, tensor in state.items():
        tensor = tensor.detach().cpu().contiguous()
        pointer = tensor.untyped_storage().data_ptr()
        if pointer in seen and tensor.numel() > 0:
            tensor = tensor.clone()
        seen.add(pointer)
        plain[key] = tensor
    return plain


def save_checkpoint(model: nn.Module, architecture: str, config: Any, folder: str | Path,
                    metadata: Mapping[str, Any] | None = None,
                    labels: Sequence[Any] | Mapping[int, str] | None = None) -> Path:
    """Write ``model.safetensors`` then ``config.json`` into ``folder`` (each atomically); return the folder.

    ``config`` must be the architecture's config dataclass (it is what rebuilds the network); ``metadata`` is
    any JSON-serialisable provenance (training data, epochs, source file).
    """
    from safetensors.torch import save_file

    from radassist import __version__

    spec = get_architecture(architecture)
    if not isinstance(config, spec.config_class):
        raise TypeError(f"architecture {architecture} needs a {spec.config_class.__name__} config, "
                        f"got {type(config).__name__}")
    record: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT, "formatVersion": FORMAT_VERSION,
        "architecture": architecture, "config": config_to_dict(config),
        "labels": label_table(labels), "metadata": dict(metadata or {}),
        "radassistVersion": __version__, "weights": WEIGHTS_NAME,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        json.dumps(record)
    except TypeError as error:
        raise ValueError(f"checkpoint config or metadata is not JSON-serialisable: {error}") from None
    folder = Path(folder)
    header = {"radassist.architecture": architecture, "radassist.config": json.dumps(record["config"])}
    with atomic_path(folder / WEIGHTS_NAME) as temp:
        save_file(plain_tensors(model.state_dict()), str(temp), metadata=header)
        record["sha256"] = sha256_file(temp)
    with atomic_path(folder / CONFIG_NAME) as temp:
        temp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return folder


def read_checkpoint_config(folder: str | Path) -> dict[str, Any]:
    """The parsed config.json of a checkpoint folder; InputError when missing or not a RadAssist checkpoint."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise InputError(folder, f"has no {CONFIG_NAME}; a RadAssist checkpoint is a folder with {WEIGHTS_NAME} "
                                 f"and {CONFIG_NAME} (bring other weights in with 'radassist models import')")
    record = read_json(path, "checkpoint config")
    if not isinstance(record, dict) or record.get("format") != CHECKPOINT_FORMAT or "architecture" not in record:
        raise InputError(path, f"is not a RadAssist checkpoint config (no \"format\": \"{CHECKPOINT_FORMAT}\")")
    return record


def load_checkpoint(folder_or_file: str | Path, device: Any = "cpu",
                    expected_sha256: str | None = None) -> LoadedModel:
    """Rebuild the model of a checkpoint folder (or its .safetensors file): sha256 first, then a strict load."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(folder_or_file)
    if not path.exists():
        raise InputError(path, "does not exist")
    folder = path if path.is_dir() else path.parent
    record = read_checkpoint_config(folder)
    weights = path if path.is_file() and path.name != CONFIG_NAME else folder / record.get("weights", WEIGHTS_NAME)
    if not weights.is_file():
        raise InputError(weights, "is missing: the checkpoint folder is incomplete; install or import it again")

    actual = sha256_file(weights)
    for wanted, source in ((expected_sha256, "the catalogue"), (record.get("sha256"), CONFIG_NAME)):
        if wanted and actual != wanted.lower():
            raise InputError(weights, f"sha256 {actual} does not match {wanted.lower()} recorded in {source}: the "
                                      f"file is damaged or was replaced; install or import it again")
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError) as error:
        raise InputError(weights, f"is not a readable safetensors file ({error})") from None

    architecture = str(record["architecture"])
    try:
        config = make_config(architecture, record.get("config") or {})
    except InputError as error:
        raise InputError(folder / CONFIG_NAME, error.problem) from None
    model = get_architecture(architecture).build(config)
    check_state_dict(state, model, weights, architecture)
    model.load_state_dict(state, strict=True)
    model.to(getattr(device, "device", device)).eval()  # a DeviceChoice, torch.device or "cuda:0"
    return LoadedModel(model=model, architecture=architecture, config=config,
                       metadata=dict(record.get("metadata") or {}), labels=list(record.get("labels") or []),
                       sha256=actual, path=folder)


# --- foreign weights ---------------------------------------------------------------------------------------------

def _refused_pickle(path: Path, error: Exception) -> InputError:
    text = str(error)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return InputError(path, f"is a pickle holding Python objects, not only tensors (it needs {found.group(1)}); "
                                f"RadAssist never unpickles arbitrary objects because that can run code. Save the "
                                f"weights alone with torch.save(model.state_dict(), 'weights.pt') or as safetensors")
    return InputError(path, "cannot be read as PyTorch weights with torch.load(weights_only=True); "
                            "expected a state dict saved with torch.save or a .safetensors file")


def read_weights_file(path: str | Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The raw contents of a .safetensors file (with its header metadata) or a torch.save file (safely)."""
    import torch
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "does not exist" if not path.exists() else "is not a file")
    if path.suffix.lower() == ".safetensors":
        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                header = dict(handle.metadata() or {})
                return {key: handle.get_tensor(key) for key in handle.keys()}, header
        except (SafetensorError, OSError) as error:
            raise InputError(path, f"is not a readable safetensors file ({error})") from None
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise _refused_pickle(path, error) from None
    except Exception as error:  # the unpickler fails in many ways on a file that is not a torch.save file
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise InputError(path, f"cannot be read as PyTorch weights ({reason})") from None
    if not isinstance(content, Mapping):
        raise InputError(path, f"holds a {type(content).__name__}, not a state dict (a dict of tensors)")
    return dict(content), {}


def unwrap_state_dict(content: Mapping[str, Any], path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint dict: nested {"state_dict": ...} or {"model": ...} wrappers removed."""
    import torch

    state: Mapping[str, Any] = content
    while not all(isinstance(v, torch.Tensor) for v in state.values()):
        inner = next((state[k] for k in _WRAPPER_KEYS if isinstance(state.get(k), Mapping)), None)
        if inner is None:
            break
        state = inner
    others = sorted(str(k) for k, v in state.items() if not isinstance(v, torch.Tensor))
    if others:
        raise InputError(path, f"holds entries that are not tensors ({_listing(others)}) and no nested state dict "
                               f"under {', '.join(_WRAPPER_KEYS)}")
    if not state:
        raise InputError(path, "holds no tensors")
    return dict(state)


def _strip_wrapper_prefixes(state: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    """Remove DataParallel/compile prefixes when every key has one and the model's own keys do not."""
    for prefix in _WRAPPER_PREFIXES:
        if all(k.startswith(prefix) for k in state) and not all(k.startswith(prefix) for k in expected):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def apply_key_mapping(state: Mapping[str, torch.Tensor], mapping: KeyMapping | None,
                      path: str | Path) -> dict[str, torch.Tensor]:
    """Rename keys: a dict renames prefixes (longest first, unmatched keys kept); a function returns the new key
    or None to drop it."""
    if mapping is None:
        return dict(state)
    prefixes = sorted(mapping, key=len, reverse=True) if isinstance(mapping, Mapping) else []
    renamed: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if callable(mapping):
            new = mapping(key)
        else:
            prefix = next((p for p in prefixes if key.startswith(p)), None)
            new = key if prefix is None else mapping[prefix] + key[len(prefix):]
        if new is None:
            continue
        if new in renamed:
            raise InputError(path, f"two weights map to the same key '{new}' after renaming")
        renamed[new] = tensor
    return renamed


def _listing(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:_LISTED])
    return shown + (f", ... and {len(keys) - _LISTED} more" if len(keys) > _LISTED else "")


def check_state_dict(state: Mapping[str, torch.Tensor], model: nn.Module, path: str | Path,
                     architecture: str) -> None:
    """Refuse weights that do not fit ``model`` exactly, listing missing, unexpected and wrong-shape keys."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k} (file {list(state[k].shape)}, model {list(expected[k].shape)})"
             for k in sorted(set(state) & set(expected)) if tuple(state[k].shape) != tuple(expected[k].shape)]
    if not (missing or unexpected or wrong):
        return
    parts = [f"does not fit architecture {architecture} with this config:"]
    for what, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong)):
        if keys:
            parts.append(f"  {what} ({len(keys)}): {_listing(keys)}")
    raise InputError(path, "\n".join(parts))


def fit_state_dict(content: Mapping[str, Any], model: nn.Module, path: str | Path, architecture: str,
                   key_mapping: KeyMapping | None = None) -> dict[str, torch.Tensor]:
    """Unwrap, strip wrapper prefixes, rename and strictly check foreign weights against ``model``."""
    state = unwrap_state_dict(content, path)
    state = _strip_wrapper_prefixes(state, set(model.state_dict()))
    state = apply_key_mapping(state, key_mapping, path)
    check_state_dict(state, model, path, architecture)
    return state


def import_state_dict(path: str | Path, architecture: str, key_mapping: KeyMapping | None = None,
                      config: Mapping[str, Any] | Any | None = None) -> dict[str, torch.Tensor]:
    """Read a user's weights file (torch.save state dict or safetensors) and fit it to ``architecture``.

    ``key_mapping`` defaults to the architecture's registered one; ``config`` (dict or dataclass) sizes the model
    the weights are checked against (defaults: the config dataclass's own).
    """
    spec = get_architecture(architecture)
    content, _ = read_weights_file(path)
    model = spec.build(make_config(architecture, config))
    return fit_state_dict(content, model, path, architecture, key_mapping or spec.key_mapping)
