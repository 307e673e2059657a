"""What the "installed models" views show and allow, decided once for `radassist models` and the Slicer panels.

The CLI table and the Slicer "Models" section list the same rows (id, title, version, task, status, licence, size,
folder), enable the same actions (install, import, remove) and give the same advice when a model cannot be
downloaded, phrased for a terminal or for the panel. The device selector's choices and the note that explains why
no GPU is offered, and the cache folder with how to move it, live here too, so the Qt code only draws widgets.
Nothing here imports Qt or Slicer; torch is imported only to list devices, and its absence is reported, not fatal.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from radassist.errors import DownloadError, InputError, OutputError, RadAssistError
from radassist.io.atomic import ensure_writable_dir
from radassist.runtime import paths
from radassist.runtime.catalog import AVAILABLE, PLANNED, Catalog, ModelEntry, installed_path, load_catalog
from radassist.runtime.device import PREFERENCES_HELP, DeviceInfo
from radassist.runtime.registry import MODEL_ID_PATTERN, is_installed

INSTALLED, NOT_INSTALLED, PLANNED_STATUS, NEEDS_IMPORT = "installed", "not installed", "planned", "needs import"
STATUSES = (INSTALLED, NOT_INSTALLED, PLANNED_STATUS, NEEDS_IMPORT)
AUTO_DEVICE = "auto"
WEIGHTS_FILES = "a .pt/.pth/.ckpt state dict or .safetensors file"


class Frontend(str, Enum):
    """Who reads the advice: a terminal user (commands to type) or a panel user (buttons to click)."""

    CLI = "cli"
    PANEL = "panel"


# --- rows --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelRow:
    """One catalogue entry as a table shows it; ``size_bytes`` is on disk when installed, else the download size."""

    id: str
    version: str
    title: str
    task: str
    status: str                  # one of STATUSES
    licence: str
    size_bytes: int | None       # None: the catalogue does not say how big the download is
    folder: Path                 # where the files are (or will be) installed
    architecture: str
    catalogue_status: str        # planned / user-import / available, as the catalogue says
    catalogue: Path
    has_files: bool              # the install folder exists (complete or not)
    user_entry: bool             # the entry comes from the user's own catalogue of imports
    consent_required: bool = False  # its licence must be accepted before the download (download.licence_terms)
    members: tuple[str, ...] = ()   # an ensemble: the models it runs; installing it installs them

    @property
    def label(self) -> str:
        return f"{self.id} {self.version}"

    @property
    def installed(self) -> bool:
        return self.status == INSTALLED

    @property
    def install_state(self) -> str:
        """The three values `models list --json` has always printed as "status": needs import counts as not
        installed there, so scripts written against earlier releases keep working."""
        return NOT_INSTALLED if self.status == NEEDS_IMPORT else self.status

    @property
    def size_text(self) -> str:
        return "?" if self.size_bytes is None else format_size(self.size_bytes)

    def as_json(self) -> dict[str, Any]:
        """The row for `radassist models list --json`."""
        return {"id": self.id, "version": self.version, "task": self.task, "title": self.title,
                "status": self.install_state, "state": self.status, "catalogueStatus": self.catalogue_status,
                "architecture": self.architecture, "licence": self.licence, "size": self.size_bytes,
                "folder": str(self.folder), "path": str(self.folder) if self.installed else None,
                "catalogue": str(self.catalogue)}


def format_size(num_bytes: int) -> str:
    """1536 -> '1.5 KiB': sizes people read at a glance."""
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{num_bytes} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def model_state(entry: ModelEntry) -> str:
    """installed; else planned (no weights published), needs import (the user must bring the file), not installed."""
    if is_installed(entry):
        return INSTALLED
    if entry.status == PLANNED:
        return PLANNED_STATUS
    return NOT_INSTALLED if entry.status == AVAILABLE else NEEDS_IMPORT


def _size(entry: ModelEntry, installed: bool, catalog: Catalog | None = None) -> int | None:
    if entry.is_ensemble:
        sizes = [_size(member, installed) for member in (catalog or load_catalog()).members(entry)]
        return None if None in sizes else sum(sizes)  # type: ignore[arg-type]
    if installed:
        return sum((installed_path(entry) / f.name).stat().st_size for f in entry.files)
    sizes = [f.size for f in entry.files]
    return None if not sizes or None in sizes else sum(sizes)  # type: ignore[arg-type]


def model_row(entry: ModelEntry, catalog: Catalog | None = None) -> ModelRow:
    status = model_state(entry)
    folder = installed_path(entry)
    return ModelRow(id=entry.id, version=entry.version, title=entry.title, task=entry.task, status=status,
                    licence=str(entry.licence.get("name", "")), size_bytes=_size(entry, status == INSTALLED, catalog),
                    folder=folder, architecture=entry.architecture, catalogue_status=entry.status,
                    catalogue=entry.catalogue, has_files=folder.is_dir(),
                    user_entry=entry.catalogue == paths.user_catalog(), consent_required=entry.consent_required,
                    members=entry.members)


def tasks_matching(catalog: Catalog, task: str | None) -> list[str]:
    """The catalogue's tasks that ``task`` names, exactly or as a prefix ('lung' -> both lung tasks)."""
    return [t for t in sorted({entry.task for entry in catalog}) if t.startswith(task or "")]


