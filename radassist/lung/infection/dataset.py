"""Training and evaluation data for the infection networks: pairs of CT slices and class masks from a folder.

Two layouts are read, the ones the public COVID-19 CT segmentation sets use:

* a volume of slices per file: NIfTI (``.nii``/``.nii.gz``) images and masks, either in ``images/`` and ``masks/``
  (or ``labels/``) sub-folders under the same file names, or as ``<name>_im.nii.gz`` + ``<name>_mask.nii.gz`` in one
  folder (MedSeg's ``tr_im.nii.gz`` / ``tr_mask.nii.gz``). NIfTI images are CT in HU and get the lung window.
* folders of PNG slices: ``images/<name>.png`` + ``masks/<name>.png``; 8-bit greyscale images already in a lung
  window (0..255), masks holding class values 0..C-1.

An MSD / nnU-Net folder (``dataset.json``, ``imagesTr/<case>_0000.nii.gz``, ``labelsTr/<case>.nii.gz``: what
``radassist export lung-infection`` writes) is read through :func:`radassist.annotation.msd.read_msd_dataset`.

Slices come out as network input (float32, 0..1) and labels (uint8), at each file's own size; :func:`fit_dataset`
brings them to the network's input size. Every problem names the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radassist.errors import InputError
from radassist.lung.infection.preprocess import LUNG_WINDOW, InfectionInput, window_to_unit
from radassist.runtime.slicewise import AxialReorientation, fit_slices, plan_fit

IMAGE_FOLDERS = ("images", "imagesTr", "image")
MASK_FOLDERS = ("masks", "labels", "labelsTr", "mask")
NIFTI_SUFFIXES = (".nii.gz", ".nii")


@dataclass
class SliceDataset:
    """Slices ready for a network: ``images`` (n, y, x) float32 0..1, ``masks`` (n, y, x) uint8, a name per slice."""

    images: list[np.ndarray] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def add(self, image: np.ndarray, mask: np.ndarray, name: str) -> None:
        self.images.append(np.asarray(image, dtype=np.float32))
        self.masks.append(np.asarray(mask, dtype=np.uint8))
        self.names.append(name)

    def subset(self, indices: Sequence[int]) -> "SliceDataset":
        return SliceDataset([self.images[i] for i in indices], [self.masks[i] for i in indices],
                            [self.names[i] for i in indices])

    @property
    def max_label(self) -> int:
        return max((int(m.max()) for m in self.masks if m.size), default=0)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in NIFTI_SUFFIXES + (".png",):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def find_pairs(folder: str | Path) -> list[tuple[Path, Path]]:
    """(image, mask) file pairs of a data folder in either layout; InputError when there are none or one is lonely."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "is not a folder" if folder.exists() else "does not exist")
    from radassist.annotation.msd import is_msd_dataset, read_msd_dataset

    if is_msd_dataset(folder):  # an MSD / nnU-Net set ('radassist export lung-infection'): <case>_0000 + <case>
        return [(case.images[0], case.label) for case in read_msd_dataset(folder).cases]
    images_dir = next((folder / n for n in IMAGE_FOLDERS if (folder / n).is_dir()), None)
    masks_dir = next((folder / n for n in MASK_FOLDERS if (folder / n).is_dir()), None)
    if images_dir is not None and masks_dir is not None:
        pairs = []
        for image in sorted(p for p in images_dir.iterdir() if _is_slice_file(p)):
            candidates = [masks_dir / image.name] + [masks_dir / (_stem(image) + s) for s in NIFTI_SUFFIXES + (".png",)]
            mask = next((c for c in candidates if c.is_file()), None)
            if mask is None:
                raise InputError(image, f"has no mask of the same name in {masks_dir}")
            pairs.append((image, mask))
        if not pairs:
            raise InputError(images_dir, "holds no NIfTI or PNG images")
        return pairs
    pairs = []
    for image in sorted(folder.iterdir()):
        stem = _stem(image)
        if _is_slice_file(image) and stem.endswith("_im"):
            mask = next((folder / (stem[:-3] + "_mask" + s) for s in NIFTI_SUFFIXES
                         if (folder / (stem[:-3] + "_mask" + s)).is_file()), None)
            if mask is None:
                raise InputError(image, f"has no {stem[:-3]}_mask.nii.gz beside it")
            pairs.append((image, mask))
    if not pairs:
        raise InputError(folder, "holds no image/mask pairs: expected images/ and masks/ sub-folders (NIfTI or PNG "
                                 "files of the same names) or <name>_im.nii.gz with <name>_mask.nii.gz")
    return pairs


