"""Solid lung nodules inserted into a real chest CT, where their truth is known exactly.

A real scan brings what no phantom has: a patient's vessels, fissures, diaphragm, chest wall and noise. Real
nodules of known position are only in data sets this project cannot ship, so the classical detector is measured on
real scans into which nodules are drawn, following what LIDC-IDRI's readers marked:

* **Size**: solid nodules of 6 to 30 mm (LIDC-IDRI's "nodule >= 3 mm" category ends at 30 mm, Armato et al., Med.
  Phys. 38:915, 2011; 6 mm is the Fleischner Society's first actionable size). Diameters are drawn log-uniformly
  (density proportional to 1/d), so small nodules are the most frequent, as in LIDC-IDRI and LUNA16 (Setio et al.,
  Med. Image Anal. 42:1, 2017: 1186 nodules, most under 10 mm); half are under 13.4 mm.
* **Attenuation profile**: soft-tissue attenuation (solid), a core value of -10 to 60 HU, a smooth ellipsoid with
  axis ratios of 0.75 to 1 and a slight lobulation, then what the scanner does to it: the in-plane blur of the
  reconstruction (Gaussian point spread, 0.6 mm) and the partial volume of each voxel (the shape is averaged over
  every voxel's footprint, the slice thickness included). The host's own noise stays; the nodule's voxels get
  noise of the level measured in the host's soft tissue.
* **Attachment**: isolated (no vessel within 2 mm of its surface), vessel-attached (a vessel reaches 10 to 50 % of
  the radius into it) and pleura-attached (its centre 30 to 70 % of its radius inside the lung boundary and 60 to
  90 % of its volume in the lungs, so it sits broad-based on the chest wall, the diaphragm or the mediastinum
  without being a chest-wall lesion). LIDC-IDRI nodules lie on average 1.1 to 1.4 mm
  from the nearest vessel and 5 to 7 mm from the pleura (Qin et al., arXiv:2106.12991, 1556 nodules), so attached
  nodules are the common case, not the exception: by default each kind is a third.

Nothing here is fitted to the detector: the same drawing is used for every engine and every version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from radassist.lung.preprocess import LungMaskConfig, lung_mask_volume, mask_on_grid
from radassist.results.detections import Detection, Detections
from radassist.synthetic.noise import make_rng
from radassist.volume import Volume

ATTACHMENTS = ("isolated", "vessel", "pleura")


@dataclass(frozen=True)
class InsertionConfig:
    """How inserted nodules look and where they may go; sizes in mm, values in HU (see the module docstring)."""

    diameter_mm: tuple[float, float] = (6.0, 30.0)  # volume-equivalent diameter, drawn log-uniformly
    attenuation_hu: tuple[float, float] = (-10.0, 60.0)  # solid nodule core
    axis_ratio: tuple[float, float] = (0.75, 1.0)  # shortest / longest axis of the ellipsoid
    lobulation: float = 0.08  # relative amplitude of the radius modulation
    psf_sigma_mm: float = 0.6  # in-plane blur of the reconstruction kernel
    sample_mm: float = 0.5  # sub-voxel step of the rendering (partial volume)
    vessel_hu: float = -500.0  # a voxel inside the lungs denser than this is a vessel (or a bronchial wall)
    isolated_gap_mm: float = 2.0  # an isolated nodule keeps this much lung between its surface and any vessel
    vessel_reach: tuple[float, float] = (0.5, 0.9)  # centre-to-vessel distance, as a fraction of the radius
    pleura_depth: tuple[float, float] = (0.3, 0.7)  # centre-to-lung-boundary distance, fraction of the radius
    pleural_lung_share: tuple[float, float] = (0.6, 0.9)  # of a pleura-attached nodule's volume, in the lungs
    inner_margin_mm: float = 5.0  # isolated and vessel-attached nodules keep this much lung to the pleura
    min_gap_mm: float = 10.0  # between the surfaces of two inserted nodules

    def __post_init__(self) -> None:
        low, high = self.diameter_mm
        if not 0 < low <= high:
            raise ValueError(f"diameter_mm must be a positive range, got {self.diameter_mm}")
        if self.sample_mm <= 0 or self.psf_sigma_mm < 0:
            raise ValueError("sample_mm must be positive and psf_sigma_mm non-negative")


@dataclass
class NoduleSpec:
    """One nodule to draw: centre (LPS mm), volume-equivalent diameter, core HU, attachment and shape."""

    center: np.ndarray
    diameter_mm: float
    attenuation_hu: float
    attachment: str
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))  # columns: the ellipsoid's axes (LPS)
    axes: np.ndarray = field(default_factory=lambda: np.ones(3))  # semi-axes relative to the radius (product 1)
    lobes: list[tuple[np.ndarray, int, float]] = field(default_factory=list)  # (direction, order, amplitude)


@dataclass
class InsertedCase:
    """A real CT with nodules drawn into it, and the truth (LPS mm; label = the attachment)."""

    volume: Volume
    nodules: Detections
    specs: list[NoduleSpec]
    unplaced: list[str]  # attachments for which no free site was left


@dataclass
class LungMaps:
    """Where nodules can go on the host's grid: the lungs, and distances (mm) to their boundary and to vessels."""

    lungs: np.ndarray
    to_pleura_mm: np.ndarray
    to_vessel_mm: np.ndarray


