"""Brain MRI data on disk: one subject's folder of sequences, the BraTS layout (tumour labels) and an OASIS-style
layout (one image + anatomical labels per subject, registration-only pairs), and random pairing per epoch.

Recognised names inside a subject folder (case-insensitive):

* sequences: ``*flair*``, ``*t1ce*``/``*t1c*``/``*t1gd*``, ``*t1*``, ``*t2*`` (BraTS ``<case>_t1ce.nii.gz``, the
  BraTS 2015 ``T1c_subtrMeanDivStd.nii.gz``, RadAssist's synthetic ``pair_0_fixed_flair.nii.gz``);
* tumour labels: ``*_seg*`` or ``OTMultiClass*`` (BraTS values 0, 1, 2, 3, 4);
* brain mask: ``*brainmask*`` or ``*brain_mask*``;
* OASIS-style: the image is ``*norm*``, ``*orig*``, ``*image*`` or ``*t1*``; anatomical labels ``*seg*``,
  ``*aseg*`` or ``*label*``.

A data folder holds one folder per subject. A ``radassist export brain`` folder is read as it is: its subjects are
the folders of its ``subjects/``, and its bookkeeping folders (``provenance/``, ``archive/``) are not cases.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radassist.brain.pipeline import BrainImages
from radassist.brain.postprocess import tumour_labelmap
from radassist.brain.preprocess import brats_to_classes, modality_of, ordered_modalities
from radassist.reorient import array_on_grid_of
from radassist.errors import InputError
from radassist.io.images import read_volume, volume_suffix
from radassist.results.labelmap import LabelMap
from radassist.volume import Volume

_TUMOUR = re.compile(r"(^|[_\-. ])seg([_\-. ]|$)|otmulticlass", re.I)
_BRAIN_MASK = re.compile(r"brain[_\- ]?mask", re.I)
_ANATOMY = re.compile(r"seg|aseg|label", re.I)
_OASIS_IMAGE = re.compile(r"norm|orig|image|(^|[_\-. ])t1", re.I)


@dataclass
class SubjectFiles:
    """The files of one subject folder, sorted by role."""

    name: str
    folder: Path
    images: dict[str, Path] = field(default_factory=dict)
    tumour: Path | None = None
    brain_mask: Path | None = None
    anatomy: Path | None = None


def _volume_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and volume_suffix(p) and not p.name.startswith("."))


def find_subject_files(folder: str | Path) -> SubjectFiles:
    """Sort a BraTS-style subject folder's files into sequences, tumour labels and brain mask."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "is not a folder")
    files = SubjectFiles(name=folder.name, folder=folder)
    for path in _volume_files(folder):
        stem = path.name.split(".")[0]
        if _BRAIN_MASK.search(stem):
            files.brain_mask = path
        elif _TUMOUR.search(stem):
            files.tumour = path
        elif (modality := modality_of(path.name)) is not None:
            if modality in files.images:
                raise InputError(folder, f"holds two {modality} images: {files.images[modality].name} and "
                                         f"{path.name}")
            files.images[modality] = path
    if not files.images:
        raise InputError(folder, "holds no MRI sequence named flair, t1, t1ce (t1c) or t2 (NIfTI, NRRD or MHA)")
    return files


def find_oasis_files(folder: str | Path) -> SubjectFiles:
    """An OASIS-style subject: one image and its anatomical label map."""
    folder = Path(folder)
    files = SubjectFiles(name=folder.name, folder=folder)
    candidates = _volume_files(folder) if folder.is_dir() else []
    labels = [p for p in candidates if _ANATOMY.search(p.name.split(".")[0])]
    images = [p for p in candidates if p not in labels and _OASIS_IMAGE.search(p.name.split(".")[0])]
    if len(images) != 1 or len(labels) != 1:
        raise InputError(folder, f"an OASIS-style subject needs one image (*norm*, *orig*, *image*, *t1*) and one "
                                 f"label map (*seg*, *aseg*, *label*); found {len(images)} and {len(labels)}")
    files.images["t1"] = images[0]
    files.anatomy = labels[0]
    return files


