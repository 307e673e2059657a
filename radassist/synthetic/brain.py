"""Synthetic brain MRI pairs (FLAIR, T1, T1ce, T2) with a glioma and a known deformation between them.

The fixed subject is drawn on an axis-aligned LPS grid: skull-stripped brain with folded cortex, sulci, white
matter, deep grey nuclei, lateral ventricles and a tumour with necrotic core, enhancing rim and oedema (BraTS
labels 1, 4 and 2). The moving subject is the fixed one *resampled* through the inverse of a smooth, known
displacement ``u`` (affine part plus a smooth random field), so for every fixed point p

    moving(p + u(p)) == fixed(p)

which is ITK's resampling convention (fixed -> moving) that ``DisplacementField`` and ITK transform files use.
``u`` is defined as the trilinear interpolant of the returned grid vectors (how ITK and Slicer read a
displacement field), so the relation holds for the field exactly as it is handed out.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from radassist.extent import nonzero_extent
from radassist.results.displacement import DisplacementField
from radassist.results.labelmap import LabelMap
from radassist.results.segments import Code, Segment, Terminology
from radassist.synthetic.abdomen import MORPHOLOGICALLY_ALTERED, NEOPLASM
from radassist.synthetic.chest import series_uid_for
from radassist.synthetic.noise import (Grid, centred_geometry, ellipsoid_stamp, fractal_noise, lobulated_surface,
                                       make_rng, random_rotation, smooth_noise)
from radassist.volume import SourceInfo, Volume

MODALITIES = ("flair", "t1", "t1ce", "t2")

BRAIN = Code("SCT", "12738006", "Brain")
NECROSIS = Code("SCT", "6574001", "Necrosis")
EDEMA = Code("SCT", "79654002", "Edema")

# BraTS label values, kept as they are on disk
NECROSIS_LABEL = 1
OEDEMA_LABEL = 2
ENHANCING_LABEL = 4

# tissue classes of the phantom and their signal in each sequence (arbitrary MR units, relative contrasts of
# 1.5-3 T clinical scans: CSF dark on T1 and FLAIR, bright on T2; oedema bright on T2 and FLAIR; rim enhances)
_CLASSES = ("background", "csf", "grey", "white", "deep_grey", "necrosis", "enhancing", "oedema")
_SIGNAL = {
    "t1": (0.0, 300.0, 600.0, 850.0, 680.0, 350.0, 620.0, 520.0),
    "t1ce": (0.0, 320.0, 620.0, 860.0, 700.0, 360.0, 1350.0, 540.0),
    "t2": (0.0, 1500.0, 900.0, 650.0, 850.0, 1350.0, 1000.0, 1250.0),
    "flair": (0.0, 180.0, 700.0, 560.0, 680.0, 650.0, 950.0, 1150.0),
}


@dataclass(frozen=True)
class BrainPhantomConfig:
    """Grid, tumour and deformation of a brain pair. The default (1.4 M voxels per image) takes a few seconds."""

    shape: tuple[int, int, int] = (96, 128, 112)  # (z, y, x) voxels
    spacing: tuple[float, float, float] = (1.5, 1.5, 1.5)  # (x, y, z) mm; BraTS's 1 mm works too, slower
    tumour_radius_mm: tuple[float, float] = (10.0, 20.0)  # enhancing tumour's outer radius
    oedema_ratio: tuple[float, float] = (1.3, 1.8)  # oedema radius / tumour radius
    max_displacement_mm: float = 6.0  # peak of the smooth non-linear part
    rotation_deg: float = 3.0
    translation_mm: float = 3.0
    noise: float = 0.03  # Rician noise sigma as a fraction of white matter's signal

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or min(self.shape) < 24:
            raise ValueError(f"shape must be 3 sizes of at least 24 voxels, got {self.shape}")
        if len(self.spacing) != 3 or min(self.spacing) <= 0:
            raise ValueError(f"spacing must be 3 positive sizes in mm, got {self.spacing}")
        if self.tumour_radius_mm[0] <= 0 or self.tumour_radius_mm[1] < self.tumour_radius_mm[0]:
            raise ValueError(f"tumour_radius_mm must be a positive range, got {self.tumour_radius_mm}")
        if self.oedema_ratio[0] < 1.0 or self.oedema_ratio[1] < self.oedema_ratio[0]:
            raise ValueError(f"oedema_ratio must be a range >= 1, got {self.oedema_ratio}")
        if min(self.max_displacement_mm, self.rotation_deg, self.translation_mm, self.noise) < 0:
            raise ValueError("deformation sizes and noise must be non-negative")


@dataclass
class BrainPair:
    """Fixed and moving multi-sequence MRI of one subject, their labels and the true fixed -> moving field."""

    fixed: dict[str, Volume]  # "flair", "t1", "t1ce", "t2" (float32)
    moving: dict[str, Volume]
    fixed_labels: LabelMap  # BraTS values: 1 necrosis / non-enhancing core, 2 oedema, 4 enhancing
    moving_labels: LabelMap
    deformation: DisplacementField  # on the fixed grid, LPS mm: moving(p + u(p)) == fixed(p)
    brain_mask: np.ndarray  # bool (z, y, x) on the fixed grid
    moving_brain_mask: np.ndarray
    tumour_center: tuple[float, float, float]  # fixed space, LPS mm
    seed: int = 0
    config: BrainPhantomConfig = field(default_factory=BrainPhantomConfig)


def _segments() -> list[Segment]:
    return [
        Segment("Necrotic and non-enhancing tumour core", NECROSIS_LABEL, color=(1.0, 0.2, 0.2),
                terminology=Terminology(MORPHOLOGICALLY_ALTERED, NECROSIS, anatomic_region=BRAIN)),
        Segment("Peritumoral oedema", OEDEMA_LABEL, color=(0.3, 0.8, 0.3),
                terminology=Terminology(MORPHOLOGICALLY_ALTERED, EDEMA, anatomic_region=BRAIN)),
        Segment("GD-enhancing tumour", ENHANCING_LABEL, color=(1.0, 0.9, 0.2),
                terminology=Terminology(MORPHOLOGICALLY_ALTERED, NEOPLASM, anatomic_region=BRAIN)),
    ]


def _tissue_classes(seed: int, grid: Grid, config: BrainPhantomConfig) -> tuple[np.ndarray, np.ndarray]:
    """Class index per voxel (see ``_CLASSES``) and the tumour centre (LPS mm)."""
    rng = make_rng(seed, "brain", "anatomy")
    extent = np.array(grid.geometry.extent_mm)
    radii = np.minimum(extent * np.array([0.42, 0.46, 0.41]), np.array([70.0, 86.0, 60.0])) * rng.uniform(0.93, 1.0)
    voxel = grid.voxel_size
    z, y, x = grid.open_mesh()
    outline = smooth_noise(make_rng(seed, "brain", "outline"), grid.shape, 30.0 / voxel)
    r = np.sqrt((x / radii[0]) ** 2 + (y / radii[1]) ** 2 + (z / radii[2]) ** 2) * (1.0 + 0.035 * outline)
    r = r + 0.25 * np.clip(-z / radii[2] - 0.45, 0, None) ** 2  # flatter, narrower base
    depth = (1.0 - r) * radii.mean()  # approximate distance below the brain surface, mm
    del outline
    brain = depth > 0
    gyri = smooth_noise(make_rng(seed, "brain", "gyri"), grid.shape, 7.0 / voxel)
    classes = np.zeros(grid.shape, dtype=np.uint8)
    classes[brain] = 3
    grey = brain & ((depth < 3.0) | ((depth < 15.0) & (np.abs(gyri) < 0.55)))
    classes[grey] = 2
    sulci = brain & (depth < 13.0) & (np.abs(gyri) < 0.12)
    fissure = brain & (np.abs(x) < 1.2) & (z > -0.15 * radii[2]) & (depth < 0.3 * radii.mean())
    classes[sulci | fissure] = 1
    del gyri, depth
    for side in (-1.0, 1.0):  # thalamus and basal ganglia, then the lateral ventricles
        for center, semi, value in (((12.0, 10.0, 0.0), (10.0, 14.0, 9.0), 4),
                                    ((22.0, -8.0, 6.0), (7.0, 14.0, 10.0), 4),
                                    ((9.0, -4.0, 12.0), (4.5, 24.0, 8.0), 1)):
            scale = radii / np.array([70.0, 86.0, 60.0])
            stamp = ellipsoid_stamp(grid, np.array(center) * scale * (side, 1, 1), np.array(semi) * scale,
                                    random_rotation(rng, 8))
            if stamp is not None:
                classes[stamp.slices][stamp.coverage >= 0.5] = value

    # tumour in the white matter of one hemisphere, then oedema spreading mostly along white matter
    side = rng.choice((-1.0, 1.0))
    tumour_radius = float(rng.uniform(*config.tumour_radius_mm))
    white_matter = classes == 3
    candidates = np.flatnonzero(white_matter & (x * side > 12.0) & (r < 0.75))
    if candidates.size == 0:
        candidates = np.flatnonzero(white_matter)
    center = grid.geometry.zyx_to_world(np.array(np.unravel_index(candidates[rng.integers(candidates.size)],
                                                                  grid.shape), dtype=float))
    oedema_radius = tumour_radius * rng.uniform(*config.oedema_ratio)
    oedema = ellipsoid_stamp(grid, center, oedema_radius * rng.uniform(0.85, 1.15, 3), random_rotation(rng),
                             surface=lobulated_surface(rng, 0.2))
    core = ellipsoid_stamp(grid, center, tumour_radius * rng.uniform(0.85, 1.15, 3), random_rotation(rng),
                           surface=lobulated_surface(rng, 0.15))
    necrosis = ellipsoid_stamp(grid, center, tumour_radius * rng.uniform(0.4, 0.6) * rng.uniform(0.85, 1.15, 3),
                               random_rotation(rng), surface=lobulated_surface(rng, 0.15))
    if oedema is not None:
        region = classes[oedema.slices]
        region[(oedema.coverage >= 0.5) & ((region == 3) | (region == 4))] = 7
    for stamp, value in ((core, 6), (necrosis, 5)):
        if stamp is not None:
            region = classes[stamp.slices]
            region[(stamp.coverage >= 0.5) & (region > 0)] = value
    return classes, center


def _render(seed: int, grid: Grid, classes: np.ndarray, config: BrainPhantomConfig) -> dict[str, np.ndarray]:
    """The four sequences from the class map: partial volume, tissue texture, bias field and Rician noise."""
    voxel = grid.voxel_size
    fractions = np.stack([ndimage.gaussian_filter((classes == c).astype(np.float32), 0.6)
                          for c in range(len(_CLASSES))])
    texture = fractal_noise(make_rng(seed, "brain", "texture"), grid.shape, (1.5, 5.0 / voxel))
    heterogeneity = 1.0 + np.where(classes >= 5, 0.08, 0.025).astype(np.float32) * texture
    del texture
    brain = classes > 0
    images = {}
    for name in MODALITIES:
        signal = np.tensordot(np.asarray(_SIGNAL[name], dtype=np.float32), fractions, axes=1) * heterogeneity
        bias = 1.0 + 0.08 * smooth_noise(make_rng(seed, "brain", "bias", name), grid.shape, 70.0 / voxel)
        signal *= bias
        sigma = config.noise * _SIGNAL[name][3]
        if sigma > 0:
            noise_rng = make_rng(seed, "brain", "noise", name)
            real = signal + sigma * noise_rng.standard_normal(grid.shape, dtype=np.float32)
            imaginary = sigma * noise_rng.standard_normal(grid.shape, dtype=np.float32)
            signal = np.sqrt(real * real + imaginary * imaginary)
        signal[~brain] = 0.0  # skull-stripped
        images[name] = signal.astype(np.float32)
    return images


def _displacement(seed: int, grid: Grid, center: np.ndarray, config: BrainPhantomConfig) -> np.ndarray:
    """u(p) on the grid (z, y, x, 3) in LPS mm: a small rotation about the tumour, a translation, a smooth field."""
    rng = make_rng(seed, "brain", "deformation")
    z, y, x = grid.open_mesh()
    rotation = random_rotation(rng, config.rotation_deg)
    translation = rng.uniform(-1, 1, 3) * config.translation_mm
    offset = [np.broadcast_to(c, grid.shape) for c in (x - center[0], y - center[1], z - center[2])]
    vectors = np.empty((*grid.shape, 3), dtype=np.float64)
    for axis in range(3):
        vectors[..., axis] = sum((rotation[axis, j] - (axis == j)) * offset[j] for j in range(3)) + translation[axis]
    smooth = np.stack([smooth_noise(rng, grid.shape, 40.0 / grid.voxel_size) for _ in range(3)], axis=-1)
    peak = float(np.linalg.norm(smooth, axis=-1).max()) or 1.0
    vectors += smooth * (config.max_displacement_mm * rng.uniform(0.6, 1.0) / peak)
    return vectors


def _parallel(function, items: list) -> list:
    """Run ``function`` over ``items`` on threads: SciPy's interpolation releases the GIL, so this uses every core."""
    with ThreadPoolExecutor(max_workers=min(len(items), os.cpu_count() or 1)) as pool:
        return list(pool.map(function, items))