def lung_maps(volume: Volume, config: InsertionConfig = InsertionConfig(),
              mask_volume: Volume | None = None) -> LungMaps:
    """The lung mask of ``volume`` on its own grid, with exact mm distances to the lung boundary and to vessels."""
    mask_volume = mask_volume if mask_volume is not None else lung_mask_volume(volume, LungMaskConfig())
    lungs = mask_on_grid(mask_volume, volume.geometry)
    spacing = volume.geometry.spacing_zyx
    to_pleura = ndimage.distance_transform_edt(lungs, sampling=spacing).astype(np.float32)
    vessels = lungs & (volume.array > config.vessel_hu)
    to_vessel = ndimage.distance_transform_edt(~vessels, sampling=spacing).astype(np.float32)
    return LungMaps(lungs, to_pleura, to_vessel)


def soft_tissue_noise_hu(volume: Volume) -> float:
    """The image noise (HU) in soft tissue: robust spread of the difference to a 3x3 in-plane median there."""
    array = volume.array.astype(np.float32)
    tissue = (array > -80) & (array < 120)
    tissue = ndimage.binary_erosion(tissue, structure=np.ones((1, 5, 5), dtype=bool))
    if tissue.sum() < 100:
        return 10.0
    residual = (array - ndimage.median_filter(array, size=(1, 3, 3)))[tissue]
    return float(1.4826 * np.median(np.abs(residual - np.median(residual))) * 1.2)


