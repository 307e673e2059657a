"""LUNA16 for Lung-DETR training: scans and annotations, a patient-level split, and a cached slab dataset.

* :func:`read_luna16` reads the LUNA16 layout (``subset*/<seriesuid>.mhd``, ``annotations.csv``, optional
  ``annotations_excluded.csv`` and an optional ``patients.csv`` of seriesuid, patient_id). ``radassist synth lung``
  writes the same layout, so phantoms and the real data set go through the same code.
* :func:`split_by_patient` splits patients 70/20/10 (Lung-DETR paper) with a seed, scans with and without nodules
  spread over the splits in proportion, so validation always sees nodules when there are enough.
* :class:`SlabCache` turns a scan into its MIP slabs with the nodules' pixel boxes (world -> voxel -> slab, by
  :func:`radassist.lung.preprocess.annotations_to_slab_boxes`) once, and keeps the result as ``<uid>.npz`` in the
  training output folder; a fingerprint of the file, its annotations and the preprocessing settings decides
  whether a cached copy still holds.
* :func:`select_slabs` keeps every slab with a nodule and samples slabs without one so that the positive share is
  what the paper used (12.7 % in training and validation, about 3-4 % in the test split).
* :class:`SlabDataset` (a torch Dataset) serves the selected slabs, augmented per epoch with a seed, and
  :func:`collate_slabs` batches them as Lung-DETR's inference pads them.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data.box_utils import convert_box_mode

from radassist.errors import InputError
from radassist.io.atomic import atomic_path
from radassist.lung.augment import AugmentConfig, random_augment
from radassist.lung.evaluate import ANNOTATIONS, read_annotations, read_excluded
from radassist.lung.preprocess import (LungMaskConfig, SlabConfig, SlabStack, annotations_to_slab_boxes,
                                       nodule_boxes_on_slabs)
from radassist.lung.slab_inference import padded_size
from radassist.metrics.froc import UNKNOWN_DIAMETER_MM
from radassist.results.detections import Detection
from radassist.runtime.progress import Progress
from radassist.volume import Geometry

PATIENTS = "patients.csv"
SPLITS = ("train", "validation", "test")
CACHE_FORMAT = 2  # bump when what a cached .npz holds changes (2: each slab's lung window)


# -- the LUNA16 folder --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Luna16Scan:
    """One CT scan of the data set: its seriesuid, its .mhd file and the subset folder it is in."""

    uid: str
    path: Path
    subset: str


@dataclass
class Luna16Data:
    """What a LUNA16 folder holds: scans, nodules and excluded findings per seriesuid, and each scan's patient."""

    root: Path
    scans: list[Luna16Scan]
    nodules: dict[str, list[Detection]]
    excluded: dict[str, list[Detection]]
    patients: dict[str, str]  # seriesuid -> patient id (the seriesuid itself where patients.csv is absent)
    files: dict[str, str] = field(default_factory=dict)
    annotations_without_scan: int = 0  # nodules of scans not in the folder (LUNA16 subsets not downloaded)

    def scan(self, uid: str) -> Luna16Scan:
        return next(s for s in self.scans if s.uid == uid)


def read_patients(path: Path, uids: Iterable[str]) -> dict[str, str]:
    """seriesuid -> patient id from ``patients.csv`` (columns seriesuid, patient_id); scans not listed are their
    own patient."""
    patients = {uid: uid for uid in uids}
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if not {"seriesuid", "patient_id"} <= set(reader.fieldnames or []):
                raise InputError(path, "needs the columns seriesuid and patient_id")
            for line, row in enumerate(reader, start=2):
                uid, patient = (row.get("seriesuid") or "").strip(), (row.get("patient_id") or "").strip()
                if not uid or not patient:
                    raise InputError(path, f"line {line}: seriesuid and patient_id must both be given")
                if uid in patients:
                    patients[uid] = patient
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(path, f"not a readable CSV file ({error})") from None
    return patients