def subject_folders(root: str | Path) -> list[Path]:
    """The subject folders of a data folder: its folders, or those of ``subjects/`` in an export folder (one with
    the export index), never the export's provenance/ and archive/."""
    from radassist.annotation.export import INDEX_NAME
    from radassist.annotation.export_brats import SUBJECTS

    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "is not a folder")
    if (root / INDEX_NAME).is_file():
        root = root / SUBJECTS
        if not root.is_dir():
            raise InputError(root, "is missing: this export folder holds no brain subjects")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise InputError(root, "holds no subject folders (one folder per case is expected)")
    return folders


def read_brats_layout(root: str | Path) -> list[SubjectFiles]:
    """Every case folder under ``root`` (BraTS: ``<case>/<case>_{flair,t1,t1ce,t2,seg}.nii.gz``); all cases
    must have the same sequences."""
    subjects = [find_subject_files(folder) for folder in subject_folders(root)]
    first = set(subjects[0].images)
    for subject in subjects[1:]:
        if set(subject.images) != first:
            raise InputError(subject.folder, f"has sequences {ordered_modalities(list(subject.images))}, but "
                                             f"{subjects[0].name} has {ordered_modalities(list(first))}")
    return subjects


def read_oasis_layout(root: str | Path) -> list[SubjectFiles]:
    """Every subject folder under ``root`` with one image and its anatomical labels."""
    return [find_oasis_files(folder) for folder in subject_folders(root)]


def detect_layout(root: str | Path) -> str:
    """'brats' when the first subject folder has named sequences and no anatomical label map, else 'oasis'."""
    first = subject_folders(root)[0]
    try:
        files = find_subject_files(first)
    except InputError:
        return "oasis"
    sorted_out = {*files.images.values(), files.tumour, files.brain_mask}
    anatomy = [p for p in _volume_files(first) if p not in sorted_out and _ANATOMY.search(p.name.split(".")[0])]
    return "oasis" if anatomy and files.tumour is None else "brats"


def read_layout(root: str | Path, layout: str = "auto") -> tuple[str, list[SubjectFiles]]:
    """The subjects of a BraTS or OASIS-style folder (``layout`` 'auto' detects which)."""
    layout = detect_layout(root) if layout == "auto" else layout
    if layout == "brats":
        return layout, read_brats_layout(root)
    if layout == "oasis":
        return layout, read_oasis_layout(root)
    raise InputError(root, f"unknown layout {layout!r}; use brats, oasis or auto")


# -- loading ------------------------------------------------------------------------------------------------------

def read_tumour_classes(path: Path, reference: Volume) -> np.ndarray:
    """BraTS tumour labels of ``path`` as network classes, checked to lie on ``reference``'s grid."""
    labels = array_on_grid_of(read_volume(path), reference.geometry, "tumour label map")
    try:
        return brats_to_classes(np.rint(labels).astype(np.int64))
    except ValueError as error:
        raise InputError(path, str(error)) from None


def read_mask(path: Path, reference: Volume) -> np.ndarray:
    """A brain mask file as a boolean array on ``reference``'s grid; an empty mask is refused."""
    mask = array_on_grid_of(read_volume(path), reference.geometry, "brain mask")
    if not np.any(mask):
        raise InputError(path, "the brain mask is empty")
    return mask != 0


def load_subject(files: SubjectFiles, channels: Sequence[str] | None = None,
                 with_tumour: bool = True) -> BrainImages:
    """Read a subject's sequences (``channels`` only, when given), brain mask and tumour labels."""
    names = list(channels) if channels is not None else ordered_modalities(list(files.images))
    missing = [n for n in names if n not in files.images]
    if missing:
        raise InputError(files.folder, f"lacks sequence(s) {missing} (has {ordered_modalities(list(files.images))})")
    images = {name: read_volume(files.images[name]) for name in names}
    reference = images[names[0]]
    brain = read_mask(files.brain_mask, reference) if files.brain_mask is not None else None
    tumour = None
    if with_tumour and files.tumour is not None:
        tumour = tumour_labelmap(read_tumour_classes(files.tumour, reference), reference.geometry,
                                 origin=str(files.tumour))
        tumour.source.path = str(files.tumour)
    return BrainImages(images=images, brain_mask=brain, tumour=tumour)


