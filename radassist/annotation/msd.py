"""Read an MSD / nnU-Net v2 segmentation dataset (what a segmentation export is), and hand it to the liver
training as LiTS cases.

RadAssist's liver training reads the LiTS layout (``volume-N`` / ``segmentation-N``, values 0 background,
1 liver, 2 tumour) through :class:`radassist.liver.datasets.LitsCase`; :func:`as_lits_cases` gives the MSD
cases in that form, numbered in case order, after checking the dataset's label table uses the LiTS values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radassist.errors import InputError
from radassist.io.json_files import read_json_object

LITS_LABELS = {"liver": 1, "liver tumour": 2}
_LITS_SYNONYMS = {"liver tumor": "liver tumour", "tumour": "liver tumour", "tumor": "liver tumour"}


@dataclass(frozen=True)
class MsdCase:
    """One training case: its image channels (in channel order), its label file and any overlap layers."""

    name: str
    images: tuple[Path, ...]
    label: Path
    extra_layers: tuple[Path, ...] = ()


@dataclass
class MsdDataset:
    root: Path
    labels: dict[str, int]
    channel_names: dict[str, str]
    cases: list[MsdCase]
    file_ending: str = ".nii.gz"
    document: dict[str, Any] = field(default_factory=dict)


def read_msd_dataset(root: str | Path) -> MsdDataset:
    """The cases of ``root/dataset.json``'s dataset: every ``labelsTr/<case><ending>`` with its
    ``imagesTr/<case>_<channel:04d><ending>`` files; InputError naming a missing file."""
    root = Path(root)
    path = root / "dataset.json"
    if not path.is_file():
        raise InputError(root, "has no dataset.json (an MSD / nnU-Net dataset folder has dataset.json, imagesTr/ "
                               "and labelsTr/)")
    document = read_json_object(path, "dataset description")
    channels = document.get("channel_names") or document.get("modality")
    labels = document.get("labels")
    if not isinstance(channels, dict) or not channels or not isinstance(labels, dict):
        raise InputError(path, "needs 'channel_names' (or MSD 'modality') and 'labels'")
    if all(str(k).isdigit() for k in labels) and not all(str(v).isdigit() for v in labels.values()):
        labels = {str(name): int(value) for value, name in labels.items()}  # MSD v1: {"0": "background", ...}
    labels = {str(name): int(value) for name, value in labels.items()}
    ending = str(document.get("file_ending", ".nii.gz"))
    cases = []
    for label in sorted((root / "labelsTr").glob(f"*{ending}")):
        name = label.name[: -len(ending)]
        images = tuple(root / "imagesTr" / f"{name}_{int(channel):04d}{ending}"
                       for channel in sorted(channels, key=int))
        missing = [p for p in images if not p.is_file()]
        if missing:
            raise InputError(missing[0], f"is missing: case {name} has labels but not every channel image")
        layers = tuple(sorted((root / "labelsTr_layers").glob(f"{name}_layer*{ending}")))
        cases.append(MsdCase(name, images, label, layers))
    if not cases:
        raise InputError(root / "labelsTr", f"holds no label files ending in {ending}")
    return MsdDataset(root, labels, {str(k): str(v) for k, v in channels.items()}, cases, ending, document)


def as_lits_cases(dataset: MsdDataset) -> list:
    """The cases as :class:`radassist.liver.datasets.LitsCase` (numbered 0, 1, ... in case order) for the liver
    training; InputError when the dataset's labels are not liver = 1 and liver tumour = 2 or it has more than
    one channel."""
    from radassist.liver.datasets import LitsCase

    names = {_LITS_SYNONYMS.get(name.lower(), name.lower()): value for name, value in dataset.labels.items()
             if value != 0}
    if len(dataset.channel_names) != 1:
        raise InputError(dataset.root / "dataset.json", f"has {len(dataset.channel_names)} channels; the liver "
                                                        f"training reads one CT channel")
    wrong = {name: value for name, value in names.items() if LITS_LABELS.get(name) != value}
    if wrong:
        raise InputError(dataset.root / "dataset.json", f"labels {wrong} are not the liver training's values "
                                                        f"(liver 1, liver tumour 2)")
    return [LitsCase(number, case.images[0], case.label) for number, case in enumerate(dataset.cases)]


def is_msd_dataset(folder: str | Path) -> bool:
    folder = Path(folder)
    return (folder / "dataset.json").is_file() and (folder / "labelsTr").is_dir()


def find_liver_cases(folder: str | Path) -> list:
    """The liver training's cases of ``folder``: an MSD export through :func:`as_lits_cases`, else the LiTS
    layout (:func:`radassist.liver.datasets.find_lits_cases`)."""
    from radassist.liver.datasets import find_lits_cases

    return as_lits_cases(read_msd_dataset(folder)) if is_msd_dataset(folder) else find_lits_cases(folder)