def read_luna16(root: str | Path) -> Luna16Data:
    """The scans (every ``subset*/*.mhd``) and annotations of a LUNA16 folder; InputError naming what is wrong."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "data folder not found")
    scans = [Luna16Scan(path.name[:-4], path, path.parent.name) for path in sorted(root.glob("subset*/*.mhd"))]
    if not scans:
        raise InputError(root, "no scans found: expected the LUNA16 layout subset*/<seriesuid>.mhd")
    seen: dict[str, Path] = {}
    for scan in scans:
        if scan.uid in seen:
            raise InputError(scan.path, f"seriesuid {scan.uid} is also in {seen[scan.uid]}; each scan must appear "
                                        f"once")
        seen[scan.uid] = scan.path
    if not (root / ANNOTATIONS).is_file():
        raise InputError(root / ANNOTATIONS, "file not found: the LUNA16 layout needs annotations.csv "
                                             "(seriesuid, coordX, coordY, coordZ, diameter_mm)")
    all_nodules = read_annotations(root / ANNOTATIONS)
    nodules = {uid: items for uid, items in all_nodules.items() if uid in seen}
    files = {"annotations": str(root / ANNOTATIONS), "scans": str(root / "subset*")}
    excluded = read_excluded(root, seen, files)
    patients = {uid: uid for uid in seen}
    if (root / PATIENTS).is_file():
        patients = read_patients(root / PATIENTS, seen)
        files["patients"] = str(root / PATIENTS)
    if not any(nodules.values()):
        raise InputError(root / ANNOTATIONS, "has no nodule on any scan of the folder: there is nothing to learn")
    without = sum(len(items) for uid, items in all_nodules.items() if uid not in seen)
    return Luna16Data(root=root, scans=scans, nodules=nodules, excluded=excluded, patients=patients, files=files,
                      annotations_without_scan=without)


# -- patient-level split ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SplitConfig:
    """How scans are divided into training, validation and test, and the positive-slab share of each split."""

    fractions: tuple[float, float, float] = (0.7, 0.2, 0.1)  # Lung-DETR paper: 70/20/10 by patient
    positive_ratio: tuple[float | None, float | None, float | None] = (0.127, 0.127, 0.035)
    #  Lung-DETR paper: 12.7 % of slabs hold a nodule in train and validation, about 3-4 % in test; None keeps all
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.fractions) != 3 or min(self.fractions) < 0 or abs(sum(self.fractions) - 1.0) > 1e-6:
            raise InputError(None, f"split fractions must be three non-negative numbers adding up to 1, got "
                                   f"{self.fractions}")
        if self.fractions[0] <= 0 or self.fractions[1] <= 0:
            raise InputError(None, f"training and validation fractions must be positive, got {self.fractions}")
        for ratio in self.positive_ratio:
            if ratio is not None and not 0.0 < ratio <= 1.0:
                raise InputError(None, f"a positive-slab ratio must be within (0, 1], got {ratio}")


@dataclass
class PatientSplit:
    """Seriesuids of each split; a patient's scans are always in the same split."""

    train: list[str]
    validation: list[str]
    test: list[str]

    def of(self, name: str) -> list[str]:
        if name not in SPLITS:
            raise ValueError(f"unknown split '{name}'; splits are {', '.join(SPLITS)}")
        return getattr(self, name)

    def to_dict(self) -> dict[str, list[str]]:
        return {name: list(self.of(name)) for name in SPLITS}


def allocate(count: int, fractions: Sequence[float]) -> list[int]:
    """Split ``count`` items by ``fractions`` with whole numbers (largest remainder; ties go to the earlier
    split)."""
    quotas = [count * f for f in fractions]
    sizes = [int(np.floor(q)) for q in quotas]
    order = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - sizes[i]), i))
    for index in order[:count - sum(sizes)]:
        sizes[index] += 1
    return sizes


