"""The provenance record kept beside every exported case: which model made the AI result, the AI result itself
(its files copied unchanged, with their sha256), who corrected it and when, and how much changed.

A label is only worth training on when one can say where it came from; this record is also what
``radassist dataset stats`` reads to show how much annotators changed, per label and per model version.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from radassist.errors import InputError
from radassist.io.atomic import atomic_path
from radassist.io.json_files import read_json

PROVENANCE_FORMAT = "radassist-provenance"
PROVENANCE_VERSION = 1
PROVENANCE_NAME = "provenance.json"


@dataclass(frozen=True)
class ModelInfo:
    """The model that made an AI result. Empty fields mean "not known" (a result from elsewhere)."""

    model_id: str = ""
    version: str = ""
    weights_sha256: str = ""
    architecture: str = ""

    @property
    def label(self) -> str:
        """``id version`` as ``dataset stats`` groups by it; "unknown model" when there is no id."""
        if not self.model_id:
            return "unknown model"
        return f"{self.model_id} {self.version}".strip()

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "ModelInfo":
        data = data or {}
        return cls(**{k: str(data.get(k) or "") for k in ("model_id", "version", "weights_sha256", "architecture")})


def _split_reference(reference: str) -> tuple[str, str | None]:
    """'lung-detr@0.1.0' or 'lung-detr:0.1.0' -> ('lung-detr', '0.1.0')."""
    for separator in ("@", ":"):
        if separator in reference and not Path(reference).exists():
            model_id, _, version = reference.partition(separator)
            return model_id, version or None
    return reference, None


def _installed_identity(folder: Path) -> tuple[str, str]:
    """(id, version) of a checkpoint folder that is an installed catalogue model (``<models_dir>/<id>/<version>``),
    else ("", ""): its own folder name is the version there, not the model's id."""
    from radassist.runtime.paths import models_dir

    try:
        inside = folder.resolve().parent.parent == models_dir().resolve()
    except OSError:
        return "", ""
    return (folder.parent.name, folder.name) if inside else ("", "")


def model_info_for(reference: str | None, version: str | None = None,
                   weights_sha256: str | None = None) -> ModelInfo:
    """Resolve what the user said made the AI result: a checkpoint folder (its config.json), a weights file (its
    name and sha256), a catalogue model id (``ID`` or ``ID@VERSION``: version and weights sha256 from the
    catalogue, or from the installed file), or nothing. Explicit ``version``/``weights_sha256`` win over what is
    looked up. An unknown id is an InputError."""
    if not reference:
        return ModelInfo(version=version or "", weights_sha256=weights_sha256 or "")
    path = Path(reference)
    if path.exists():
        from radassist.runtime.checkpoints import CONFIG_NAME, read_checkpoint_config, sha256_file

        folder = path if path.is_dir() else path.parent
        if path.is_file() and not (folder / CONFIG_NAME).is_file():  # a bare weights file: its name and hash
            return ModelInfo(model_id=path.name.split(".")[0], version=version or "",
                             weights_sha256=weights_sha256 or sha256_file(path))
        record = read_checkpoint_config(folder)
        metadata = record.get("metadata") or {}
        sha = record.get("sha256") or (sha256_file(path) if path.is_file() else "")
        installed_id, installed_version = _installed_identity(folder)
        return ModelInfo(model_id=str(metadata.get("modelId") or installed_id or folder.name),
                         version=version or str(metadata.get("modelVersion") or metadata.get("version")
                                                or installed_version or ""),
                         weights_sha256=weights_sha256 or sha, architecture=str(record.get("architecture", "")))
    from radassist.runtime.catalog import installed_path, load_catalog
    from radassist.runtime.checkpoints import sha256_file

    model_id, pinned = _split_reference(reference)
    try:
        entry = load_catalog().get(model_id, version or pinned)
    except KeyError as error:
        raise InputError(None, f"--model-id {reference}: {error.args[0]}") from None
    sha = weights_sha256 or ""
    weights = [f for f in entry.files if f.format in ("safetensors", "pytorch-state-dict", "onnx")]
    if not sha and weights:
        sha = weights[0].sha256 or ""
        installed = installed_path(entry) / weights[0].name
        if not sha and installed.is_file():
            sha = sha256_file(installed)
    return ModelInfo(model_id=entry.id, version=entry.version, weights_sha256=sha, architecture=entry.architecture)


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class ProvenanceRecord:
    """Everything known about one exported case version. File paths are relative to the dataset folder."""

    task: str
    case: str
    version: str
    model: ModelInfo
    annotator: str
    created: str = field(default_factory=now_utc)
    ai_result: list[dict[str, str]] = field(default_factory=list)   # {"path", "sha256", "original"}
    corrected: list[dict[str, str]] = field(default_factory=list)   # {"path", "sha256", "role"}
    changes: dict[str, Any] = field(default_factory=dict)
    review: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    radassist_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["model"] = self.model.to_dict()
        return {"format": PROVENANCE_FORMAT, "formatVersion": PROVENANCE_VERSION, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path | None = None) -> "ProvenanceRecord":
        if not isinstance(data, dict) or data.get("format") != PROVENANCE_FORMAT:
            raise InputError(path, f"not a RadAssist provenance record (no \"format\": \"{PROVENANCE_FORMAT}\")")
        try:
            return cls(task=str(data["task"]), case=str(data["case"]), version=str(data["version"]),
                       model=ModelInfo.from_dict(data.get("model")), annotator=str(data.get("annotator", "")),
                       created=str(data.get("created", "")), ai_result=list(data.get("ai_result") or []),
                       corrected=list(data.get("corrected") or []), changes=dict(data.get("changes") or {}),
                       review=dict(data.get("review") or {}), source=dict(data.get("source") or {}),
                       radassist_version=str(data.get("radassist_version", "")))
        except KeyError as error:
            raise InputError(path, f"provenance record lacks {error.args[0]!r}") from None


def provenance_text(record: ProvenanceRecord) -> str:
    """The JSON text of a record (NaN refused: an undefined number is written as null by the change metrics)."""
    return json.dumps(record.to_dict(), indent=2, allow_nan=False) + "\n"


def write_provenance(record: ProvenanceRecord, path: str | Path) -> Path:
    path = Path(path)
    text = provenance_text(record)
    with atomic_path(path) as temp:
        temp.write_text(text, encoding="utf-8")
    return path


def read_provenance(path: str | Path) -> ProvenanceRecord:
    path = Path(path)
    return ProvenanceRecord.from_dict(read_json(path, "provenance record"), path)
