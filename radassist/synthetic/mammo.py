"""Synthetic screening mammograms (CC and MLO views) with benign and malignant findings and their masks.

Images look like the 12-bit "for presentation" PNGs GMIC reads: 16-bit storage of values 0-4095, the breast
against the chest-wall edge (left edge for left-breast views, right edge for right-breast views, unflipped as
in GMIC's ``horizontal_flip: NO`` exams), near-black background, skin line, fatty and fibroglandular texture
with Cooper's ligaments, the pectoral muscle on MLO views, and findings:

* benign: circumscribed round/oval masses, coarse (popcorn/vascular-type) calcifications;
* malignant: irregular spiculated masses, clusters of fine pleomorphic calcifications.

A finding is placed by its depth (chest wall -> nipple) and its position across the breast, so the same lesion
appears at the same depth in the CC and the MLO view of that breast.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from radassist.io.atomic import atomic_path

from radassist.synthetic.noise import fractal_noise, make_rng, smooth_noise
from radassist.volume import SourceInfo, Volume

VIEWS = ("L-CC", "R-CC", "L-MLO", "R-MLO")
FINDING_KINDS = ("benign_mass", "benign_calcifications", "malignant_mass", "calcifications")
MALIGNANT_KINDS = ("malignant_mass", "calcifications")
MAX_VALUE = 4095  # 12-bit


@dataclass(frozen=True)
class MammoPhantomConfig:
    """Image grid and appearance. The default is half of GMIC's 2944 x 1920 window at 0.2 mm per pixel."""

    shape: tuple[int, int] = (1472, 960)  # (rows, columns)
    pixel_spacing_mm: float = 0.2
    nipple_distance_mm: tuple[float, float] = (95.0, 150.0)  # chest wall to nipple
    density: tuple[float, float] = (0.15, 0.6)  # fibroglandular fraction, fatty .. dense
    noise: float = 22.0  # grey levels
    benign_probability: float = 0.35  # per breast, when findings are drawn at random
    malignant_probability: float = 0.3

    def __post_init__(self) -> None:
        if len(self.shape) != 2 or min(self.shape) < 64:
            raise ValueError(f"shape must be (rows, columns) of at least 64 pixels, got {self.shape}")
        if not 0.02 <= self.pixel_spacing_mm <= 1.0:
            raise ValueError(f"pixel_spacing_mm must be 0.02-1 mm, got {self.pixel_spacing_mm}")
        if self.nipple_distance_mm[0] <= 0 or self.nipple_distance_mm[1] < self.nipple_distance_mm[0]:
            raise ValueError(f"nipple_distance_mm must be a positive range, got {self.nipple_distance_mm}")
        if not 0 <= self.density[0] <= self.density[1] <= 1:
            raise ValueError(f"density must be a range within 0..1, got {self.density}")
        for name in ("benign_probability", "malignant_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be within 0..1")


@dataclass(frozen=True)
class MammoFinding:
    """One lesion of a breast: kind, depth (0 chest wall .. 1 nipple), position across the breast (-1 .. 1),
    size in mm (mass diameter or cluster diameter) and the seed of its shape, shared by both views."""

    kind: str
    depth: float
    across: float
    size_mm: float
    shape_seed: int

    def __post_init__(self) -> None:
        if self.kind not in FINDING_KINDS:
            raise ValueError(f"unknown finding {self.kind!r}; choose from {FINDING_KINDS}")
        if not 0.0 < self.depth < 1.0 or not -1.0 <= self.across <= 1.0 or self.size_mm <= 0:
            raise ValueError(f"finding out of range: depth {self.depth}, across {self.across}, size {self.size_mm}")

    @property
    def malignant(self) -> bool:
        return self.kind in MALIGNANT_KINDS


@dataclass
class MammoPhantom:
    """One view: 12-bit pixels, lesion masks, image-level labels."""

    pixels: np.ndarray  # uint16 (rows, columns), values 0..4095
    benign_mask: np.ndarray  # bool
    malignant_mask: np.ndarray  # bool
    breast_mask: np.ndarray  # bool
    labels: dict[str, int]  # {"benign": 0/1, "malignant": 0/1}
    laterality: str  # "L" or "R"
    view: str  # "CC" or "MLO"
    findings: list[MammoFinding]
    pixel_spacing_mm: float
    seed: int = 0

    @property
    def name(self) -> str:
        return f"{self.laterality}-{self.view}"

    def to_volume(self) -> Volume:
        """The image as a one-slice Volume (spacing in mm), for code that takes volumes."""
        s = self.pixel_spacing_mm
        source = SourceInfo(modality="MG", patient_id=f"RADASSIST-PHANTOM-{self.seed}",
                            series_description=f"RadAssist synthetic mammogram {self.name}",
                            extra={"laterality": self.laterality, "view": self.view})
        return Volume(self.pixels[np.newaxis], spacing=(s, s, 1.0), source=source)