def split_by_patient(data: Luna16Data, fractions: Sequence[float] = (0.7, 0.2, 0.1), seed: int = 0) -> PatientSplit:
    """Patients shuffled with ``seed`` and divided by ``fractions``, those with nodules and those without each in
    proportion. Validation gets at least one patient (with nodules when any split has two); at least two patients
    are needed."""
    groups: dict[str, list[str]] = {}
    for scan in data.scans:
        groups.setdefault(data.patients.get(scan.uid, scan.uid), []).append(scan.uid)
    if len(groups) < 2:
        raise InputError(data.root, f"holds {len(groups)} patient(s); training needs at least two (one to train "
                                    f"on, one to validate on)")
    rng = np.random.default_rng(seed)
    positive = sorted(p for p, uids in groups.items() if any(data.nodules.get(u) for u in uids))
    negative = sorted(p for p in groups if p not in set(positive))
    assigned: list[list[str]] = [[], [], []]
    for patients in (positive, negative):
        shuffled = [patients[i] for i in rng.permutation(len(patients))]
        start = 0
        for split, size in enumerate(allocate(len(shuffled), fractions)):
            assigned[split] += shuffled[start:start + size]
            start += size
    if not any(p in positive for p in assigned[1]):
        donor = next((s for s in (0, 2) if sum(p in positive for p in assigned[s]) >= 2), None)
        if donor is not None:
            moved = next(p for p in reversed(assigned[donor]) if p in positive)
            assigned[donor].remove(moved)
            assigned[1].append(moved)
    if not assigned[1]:
        assigned[1].append(assigned[0].pop())
    if not assigned[0]:
        assigned[0].append(assigned[2].pop() if assigned[2] else assigned[1].pop())
    return PatientSplit(*[sorted(uid for p in patients for uid in groups[p]) for patients in assigned])


# -- prepared scans and their cache -------------------------------------------------------------------------------

@dataclass
class PreparedScan:
    """A scan as Lung-DETR trains on it: slab images, each slab's nodule boxes, and where the slabs lie.

    ``images`` (S, H, W) 0..1 (float16 in the cache: half the disk, far finer than the CLAHE'd data needs);
    ``boxes[s]`` (N, 4) pixel x0, y0, x1, y1 on the whole slab; ``ignored[s]`` True where a slab shows only
    excluded findings (neither a clean negative nor a nodule, so never sampled); ``windows[s]`` (y0, x0, y1, x1)
    the part of the slab the network sees, as at inference.
    """

    uid: str
    images: np.ndarray
    boxes: list[np.ndarray]
    ignored: np.ndarray
    z_ranges: np.ndarray
    geometry: Geometry
    lung_fraction: np.ndarray
    windows: np.ndarray

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def positive(self) -> np.ndarray:
        """Which slabs hold at least one nodule box."""
        return np.array([len(b) > 0 for b in self.boxes], dtype=bool)

    def stack(self) -> SlabStack:
        """The slabs as the inference pipeline's SlabStack (float32 images), for scan-level validation."""
        return SlabStack(images=self.images.astype(np.float32), z_ranges=self.z_ranges, geometry=self.geometry,
                         lung_fraction=self.lung_fraction, windows=self.windows)

    def window_sample(self, slab: int) -> tuple[np.ndarray, np.ndarray]:
        """What the network trains on for ``slab``: its window of the image (float32) and its nodule boxes in
        window pixels (clipped to the window; boxes left with no area are dropped)."""
        y0, x0, y1, x1 = (int(v) for v in self.windows[slab])
        boxes = np.asarray(self.boxes[slab], dtype=np.float32).reshape(-1, 4) - np.float32([x0, y0, x0, y0])
        boxes = np.clip(boxes, 0, np.float32([x1 - x0, y1 - y0, x1 - x0, y1 - y0]))
        boxes = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
        return self.images[slab, y0:y1, x0:x1].astype(np.float32), boxes


