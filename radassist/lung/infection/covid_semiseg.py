"""The COVID-SemiSeg layout: real COVID-19 CT slices with radiologists' infection labels, as the Inf-Net authors
split and cropped them (Fan et al., "Inf-Net", IEEE TMI 2020; images from the MedSeg/SIRM 100-slice set).

```
TrainingSet/MultiClassInfection-Train/{Imgs,GT}            50 slices, GT: 0 background, 1 ground glass, 2 consolidation
TrainingSet/LungInfection-Train/Doctor-label/{Imgs,GT}     the same 50 slices, GT: 255 infection, 0 not
TestingSet/MultiClassInfection-Test/{Imgs,GT,GT-1,GT-2}    48 slices (GT-1, GT-2: each class as a binary mask)
TestingSet/LungInfection-Test/{Imgs,GT}                    the same 48 slices, binary
```

Images are 8-bit grey JPEGs cropped around the lungs, every slice its own size, display-windowed (no Hounsfield
units, no pixel spacing): they are read through :func:`~radassist.lung.infection.preprocess.display_to_unit`, the
intensity handling recorded in a checkpoint trained on them (``normalization: display-percentile``) and applied
again at inference on such pictures (:func:`radassist.lung.infection.pipeline.segment_picture`).

``--data`` may name the top folder (training reads ``TrainingSet``, evaluation ``TestingSet``), ``TrainingSet`` or
``TestingSet``, or one split folder holding ``Imgs/`` and ``GT/``. Masks come out as class values: binary masks
0/1 (label table: "lung infection"), multi-class 0/1/2 (ground-glass opacity, consolidation).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from radassist.errors import InputError
from radassist.lung.infection.dataset import SliceDataset
from radassist.lung.infection.model import default_label_table
from radassist.lung.infection.preprocess import InfectionInput

Part = Literal["train", "test"]
Classes = Literal["multiclass", "binary"]
LAYOUT = "covid-semiseg"
CLASSES: tuple[Classes, ...] = ("multiclass", "binary")
TOP_FOLDERS = {"train": "TrainingSet", "test": "TestingSet"}
SPLIT_FOLDERS: dict[tuple[str, str], str] = {
    ("train", "multiclass"): "MultiClassInfection-Train",
    ("train", "binary"): "LungInfection-Train/Doctor-label",
    ("test", "multiclass"): "MultiClassInfection-Test",
    ("test", "binary"): "LungInfection-Test",
}
CLASS_KEYS: dict[str, tuple[str, ...]] = {"multiclass": ("ground-glass opacity", "consolidation"),
                                          "binary": ("lung infection",)}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class SemiSegSplit:
    """One split folder (``Imgs/`` + ``GT/``) and what its masks hold."""

    folder: Path
    classes: Classes

    @property
    def images(self) -> Path:
        return self.folder / "Imgs"

    @property
    def masks(self) -> Path:
        return self.folder / "GT"


def label_table(classes: Classes) -> list[dict[str, Any]]:
    """The label table a network trained on this kind of mask gets (names and SNOMED CT codes)."""
    return default_label_table(CLASS_KEYS[classes])


def is_split_folder(folder: Path) -> bool:
    return (folder / "Imgs").is_dir() and (folder / "GT").is_dir()


def is_covid_semiseg(folder: str | Path) -> bool:
    """Whether ``folder`` looks like this layout (top folder, TrainingSet/TestingSet, or a split folder)."""
    folder = Path(folder)  # each test below is False for a path that is not a folder
    return (is_split_folder(folder) or any((folder / top).is_dir() for top in TOP_FOLDERS.values())
            or any((folder / name.split("/")[0]).is_dir() for name in SPLIT_FOLDERS.values()))


def _classes_of_split(folder: Path) -> Classes | None:
    """multiclass/binary from the folder's name as the layout spells it, None when the name does not say."""
    text = str(folder).replace("\\", "/")
    if "MultiClassInfection" in text:
        return "multiclass"
    if "LungInfection" in text:
        return "binary"
    return None