def inverse_map(deformation: DisplacementField, region: tuple[slice, slice, slice] | None = None,
                tolerance_mm: float = 2e-3, max_iterations: int = 60) -> np.ndarray:
    """For every grid point q (of ``region``), the x with x + u(x) = q, as continuous array indices (3, z, y, x).

    Fixed-point iteration x <- q - u(x) with u interpolated trilinearly, as ITK does; it converges because the
    field is smooth (its Jacobian's norm is well below 1). The first step needs no interpolation: x = q - u(q).
    """
    geometry = deformation.geometry
    region = region or tuple(slice(0, n) for n in geometry.shape)
    spacing = np.asarray(geometry.spacing_zyx).reshape(3, 1, 1, 1)
    grid_zyx = np.mgrid[region].astype(np.float64)
    components = [np.ascontiguousarray(deformation.vectors[..., 2 - a]) for a in range(3)]  # (dz, dy, dx)
    current = grid_zyx - np.stack([c[region] for c in components]) / spacing
    for _ in range(max_iterations):
        u_zyx = np.stack(_parallel(lambda c: ndimage.map_coordinates(c, current, order=1, mode="nearest"),
                                   components))
        updated = grid_zyx - u_zyx / spacing
        change = float(np.abs((updated - current) * spacing).max())
        current = updated
        if change < tolerance_mm:
            break
    return current