def model_rows(task: str | None = None, catalog: Catalog | None = None) -> list[ModelRow]:
    """Rows for every catalogue entry (every version) of ``task`` (a prefix works), or of all tasks."""
    catalog = catalog if catalog is not None else load_catalog()
    tasks = tasks_matching(catalog, task)
    if not tasks:
        raise InputError(None, f"no models for task '{task}'; tasks: {', '.join(tasks_matching(catalog, None))}")
    return [model_row(entry, catalog) for entry in catalog if entry.task in tasks]


def listing_failure_text(error: RadAssistError) -> str:
    """What to do when the catalogue cannot be read: fix a named file, or (in Slicer, before first use) let
    RadAssist install the packages reading it needs."""
    if isinstance(error, InputError):
        return f"{error} Fix or remove that file, then click Refresh."
    return f"{error} Click Refresh to install RadAssist's packages and read the catalogue again."


def find_entry(model_id: str, version: str | None = None, catalog: Catalog | None = None) -> ModelEntry:
    """The catalogue entry of a row or a command-line id; unknown ids and versions are an InputError listing
    what exists."""
    catalog = catalog if catalog is not None else load_catalog()
    try:
        return catalog.get(model_id, version)
    except KeyError as error:
        raise InputError(None, str(error.args[0])) from None


# --- what can be done with a row ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class RowActions:
    """Which buttons a selected row enables, with the tooltip that says what each will do (or why it cannot).

    ``import_target`` is what :func:`radassist.runtime.registry.import_model` gets: the row's id (the file
    becomes that model's weights) or its task (the file becomes a new model of the user's own).
    """

    can_install: bool
    install_tip: str
    import_target: str | None
    import_tip: str
    can_remove: bool
    remove_tip: str


def row_actions(row: ModelRow | None) -> RowActions:
    if row is None:
        tip = "Select a model in the table first."
        return RowActions(False, tip, None, tip, False, tip)
    if row.status == NOT_INSTALLED:
        what = (f"Download its members {', '.join(row.members)} into {paths.models_dir()}" if row.members else
                f"Download {row.label} ({row.size_text}) into {row.folder}")
        if row.consent_required:
            what = f"Show its licence ({row.licence}) and ask you to accept it; then {what[0].lower()}{what[1:]}"
        install = True, f"{what} and check every file's hash."
    elif row.installed:
        install = False, f"{row.label} is installed in {row.folder}."
    elif row.status == PLANNED_STATUS:
        install = False, f"{row.label} is planned: its weights are not published yet. Import weights of your own."
    else:
        install = False, f"{row.label} cannot be downloaded by RadAssist: obtain the file, then click Import."
    if row.installed or row.members:
        target, import_tip = row.task, (f"Choose {WEIGHTS_FILES} to add as a model of your own for {row.task} "
                                        f"(labelled like {row.id}).")
    else:
        target, import_tip = row.id, f"Choose {WEIGHTS_FILES} to install as the weights of {row.label}."
    if row.members:
        remove = False, f"{row.label} has no files of its own; remove its members ({', '.join(row.members)})."
    elif row.has_files or row.user_entry:
        remove = True, f"Delete {row.folder}" + (" and its entry in your catalogue." if row.user_entry else ".")
    else:
        remove = False, f"{row.label} has nothing installed to remove."
    return RowActions(install[0], install[1], target, import_tip, remove[0], remove[1])