@dataclass
class MammoExam:
    """The four screening views of one patient, in ``VIEWS`` order, with per-breast labels."""

    views: list[MammoPhantom]  # L-CC, R-CC, L-MLO, R-MLO
    labels: dict[str, dict[str, int]]  # {"L": {"benign": .., "malignant": ..}, "R": {...}}
    seed: int = 0

    def view(self, name: str) -> MammoPhantom:
        """The view called ``name`` ("L-CC", "R-MLO", ...)."""
        for phantom in self.views:
            if phantom.name == name:
                return phantom
        raise KeyError(f"no view {name!r}; have {[v.name for v in self.views]}")


@dataclass(frozen=True)
class _Patient:
    """What both views and both breasts of one patient share."""

    nipple_distance_mm: float
    height_mm: float  # breast extent across the image at the chest wall
    density: float
    fat_level: float
    gland_level: float


def _patient(seed: int, config: MammoPhantomConfig) -> _Patient:
    rng = make_rng(seed, "mammo", "patient")
    rows_mm = config.shape[0] * config.pixel_spacing_mm
    cols_mm = config.shape[1] * config.pixel_spacing_mm
    nipple = min(rng.uniform(*config.nipple_distance_mm), 0.88 * cols_mm)
    height = min(rng.uniform(1.4, 1.8) * nipple, 0.8 * rows_mm)
    return _Patient(nipple_distance_mm=nipple, height_mm=height, density=rng.uniform(*config.density),
                    fat_level=rng.uniform(850.0, 1150.0), gland_level=rng.uniform(2300.0, 2800.0))


def _random_findings(seed: int, laterality: str, config: MammoPhantomConfig) -> list[MammoFinding]:
    rng = make_rng(seed, "mammo", "findings", laterality)
    kinds: list[str] = []
    if rng.uniform() < config.benign_probability:
        kinds.append("benign_mass" if rng.uniform() < 0.7 else "benign_calcifications")
    if rng.uniform() < config.malignant_probability:
        kinds.append("malignant_mass" if rng.uniform() < 0.6 else "calcifications")
    return _place_findings(seed, laterality, kinds)


def _place_findings(seed: int, laterality: str, kinds: Sequence[str | MammoFinding]) -> list[MammoFinding]:
    """Turn finding kinds into placed findings (kept apart from each other); placed findings pass through."""
    findings: list[MammoFinding] = []
    for index, kind in enumerate(kinds):
        if isinstance(kind, MammoFinding):
            findings.append(kind)
            continue
        if kind not in FINDING_KINDS:
            raise ValueError(f"unknown finding {kind!r}; choose from {FINDING_KINDS}")
        rng = make_rng(seed, "mammo", "finding", laterality, index, kind)
        size = {"benign_mass": (8.0, 20.0), "benign_calcifications": (15.0, 35.0),
                "malignant_mass": (10.0, 25.0), "calcifications": (6.0, 14.0)}[kind]
        for _ in range(50):
            depth, across = float(rng.uniform(0.3, 0.75)), float(rng.uniform(-0.55, 0.55))
            if all(abs(depth - f.depth) + abs(across - f.across) > 0.35 for f in findings):
                break
        findings.append(MammoFinding(kind=kind, depth=depth, across=across, size_mm=float(rng.uniform(*size)),
                                     shape_seed=int(rng.integers(2 ** 31))))
    return findings