def _is_slice_file(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and not name.startswith(".") and (name.endswith(NIFTI_SUFFIXES) or name.endswith(".png"))


def read_pair(image_path: Path, mask_path: Path, num_classes: int, window: tuple[float, float] = LUNG_WINDOW,
              intensity: InfectionInput | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One pair as (slices, y, x) network input and labels; NIfTI volumes give all their axial slices.

    ``intensity`` (a model's input description) decides how images become network input; without it PNG slices
    are taken as already windowed (0..255 -> 0..1) and NIfTI volumes go through ``window``.
    """
    if image_path.name.lower().endswith(".png"):
        picture = _read_png(image_path, "image")
        image = (intensity.prepare_picture(picture) if intensity is not None
                 else picture.astype(np.float32) / 255.0)[np.newaxis]
        mask = _read_png(mask_path, "mask")[np.newaxis]
    else:
        from radassist.io import read_volume

        volume = read_volume(image_path, require_3d=False)
        labels = read_volume(mask_path, require_3d=False)
        if volume.shape != labels.shape:
            raise InputError(mask_path, f"has shape {labels.shape} (z, y, x), but its image {image_path.name} has "
                                        f"{volume.shape}")
        reorientation = AxialReorientation.of(volume.geometry)
        canonical = reorientation.to_canonical(volume.array)
        image = intensity.prepare_ct(canonical) if intensity is not None else window_to_unit(canonical, window)
        mask = reorientation.to_canonical(labels.array)
    if image.shape != mask.shape:
        raise InputError(mask_path, f"is {mask.shape[-1]}x{mask.shape[-2]} pixels, its image {image_path.name} "
                                    f"{image.shape[-1]}x{image.shape[-2]}")
    if not np.all(np.equal(np.mod(mask, 1), 0)) or mask.min() < 0 or mask.max() >= num_classes:
        values = np.unique(mask)[:8]
        raise InputError(mask_path, f"holds values {values.tolist()}; a mask holds class values 0..{num_classes - 1}")
    return np.ascontiguousarray(image, dtype=np.float32), np.ascontiguousarray(mask, dtype=np.uint8)


def _read_png(path: Path, what: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            mode = picture.mode
            if mode not in ("L", "P", "1") and not (what == "mask" and mode in ("I", "I;16")):
                raise InputError(path, f"is a {mode} PNG; an infection {what} PNG must be 8-bit greyscale")
            return np.asarray(picture)
    except (UnidentifiedImageError, OSError) as error:
        raise InputError(path, f"is not a readable PNG ({error})") from None


def read_dataset(folder: str | Path, num_classes: int, window: tuple[float, float] = LUNG_WINDOW,
                 intensity: InfectionInput | None = None) -> SliceDataset:
    """Every slice of every pair in ``folder``, named ``<file>`` or ``<file>:<slice>`` for volumes."""
    dataset = SliceDataset()
    for image_path, mask_path in find_pairs(folder):
        images, masks = read_pair(image_path, mask_path, num_classes, window, intensity)
        for index in range(len(images)):
            name = _stem(image_path) if len(images) == 1 else f"{_stem(image_path)}:{index}"
            dataset.add(images[index], masks[index], name)
    return dataset


def fit_dataset(dataset: SliceDataset, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """All slices padded to the input's aspect and resized to ``size``: images (n, 1, H, W), masks (n, H, W).

    Images are resized bilinearly, masks by nearest neighbour; the padding is air (0) and background (0).
    """
    images = np.zeros((len(dataset), 1, *size), dtype=np.float32)
    masks = np.zeros((len(dataset), *size), dtype=np.uint8)
    for index, (image, mask) in enumerate(zip(dataset.images, dataset.masks)):
        fit = plan_fit(image.shape, size)
        images[index] = fit_slices(image[np.newaxis, np.newaxis], fit, 0.0).numpy()[0]
        masks[index] = fit_slices(mask[np.newaxis, np.newaxis].astype(np.float32), fit, 0.0, "nearest").numpy()[0, 0]
    return images, masks


def read_prediction(path: Path, like: np.ndarray, num_classes: int) -> np.ndarray:
    """A prediction mask file (PNG, or NIfTI of slices) as (slices, y, x) labels, checked against its truth."""
    if path.name.lower().endswith(".png"):
        labels = _read_png(path, "mask")[np.newaxis]
    else:
        from radassist.io import read_volume

        volume = read_volume(path, require_3d=False)
        labels = AxialReorientation.of(volume.geometry).to_canonical(volume.array)
    if labels.shape != like.shape:
        raise InputError(path, f"has {labels.shape} (slices, rows, columns), the ground truth {like.shape}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise InputError(path, f"holds values {np.unique(labels)[:8].tolist()}; predictions hold class values "
                               f"0..{num_classes - 1}")
    return np.ascontiguousarray(labels, dtype=np.uint8)


def prediction_file(folder: Path, mask_path: Path) -> Path:
    """The file in ``folder`` that predicts ``mask_path``: the same name, or the same stem with any suffix."""
    for candidate in [folder / mask_path.name] + [folder / (_stem(mask_path) + s) for s in NIFTI_SUFFIXES + (".png",)]:
        if candidate.is_file():
            return candidate
    raise InputError(folder, f"has no prediction for {mask_path.name} (expected a file of the same name)")
