"""Synthetic portal-venous abdominal CT with liver tumours: the liver segmenter's test patient (LiTS labels).

Anatomy in LPS millimetres (patient's right at LOW x, anterior at low y, superior at high z): skin, subcutaneous
fat, abdominal wall muscle, intra-abdominal fat, a lobulated liver on the patient's right with texture and
enhancing portal vessels, 1-6 hypodense tumours inside it, spleen, kidneys (cortex and medulla), stomach with an
air-fluid level, bowel loops with gas, aorta, inferior vena cava and the spine; then scanner blur and noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from radassist.results.labelmap import LabelMap
from radassist.results.segments import Code, Segment, Terminology
from radassist.synthetic.chest import ANATOMICAL_STRUCTURE, series_uid_for
from radassist.synthetic.noise import (Body, Grid, Stamp, branching_tree, centred_geometry, correlated_noise,
                                       cylinder_z_stamp, ellipsoid_stamp, fractal_noise, lobulated_surface, make_rng,
                                       paint_stamp, paint_vertebral_column, psf_blur, random_rotation, render_tubes,
                                       smooth_noise, trunk_mask)
from radassist.volume import SourceInfo, Volume

LIVER = Code("SCT", "10200004", "Liver")
MORPHOLOGICALLY_ALTERED = Code("SCT", "49755003", "Morphologically Altered Structure")
NEOPLASM = Code("SCT", "108369006", "Neoplasm")

LIVER_LABEL = 1  # LiTS: 0 background, 1 liver, 2 tumour
TUMOUR_LABEL = 2


@dataclass(frozen=True)
class AbdomenPhantomConfig:
    """Grid and findings of an abdominal phantom; the default (8.7 M voxels) takes a few seconds."""

    shape: tuple[int, int, int] = (96, 256, 352)  # (z, y, x) voxels
    spacing: tuple[float, float, float] = (0.8, 0.8, 2.0)  # (x, y, z) mm, typical of LiTS
    tumour_count: tuple[int, int] = (1, 6)  # inclusive range
    tumour_radius_mm: tuple[float, float] = (5.0, 30.0)
    liver_hu: tuple[float, float] = (60.0, 110.0)  # portal-venous enhancement of the parenchyma
    tumour_contrast_hu: tuple[float, float] = (20.0, 40.0)  # how much darker than the liver a tumour is
    noise_hu: float = 15.0

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or min(self.shape) < 16:
            raise ValueError(f"shape must be 3 sizes of at least 16 voxels, got {self.shape}")
        if len(self.spacing) != 3 or min(self.spacing) <= 0:
            raise ValueError(f"spacing must be 3 positive sizes in mm, got {self.spacing}")
        low, high = self.tumour_count
        if low < 0 or high < low:
            raise ValueError(f"tumour_count must be a range 0 <= low <= high, got {self.tumour_count}")
        for name in ("tumour_radius_mm", "liver_hu", "tumour_contrast_hu"):
            low_value, high_value = getattr(self, name)
            if high_value < low_value:
                raise ValueError(f"{name} must be a range low <= high, got {(low_value, high_value)}")
        if self.tumour_radius_mm[0] <= 0 or self.tumour_contrast_hu[0] < 0 or self.noise_hu < 0:
            raise ValueError("tumour radii must be positive, contrast and noise non-negative")


@dataclass(frozen=True)
class LiverTumour:
    """One tumour's ground truth: centre (LPS mm), nominal radius (mm), labelled volume (mL), mean HU drawn."""

    center: tuple[float, float, float]
    radius_mm: float
    volume_ml: float
    hu: float


@dataclass
class AbdomenPhantom:
    """An abdominal CT phantom and its ground truth."""

    volume: Volume  # int16 HU
    labels: LabelMap  # "Liver" = 1, "Liver tumour" = 2 (LiTS values)
    tumours: list[LiverTumour]
    liver_hu: float  # the parenchyma's mean HU in this case
    series_uid: str
    seed: int = 0
    config: AbdomenPhantomConfig = field(default_factory=AbdomenPhantomConfig)