def _outline(config: MammoPhantomConfig, patient: _Patient, view: str) -> tuple[np.ndarray, float, float]:
    """Breast mask in the canonical frame (chest wall at column 0), its centre row and half-height (pixels)."""
    rows, cols = config.shape
    s = config.pixel_spacing_mm
    depth = patient.nipple_distance_mm / s
    half = patient.height_mm / 2 / s
    r = np.arange(rows, dtype=np.float32)[:, None]
    c = np.arange(cols, dtype=np.float32)[None, :]
    if view == "CC":
        center = rows / 2
        mask = ((c / depth) ** 2 + np.abs((r - center) / half) ** 2.2) <= 1.0
    else:  # MLO: the breast hangs lower and its upper contour rises diagonally into the axilla
        center = 0.58 * rows
        half = min(half, 0.40 * rows)
        lower = (r >= center) & (((c / depth) ** 2 + np.abs((r - center) / half) ** 2.2) <= 1.0)
        top_width = 0.45 * depth
        upper = (r < center) & (c <= top_width + (depth - top_width) * (r / center) ** 1.6)
        mask = lower | upper
    return np.broadcast_to(mask, (rows, cols)).copy(), center, half


def _pectoral(config: MammoPhantomConfig, patient: _Patient, rng: np.random.Generator) -> np.ndarray:
    """The pectoral muscle on an MLO view: a triangle in the upper chest-wall corner with a slightly convex edge."""
    rows, cols = config.shape
    width = rng.uniform(0.32, 0.42) * patient.nipple_distance_mm / config.pixel_spacing_mm
    height = rng.uniform(0.40, 0.60) * rows
    r = np.arange(rows, dtype=np.float32)[:, None]
    c = np.arange(cols, dtype=np.float32)[None, :]
    bulge = 0.10 * np.sin(np.pi * np.clip(r / height, 0, 1))
    return np.broadcast_to(c / width + r / height <= 1.0 + bulge, (rows, cols)).copy()


def _finding_center(finding: MammoFinding, config: MammoPhantomConfig, patient: _Patient, center_row: float,
                    half: float) -> tuple[float, float]:
    depth_px = patient.nipple_distance_mm / config.pixel_spacing_mm
    column = finding.depth * depth_px
    half_here = half * (1.0 - finding.depth ** 2) ** (1 / 2.2)
    return center_row + finding.across * 0.8 * half_here, column


def _draw_finding(finding: MammoFinding, row: float, column: float, config: MammoPhantomConfig,
                  shape: tuple[int, int]) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray]:
    """Added brightness and lesion mask of one finding on a box of the image (canonical frame)."""
    rng = np.random.default_rng(finding.shape_seed)
    s = config.pixel_spacing_mm
    radius = finding.size_mm / 2 / s
    reach = int(radius * (2.6 if finding.kind == "malignant_mass" else 1.3)) + 6
    r0, r1 = max(int(row) - reach, 0), min(int(row) + reach + 1, shape[0])
    c0, c1 = max(int(column) - reach, 0), min(int(column) + reach + 1, shape[1])
    rr = np.arange(r0, r1, dtype=np.float32)[:, None] - row
    cc = np.arange(c0, c1, dtype=np.float32)[None, :] - column
    slices = (slice(r0, r1), slice(c0, c1))
    add = np.zeros((r1 - r0, c1 - c0), dtype=np.float32)
    angle = np.arctan2(rr, cc)
    distance = np.sqrt(rr ** 2 + cc ** 2)

    if finding.kind in ("benign_mass", "malignant_mass"):
        if finding.kind == "benign_mass":  # oval, circumscribed: sharp edge
            tilt, ratio = rng.uniform(0, np.pi), rng.uniform(0.65, 1.0)
            u = cc * np.cos(tilt) + rr * np.sin(tilt)
            v = -cc * np.sin(tilt) + rr * np.cos(tilt)
            scaled = np.sqrt((u / radius) ** 2 + (v / (radius * ratio)) ** 2)
            edge_px = 0.15 / s
            body = np.clip(0.5 - (scaled - 1.0) * radius / edge_px, 0, 1)
            add += rng.uniform(500, 750) * body * (0.85 + 0.15 * np.sqrt(np.clip(1 - scaled ** 2, 0, 1)))
        else:  # irregular outline with spicules radiating out
            harmonics = sum(rng.uniform(0.05, 0.16) * np.cos(n * angle + rng.uniform(0, 2 * np.pi))
                            for n in range(2, 7))
            scaled = distance / (radius * (1.0 + harmonics))
            body = np.clip(0.5 - (scaled - 1.0) * radius / (0.5 / s), 0, 1)
            add += rng.uniform(480, 680) * body
            for _ in range(int(rng.integers(8, 17))):
                direction = rng.uniform(0, 2 * np.pi)
                length = radius * rng.uniform(0.6, 1.5)
                width = rng.uniform(0.25, 0.5) / s
                along = cc * np.cos(direction) + rr * np.sin(direction) - radius * 0.8
                across = -cc * np.sin(direction) + rr * np.cos(direction)
                taper = np.clip(1.0 - along / length, 0, 1)
                line = np.exp(-0.5 * (across / np.maximum(width * taper, 0.3)) ** 2) * (along > 0) * taper
                add += rng.uniform(350, 500) * line
        mask = add > 120.0
    else:
        if finding.kind == "calcifications":  # fine pleomorphic: many tiny, varied specks in a tight cluster
            count, size_mm, brightness = int(rng.integers(8, 26)), (0.15, 0.5), (1500, 2300)
        else:  # coarse benign calcifications: few, large, round
            count, size_mm, brightness = int(rng.integers(2, 6)), (1.0, 2.5), (1100, 1600)
        specks = np.zeros_like(add)
        for _ in range(count):
            rho = radius * np.sqrt(rng.uniform()) * (0.9 if finding.kind == "calcifications" else 1.0)
            phi = rng.uniform(0, 2 * np.pi)
            pr, pc = rho * np.sin(phi), rho * np.cos(phi)
            a = rng.uniform(*size_mm) / 2 / s
            b = a * (rng.uniform(0.35, 1.0) if finding.kind == "calcifications" else rng.uniform(0.8, 1.0))
            tilt = rng.uniform(0, np.pi)
            u = (cc - pc) * np.cos(tilt) + (rr - pr) * np.sin(tilt)
            v = -(cc - pc) * np.sin(tilt) + (rr - pr) * np.cos(tilt)
            q = np.sqrt((u / max(a, 0.5)) ** 2 + (v / max(b, 0.5)) ** 2)
            specks = np.maximum(specks, rng.uniform(*brightness) * np.clip(1.5 - q, 0, 1))
        add += specks
        mask = ndimage.binary_dilation(specks > 150.0, iterations=max(int(round(0.6 / s)), 1))
    return slices, add, mask