def find_split(folder: str | Path, part: Part, classes: Classes | None = None) -> SemiSegSplit:
    """The split folder to read for ``part`` ("train"/"test") and ``classes`` (None: multi-class, or what a split
    folder's name says); InputError naming the folder when it is not there or does not fit."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "is not a folder" if folder.exists() else "does not exist")
    if is_split_folder(folder):
        if part == "train" and _is_test_split(folder.resolve()):
            raise InputError(folder, "is a COVID-SemiSeg test split; training never reads test slices (give the "
                                     "top folder or TrainingSet)")
        named = _classes_of_split(folder.resolve())
        if classes is not None and named is not None and named != classes:
            raise InputError(folder, f"holds {named} labels, but {classes} labels were asked for")
        return SemiSegSplit(folder, classes or named or _classes_from_masks(folder / "GT"))
    chosen: Classes = classes or "multiclass"
    top = TOP_FOLDERS[part]
    base = folder / top if (folder / top).is_dir() else folder
    candidate = base / SPLIT_FOLDERS[(part, chosen)]
    if not is_split_folder(candidate):
        other = [TOP_FOLDERS[p] for p in TOP_FOLDERS if p != part and folder.name == TOP_FOLDERS[p]]
        hint = f" (this is the {other[0]} folder; {part} reads {top})" if other else ""
        raise InputError(folder, f"has no {top}/{SPLIT_FOLDERS[(part, chosen)]}/Imgs and GT folders of the "
                                 f"COVID-SemiSeg layout{hint}")
    return SemiSegSplit(candidate, chosen)


def _is_test_split(folder: Path) -> bool:
    return TOP_FOLDERS["test"] in folder.parts or folder.name.endswith("-Test")


def _classes_from_masks(masks: Path) -> Classes:
    first = next((p for p in sorted(masks.iterdir()) if p.suffix.lower() == ".png"), None)
    if first is None:
        raise InputError(masks, "holds no PNG masks")
    return "binary" if int(_read_grey(first, "mask").max()) == 255 else "multiclass"


def pairs(split: SemiSegSplit) -> list[tuple[Path, Path]]:
    """(image, mask) files of a split, in the natural order of their numbers; every image must have its mask."""
    images = [p for p in split.images.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
              and not p.name.startswith(".")]
    if not images:
        raise InputError(split.images, "holds no JPEG or PNG images")
    found = []
    for image in sorted(images, key=_natural_key):
        mask = split.masks / (image.stem + ".png")
        if not mask.is_file():
            raise InputError(image, f"has no mask {mask.name} in {split.masks}")
        found.append((image, mask))
    return found


def _natural_key(path: Path) -> tuple[int, str]:
    return (int(path.stem), "") if path.stem.isdigit() else (1 << 30, path.stem)


def _read_grey(path: Path, what: str) -> np.ndarray:
    """An 8-bit grey picture (JPEG/PNG, palette or 1-bit masks included) as a (y, x) uint8 array."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            if picture.mode in ("L", "P", "1"):
                return np.asarray(picture).astype(np.uint8)
            if picture.mode == "RGB":
                rgb = np.asarray(picture)
                if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
                    return rgb[..., 0].copy()
            raise InputError(path, f"is a {picture.mode} picture; a COVID-SemiSeg {what} is 8-bit grey")
    except (UnidentifiedImageError, OSError) as error:
        raise InputError(path, f"is not a readable picture ({error})") from None


def read_picture(path: str | Path) -> np.ndarray:
    """A display-windowed grey picture (what this layout's images are) as uint8 (y, x)."""
    return _read_grey(Path(path), "image")


def read_mask(path: Path, classes: Classes, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A ground-truth mask as class values: binary 0/255 (or 0/1) -> 0/1; multi-class 0/1/2 as stored."""
    mask = _read_grey(path, "mask")
    if shape is not None and mask.shape != tuple(shape):
        raise InputError(path, f"is {mask.shape[1]}x{mask.shape[0]} pixels, its image {shape[1]}x{shape[0]}")
    values = set(np.unique(mask).tolist())
    if classes == "binary":
        if not values <= {0, 1, 255}:
            raise InputError(path, f"holds values {sorted(values)[:8]}; a binary mask holds 0 and 255")
        return (mask > 0).astype(np.uint8)
    if not values <= {0, 1, 2}:
        raise InputError(path, f"holds values {sorted(values)[:8]}; a multi-class mask holds 0 (background), "
                               "1 (ground glass) and 2 (consolidation)")
    return mask


@dataclass
class SemiSegData:
    """A split read for a network: the slices (display-stretched 0..1) and masks, plus what they are."""

    dataset: SliceDataset
    split: SemiSegSplit
    pictures: list[np.ndarray]  # the stored 8-bit pictures, for previews

    @property
    def classes(self) -> Classes:
        return self.split.classes

    @property
    def label_table(self) -> list[dict[str, Any]]:
        return label_table(self.split.classes)


PICTURES = InfectionInput(normalization="display-percentile")


def read_covid_semiseg(folder: str | Path, part: Part, classes: Classes | None = None,
                       intensity: InfectionInput = PICTURES) -> SemiSegData:
    """Every slice of the ``part`` split as network input (by default each picture stretched between its own 1st
    and 99th percentile: :meth:`InfectionInput.prepare_picture`) with its mask; names are the file stems."""
    split = find_split(folder, part, classes)
    dataset, pictures = SliceDataset(), []
    for image_path, mask_path in pairs(split):
        picture = read_picture(image_path)
        mask = read_mask(mask_path, split.classes, picture.shape)
        dataset.add(intensity.prepare_picture(picture), mask, image_path.stem)
        pictures.append(picture)
    return SemiSegData(dataset, split, pictures)
