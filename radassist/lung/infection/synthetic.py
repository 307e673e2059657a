"""Chest CT phantoms with lung infection patterns and their exact masks, built on the chest phantom.

On top of :func:`radassist.synthetic.chest.make_chest_ct` (body, lungs, vessels, airways, bones) this paints the
three findings of the infection study, each only inside the lungs:

* ground-glass opacity: hazy patches of -700..-500 HU that keep some of the lung texture (vessels stay visible);
* consolidation: dense, airless patches of -100..+50 HU;
* pleural effusion: fluid of 0..20 HU lying in the dependent (posterior) part of the lung base; the lung masks
  returned no longer include it (the fluid displaces lung).

Labels use the default label table of :mod:`radassist.lung.infection.model`: 1 ground-glass, 2 consolidation,
3 effusion. The same seed and config always give the same voxels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from radassist.lung.infection.model import default_label_table
from radassist.results.labelmap import LabelMap
from radassist.synthetic.chest import ChestPhantomConfig, make_chest_ct
from radassist.synthetic.noise import fractal_noise, make_rng
from radassist.volume import Volume

GGO, CONSOLIDATION, EFFUSION = 1, 2, 3


@dataclass(frozen=True)
class InfectionPhantomConfig:
    """The chest grid and how much of each finding to paint (patch counts and sizes in mm)."""

    chest: ChestPhantomConfig = field(default_factory=lambda: ChestPhantomConfig(
        shape=(24, 64, 64), spacing=(5.0, 5.0, 10.0), nodule_count=(0, 0), noise_hu=15.0))
    ggo_patches: tuple[int, int] = (2, 4)  # inclusive range per lung pair
    ggo_radius_mm: tuple[float, float] = (18.0, 35.0)
    ggo_hu: tuple[float, float] = (-700.0, -500.0)
    ggo_texture_kept: float = 0.3  # share of the lung's own texture (and vessels) still seen through the haze
    consolidation_patches: tuple[int, int] = (1, 2)
    consolidation_radius_mm: tuple[float, float] = (12.0, 22.0)
    consolidation_hu: tuple[float, float] = (-100.0, 50.0)
    effusion_sides: tuple[int, int] = (1, 2)  # how many lungs get an effusion
    effusion_depth_fraction: tuple[float, float] = (0.15, 0.3)  # of the lung's front-to-back depth
    effusion_hu: tuple[float, float] = (0.0, 20.0)


@dataclass
class InfectionPhantom:
    """A chest CT with infection findings: the image (int16 HU), class labels (z, y, x) and the lung masks."""

    volume: Volume
    labels: np.ndarray
    lungs: LabelMap
    label_table: list[dict[str, Any]]
    seed: int = 0

    @property
    def labelmap(self) -> LabelMap:
        from radassist.lung.infection.model import segments_from_label_table

        return LabelMap(self.labels, self.volume.geometry, segments_from_label_table(self.label_table),
                        self.volume.source)


def _blob(shape: tuple[int, int, int], spacing_zyx: np.ndarray, centre_zyx: np.ndarray, radius_mm: float,
          roughness: np.ndarray) -> np.ndarray:
    """An irregular ball: an ellipsoid whose edge is pushed in and out by the smooth ``roughness`` field."""
    zz, yy, xx = np.ogrid[:shape[0], :shape[1], :shape[2]]
    distance = np.sqrt(((zz - centre_zyx[0]) * spacing_zyx[0]) ** 2 + ((yy - centre_zyx[1]) * spacing_zyx[1]) ** 2
                       + ((xx - centre_zyx[2]) * spacing_zyx[2]) ** 2)
    return distance <= radius_mm * (1.0 + 0.3 * roughness)


def make_infection_ct(seed: int = 0, config: InfectionPhantomConfig | None = None) -> InfectionPhantom:
    """A chest CT phantom with ground-glass, consolidation and effusion painted into its lungs, with masks."""
    config = config or InfectionPhantomConfig()
    chest = make_chest_ct(seed, config.chest)
    rng = make_rng(seed, "infection", "findings")
    image = chest.volume.array.astype(np.float32)
    right, left = chest.lungs.mask("Right lung"), chest.lungs.mask("Left lung")
    lungs = right | left
    shape = image.shape
    spacing = np.asarray(chest.volume.geometry.spacing_zyx)
    labels = np.zeros(shape, dtype=np.uint8)
    roughness = fractal_noise(make_rng(seed, "infection", "edges"), shape, correlations=(2.0, 4.0), weights=(0.5, 0.5))
    haze = fractal_noise(make_rng(seed, "infection", "haze"), shape, correlations=(1.5, 3.0), weights=(0.6, 0.4))
    candidates = np.argwhere(ndimage.binary_erosion(lungs, iterations=1) if lungs.sum() > 50 else lungs)
    if candidates.size == 0:
        raise ValueError("the chest phantom has no lung voxels to paint findings into; enlarge the grid")

    def patches(count_range: tuple[int, int], radius_range: tuple[float, float]) -> list[np.ndarray]:
        """Irregular balls within the lungs; each draws its centre, then its radius."""
        return [_blob(shape, spacing, candidates[rng.integers(len(candidates))], float(rng.uniform(*radius_range)),
                      roughness) & lungs for _ in range(int(rng.integers(count_range[0], count_range[1] + 1)))]

    # effusion first (it takes the dependent lung base), then consolidation, then ground glass around them
    for side in rng.permutation([0, 1])[:int(rng.integers(config.effusion_sides[0], config.effusion_sides[1] + 1))]:
        lung = (right, left)[side]
        if not lung.any():
            continue
        z_indices = np.nonzero(lung.any(axis=(1, 2)))[0]
        base = z_indices[: max(2, int(len(z_indices) * 0.45))]  # the lower part of this lung
        y_front, y_back = np.nonzero(lung.any(axis=(0, 2)))[0][[0, -1]]
        depth = float(rng.uniform(*config.effusion_depth_fraction)) * (y_back - y_front + 1)
        fluid = np.zeros(shape, dtype=bool)
        for rank, z in enumerate(base[::-1]):  # thicker towards the diaphragm
            level = y_back - depth * (0.5 + 0.5 * (rank + 1) / len(base))
            fluid[z, int(np.ceil(level)):, :] = True
        fluid &= lung
        image[fluid] = float(rng.uniform(*config.effusion_hu)) + 4.0 * haze[fluid]
        labels[fluid] = EFFUSION
    free = lungs & (labels == 0)
    for mask in patches(config.consolidation_patches, config.consolidation_radius_mm):
        mask &= free
        image[mask] = float(rng.uniform(*config.consolidation_hu)) + 15.0 * haze[mask]
        labels[mask] = CONSOLIDATION
    free = lungs & (labels == 0)
    for mask in patches(config.ggo_patches, config.ggo_radius_mm):
        mask &= free
        target = float(rng.uniform(*config.ggo_hu))
        # hazy: raise the parenchyma towards the target but keep some of its texture and its vessels
        kept = config.ggo_texture_kept
        image[mask] = np.maximum(image[mask], (1.0 - kept) * target + kept * image[mask] + 25.0 * haze[mask])
        labels[mask] = GGO
    hu = np.clip(np.rint(image), -1024, 3071).astype(np.int16)
    volume = chest.volume.with_array(hu)
    lung_labels = chest.lungs.labels.copy()
    lung_labels[:, labels == EFFUSION] = 0
    lung_map = LabelMap(lung_labels, chest.lungs.geometry, chest.lungs.segments, chest.lungs.source)
    return InfectionPhantom(volume, labels, lung_map, default_label_table(), seed)


def infection_slices(seeds: list[int], config: InfectionPhantomConfig | None = None,
                     lung_slices_only: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Axial slices (n, y, x) int16 HU and their labels (n, y, x) uint8 from phantoms of ``seeds``: a small
    training set. ``lung_slices_only`` keeps the slices that cut through a lung."""
    images, masks = [], []
    for seed in seeds:
        phantom = make_infection_ct(seed, config)
        keep = phantom.lungs.labels[0].any(axis=(1, 2)) if lung_slices_only else np.ones(len(phantom.labels), bool)
        images.append(phantom.volume.array[keep])
        masks.append(phantom.labels[keep])
    return np.concatenate(images), np.concatenate(masks)