def _reach(mask: np.ndarray, margin_voxels: np.ndarray) -> tuple[slice, slice, slice]:
    """Bounding box of ``mask`` grown by ``margin_voxels`` per axis: where anything can move to."""
    return tuple(slice(max(first - int(margin), 0), min(stop + int(margin), n))
                 for (first, stop), margin, n in zip(nonzero_extent(mask), margin_voxels, mask.shape))


def warp(array: np.ndarray, coordinates: np.ndarray, order: int) -> np.ndarray:
    """Sample ``array`` at continuous (z, y, x) indices; cubic for images (clipped at 0), nearest for labels."""
    warped = ndimage.map_coordinates(array, coordinates, order=order, mode="constant", cval=0.0)
    return np.maximum(warped, 0) if order > 1 else warped


def make_brain_pair(seed: int = 0, config: BrainPhantomConfig | None = None) -> BrainPair:
    """A fixed/moving brain MRI pair with tumour labels and the exact fixed -> moving displacement field."""
    config = config or BrainPhantomConfig()
    geometry = centred_geometry(config.shape, config.spacing)
    grid = Grid(geometry)
    classes, center = _tissue_classes(seed, grid, config)
    fixed_images = _render(seed, grid, classes, config)

    deformation = DisplacementField(_displacement(seed, grid, center, config), geometry,
                                    metadata={"direction": "fixed->moving", "generator":
                                              "radassist.synthetic.brain.make_brain_pair", "seed": seed})
    # only points within the largest displacement of the brain can receive anything but background
    margin = np.ceil(deformation.magnitude[classes > 0].max() / np.asarray(geometry.spacing_zyx)) + 2
    region = _reach(classes > 0, margin)
    coordinates = inverse_map(deformation, region)

    def warped_full(array: np.ndarray, order: int) -> np.ndarray:
        full = np.zeros(array.shape, dtype=array.dtype)
        full[region] = warp(array, coordinates, order=order)
        return full

    moving_images = dict(zip(MODALITIES, _parallel(lambda image: warped_full(image, 3),
                                                   [fixed_images[name] for name in MODALITIES])))
    moving_classes = warped_full(classes, 0)
    for name in MODALITIES:
        moving_images[name][moving_classes == 0] = 0.0  # keep the moving image skull-stripped too

    def volumes(images: dict[str, np.ndarray], role: str) -> dict[str, Volume]:
        return {name: Volume.from_geometry(image, geometry, _source(seed, config, name, role))
                for name, image in images.items()}

    fixed_source, moving_source = _source(seed, config, "seg", "fixed"), _source(seed, config, "seg", "moving")
    return BrainPair(
        fixed=volumes(fixed_images, "fixed"), moving=volumes(moving_images, "moving"),
        fixed_labels=LabelMap(_brats_labels(classes), geometry, _segments(), source=fixed_source),
        moving_labels=LabelMap(_brats_labels(moving_classes), geometry, _segments(), source=moving_source),
        deformation=deformation, brain_mask=classes > 0, moving_brain_mask=moving_classes > 0,
        tumour_center=tuple(float(c) for c in center), seed=seed, config=config)


def _brats_labels(classes: np.ndarray) -> np.ndarray:
    """BraTS label per voxel, looked up by tissue class (see ``_CLASSES``)."""
    return np.array([0, 0, 0, 0, 0, NECROSIS_LABEL, ENHANCING_LABEL, OEDEMA_LABEL], dtype=np.uint8)[classes]


def _source(seed: int, config: BrainPhantomConfig, sequence: str, role: str) -> SourceInfo:
    return SourceInfo(modality="MR", patient_id=f"RADASSIST-PHANTOM-{seed}",
                      series_instance_uid=series_uid_for(f"brain-{role}-{sequence}", seed, config),
                      series_description=f"RadAssist synthetic brain MRI {sequence.upper()} ({role})",
                      extra={"generator": "radassist.synthetic.brain.make_brain_pair", "seed": seed, "role": role})

