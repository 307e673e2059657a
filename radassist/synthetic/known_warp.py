"""Real images warped by a known smooth deformation: registration pairs whose true answer is known everywhere.

A real brain (or any volume with its labels and mask) becomes the fixed image; the moving image is the same
anatomy moved by a smooth random field. The truth is the fixed -> moving field ``u`` (what every RadAssist
registration returns): moving(p + u(p)) = fixed(p). The moving image is made by sampling the fixed one at the
inverse map (:func:`radassist.synthetic.brain.inverse_map`), so ``u`` itself is exact and end-point errors measure
the registration only. Used by the registration benchmark (``benchmarks/BRAIN_REGISTRATION.md``) and the tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from radassist.results.displacement import DisplacementField
from radassist.synthetic.brain import inverse_map
from radassist.synthetic.noise import make_rng, smooth_noise
from radassist.volume import Geometry, Volume


@dataclass(frozen=True)
class KnownWarpConfig:
    """The random field: largest displacement inside the mask (mm) and its correlation length (mm)."""

    max_displacement_mm: float = 6.0
    correlation_mm: float = 40.0   # features of the field: a few centimetres, like brain shift and atlas warps

    def __post_init__(self) -> None:
        if self.max_displacement_mm <= 0 or self.correlation_mm <= 0:
            raise ValueError("max_displacement_mm and correlation_mm must be positive")


@dataclass
class KnownWarpPair:
    """Fixed and moving images (by name), labels and masks, and the true fixed -> moving field."""

    fixed: dict[str, Volume]
    moving: dict[str, Volume]
    truth: DisplacementField
    fixed_labels: dict[str, Volume] = field(default_factory=dict)
    moving_labels: dict[str, Volume] = field(default_factory=dict)


def smooth_field(geometry: Geometry, mask: np.ndarray, seed: int, config: KnownWarpConfig) -> DisplacementField:
    """A smooth random field (z, y, x, 3) in mm whose largest magnitude inside ``mask`` is the configured one."""
    rng = make_rng(seed, "known-warp")
    correlation = config.correlation_mm / np.asarray(geometry.spacing_zyx)
    vectors = np.stack([smooth_noise(rng, geometry.shape, correlation) for _ in range(3)], axis=-1)
    peak = float(np.linalg.norm(vectors[np.asarray(mask, dtype=bool)], axis=-1).max()) or 1.0
    vectors *= config.max_displacement_mm / peak
    return DisplacementField(vectors.astype(np.float64), geometry,
                             metadata={"direction": "fixed->moving", "seed": seed,
                                       "max_displacement_mm": config.max_displacement_mm})


def warp_known(fixed: Mapping[str, Volume], labels: Mapping[str, Volume], mask: np.ndarray, seed: int,
               config: KnownWarpConfig | None = None,
               background: Mapping[str, float] | None = None) -> KnownWarpPair:
    """Warp every image (linear) and label map (nearest) of one grid by a fresh smooth field.

    ``background``: the value each image shows outside the anatomy (default: its minimum), used where the warp
    reads outside the image.
    """
    config = config or KnownWarpConfig()
    geometry = next(iter(fixed.values())).geometry
    truth = smooth_field(geometry, mask, seed, config)
    coordinates = inverse_map(truth)  # moving(q) = fixed(q'), q' + u(q') = q
    background = dict(background or {})

    def warped(volume: Volume, order: int, cval: float) -> Volume:
        array = ndimage.map_coordinates(np.asarray(volume.array), coordinates, order=order, mode="constant",
                                        cval=cval, output=np.asarray(volume.array).dtype)
        return volume.with_array(array)

    moving = {name: warped(v, 1, float(background.get(name, np.min(v.array)))) for name, v in fixed.items()}
    moving_labels = {name: warped(v, 0, 0.0) for name, v in labels.items()}
    return KnownWarpPair(dict(fixed), moving, truth, dict(labels), moving_labels)


def with_tumour_resolved(volume: Volume, tumour: np.ndarray, brain: np.ndarray) -> Volume:
    """``volume`` with its ``tumour`` voxels set to the median of the rest of ``brain``: a follow-up in which the
    tumour has gone. The geometry is unchanged, so a known warp's truth still holds, but inside the tumour the
    intensities no longer correspond (what a tumour-masked similarity is for)."""
    array = np.array(volume.array, dtype=np.float32)
    array[tumour] = np.median(array[brain & ~tumour])
    return volume.with_array(array)