def make_mammogram(seed: int = 0, laterality: str = "L", view: str = "CC",
                   findings: Sequence[str | MammoFinding] | None = None,
                   config: MammoPhantomConfig | None = None) -> MammoPhantom:
    """One mammographic view. ``findings``: None draws this breast's findings from the seed (the same for its CC
    and MLO views); otherwise a list of kinds from ``FINDING_KINDS`` or placed :class:`MammoFinding` objects."""
    config = config or MammoPhantomConfig()
    if laterality not in ("L", "R"):
        raise ValueError(f"laterality must be 'L' or 'R', got {laterality!r}")
    if view not in ("CC", "MLO"):
        raise ValueError(f"view must be 'CC' or 'MLO', got {view!r}")
    placed = _random_findings(seed, laterality, config) if findings is None else \
        _place_findings(seed, laterality, list(findings))
    patient = _patient(seed, config)
    rows, cols = config.shape
    s = config.pixel_spacing_mm
    rng = make_rng(seed, "mammo", "view", laterality, view)

    breast, center_row, half = _outline(config, patient, view)
    inside_mm = ndimage.distance_transform_edt(breast) * s  # distance to the skin, mm

    # fibroglandular density: clustered behind the nipple, thinning towards the chest wall and the skin
    texture_rng = make_rng(seed, "mammo", "texture", laterality, view)
    tissue = fractal_noise(texture_rng, config.shape, (2.0 / s, 6.0 / s, 18.0 / s), (0.35, 0.6, 0.8))
    column = np.arange(cols, dtype=np.float32)[None, :] * s / patient.nipple_distance_mm
    row = (np.arange(rows, dtype=np.float32)[:, None] - center_row) / half
    centrality = 1.0 - 0.9 * row ** 2 - 0.6 * (column - 0.45) ** 2
    level = np.quantile(tissue[breast], 1.0 - patient.density) if breast.any() else 0.0
    gland = 1.0 / (1.0 + np.exp(-(tissue - level + 0.9 * (centrality - 0.5)) / 0.5))
    gland *= np.clip(inside_mm / 12.0, 0, 1)  # subcutaneous fat under the skin
    ligaments = np.exp(-(smooth_noise(texture_rng, config.shape, 5.0 / s) / 0.05) ** 2)
    fine = fractal_noise(texture_rng, config.shape, (0.6 / s, 1.5 / s))

    image = (patient.fat_level + (patient.gland_level - patient.fat_level) * gland + 160.0 * ligaments
             + (40.0 + 120.0 * gland) * fine)
    if view == "MLO":
        pectoral = _pectoral(config, patient, rng) & breast
        muscle = 2650.0 + 120.0 * smooth_noise(rng, config.shape, 15.0 / s)
        image = np.where(pectoral, muscle, image)

    # findings (in the breast's own frame, so CC and MLO agree on depth)
    benign = np.zeros(config.shape, dtype=bool)
    malignant = np.zeros(config.shape, dtype=bool)
    for finding in placed:
        r, c = _finding_center(finding, config, patient, center_row, half)
        slices, add, mask = _draw_finding(finding, r, c, config, config.shape)
        image[slices] += add * breast[slices]
        target = malignant if finding.malignant else benign
        target[slices] |= mask & breast[slices]

    # thinner compressed tissue near the skin is darker; the skin itself is a thin bright line
    thickness = np.sqrt(np.clip(inside_mm / 9.0, 0, 1) * (2 - np.clip(inside_mm / 9.0, 0, 1)))
    image = image * (0.55 + 0.45 * thickness)
    skin = np.exp(-0.5 * ((inside_mm - 0.8) / 0.6) ** 2) * breast
    image += 350.0 * skin
    image = np.where(breast, image, 12.0)
    image = ndimage.gaussian_filter(image.astype(np.float32), 0.6)  # detector blur, softens the skin edge
    image += rng.normal(0.0, config.noise, config.shape).astype(np.float32) * np.where(breast, 1.0, 0.4)
    pixels = np.clip(np.rint(image), 0, MAX_VALUE).astype(np.uint16)

    if laterality == "R":  # right-breast views have the chest wall at the right edge (unflipped storage)
        pixels, benign, malignant, breast = (np.ascontiguousarray(a[:, ::-1]) for a in
                                             (pixels, benign, malignant, breast))
    labels = {"benign": int(benign.any()), "malignant": int(malignant.any())}
    return MammoPhantom(pixels=pixels, benign_mask=benign, malignant_mask=malignant, breast_mask=breast,
                        labels=labels, laterality=laterality, view=view, findings=placed, pixel_spacing_mm=s,
                        seed=seed)