def read_brain_input(path: str | Path, with_tumour: bool = True, convention: str = "auto") -> BrainImages:
    """The CLI's input: one image file (its sequence guessed from the name, else 'image') or a subject folder, whose
    tumour labels keep their values, named by their BraTS edition (``convention``)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "does not exist")
    if path.is_dir():
        files = find_subject_files(path)
        images = load_subject(files, with_tumour=False)
        if with_tumour and files.tumour is not None:
            images.tumour = read_tumour_labels(files.tumour, convention)
        return images
    volume = read_volume(path)
    return BrainImages(images={modality_of(path.name) or "image": volume})


def read_anatomy(files: SubjectFiles, reference: Volume) -> np.ndarray:
    """An OASIS-style subject's anatomical labels (integers) on its image's grid."""
    if files.anatomy is None:
        raise InputError(files.folder, "has no anatomical label map")
    labels = read_volume(files.anatomy)
    if not labels.geometry.same_grid(reference.geometry, tolerance=1e-3):
        raise InputError(files.anatomy, "the anatomical labels are not on the grid of the subject's image")
    return np.rint(labels.array).astype(np.int32)


# -- pairing ------------------------------------------------------------------------------------------------------

def random_pairs(count: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """One epoch's (moving, fixed) pairs: every subject is moving once, paired with a different random subject."""
    if count < 2:
        raise ValueError("pairing needs at least two subjects")
    order = rng.permutation(count)
    shift = int(rng.integers(1, count))
    return [(int(order[i]), int(order[(i + shift) % count])) for i in range(count)]


# -- tumour labels given by the user --------------------------------------------------------------------------------

_CLASS_BY_CODE = {"6574001": 1, "79654002": 2, "C113842": 3}
_CLASS_BY_NAME = (("necro", 1), ("core", 1), ("non-enhanc", 1), ("oedema", 2), ("edema", 2), ("enhanc", 3))


def _segment_class(segment) -> int:
    """Network class of a Slicer segment: by its terminology code, else its name; other segments count as core."""
    if segment.terminology is not None and segment.terminology.type.value in _CLASS_BY_CODE:
        return _CLASS_BY_CODE[segment.terminology.type.value]
    name = segment.name.lower()
    return next((klass for word, klass in _CLASS_BY_NAME if word in name), 1)


def read_tumour_labels(path: str | Path, convention: str = "auto") -> LabelMap:
    """Tumour labels from a ``.seg.nrrd`` (segments matched to network classes by terminology or name) or a label
    volume with BraTS values, kept as they are and named by their edition's ``convention``
    (:mod:`radassist.brain.labels`). An empty label map is refused."""
    from radassist.brain.labels import brats_labelmap
    from radassist.io.atomic import full_suffix
    from radassist.results.seg_nrrd import read_seg_nrrd

    path = Path(path)
    if full_suffix(path).lower() == ".seg.nrrd":
        segmentation = read_seg_nrrd(path)
        classes = np.zeros(segmentation.geometry.shape, dtype=np.uint8)
        for segment in segmentation.segments:
            classes[segmentation.mask(segment)] = _segment_class(segment)
        labelmap = tumour_labelmap(classes, segmentation.geometry, origin=str(path))
    else:
        volume = read_volume(path)
        try:
            labelmap = brats_labelmap(volume.array, volume.geometry, convention)
        except ValueError as error:
            raise InputError(path, str(error)) from None
        labelmap.metadata["origin"] = str(path)
    if not labelmap.labels.any():
        raise InputError(path, "the tumour label map is empty")
    labelmap.source.path = str(path)
    return labelmap