def make_abdomen_ct(seed: int = 0, config: AbdomenPhantomConfig | None = None) -> AbdomenPhantom:
    """An abdominal CT phantom with liver tumours; the same seed and config give the same voxels and labels."""
    config = config or AbdomenPhantomConfig()
    geometry = centred_geometry(config.shape, config.spacing, z_origin=-(config.shape[0] - 1) * config.spacing[2])
    grid = Grid(geometry)
    body = Body.of(grid)
    ax, ay, z_low, z_high, k, z_at = body.ax, body.ay, body.z_low, body.z_high, body.k, body.z_at
    height = z_high - z_low

    anatomy = make_rng(seed, "abdomen", "anatomy")
    liver_hu = float(anatomy.uniform(*config.liver_hu))

    image = np.full(grid.shape, -1000.0, dtype=np.float32)
    image[trunk_mask(grid, ax, ay, 0.0)] = -100.0
    image[trunk_mask(grid, ax, ay, 14.0 * k)] = 50.0
    image[trunk_mask(grid, ax, ay, 24.0 * k)] = -90.0  # intra-abdominal fat

    # bowel loops with gas in the lower, anterior abdomen
    bowel_rng = make_rng(seed, "abdomen", "bowel")
    for _ in range(14):
        center = (bowel_rng.uniform(-0.6, 0.6) * ax, bowel_rng.uniform(-0.75, 0.05) * ay,
                  z_at(bowel_rng.uniform(0.0, 0.45)))
        radii = np.array([bowel_rng.uniform(12, 22), bowel_rng.uniform(10, 18), bowel_rng.uniform(15, 40)]) * k
        paint_stamp(image, ellipsoid_stamp(grid, center, radii, random_rotation(bowel_rng, 60)), 35.0)
        gas = ellipsoid_stamp(grid, (center[0], center[1] - 0.4 * radii[1], center[2]), radii * 0.45)
        if gas is not None and bowel_rng.uniform() < 0.6:
            gas.paint(image, -1000.0)

    # stomach on the left, fluid with an air-fluid level (air rises anteriorly in a supine patient)
    stomach_center = np.array([0.38 * ax, -0.30 * ay, z_at(0.72)])
    stomach_radii = np.array([0.22 * ax, 0.30 * ay, 0.22 * height])
    stomach = ellipsoid_stamp(grid, stomach_center, stomach_radii)
    if stomach is not None:
        stomach.paint(image, 20.0)
        _, y, _ = grid.open_mesh(stomach.slices)
        air = np.where(y < stomach_center[1] - 0.45 * stomach_radii[1], stomach.coverage, 0.0).astype(np.float32)
        Stamp(stomach.slices, air).paint(image, -1000.0)

    # kidneys (cortex enhancing more than medulla), spleen
    for side, t in ((-1.0, 0.22), (1.0, 0.32)):
        center = (side * 0.38 * ax, 0.42 * ay, z_at(t))
        radii = np.array([0.14 * ax, 0.22 * ay, min(55 * k, 0.3 * height)])
        rotation = random_rotation(anatomy, 12)
        for scale, value in ((1.0, 170.0), (0.62, 110.0), (0.3, -40.0)):
            paint_stamp(image, ellipsoid_stamp(grid, center, radii * scale, rotation), value)
    spleen = ellipsoid_stamp(grid, (0.60 * ax, 0.25 * ay, z_at(0.68)),
                             (0.16 * ax, 0.36 * ay, min(60 * k, 0.28 * height)), random_rotation(anatomy, 15))
    paint_stamp(image, spleen, liver_hu + 15.0)

    # liver: two lobes with an irregular surface, kept clear of the spine, vessels, kidney and stomach
    z, y, x = grid.open_mesh()
    wobble = smooth_noise(make_rng(seed, "abdomen", "liver-outline"), grid.shape, 40.0 / grid.voxel_size)
    right_lobe = (((x + 0.36 * ax) / (0.44 * ax)) ** 2 + ((y + 0.02 * ay) / (0.70 * ay)) ** 2
                  + ((z - z_at(0.66)) / (0.46 * height)) ** 2)
    left_lobe = (((x - 0.02 * ax) / (0.30 * ax)) ** 2 + ((y + 0.45 * ay) / (0.30 * ay)) ** 2
                 + ((z - z_at(0.74)) / (0.26 * height)) ** 2)
    liver = (np.minimum(right_lobe, left_lobe) <= 1.0 + 0.12 * wobble) & trunk_mask(grid, ax, ay, 26.0 * k)
    keep_out = ((x / (30 * k)) ** 2 + ((y - 0.45 * ay) / (45 * k)) ** 2 <= 1.0)  # spine and psoas
    keep_out = keep_out | ((x - 0.08 * ax) ** 2 + (y - 0.18 * ay) ** 2 <= (16 * k) ** 2)  # aorta
    keep_out = keep_out | ((x + 0.12 * ax) ** 2 + (y - 0.12 * ay) ** 2 <= (17 * k) ** 2)  # IVC
    keep_out = keep_out | (((x + 0.38 * ax) / (0.16 * ax)) ** 2 + ((y - 0.42 * ay) / (0.24 * ay)) ** 2
                           + ((z - z_at(0.22)) / min(60 * k, 0.33 * height)) ** 2 <= 1.0)  # right kidney
    if stomach is not None:
        keep_out = keep_out | ((((x - stomach_center[0]) / stomach_radii[0]) ** 2
                                + ((y - stomach_center[1]) / stomach_radii[1]) ** 2
                                + ((z - stomach_center[2]) / stomach_radii[2]) ** 2) <= 1.1)
    liver &= ~keep_out
    del wobble, right_lobe, left_lobe, keep_out
    texture = fractal_noise(make_rng(seed, "abdomen", "liver-texture"), grid.shape, (2.0, 6.0, 20.0), (0.5, 0.8, 0.6))
    image[liver] = liver_hu + 7.0 * texture[liver]
    del texture
    portal = _portal_tree(make_rng(seed, "abdomen", "portal"), grid, liver, body)
    image += ((liver_hu + 45.0) - image) * (portal * liver)

    # tumours, wholly inside the liver and apart from each other
    tumour_rng = make_rng(seed, "abdomen", "tumours")
    tumour_mask = np.zeros(grid.shape, dtype=bool)
    tumours: list[LiverTumour] = []
    count = int(tumour_rng.integers(config.tumour_count[0], config.tumour_count[1] + 1))
    candidates = np.flatnonzero(liver)
    placed: list[tuple[np.ndarray, float]] = []
    for _ in range(count if candidates.size else 0):
        radius = float(tumour_rng.uniform(*config.tumour_radius_mm))
        for attempt in range(200):
            if attempt and attempt % 40 == 0:
                radius = max(config.tumour_radius_mm[0], radius * 0.8)
            zyx = np.array(np.unravel_index(candidates[tumour_rng.integers(candidates.size)], grid.shape), float)
            center = geometry.zyx_to_world(zyx + tumour_rng.uniform(-0.5, 0.5, 3))
            if any(np.linalg.norm(center - c) < radius + r + 4.0 for c, r in placed):
                continue
            radii = radius * tumour_rng.uniform(0.85, 1.15, 3)
            radii *= radius / np.prod(radii) ** (1 / 3)
            stamp = ellipsoid_stamp(grid, center, radii, random_rotation(tumour_rng),
                                    surface=lobulated_surface(tumour_rng, 0.12))
            if stamp is None:
                continue
            if stamp.coverage.sum() == 0 or not np.all(liver[stamp.slices][stamp.coverage > 0]):
                continue
            if not all(sl.start > 0 and sl.stop < n for sl, n in zip(stamp.slices, grid.shape)):
                continue
            hu = liver_hu - float(tumour_rng.uniform(*config.tumour_contrast_hu))
            inner = hu + 6.0 * tumour_rng.standard_normal(stamp.coverage.shape).astype(np.float32)
            stamp.paint(image, inner)
            stamp.mark(tumour_mask)
            volume_ml = float((stamp.coverage >= 0.5).sum()) * geometry.voxel_volume_mm3 / 1000.0
            placed.append((center, radius))
            tumours.append(LiverTumour(center=tuple(float(c) for c in center), radius_mm=radius,
                                       volume_ml=volume_ml, hu=hu))
            break

    # great vessels and spine go over everything
    for center, radius, value in (((0.08 * ax, 0.18 * ay), 11 * k, 160.0), ((-0.12 * ax, 0.12 * ay), 12 * k, 130.0)):
        paint_stamp(image, cylinder_z_stamp(grid, center, (radius, radius), (z_low - 5, z_high + 5)), value)
    paint_vertebral_column(grid, image, 0.45 * ay, k, z_low, z_high)

    image = psf_blur(image, 0.5, grid.spacing_zyx)
    image += correlated_noise(make_rng(seed, "abdomen", "noise"), grid.shape, config.noise_hu)
    hu_image = np.clip(np.rint(image), -1024, 3071).astype(np.int16)

    uid = series_uid_for("abdomen-ct", seed, config)
    source = SourceInfo(modality="CT", patient_id=f"RADASSIST-PHANTOM-{seed}", series_instance_uid=uid,
                        series_description="RadAssist synthetic abdominal CT phantom",
                        extra={"generator": "radassist.synthetic.abdomen.make_abdomen_ct", "seed": seed})
    labels = np.zeros(grid.shape, dtype=np.uint8)
    labels[liver] = LIVER_LABEL
    labels[tumour_mask] = TUMOUR_LABEL
    segments = [Segment("Liver", LIVER_LABEL, color=(0.86, 0.55, 0.4),
                        terminology=Terminology(ANATOMICAL_STRUCTURE, LIVER)),
                Segment("Liver tumour", TUMOUR_LABEL, color=(0.9, 0.9, 0.3),
                        terminology=Terminology(MORPHOLOGICALLY_ALTERED, NEOPLASM, anatomic_region=LIVER))]
    label_map = LabelMap(labels=labels, geometry=geometry, segments=segments, source=source)
    return AbdomenPhantom(volume=Volume.from_geometry(hu_image, geometry, source), labels=label_map,
                          tumours=tumours, liver_hu=liver_hu, series_uid=uid, seed=seed, config=config)


def _portal_tree(rng: np.random.Generator, grid: Grid, liver: np.ndarray, body: Body) -> np.ndarray:
    """Coverage of portal vein branches that spread from the liver hilum and stay inside the liver."""
    geometry = grid.geometry
    upper = np.array(grid.shape) - 1

    def inside(point: np.ndarray) -> bool:
        index = np.round(geometry.world_to_zyx(point)).astype(int)
        return bool(np.all(index >= 0) and np.all(index <= upper) and liver[tuple(index)])

    hilum = np.array([-0.18 * body.ax, 0.0, body.z_at(0.55)])
    segments = []
    for direction in ((-1.0, -0.3, 0.4), (-0.8, 0.4, -0.2), (-0.3, -0.9, 0.3), (0.6, -0.8, 0.4)):
        segments += branching_tree(rng, hilum, direction, length=30 * body.k, radius=5.0 * body.k, generations=5,
                                   inside=inside, min_radius=0.6)
    return render_tubes(grid, segments)