def make_mammogram_exam(seed: int = 0, config: MammoPhantomConfig | None = None,
                        findings: dict[str, Sequence[str | MammoFinding]] | None = None) -> MammoExam:
    """L-CC, R-CC, L-MLO and R-MLO of one patient; each breast's findings appear in both of its views.

    ``findings`` may fix the findings per breast ({"L": [...], "R": [...]}); breasts not named draw theirs.
    """
    config = config or MammoPhantomConfig()
    views = []
    for name in VIEWS:  # a breast's findings are placed from (seed, laterality), the same in both its views
        laterality, view = name.split("-")
        views.append(make_mammogram(seed, laterality, view, (findings or {}).get(laterality), config))
    labels = {}
    for laterality in ("L", "R"):
        both = [v.labels for v in views if v.laterality == laterality]
        labels[laterality] = {key: int(any(label[key] for label in both)) for key in ("benign", "malignant")}
    return MammoExam(views=views, labels=labels, seed=seed)


def write_view_png(phantom: MammoPhantom, path: str | Path) -> Path:
    """Write a view's pixels as a 16-bit greyscale PNG (values 0-4095, like the GMIC sample images)."""
    return write_png(phantom.pixels, path)


def write_png(pixels: np.ndarray, path: str | Path) -> Path:
    """Write a 2-D uint16 (16-bit PNG) or bool/uint8 (8-bit PNG, masks as 0/255) array, atomically."""
    path = Path(path)
    pixels = np.asarray(pixels)
    if pixels.ndim != 2:
        raise ValueError(f"a PNG holds a 2-D image, got shape {pixels.shape}")
    if pixels.dtype == np.bool_:
        pixels = pixels.astype(np.uint8) * np.uint8(255)
    if pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"write uint16 images or bool/uint8 masks, got {pixels.dtype}")
    image = Image.fromarray(np.ascontiguousarray(pixels))  # uint8 -> mode L, uint16 -> mode I;16
    with atomic_path(path) as temp:
        image.save(temp, format="PNG")
    return path