def default_row(rows: Sequence[ModelRow]) -> int | None:
    """The row to select when a table opens: the first installed model (what a run would use), else the first."""
    return next((index for index, row in enumerate(rows) if row.installed), 0 if rows else None)


# --- advice when a model cannot be downloaded --------------------------------------------------------------------

def _own_model_command(task: str) -> str:
    return f"'radassist models import {task} FILE --architecture monai-unet --config CONFIG'"


def planned_help(entry: ModelEntry, frontend: Frontend = Frontend.CLI) -> str:
    """Why a planned model cannot be installed, and how to bring weights instead."""
    from radassist.runtime.registry import is_architecture

    known = is_architecture(entry.architecture)
    if frontend is Frontend.CLI:
        own = f"'radassist models import {entry.id} FILE' (a {entry.architecture} network) or " if known else ""
        return (f"model {entry.label} is planned: its weights are not yet published. Train your own, or bring your "
                f"own weights: {own}{_own_model_command(entry.task)}")
    own = (f"select {entry.id} and click Import to load a {entry.architecture} state dict as its weights, or "
           if known else "")
    return (f"Model {entry.label} is planned: its weights are not yet published. Train your own, or bring your own "
            f"weights: {own}import a MONAI U-Net from a terminal with {_own_model_command(entry.task)}.")


def unavailable_help(entry: ModelEntry, problem: str, frontend: Frontend = Frontend.CLI) -> str:
    """The advice for a ModelUnavailable error: planned models get :func:`planned_help`, models the user must
    fetch get the error (where to get the file) plus how to import it."""
    if entry.status == PLANNED:
        return planned_help(entry, frontend)
    if frontend is Frontend.CLI:
        return f"{problem} Once you have the file: 'radassist models import {entry.id} FILE'"
    return f"{problem} Once you have the file, select {entry.id} and click Import."


def install_failure_text(entry: ModelEntry, error: BaseException, frontend: Frontend = Frontend.PANEL) -> str:
    """One message for a failed install: what went wrong and what the user can do (offline: fetch by hand)."""
    from radassist.runtime.download import LicenceConsentRequired, ModelUnavailable

    if isinstance(error, ModelUnavailable):
        return unavailable_help(entry, str(error), frontend)
    if isinstance(error, LicenceConsentRequired) and frontend is Frontend.PANEL:
        return (f"{entry.label} is published under {error.terms.name}: click Install again and accept the licence "
                f"to download it.")
    if isinstance(error, DownloadError) and frontend is Frontend.PANEL:
        return (f"{error} Then click Refresh, or click Import and choose the downloaded file "
                f"(its sha256 is checked).")
    return str(error)


# --- removing ----------------------------------------------------------------------------------------------------

def remove_model(model_id: str, version: str | None = None) -> list[Path]:
    """Delete an installed model (one version or all) and its entries in the user catalogue; returns the folders
    deleted. Each folder is renamed away first, so a model is gone at once and never left half-deleted."""
    from radassist.runtime.registry import remove_user_entry

    if not MODEL_ID_PATTERN.match(model_id):
        raise InputError(None, f"'{model_id}' is not a model id")
    catalog = load_catalog()
    if model_id in catalog.ids() and catalog.get(model_id).is_ensemble:
        members = " ".join(catalog.get(model_id).members)
        raise InputError(None, f"{model_id} has no files of its own; remove its members one by one ({members})")
    base = paths.models_dir() / model_id
    folders = [base / version] if version else sorted(p for p in base.glob("*") if p.is_dir())
    folders = [f for f in folders if f.is_dir() and not f.name.startswith(".")]
    dropped = remove_user_entry(model_id, version)
    if not folders and not dropped:
        raise InputError(None, f"model {model_id}{' ' + version if version else ''} is not installed "
                               f"in {paths.models_dir()}")
    for folder in folders:
        doomed = folder.with_name(f".radassist-removing-{uuid.uuid4().hex[:8]}")
        os.replace(folder, doomed)
        shutil.rmtree(doomed)
    if base.is_dir() and not any(base.iterdir()):
        base.rmdir()
    return folders


# --- devices -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeviceOption:
    """One entry of a device selector: ``value`` is what choose_device() accepts."""

    value: str
    label: str
    tooltip: str


