"""Synthetic chest CT with lung nodules: the lung detector's test patient, with exact ground truth.

Anatomy is drawn in LPS millimetres (x: patient's right -> left, y: anterior -> posterior, z: inferior ->
superior), so the patient's right lung is at LOW x. The image holds air, subcutaneous fat, muscle, mediastinal
fat, heart, aorta, a vertebral column, ribs and sternum, two textured lungs with diaphragm domes and a cardiac
notch, an airway tree from the trachea, branching pulmonary vessels that taper towards the periphery, and solid
nodules with partial-volume edges, then the scanner's blur and correlated noise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pydicom.uid

from radassist.results.detections import Detection, Detections
from radassist.results.labelmap import LabelMap
from radassist.results.segments import Code, Segment, Terminology
from radassist.synthetic.noise import (Body, Grid, TubeSegment, branching_tree, centred_geometry, correlated_noise,
                                       cylinder_z_stamp, ellipsoid_stamp, fractal_noise, make_rng, paint_stamp,
                                       paint_vertebral_column, polyline_segments, psf_blur, render_tubes,
                                       trunk_mask)
from radassist.volume import SourceInfo, Volume

ANATOMICAL_STRUCTURE = Code("SCT", "123037004", "Anatomical Structure")
RIGHT_LUNG = Code("SCT", "3341006", "Right lung")
LEFT_LUNG = Code("SCT", "44029006", "Left lung")

HU_AIR = -1000.0
HU_FAT = -100.0
HU_MUSCLE = 45.0
HU_BLOOD = 40.0
HU_LUNG = -860.0


@dataclass(frozen=True)
class ChestPhantomConfig:
    """Grid and findings of a chest phantom. The default (12 M voxels) is made in a few seconds on 2 cores."""

    shape: tuple[int, int, int] = (112, 288, 384)  # (z, y, x) voxels
    spacing: tuple[float, float, float] = (0.7, 0.7, 1.25)  # (x, y, z) mm, a thin-slice screening CT
    nodule_count: tuple[int, int] = (1, 4)  # inclusive range
    nodule_diameter_mm: tuple[float, float] = (3.0, 30.0)  # LUNA16 counts nodules from 3 mm
    nodule_hu: tuple[float, float] = (-100.0, 100.0)  # solid nodules
    noise_hu: float = 20.0  # standard deviation of the image noise
    vessel_generations: int = 7
    airway_generations: int = 4

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or min(self.shape) < 16:
            raise ValueError(f"shape must be 3 sizes of at least 16 voxels, got {self.shape}")
        if len(self.spacing) != 3 or min(self.spacing) <= 0:
            raise ValueError(f"spacing must be 3 positive sizes in mm, got {self.spacing}")
        low, high = self.nodule_count
        if low < 0 or high < low:
            raise ValueError(f"nodule_count must be a range 0 <= low <= high, got {self.nodule_count}")
        d_low, d_high = self.nodule_diameter_mm
        if d_low <= 0 or d_high < d_low:
            raise ValueError(f"nodule_diameter_mm must be a positive range, got {self.nodule_diameter_mm}")
        if self.noise_hu < 0:
            raise ValueError(f"noise_hu must be >= 0, got {self.noise_hu}")


@dataclass
class ChestPhantom:
    """A chest CT phantom and its ground truth."""

    volume: Volume  # int16 HU
    lungs: LabelMap  # "Right lung" = 1, "Left lung" = 2
    nodules: Detections  # one per nodule: centre (LPS mm), box size, diameter_mm, probability 1.0
    series_uid: str
    airway_mask: np.ndarray  # trachea and main bronchi outside the lungs (bool, z y x): LUNA16's label 5
    seed: int = 0
    config: ChestPhantomConfig = field(default_factory=ChestPhantomConfig)


def series_uid_for(kind: str, seed: int, config: object) -> str:
    """A valid DICOM UID that is the same for the same generator, seed and configuration."""
    return pydicom.uid.generate_uid(entropy_srcs=["radassist-synthetic", kind, str(seed), repr(config)])


# -- lungs ------------------------------------------------------------------------------------------------------
def _lung_inside(body: Body, side: float, x, y, z):
    """Whether points are inside one lung (side -1: patient's right at low x, +1: left). Broadcasts."""
    cx, cy = side * 0.47 * body.ax, 0.05 * body.ay
    rx, ry = 0.37 * body.ax, 0.80 * body.ay
    t = body.fraction_of(z)
    taper = np.sqrt(np.clip(1.0 - (np.maximum(t - 0.25, 0.0) / 0.72) ** 2, 0.0, 1.0))
    q = ((x - cx) / (rx * np.maximum(taper, 1e-3))) ** 2 + ((y - cy) / (ry * np.maximum(taper, 1e-3))) ** 2
    base = 0.06 if side < 0 else 0.02  # the right hemidiaphragm sits higher, over the liver
    dome = base + 0.22 * np.clip(1.0 - ((x - cx) / rx) ** 2 - ((y - cy) / ry) ** 2, 0.0, 1.0)
    inside = (q <= 1.0) & (t >= dome) & (taper > 0)
    # keep out of the spine and the heart (the cardiac notch of the left lung)
    spine = ((x / (26 * body.k)) ** 2 + ((y - 0.42 * body.ay) / (36 * body.k)) ** 2) <= 1.0
    hx, hy, hz = 0.12 * body.ax, -0.30 * body.ay, body.z_at(0.30)
    heart = (((x - hx) / (0.36 * body.ax)) ** 2 + ((y - hy) / (0.47 * body.ay)) ** 2
             + ((z - hz) / (0.40 * (body.z_high - body.z_low))) ** 2) <= 1.0
    mediastinum = (np.abs(x) <= 0.09 * body.ax) & (y <= 0.25 * body.ay)
    return inside & ~spine & ~heart & ~mediastinum


def _point_inside(body: Body, side: float) -> Callable[[np.ndarray], bool]:
    return lambda point: bool(_lung_inside(body, side, *point))


# -- tube trees -------------------------------------------------------------------------------------------------
def _vessel_trees(rng: np.random.Generator, body: Body, generations: int) -> list[TubeSegment]:
    segments: list[TubeSegment] = []
    for side in (-1.0, 1.0):
        inside = _point_inside(body, side)
        arteries = [((side * 0.16 * body.ax, 0.02 * body.ay, body.z_at(0.52)), d) for d in
                    ((side * 0.4, 0.1, 0.9), (side * 1.0, -0.25, 0.05), (side * 0.45, 0.55, -0.7),
                     (side * 0.5, -0.8, -0.3), (side * 0.3, -0.6, 0.7), (side * 0.7, 0.7, 0.1))]
        veins = [((side * 0.15 * body.ax, 0.22 * body.ay, body.z_at(0.38)), d) for d in
                 ((side * 0.9, 0.3, 0.35), (side * 0.6, 0.3, -0.75), (side * 0.5, 0.9, 0.1))]
        for root, direction in arteries + veins:
            segments += branching_tree(rng, root, direction, length=34 * body.k, radius=5.5 * body.k,
                                       generations=generations, inside=inside, min_radius=0.4)
    return segments


def _airway_tree(rng: np.random.Generator, body: Body, z_top: float,
                 generations: int) -> tuple[list[TubeSegment], list[TubeSegment]]:
    """Trachea and main bronchi (central airways) plus the intrapulmonary branches."""
    k = body.k
    carina = np.array([0.0, 0.12 * body.ay, body.z_at(0.62)])
    central = polyline_segments([(0.0, 0.08 * body.ay, z_top + 5.0), tuple(carina)], 8.0 * k)  # the trachea
    branches: list[TubeSegment] = []
    for side, end_x, end_y, end_t, radius in ((-1.0, -0.30, 0.14, 0.53, 6.0), (1.0, 0.32, 0.20, 0.47, 5.5)):
        end = np.array([end_x * body.ax, end_y * body.ay, body.z_at(end_t)])
        central.append(TubeSegment(tuple(carina), tuple(end), 6.5 * k, radius * k))
        branches += branching_tree(rng, end, end - carina, length=26 * k, radius=radius * k * 0.8,
                                   generations=generations, inside=_point_inside(body, side),
                                   spread_deg=(25.0, 45.0), min_radius=0.6, first_generation=1)
    return central, branches


def _rib_segments(body: Body, z_top: float) -> list[TubeSegment]:
    """Ribs: curved tubes just inside the body wall that descend from the spine towards the front."""
    k = body.k
    segments: list[TubeSegment] = []
    spacing = 24.0 * k
    angles = np.deg2rad(np.linspace(28.0, 150.0, 12))
    for index in range(int((body.z_high - body.z_low) / spacing) + 2):
        z_spine = z_top - (index + 0.4) * spacing
        for side in (-1.0, 1.0):
            points = [(side * 0.83 * body.ax * np.sin(a), 0.83 * body.ay * np.cos(a),
                       z_spine - 38.0 * k * ((a - angles[0]) / (angles[-1] - angles[0])) ** 1.3) for a in angles]
            segments += polyline_segments(points, 4.2 * k)
    return segments


# -- nodules ----------------------------------------------------------------------------------------------------
def _place_nodules(rng: np.random.Generator, grid: Grid, lungs: tuple[np.ndarray, np.ndarray],
                   config: ChestPhantomConfig) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Nodule centres (LPS mm), radii (x, y, z mm) and HU, each wholly inside one lung, none touching."""
    count = int(rng.integers(config.nodule_count[0], config.nodule_count[1] + 1))
    candidates = np.flatnonzero(lungs[0] | lungs[1])
    placed: list[tuple[np.ndarray, np.ndarray, float]] = []
    geometry = grid.geometry
    if candidates.size == 0:
        return placed
    d_low, d_high = config.nodule_diameter_mm
    for _ in range(count):
        diameter = float(np.exp(rng.uniform(np.log(d_low), np.log(d_high))))  # small nodules are commoner
        for attempt in range(240):
            if attempt and attempt % 40 == 0:
                diameter = max(d_low, diameter * 0.8)
            zyx = np.array(np.unravel_index(candidates[rng.integers(candidates.size)], grid.shape), dtype=float)
            center = grid.geometry.zyx_to_world(zyx + rng.uniform(-0.5, 0.5, 3))
            elongation = rng.uniform(0.92, 1.08, 3)
            radii = diameter / 2 * elongation / np.prod(elongation) ** (1 / 3)
            reach = radii + 2.0
            low, high = geometry.world_to_ijk(center - reach), geometry.world_to_ijk(center + reach)
            if np.any(np.minimum(low, high) < 0) or np.any(np.maximum(low, high) > np.array(grid.shape[::-1]) - 1):
                continue  # the whole nodule, with a margin, must be on the grid
            stamp = ellipsoid_stamp(grid, center, reach)
            if stamp is None:
                continue
            lung = lungs[0] if lungs[0][tuple(np.round(zyx).astype(int))] else lungs[1]
            if not np.all(lung[stamp.slices][stamp.coverage > 0]):
                continue
            if any(np.linalg.norm(center - other) < radii.max() + other_r.max() + 3.0 for other, other_r, _ in placed):
                continue
            placed.append((center, radii, float(rng.uniform(*config.nodule_hu))))
            break
    return placed


# -- the phantom ------------------------------------------------------------------------------------------------
def make_chest_ct(seed: int = 0, config: ChestPhantomConfig | None = None) -> ChestPhantom:
    """A chest CT phantom with nodules; the same seed and config give the same voxels and ground truth."""
    config = config or ChestPhantomConfig()
    geometry = centred_geometry(config.shape, config.spacing, z_origin=-(config.shape[0] - 1) * config.spacing[2])
    grid = Grid(geometry)
    body = Body.of(grid)
    k = body.k
    z_top = body.z_high

    image = np.full(grid.shape, HU_AIR, dtype=np.float32)
    image[trunk_mask(grid, body.ax, body.ay, 0.0)] = HU_FAT
    image[trunk_mask(grid, body.ax, body.ay, 11.0 * k)] = HU_MUSCLE

    # mediastinum: fat around the heart and great vessels, the descending aorta beside the spine
    for stamp, value in (
            (ellipsoid_stamp(grid, (0.0, -0.35 * body.ay, body.z_at(0.72)),
                             (0.17 * body.ax, 0.32 * body.ay, 0.35 * (body.z_high - body.z_low))), HU_FAT + 10),
            (ellipsoid_stamp(grid, (0.12 * body.ax, -0.30 * body.ay, body.z_at(0.30)),
                             (0.36 * body.ax, 0.47 * body.ay, 0.40 * (body.z_high - body.z_low))), HU_FAT + 10),
            (ellipsoid_stamp(grid, (0.12 * body.ax, -0.30 * body.ay, body.z_at(0.30)),
                             (0.32 * body.ax, 0.43 * body.ay, 0.36 * (body.z_high - body.z_low))), HU_BLOOD),
            (cylinder_z_stamp(grid, (0.16 * body.ax, 0.28 * body.ay), (12 * k, 12 * k), (body.z_low - 5, z_top + 5)),
             HU_BLOOD)):
        paint_stamp(image, stamp, value)

    # lungs: textured parenchyma, denser towards the back (dependent lung)
    z, y, x = grid.open_mesh()
    right, left = _lung_inside(body, -1.0, x, y, z), _lung_inside(body, 1.0, x, y, z)
    lungs_any = right | left
    texture = fractal_noise(make_rng(seed, "chest", "lung-texture"), grid.shape,
                            correlations=(3.0, 8.0, 24.0), weights=(0.6, 0.8, 0.5))
    parenchyma = HU_LUNG + 22.0 * texture + 45.0 * np.clip((y - 0.05 * body.ay) / (0.8 * body.ay), -1, 1)
    image[lungs_any] = parenchyma[lungs_any]
    del texture, parenchyma

    # pulmonary vessels, then airways (wall, then air lumen)
    vessels = render_tubes(grid, _vessel_trees(make_rng(seed, "chest", "vessels"), body, config.vessel_generations))
    image += (HU_BLOOD - image) * vessels
    del vessels
    central, branches = _airway_tree(make_rng(seed, "chest", "airways"), body, z_top, config.airway_generations)
    airways = central + branches
    wall = render_tubes(grid, airways, radius_add=0.5 + 0.9 * k)
    image += (30.0 - image) * wall
    lumen = render_tubes(grid, airways)
    image += (HU_AIR - image) * lumen
    central_lumen = render_tubes(grid, central) >= 0.5
    right &= ~central_lumen
    left &= ~central_lumen
    airway_mask = central_lumen & ~(right | left)
    del wall, lumen

    # bones: vertebral column (bodies, discs, arch, spinous process), ribs, sternum
    paint_vertebral_column(grid, image, 0.42 * body.ay, k, body.z_low, body.z_high)
    ribs = _rib_segments(body, z_top)
    image += (900.0 - image) * render_tubes(grid, ribs)
    image += (320.0 - image) * render_tubes(grid, ribs, radius_scale=0.5)
    sternum = ellipsoid_stamp(grid, (0.0, -0.86 * body.ay, body.z_at(0.55)),
                              (14 * k, 6 * k, 0.5 * (body.z_high - body.z_low)))
    paint_stamp(image, sternum, 450.0)

    # nodules, drawn last so each is whole, with a little internal texture
    nodule_rng = make_rng(seed, "chest", "nodules")
    placed = _place_nodules(nodule_rng, grid, (right, left), config)
    detections = []
    for center, radii, hu in placed:
        stamp = ellipsoid_stamp(grid, center, radii)
        assert stamp is not None
        inner = hu + 12.0 * nodule_rng.standard_normal(stamp.coverage.shape).astype(np.float32)
        stamp.paint(image, inner)
        diameter = float(2.0 * np.prod(radii) ** (1 / 3))
        detections.append(Detection(center=tuple(center), size=tuple(2 * radii), probability=1.0, label="nodule",
                                    diameter_mm=diameter, extra={"hu": hu}))

    image = psf_blur(image, 0.45, grid.spacing_zyx)
    image += correlated_noise(make_rng(seed, "chest", "noise"), grid.shape, config.noise_hu)
    hu = np.clip(np.rint(image), -1024, 3071).astype(np.int16)

    uid = series_uid_for("chest-ct", seed, config)
    source = SourceInfo(modality="CT", patient_id=f"RADASSIST-PHANTOM-{seed}", series_instance_uid=uid,
                        series_description="RadAssist synthetic chest CT phantom",
                        extra={"generator": "radassist.synthetic.chest.make_chest_ct", "seed": seed})
    volume = Volume.from_geometry(hu, geometry, source)
    segments = [Segment("Right lung", 1, color=(0.5, 0.68, 0.5), terminology=Terminology(ANATOMICAL_STRUCTURE,
                                                                                           RIGHT_LUNG)),
                Segment("Left lung", 2, color=(0.27, 0.6, 0.85), terminology=Terminology(ANATOMICAL_STRUCTURE,
                                                                                            LEFT_LUNG))]
    labels = np.zeros(grid.shape, dtype=np.uint8)
    labels[right] = 1
    labels[left] = 2
    lungs = LabelMap(labels=labels, geometry=geometry, segments=segments, source=source)
    nodules = Detections(items=detections, geometry=geometry, source=source, engine="synthetic",
                         metadata={"generator": "radassist.synthetic.chest.make_chest_ct", "seed": seed})
    return ChestPhantom(volume=volume, lungs=lungs, nodules=nodules, series_uid=uid, airway_mask=airway_mask,
                        seed=seed, config=config)