def _sized(findings: Sequence[Detection]) -> list[Detection]:
    """Excluded findings of unknown size get LUNA16's 10 mm, so they cover the slabs they are on."""
    side = UNKNOWN_DIAMETER_MM
    return [item if min(item.size) > 0 else Detection(center=item.center, size=(side, side, side),
                                                      probability=item.probability, diameter_mm=side)
            for item in findings]


def prepare_scan(scan: Luna16Scan, nodules: Sequence[Detection], excluded: Sequence[Detection] = (),
                 slab_config: SlabConfig = SlabConfig(), mask_config: LungMaskConfig = LungMaskConfig()
                 ) -> PreparedScan:
    """Read one scan and build its slabs with the nodule boxes (the expensive step the cache saves)."""
    from radassist.io.images import read_volume

    volume = read_volume(scan.path)
    stack, boxes = annotations_to_slab_boxes(volume, list(nodules), slab_config, mask_config)
    excluded_boxes = nodule_boxes_on_slabs(stack, _sized(excluded), slab_config.min_z_overlap)
    ignored = np.array([len(b) == 0 and len(e) > 0 for b, e in zip(boxes, excluded_boxes)], dtype=bool)
    return PreparedScan(uid=scan.uid, images=stack.images.astype(np.float16), boxes=boxes, ignored=ignored,
                        z_ranges=np.asarray(stack.z_ranges, dtype=np.int64), geometry=stack.geometry,
                        lung_fraction=np.asarray(stack.lung_fraction, dtype=np.float32),
                        windows=np.array([stack.window(i) for i in range(len(stack))], dtype=np.int64).reshape(-1, 4))


def _findings_text(findings: Sequence[Detection]) -> list[list[float]]:
    return [[*f.center, *f.size] for f in findings]