def _sites(maps: LungMaps, kind: str, radius: float, config: InsertionConfig,
           spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """(N, 3) voxel indices (z, y, x) where a nodule of ``radius`` mm with attachment ``kind`` may be centred.

    Distances on the host's grid come in steps of its voxel size, so the upper limits of the attached kinds are
    at least one in-plane voxel. Every site keeps the whole nodule inside the scanned field.
    """
    lungs, pleura, vessel = maps.lungs, maps.to_pleura_mm, maps.to_vessel_mm
    voxel = 1.01 * max(spacing_zyx[1], spacing_zyx[2])
    if kind == "isolated":
        allowed = lungs & (pleura >= radius + config.inner_margin_mm) & (vessel >= radius + config.isolated_gap_mm)
    elif kind == "vessel":
        low, high = config.vessel_reach
        allowed = lungs & (pleura >= radius + config.inner_margin_mm) & (vessel >= low * radius) & \
            (vessel <= max(high * radius, voxel))
    elif kind == "pleura":
        low, high = config.pleura_depth
        allowed = lungs & (pleura >= low * radius) & (pleura <= max(high * radius, voxel)) & \
            (vessel >= 0.3 * radius)
        # the nodule sits on the pleura with the lung around it, not filling a thin sliver of lung from wall to wall
        reach = [max(1, int(np.ceil(radius / s))) for s in spacing_zyx]
        allowed &= ndimage.maximum_filter(pleura, size=[2 * r + 1 for r in reach]) >= 0.6 * radius
    else:
        raise ValueError(f"unknown attachment {kind!r}; choose one of {ATTACHMENTS}")
    margin = [int(np.ceil(radius * 1.2 / s)) + 1 for s in spacing_zyx]
    inside_field = np.zeros_like(allowed)
    inside_field[tuple(slice(m, n - m) for m, n in zip(margin, allowed.shape))] = True
    return np.argwhere(allowed & inside_field)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def make_spec(rng: np.random.Generator, center: np.ndarray, diameter: float, kind: str,
              config: InsertionConfig) -> NoduleSpec:
    """A nodule's shape and attenuation drawn from ``config`` (the centre and size are given)."""
    low, high = config.axis_ratio
    ratios = np.array([1.0, rng.uniform(low, high) ** 0.5, rng.uniform(low, high)])
    axes = ratios / np.cbrt(np.prod(ratios))  # same volume as the ball of the diameter
    lobes = [(_unit(rng), int(rng.integers(2, 5)), float(rng.uniform(-1, 1) * config.lobulation / 2))
             for _ in range(3)]
    return NoduleSpec(np.asarray(center, dtype=float), float(diameter), float(rng.uniform(*config.attenuation_hu)),
                      kind, _random_rotation(rng), axes, lobes)


def occupancy(spec: NoduleSpec, points_lps: np.ndarray) -> np.ndarray:
    """1 inside the nodule, 0 outside, at each world point (..., 3)."""
    radius = spec.diameter_mm / 2.0
    local = (points_lps - spec.center) @ spec.rotation / (spec.axes * radius)
    rho = np.linalg.norm(local, axis=-1)
    direction = local / np.maximum(rho, 1e-9)[..., None]
    boundary = np.ones(rho.shape)
    for axis, order, amplitude in spec.lobes:
        boundary += amplitude * np.cos(order * np.arccos(np.clip(direction @ axis, -1.0, 1.0)))
    return (rho <= boundary).astype(np.float32)


def render(volume: Volume, spec: NoduleSpec, noise_hu: float, rng: np.random.Generator,
           config: InsertionConfig = InsertionConfig()) -> np.ndarray:
    """Draw ``spec`` into ``volume.array`` (in place) and return the voxel fractions it covers (same shape).

    The shape is sampled every ``sample_mm`` within each voxel's footprint, blurred by the point spread and averaged
    per voxel; each covered voxel moves towards the nodule's value by its fraction, and only where the host is
    less dense (a rib or a calcified vessel stays as it is).
    """
    geometry = volume.geometry
    spacing = np.asarray(geometry.spacing_zyx, dtype=float)
    reach = spec.diameter_mm / 2.0 * (spec.axes.max() * (1 + config.lobulation)) + 3 * config.psf_sigma_mm
    centre = geometry.world_to_zyx(spec.center)
    low = np.maximum(np.floor(centre - reach / spacing) - 1, 0).astype(int)
    high = np.minimum(np.ceil(centre + reach / spacing) + 2, geometry.shape).astype(int)
    counts = high - low
    steps = np.maximum(1, np.ceil(spacing / config.sample_mm)).astype(int)
    axes = [low[a] - 0.5 + (np.arange(counts[a] * steps[a]) + 0.5) / steps[a] for a in range(3)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij")
    world = geometry.zyx_to_world(np.stack([zz, yy, xx], axis=-1))
    fine = occupancy(spec, world)
    if config.psf_sigma_mm > 0:
        fine_spacing = spacing / steps
        sigma = [0.0 if a == 0 and spacing[0] > 2 * spacing[1] else config.psf_sigma_mm / fine_spacing[a]
                 for a in range(3)]  # thick slices: the slice profile (the box average) dominates along z
        fine = ndimage.gaussian_filter(fine, sigma)
    fraction = fine.reshape(counts[0], steps[0], counts[1], steps[1], counts[2], steps[2]).mean(axis=(1, 3, 5))
    box = tuple(slice(a, b) for a, b in zip(low, high))
    host = volume.array[box].astype(np.float32)
    target = spec.attenuation_hu + rng.normal(0.0, noise_hu, size=host.shape).astype(np.float32)
    drawn = np.where((fraction > 0) & (host < target), host + fraction * (target - host), host)
    volume.array[box] = np.round(drawn).astype(volume.array.dtype) if np.issubdtype(volume.array.dtype, np.integer) \
        else drawn.astype(volume.array.dtype)
    full = np.zeros(geometry.shape, dtype=np.float32)
    full[box] = fraction
    return full


def draw_diameter(rng: np.random.Generator, config: InsertionConfig) -> float:
    """Log-uniform between the configured limits: density proportional to 1 / d."""
    low, high = config.diameter_mm
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def lung_fraction(spec: NoduleSpec, volume: Volume, lungs: np.ndarray) -> float:
    """The share of the nodule's volume inside the host's lungs (voxel centres, no partial volume: a quick check)."""
    geometry = volume.geometry
    spacing = np.asarray(geometry.spacing_zyx, dtype=float)
    reach = spec.diameter_mm / 2.0 * spec.axes.max() * 1.1
    centre = geometry.world_to_zyx(spec.center)
    low = np.maximum(np.floor(centre - reach / spacing) - 1, 0).astype(int)
    high = np.minimum(np.ceil(centre + reach / spacing) + 2, geometry.shape).astype(int)
    zz, yy, xx = np.meshgrid(*[np.arange(a, b) for a, b in zip(low, high)], indexing="ij")
    inside = occupancy(spec, geometry.zyx_to_world(np.stack([zz, yy, xx], axis=-1).astype(float))) > 0
    box = tuple(slice(a, b) for a, b in zip(low, high))
    return float(lungs[box][inside].mean()) if inside.any() else 0.0


def insert_nodules(volume: Volume, attachments: Sequence[str], seed: int,
                   config: InsertionConfig = InsertionConfig(), mask_volume: Volume | None = None,
                   maps: LungMaps | None = None, tries: int = 40) -> InsertedCase:
    """A copy of ``volume`` with one nodule per entry of ``attachments`` (each "isolated", "vessel" or "pleura"),
    at random free sites of the host's lungs (reproducible from ``seed``), and the truth as Detections.

    A site is kept when the drawn nodule lies in the lungs as its attachment says: wholly for an isolated or a
    vessel-attached one, ``config.pleural_lung_share`` of it for a pleura-attached one (broad-based on the wall,
    not a chest-wall lesion). A nodule too big for any site is drawn again smaller (``tries`` attempts in all).
    """
    maps = maps if maps is not None else lung_maps(volume, config, mask_volume)
    copy = volume.with_array(volume.array.copy())
    noise = soft_tissue_noise_hu(volume)
    rng = make_rng(seed, "inserted-nodules")
    specs: list[NoduleSpec] = []
    unplaced: list[str] = []
    items: list[Detection] = []
    spacing_zyx = volume.geometry.spacing_zyx
    for kind in attachments:
        diameter = draw_diameter(rng, config)
        spec = None
        for attempt in range(tries):
            if attempt and attempt % 10 == 0:
                diameter = max(config.diameter_mm[0], diameter * 0.75)
            sites = _sites(maps, kind, diameter / 2, config, spacing_zyx)
            world = volume.geometry.zyx_to_world(sites) if len(sites) else np.zeros((0, 3))
            free = np.ones(len(sites), dtype=bool)
            for other in specs:
                free &= np.linalg.norm(world - other.center, axis=1) >= \
                    (diameter + other.diameter_mm) / 2 + config.min_gap_mm
            if not free.any():
                continue
            center = world[rng.choice(np.flatnonzero(free))]
            center = center + rng.uniform(-0.5, 0.5, size=3) * np.asarray(volume.geometry.spacing)
            candidate = make_spec(rng, center, diameter, kind, config)
            share = lung_fraction(candidate, volume, maps.lungs)
            low, high = config.pleural_lung_share if kind == "pleura" else (0.97, 1.0)
            if low <= share <= high:
                spec = candidate
                break
        if spec is None:
            unplaced.append(kind)
            continue
        fraction = render(copy, spec, noise, rng, config)
        specs.append(spec)
        drawn_ml = float(fraction.sum()) * volume.geometry.voxel_volume_mm3 / 1000.0
        items.append(Detection(center=tuple(spec.center), size=(spec.diameter_mm,) * 3, probability=1.0, label=kind,
                               diameter_mm=spec.diameter_mm,
                               extra={"attenuation_hu": round(spec.attenuation_hu, 1), "drawn_ml": round(drawn_ml, 3),
                                      "lung_share": round(lung_fraction(spec, volume, maps.lungs), 2)}))
    truth = Detections(items, volume.geometry, volume.source, "inserted", {"seed": seed})
    return InsertedCase(copy, truth, specs, unplaced)