@dataclass(frozen=True)
class DeviceChoices:
    """The selector's entries (auto first, the CPU last) and a note on why no GPU is offered ("" when one is)."""

    options: tuple[DeviceOption, ...]
    note: str = ""

    @property
    def values(self) -> list[str]:
        return [option.value for option in self.options]

    def index_of(self, value: str | None) -> int:
        """Where ``value`` (e.g. a saved preference) is in the list; auto's index when it is not offered here."""
        values = self.values
        return values.index(value) if value in values else values.index(AUTO_DEVICE)


def gpu_note(devices: Sequence[DeviceInfo], cuda_build: str | None, torch_version: str = "") -> str:
    """Why no GPU is listed, with the way to fix it: a CPU-only PyTorch build, or a CUDA build that sees no GPU."""
    if any(d.name.startswith("cuda") or d.name == "mps" for d in devices):
        return ""
    build = f" ({torch_version})" if torch_version else ""
    if cuda_build is None:
        return (f"This PyTorch{build} is a CPU-only build, so no GPU can be used. To use an NVIDIA GPU, install a "
                f"CUDA build of PyTorch: in Slicer, uninstall torch and let the PyTorch extension install the build "
                f"matching the GPU driver; elsewhere, pick the CUDA build at https://pytorch.org/get-started.")
    return (f"This PyTorch{build} supports CUDA {cuda_build} but finds no GPU: check that the NVIDIA driver works "
            f"(nvidia-smi), is recent enough for CUDA {cuda_build}, and that CUDA_VISIBLE_DEVICES does not hide "
            f"the GPU.")


def device_options(devices: Sequence[DeviceInfo], cuda_build: str | None, torch_version: str = "") -> DeviceChoices:
    """Selector entries for the devices torch reports (see runtime.device.available_devices)."""
    options = [DeviceOption(AUTO_DEVICE, "auto (best GPU, else CPU)",
                            f"Pick the device when the model runs: {PREFERENCES_HELP}.")]
    for device in devices:
        memory = f", {device.memory_total_gb:g} GB" if device.memory_total_gb is not None else ""
        options.append(DeviceOption(device.name, f"{device.name}: {device.description}{memory}",
                                    f"Always run on {device.name} ({device.description}{memory})."))
    if not any(option.value == "cpu" for option in options):
        options.append(DeviceOption("cpu", "cpu", "Always run on the CPU."))
    return DeviceChoices(tuple(options), gpu_note(devices, cuda_build, torch_version))


def device_choices() -> DeviceChoices:
    """The selector for this machine; without PyTorch only auto and cpu, with a note that it is missing."""
    try:
        import torch
    except ImportError:
        return DeviceChoices(device_options([], None).options,
                             "PyTorch is not installed yet, so no GPU can be listed; RadAssist installs it on "
                             "first use (in Slicer, through the PyTorch extension).")
    from radassist.runtime.device import available_devices

    return device_options(available_devices(), torch.version.cuda, torch.__version__)


# --- cache folder ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CacheFolder:
    """Where models are installed, whether the user chose it, and how to choose another."""

    path: Path
    models: Path
    from_environment: bool
    how_to_change: str


def cache_folder() -> CacheFolder:
    chosen = bool(os.environ.get(paths.CACHE_ENV))
    source = f"set by {paths.CACHE_ENV}" if chosen else "the default for this platform"
    return CacheFolder(path=paths.cache_dir(), models=paths.models_dir(), from_environment=chosen,
                       how_to_change=f"Models are kept in {paths.models_dir()} ({source}). To keep them elsewhere, "
                                     f"set the environment variable {paths.CACHE_ENV} to another folder before "
                                     f"starting Slicer or radassist.")


def use_cache_folder(folder: str | Path) -> CacheFolder:
    """Keep models in ``folder`` from now on in this process (sets ``$RADASSIST_CACHE_DIR``); the folder must be
    writable, else OutputError and nothing changes."""
    folder = ensure_writable_dir(Path(folder).expanduser())
    os.environ[paths.CACHE_ENV] = str(folder.resolve())
    return cache_folder()


def restore_cache_folder(saved: str | None) -> tuple[CacheFolder, str]:
    """Apply a folder saved in the application's settings unless ``$RADASSIST_CACHE_DIR`` is set (the environment
    wins). Returns the cache folder and a note ("" when nothing needs saying), e.g. that the saved folder is gone."""
    if not saved or os.environ.get(paths.CACHE_ENV):
        return cache_folder(), ""
    try:
        return use_cache_folder(saved), ""
    except OutputError as error:
        return cache_folder(), f"The saved models folder cannot be used ({error}); using the default."