def scan_fingerprint(scan: Luna16Scan, nodules: Sequence[Detection], excluded: Sequence[Detection],
                     slab_config: SlabConfig, mask_config: LungMaskConfig) -> str:
    """What a cached scan depends on: the file (size, modification time), its annotations and the settings."""
    stat = scan.path.stat()
    raw = scan.path.with_suffix(".raw")
    raw_stat = [raw.stat().st_size, raw.stat().st_mtime_ns] if raw.is_file() else []
    text = json.dumps({"format": CACHE_FORMAT, "uid": scan.uid, "file": [stat.st_size, stat.st_mtime_ns, *raw_stat],
                       "nodules": _findings_text(nodules), "excluded": _findings_text(excluded),
                       "slabs": repr(slab_config), "mask": repr(mask_config)}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def save_prepared(prepared: PreparedScan, path: Path, fingerprint: str) -> Path:
    """Write a prepared scan as one .npz (atomically)."""
    counts = np.array([len(b) for b in prepared.boxes], dtype=np.int64)
    all_boxes = np.concatenate([b.reshape(-1, 4) for b in prepared.boxes] + [np.zeros((0, 4), np.float32)])
    geometry = prepared.geometry
    with atomic_path(path) as temp, open(temp, "wb") as handle:
        np.savez(handle, images=prepared.images, box_counts=counts, boxes=all_boxes.astype(np.float32),
                 ignored=prepared.ignored, z_ranges=prepared.z_ranges, lung_fraction=prepared.lung_fraction,
                 windows=prepared.windows, shape=np.array(geometry.shape), spacing=np.array(geometry.spacing),
                 origin=np.array(geometry.origin), direction=np.array(geometry.direction),
                 uid=np.array(prepared.uid), fingerprint=np.array(fingerprint))
    return path


def load_prepared(path: Path) -> tuple[PreparedScan, str]:
    """A prepared scan and its fingerprint from a cache file written by :func:`save_prepared`."""
    with np.load(path, allow_pickle=False) as data:
        counts = data["box_counts"]
        starts = np.concatenate([[0], np.cumsum(counts)])
        boxes = [data["boxes"][a:b] for a, b in zip(starts[:-1], starts[1:])]
        geometry = Geometry(shape=tuple(int(v) for v in data["shape"]), spacing=tuple(data["spacing"]),
                            origin=tuple(data["origin"]), direction=tuple(data["direction"]))
        prepared = PreparedScan(uid=str(data["uid"]), images=data["images"], boxes=boxes, ignored=data["ignored"],
                                z_ranges=data["z_ranges"], geometry=geometry, lung_fraction=data["lung_fraction"],
                                windows=data["windows"])
        return prepared, str(data["fingerprint"])


@dataclass
class SlabCache:
    """Prepared scans kept as ``<folder>/<seriesuid>.npz``: computed once, reused by every epoch and every run
    with the same data and preprocessing settings."""

    folder: Path
    slab_config: SlabConfig = field(default_factory=SlabConfig)
    mask_config: LungMaskConfig = field(default_factory=LungMaskConfig)
    computed: int = 0  # scans prepared by this cache object (not found, or stale)
    reused: int = 0  # scans read back from the folder

    def path(self, uid: str) -> Path:
        return Path(self.folder) / f"{uid}.npz"

    def get(self, scan: Luna16Scan, nodules: Sequence[Detection] = (),
            excluded: Sequence[Detection] = ()) -> PreparedScan:
        """The prepared scan: from the cache when its fingerprint still matches, else computed and stored."""
        fingerprint = scan_fingerprint(scan, nodules, excluded, self.slab_config, self.mask_config)
        path = self.path(scan.uid)
        if path.is_file():
            try:
                prepared, stored = load_prepared(path)
            except (OSError, ValueError, KeyError):
                stored = ""  # an unreadable cache file is rebuilt
            if stored == fingerprint:
                self.reused += 1
                return prepared
        prepared = prepare_scan(scan, nodules, excluded, self.slab_config, self.mask_config)
        save_prepared(prepared, path, fingerprint)
        self.computed += 1
        return prepared

    def prepare(self, data: Luna16Data, uids: Sequence[str], progress: Progress | None = None) -> list[PreparedScan]:
        """Every scan of ``uids`` prepared, in order; ``progress`` hears about each."""
        progress = progress or Progress()
        prepared = []
        for index, uid in enumerate(uids):
            progress.update(index / max(len(uids), 1), f"slabs of scan {index + 1}/{len(uids)}")
            prepared.append(self.get(data.scan(uid), data.nodules.get(uid, []), data.excluded.get(uid, [])))
        progress.update(1.0, f"{len(uids)} scan(s) prepared")
        return prepared


# -- slab selection and the torch dataset -------------------------------------------------------------------------

def select_slabs(scans: Sequence[PreparedScan], positive_ratio: float | None, seed: int = 0,
                 min_lung_fraction: float = 0.0) -> list[tuple[int, int]]:
    """(scan index, slab index) of every slab with a nodule plus a seeded sample of slabs without one, so that
    positives make up ``positive_ratio`` of the result (all negatives when there are too few, or when the ratio
    is None, or when there is no positive). Negatives need at least ``min_lung_fraction`` lung in the slab;
    slabs showing only excluded findings are never taken."""
    positives, negatives = [], []
    for s, scan in enumerate(scans):
        for index, (is_positive, ignored, lung) in enumerate(zip(scan.positive, scan.ignored, scan.lung_fraction)):
            if is_positive:
                positives.append((s, index))
            elif not ignored and lung >= min_lung_fraction:
                negatives.append((s, index))
    if positive_ratio is not None and positives:
        wanted = int(round(len(positives) * (1.0 - positive_ratio) / positive_ratio))
        if wanted < len(negatives):
            rng = np.random.default_rng(seed)
            chosen = rng.choice(len(negatives), size=wanted, replace=False)
            negatives = [negatives[i] for i in sorted(chosen)]
    return sorted(positives + negatives)


@dataclass
class SlabSample:
    """One training item: image (C, H, W) float32, its pixel boxes (N, 4) and where it came from."""

    image: torch.Tensor
    boxes: torch.Tensor
    uid: str
    slab: int


class SlabDataset(torch.utils.data.Dataset):
    """The selected slabs of prepared scans, augmented with a generator seeded by (seed, epoch, item), so an epoch
    is the same every time it is run (a resumed training sees exactly what an uninterrupted one would)."""

    def __init__(self, scans: Sequence[PreparedScan], items: Sequence[tuple[int, int]],
                 augment: AugmentConfig | None = None, seed: int = 0, channels: int = 1) -> None:
        self.scans = list(scans)
        self.items = list(items)
        self.augment = augment
        self.seed = int(seed)
        self.channels = int(channels)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> SlabSample:
        scan_index, slab = self.items[index]
        scan = self.scans[scan_index]
        image, boxes = scan.window_sample(slab)
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            image, boxes = random_augment(image, boxes, self.augment, rng)
        tensor = torch.from_numpy(np.ascontiguousarray(image))[None].expand(self.channels, -1, -1).contiguous()
        return SlabSample(tensor, torch.from_numpy(np.ascontiguousarray(boxes)), scan.uid, slab)


def xyxy_to_normalised_cxcywh(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Pixel (x0, y0, x1, y1) -> DETR targets (cx, cy, w, h) as fractions of the (H, W) canvas."""
    height, width = size
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    return convert_box_mode(boxes.float().reshape(-1, 4) / scale, src_mode="xyxy", dst_mode="ccwh")


@dataclass
class SlabBatch:
    """A batch as Lung-DETR trains on it: images zero-padded (bottom/right) to a multiple of 32, the way the
    inference pipeline pads them, and DETR targets normalised by the padded size."""

    images: torch.Tensor
    targets: list[dict[str, torch.Tensor]]
    pixel_boxes: list[torch.Tensor]
    size: tuple[int, int]
    uids: list[str]
    slabs: list[int]


def collate_slabs(samples: Sequence[SlabSample]) -> SlabBatch:
    """Stack samples of any sizes into one padded batch."""
    size = padded_size(max(s.image.shape[1] for s in samples), max(s.image.shape[2] for s in samples))
    images = torch.zeros((len(samples), samples[0].image.shape[0]) + size, dtype=torch.float32)
    targets = []
    for index, sample in enumerate(samples):
        images[index, :, :sample.image.shape[1], :sample.image.shape[2]] = sample.image
        targets.append({"labels": torch.zeros(len(sample.boxes), dtype=torch.int64),
                        "boxes": xyxy_to_normalised_cxcywh(sample.boxes, size)})
    return SlabBatch(images=images, targets=targets, pixel_boxes=[s.boxes for s in samples], size=size,
                     uids=[s.uid for s in samples], slabs=[s.slab for s in samples])


def slab_counts(scans: Sequence[PreparedScan], items: Sequence[tuple[int, int]]) -> dict[str, Any]:
    """How many slabs, how many with a nodule, and their share (for the log and the split record)."""
    positive = sum(1 for s, i in items if len(scans[s].boxes[i]))
    return {"slabs": len(items), "positive_slabs": positive,
            "positive_ratio": round(positive / len(items), 4) if items else None}


__all__ = ["CACHE_FORMAT", "Luna16Data", "Luna16Scan", "PatientSplit", "PreparedScan", "SPLITS", "SlabBatch",
           "SlabCache", "SlabDataset", "SlabSample", "SplitConfig", "allocate", "collate_slabs", "load_prepared",
           "padded_size", "prepare_scan", "read_luna16", "read_patients", "save_prepared", "scan_fingerprint",
           "select_slabs", "slab_counts", "split_by_patient", "xyxy_to_normalised_cxcywh"]
