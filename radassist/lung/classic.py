"""The classical nodule *candidate* detector: what RadAssist offers before any trained weights are installed.

This is not a trained model and its score is not a calibrated probability. It is a hand-built pipeline of
textbook image analysis that finds solid, roughly round, dense spots inside the lungs:

1. The scan is resampled to an isotropic working grid around the lungs (the lung mask of
   :mod:`radassist.lung.preprocess`), and everything outside the lungs is set to air.
2. Multi-scale blob enhancement: scale-normalised difference-of-Gaussians (an approximation of the Laplacian of
   Gaussian, Lindeberg 1998) at scales matched to spheres of 4-30 mm; local maxima over space and scale are the
   candidates.
3. Each candidate is measured: the bright region around it is segmented at half its contrast, giving the
   equivalent diameter, the elongation (principal axes) and how much of it leaks to the edge of its search
   sphere (a vessel runs on, a nodule ends); the Hessian eigenvalues at its scale give its blobness (all three
   equally negative for a ball, one near zero for a tube; Li, Sone and Doi 2003).
4. Size (4-30 mm) and shape filters reject vessels and noise; what passes gets a heuristic score 0..1 from
   contrast, blobness, roundness and leakage; duplicates are suppressed and the list is capped.

It finds solid nodules well away from vessels; it misses ground-glass and many juxtavascular nodules and marks
some vessel bifurcations. Results carry the engine name ``classic`` so nobody mistakes them for Lung-DETR's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from radassist.lung.preprocess import (HU_AIR, LungMaskConfig, axis_aligned_grid, bounding_box, lung_mask_volume,
                                       mask_on_grid, resample_to_grid, world_axis_spacing)
from radassist.results.detections import Detection, Detections
from radassist.runtime.progress import Progress
from radassist.volume import Geometry, Volume

ENGINE_NAME = "classic"
ENGINE_DESCRIPTION = ("classical candidate detector (multi-scale blob enhancement with size and shape filters; "
                      "not a trained model, scores are heuristic)")


@dataclass(frozen=True)
class ClassicDetectorConfig:
    """Settings of the classical candidate detector; sizes in mm, intensities in HU."""

    working_spacing_mm: float = 1.25  # isotropic grid the filters run on (speed vs. the smallest nodules)
    min_diameter_mm: float = 4.0  # smallest nodule looked for (LUNA16 counts nodules from 3 mm)
    max_diameter_mm: float = 30.0  # larger lesions are masses, not nodules (Fleischner glossary)
    scales: int = 7  # blob scales between the smallest and largest diameter (geometric)
    min_response_hu: float = 120.0  # scale-normalised blob response (HU) a peak needs to be measured
    max_peaks: int = 3000  # at most this many peaks are measured, strongest first
    min_contrast_hu: float = 100.0  # a solid nodule is at least this much denser than the lung around it
    max_elongation: float = 10.0  # longest / shortest principal axis past which a region is a vessel, not a nodule
    min_blobness: float = 0.0  # smallest / largest Hessian eigenvalue magnitude (1 = ball, 0 = tube) to be measured
    max_leak: float = 0.6  # fraction of the region on the edge of its search sphere past which it runs on (a vessel)
    pleural_closing_mm: float = 15.0  # closing of the lung mask that takes in nodules on the pleura
    lung_margin_mm: float = 2.0  # the search region reaches this far beyond the closed lung mask
    score_weights: tuple[float, ...] = (0.1648, 0.2621, 0.1380, -0.8842, -0.8387, 0.5663, -0.0551, -0.5690, 0.2419)
    score_bias: float = -1.6824
    #  the score's weights, one per SCORE_FEATURES: an L2-regularised (C = 0.001), class-balanced logistic regression
    #  fitted by `python -m benchmarks.nodule_candidates --fit` on the candidates of synthetic chest phantoms (seeds
    #  100-107); no real scan was used to fit them. The regularisation was chosen on TotalSegmentator's example CT
    #  with inserted nodules; CTChest4 played no part (benchmarks/NODULE_CANDIDATES.md)
    min_score: float = 0.0  # candidates below this score are dropped (0: every candidate is listed)
    max_candidates: int = 100  # at most this many candidates per scan, best first (LUNA16 scores 100)
    mask: LungMaskConfig = field(default_factory=LungMaskConfig)

    def __post_init__(self) -> None:
        if not 0 < self.min_diameter_mm < self.max_diameter_mm:
            raise ValueError(f"need 0 < min_diameter_mm < max_diameter_mm, got {self.min_diameter_mm}, "
                             f"{self.max_diameter_mm}")
        if self.working_spacing_mm <= 0 or self.scales < 2:
            raise ValueError("working_spacing_mm must be positive and scales at least 2")
        if len(self.score_weights) != len(SCORE_FEATURES):
            raise ValueError(f"score_weights needs one weight per feature {SCORE_FEATURES}, got "
                             f"{len(self.score_weights)}")


@dataclass
class Candidate:
    """One measured blob: world centre (LPS mm), box size (x, y, z mm), equivalent diameter and features."""

    center: np.ndarray
    size: np.ndarray
    diameter_mm: float
    score: float
    features: dict[str, float]


# -- the working grid ---------------------------------------------------------------------------------------------

def working_grid(mask_volume: Volume, spacing_mm: float, margin_mm: float) -> Geometry | None:
    """An isotropic axis-aligned grid over the lungs' bounding box (plus ``margin_mm``); None without lungs."""
    mask = mask_volume.array > 0
    if not mask.any():
        return None
    zyx = np.argwhere(mask)
    low = mask_volume.geometry.zyx_to_world(zyx.min(axis=0) - 0.5)
    high = mask_volume.geometry.zyx_to_world(zyx.max(axis=0) + 0.5)
    low, high = np.minimum(low, high) - margin_mm, np.maximum(low, high) + margin_mm
    counts = np.maximum(1, np.round((high - low) / spacing_mm)).astype(int)
    spacing = (high - low) / counts
    return Geometry(shape=tuple(int(c) for c in counts[::-1]), spacing=tuple(spacing),
                    origin=tuple(low + spacing / 2))


def _closed(mask: np.ndarray, spacing: np.ndarray, closing_mm: float, margin_mm: float) -> np.ndarray:
    """``mask`` closed with a ``closing_mm`` ball and grown by ``margin_mm`` (exact distances, on its box only)."""
    box = bounding_box(mask, 2 * closing_mm + margin_mm, spacing)
    part = mask[box]
    grown = ndimage.distance_transform_edt(~part, sampling=spacing) <= closing_mm
    closed = ndimage.distance_transform_edt(grown, sampling=spacing) > closing_mm
    region = np.zeros_like(mask)
    region[box] = ndimage.distance_transform_edt(~(closed | part), sampling=spacing) <= margin_mm
    return region


def search_region(mask: np.ndarray, spacing_mm: float | tuple[float, float, float], closing_mm: float,
                  margin_mm: float) -> np.ndarray:
    """The lung mask closed with a ``closing_mm`` ball (dents left by nodules on the pleura are filled; the
    mediastinum, wider than the ball, is not) and grown by ``margin_mm``.

    Each lung is closed on its own: where the two lungs come close (the anterior and posterior junction lines, a
    few mm apart), closing them together would fill the mediastinum between them (oesophagus, azygos vein, aorta)
    and make it a field of round, dense false candidates.
    """
    spacing = np.broadcast_to(np.asarray(spacing_mm, dtype=float), (3,))
    labels, count = ndimage.label(mask)
    if count <= 1:
        return _closed(mask, spacing, closing_mm, margin_mm)
    lungs = np.argsort(np.bincount(labels.ravel())[1:])[::-1][:2] + 1  # the rest (small pieces) stay as they are
    region = np.zeros_like(mask)
    for label in lungs:
        region |= _closed(labels == label, spacing, closing_mm, margin_mm)
    return region | (mask & ~np.isin(labels, lungs))


def search_region_volume(mask_volume: Volume, config: ClassicDetectorConfig) -> Volume:
    """:func:`search_region` of a lung mask volume, computed on a grid of about a quarter of the closing radius
    (a 15 mm ball needs no finer one), then joined with the mask itself at its own resolution."""
    spacing = np.maximum(world_axis_spacing(mask_volume.geometry), config.pleural_closing_mm / 4)
    coarse_grid = axis_aligned_grid(mask_volume.geometry, tuple(spacing))
    coarse = mask_on_grid(mask_volume, coarse_grid)
    region = search_region(coarse, coarse_grid.spacing_zyx, config.pleural_closing_mm, config.lung_margin_mm)
    back = mask_on_grid(Volume.from_geometry(region.astype(np.uint8), coarse_grid), mask_volume.geometry)
    return mask_volume.with_array((back | (mask_volume.array > 0)).astype(np.uint8))


# -- blob enhancement ---------------------------------------------------------------------------------------------

def blob_sigmas(min_diameter_mm: float, max_diameter_mm: float, scales: int) -> np.ndarray:
    """Gaussian scales (mm) that respond best to balls of the given diameters: sigma = radius / sqrt(3)."""
    radii = np.geomspace(min_diameter_mm / 2, max_diameter_mm / 2, scales)
    return radii / np.sqrt(3.0)


@dataclass
class ScaleSpace:
    """The strongest scale-normalised blob response per voxel, its scale index, and the Gaussian-smoothed images
    (one per scale, kept for the Hessian at each peak)."""

    best: np.ndarray
    scale: np.ndarray
    smoothed: list[np.ndarray]


def blob_scale_space(image: np.ndarray, sigmas_mm: np.ndarray, spacing_mm: float) -> ScaleSpace:
    """Scale-normalised difference-of-Gaussians over ``sigmas_mm`` (bright blobs positive, in the image's units).

    ``G(s) - G(k s) ~ (k - 1) s^2 (-Laplacian)``, so dividing by k - 1 gives the normalised Laplacian response
    (Lindeberg). Only the running maximum and its scale are kept, not every response.
    """
    ratio = float(sigmas_mm[1] / sigmas_mm[0]) if len(sigmas_mm) > 1 else 1.6
    smoothed = [ndimage.gaussian_filter(image, sigmas_mm[0] / spacing_mm, truncate=3.0)]
    best = np.full(image.shape, -np.inf, dtype=np.float32)
    scale = np.zeros(image.shape, dtype=np.int8)
    response = np.empty(image.shape, dtype=np.float32)
    for index, sigma in enumerate(sigmas_mm):
        coarser = ndimage.gaussian_filter(image, sigma * ratio / spacing_mm, truncate=3.0)
        np.subtract(smoothed[-1], coarser, out=response)
        response /= ratio - 1.0
        better = response > best
        best[better] = response[better]
        scale[better] = index
        if index < len(sigmas_mm) - 1:
            smoothed.append(coarser)
    return ScaleSpace(best, scale, smoothed)


def scale_space_peaks(space: ScaleSpace, allowed: np.ndarray, min_response: float, max_peaks: int) -> np.ndarray:
    """(N, 4) integer (scale, z, y, x) of the local maxima of the best response, strongest first."""
    best = space.best
    peaks = (best == ndimage.maximum_filter(best, size=3)) & (best >= min_response) & allowed
    zyx = np.argwhere(peaks)
    strength = best[tuple(zyx.T)]
    order = np.argsort(-strength, kind="stable")[:max_peaks]
    zyx = zyx[order]
    return np.column_stack([space.scale[tuple(zyx.T)], zyx]) if len(zyx) else np.zeros((0, 4), dtype=int)


# -- measuring one candidate --------------------------------------------------------------------------------------

def _patch(array: np.ndarray, centre: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray]:
    """A cube of ``array`` around ``centre`` (clipped at the borders) and the index of its first voxel."""
    low = np.maximum(centre - half, 0)
    high = np.minimum(centre + half + 1, array.shape)
    return array[tuple(slice(a, b) for a, b in zip(low, high))], low


def hessian_blobness(smooth: np.ndarray, point: np.ndarray) -> float:
    """|smallest| / |largest| Hessian eigenvalue of a Gaussian-smoothed image at ``point`` (central differences)
    when all three are negative: 1 for a bright ball, about 0 for a bright tube; 0 otherwise."""
    z, y, x = (int(np.clip(p, 1, n - 2)) for p, n in zip(point, smooth.shape))
    if min(smooth.shape) < 3:
        return 0.0
    c = float(smooth[z, y, x])
    hzz = smooth[z + 1, y, x] - 2 * c + smooth[z - 1, y, x]
    hyy = smooth[z, y + 1, x] - 2 * c + smooth[z, y - 1, x]
    hxx = smooth[z, y, x + 1] - 2 * c + smooth[z, y, x - 1]
    hzy = (smooth[z + 1, y + 1, x] - smooth[z + 1, y - 1, x] - smooth[z - 1, y + 1, x] + smooth[z - 1, y - 1, x]) / 4
    hzx = (smooth[z + 1, y, x + 1] - smooth[z + 1, y, x - 1] - smooth[z - 1, y, x + 1] + smooth[z - 1, y, x - 1]) / 4
    hyx = (smooth[z, y + 1, x + 1] - smooth[z, y + 1, x - 1] - smooth[z, y - 1, x + 1] + smooth[z, y - 1, x - 1]) / 4
    eigen = np.linalg.eigvalsh(np.array([[hzz, hzy, hzx], [hzy, hyy, hyx], [hzx, hyx, hxx]], dtype=float))
    if eigen.max() >= 0:
        return 0.0
    magnitudes = np.abs(eigen)
    return float(magnitudes.min() / magnitudes.max())


def _ball(radius_voxels: float) -> np.ndarray:
    half = int(np.floor(radius_voxels))
    axes = np.ogrid[(slice(-half, half + 1),) * 3]
    return sum(a.astype(float) ** 2 for a in axes) <= radius_voxels ** 2 + 1e-9


def _without_thin_attachments(region: np.ndarray, point: np.ndarray) -> np.ndarray:
    """The region after a morphological opening with a ball of 0.6 x its inscribed radius at ``point``: vessels
    thinner than that, attached to a nodule, are cut off (the part holding ``point``, or the largest, is kept).
    A vessel itself survives (its own radius is the inscribed one) and is then rejected for its shape."""
    inside = ndimage.distance_transform_edt(region)
    near = tuple(slice(max(p - 1, 0), p + 2) for p in point)
    ball_voxels = 0.6 * float(inside[near].max())
    if ball_voxels < 1.0:
        return region
    opened = ndimage.binary_opening(region, structure=_ball(ball_voxels))
    labels, count = ndimage.label(opened)
    if count == 0:
        return region
    label = labels[tuple(point)]
    if label == 0:
        label = int(np.argmax(np.bincount(labels.ravel())[1:])) + 1
    return labels == label


def _shell_fraction(lung: np.ndarray, centroid_mm: np.ndarray, spacing_mm: float, inner_mm: float,
                    outer_mm: float) -> float:
    """Share of the voxels between ``inner_mm`` and ``outer_mm`` from ``centroid_mm`` that are in ``lung``."""
    axes = np.ogrid[tuple(slice(0, n) for n in lung.shape)]
    from_centroid = np.sqrt(sum((a * spacing_mm - c) ** 2 for a, c in zip(axes, centroid_mm)))
    shell = (from_centroid >= inner_mm) & (from_centroid <= outer_mm)
    return float(lung[shell].mean()) if shell.any() else 0.0


def measure_candidate(hu: np.ndarray, space: ScaleSpace, peak: np.ndarray, sigma_mm: float, spacing_mm: float,
                      background_hu: float, min_blobness: float = 0.0,
                      allowed: np.ndarray | None = None) -> dict[str, float] | None:
    """Segment the bright region at ``peak`` and measure it; None when nothing denser than the lung is there,
    or when its Hessian blobness is under ``min_blobness`` (checked first: it is cheap and rejects vessels).

    ``allowed`` is the search region (where ``hu`` is the scan, not the air put outside it): the share of the
    region's surface on its border is the candidate's wall contact (a nodule on the pleura has some, a nodule in
    the lung none). Shape comes from the principal axes (standard deviations s1 >= s2 >= s3): ``elongation`` s1/s3,
    ``prolate`` s1/s2 (a vessel or a rib's edge: long), ``oblate`` s2/s3 (a sheet of pleura or the cap of a
    nodule on it: flat).
    """
    radius_mm = np.sqrt(3.0) * sigma_mm
    blobness = hessian_blobness(space.smoothed[int(space.scale[tuple(peak)])], peak)
    if blobness < min_blobness:
        return None  # a tube or a sheet: not worth segmenting
    search_mm = max(2.0 * radius_mm, radius_mm + 6.0)
    half = int(np.ceil(search_mm / spacing_mm)) + 1
    patch, low = _patch(hu, peak, half)
    point = peak - low
    centre_value = float(space.smoothed[0][tuple(peak)])
    level = (centre_value + background_hu) / 2.0
    if centre_value - background_hu <= 0:
        return None
    axes = np.ogrid[tuple(slice(0, n) for n in patch.shape)]
    distance = np.sqrt(sum(((a - p) * spacing_mm) ** 2 for a, p in zip(axes, point)))
    sphere = distance <= search_mm
    bright = (patch >= level) & sphere
    labels, _ = ndimage.label(bright)
    label = labels[tuple(point)]
    if label == 0:
        # the peak voxel itself may sit just under the level (small, blurred nodules): take the nearest region
        near = (labels > 0) & (distance <= max(radius_mm, 1.5 * spacing_mm))
        if not near.any():
            return None
        label = np.bincount(labels[near]).argmax()
    region = _without_thin_attachments(labels == label, point)
    voxels = int(region.sum())
    volume_mm3 = voxels * spacing_mm ** 3
    diameter = float((6.0 * volume_mm3 / np.pi) ** (1.0 / 3.0))
    edge = region & (distance > search_mm - 1.5 * spacing_mm)
    coords = np.argwhere(region).astype(float) * spacing_mm
    centroid = coords.mean(axis=0)
    if voxels >= 4:
        spread = np.sqrt(np.sort(np.linalg.eigvalsh(np.cov(coords.T) + np.eye(3) * spacing_mm ** 2 / 12.0))[::-1])
        spread = np.maximum(spread, 1e-6)
    else:
        spread = np.ones(3)
    surface = region & ~ndimage.binary_erosion(region)
    outside = _patch(~allowed, peak, half)[0] if allowed is not None else np.zeros(patch.shape, dtype=bool)
    wall_contact = float((ndimage.binary_dilation(outside) & surface).sum() / max(int(surface.sum()), 1))
    lung = (patch < level) & ~outside
    extent = (coords.max(axis=0) - coords.min(axis=0)) + spacing_mm
    return {
        "diameter_mm": diameter,
        "contrast_hu": float(patch[region].mean() - background_hu),
        "elongation": float(spread[0] / spread[2]),
        "prolate": float(spread[0] / spread[1]),
        "oblate": float(spread[1] / spread[2]),
        "leak": float(edge.sum() / voxels),
        "blobness": blobness,
        "wall_contact": wall_contact,
        "lung_surround": _shell_fraction(lung, centroid, spacing_mm, diameter / 2 + 1.5, diameter / 2 + 4.0),
        "response_hu": float(space.best[tuple(peak)]),
        "centroid_zyx": (low + centroid / spacing_mm),
        "extent_zyx_mm": extent,
    }


SCORE_FEATURES = ("contrast", "response", "log_diameter", "log_prolate", "log_oblate", "blobness", "leak",
                  "wall_contact", "lung_surround")
"""The measurements the score weighs, in the order of ``ClassicDetectorConfig.score_weights``."""


def score_features(features: dict[str, float]) -> np.ndarray:
    """The candidate's measurements as the score's inputs (``SCORE_FEATURES``), each scaled to about 0..1-5."""
    return np.array([features["contrast_hu"] / 100.0, features["response_hu"] / 100.0,
                     np.log(features["diameter_mm"] / 10.0), np.log(features["prolate"]),
                     np.log(features["oblate"]), features["blobness"], features["leak"], features["wall_contact"],
                     features["lung_surround"]], dtype=float)


def candidate_score(features: dict[str, float], config: ClassicDetectorConfig) -> float:
    """Heuristic 0..1 that ranks candidates: a logistic function of the measurements (``SCORE_FEATURES``) with
    the weights of ``config``. It orders candidates; it is not the probability that one is a nodule."""
    z = config.score_bias + float(np.dot(config.score_weights, score_features(features)))
    return float(1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0))))


def passes_filters(features: dict[str, float], config: ClassicDetectorConfig) -> bool:
    """Size 4-30 mm and the loose limits past which a bright spot is certainly no nodule: too faint, a long
    tube, or a region that runs on past its search sphere (everything else is left to the score)."""
    return (config.min_diameter_mm <= features["diameter_mm"] <= config.max_diameter_mm
            and features["contrast_hu"] >= config.min_contrast_hu
            and features["elongation"] <= config.max_elongation
            and features["blobness"] >= config.min_blobness
            and features["leak"] <= config.max_leak)


def suppress_overlaps(candidates: list[Candidate]) -> list[Candidate]:
    """Best first; a candidate whose centre lies inside an already kept one (its radius) is dropped."""
    kept: list[Candidate] = []
    for candidate in sorted(candidates, key=lambda c: c.score, reverse=True):
        if all(np.linalg.norm(candidate.center - other.center) > max(other.diameter_mm, candidate.diameter_mm) / 2
               for other in kept):
            kept.append(candidate)
    return kept


# -- the detector -------------------------------------------------------------------------------------------------

def measure_peaks(volume: Volume, config: ClassicDetectorConfig = ClassicDetectorConfig(),
                  progress: Progress | None = None, mask_volume: Volume | None = None) -> list[Candidate]:
    """Every blob of the scan that passes the filters, measured and scored (not yet deduplicated or capped).

    ``mask_volume`` is the lung mask from :func:`radassist.lung.preprocess.lung_mask_volume` when the caller has
    it already. An empty list is returned when no lung is found (the pipeline checks that before).
    """
    progress = progress or Progress()
    progress.update(0.0, "finding the lungs")
    if mask_volume is None:
        mask_volume = lung_mask_volume(volume, config.mask)
    grid = working_grid(mask_volume, config.working_spacing_mm, config.lung_margin_mm + config.max_diameter_mm / 2)
    if grid is None:
        return []
    progress.update(0.1, "resampling to the working grid")
    hu = resample_to_grid(volume, grid, True, HU_AIR).array
    mask = mask_on_grid(mask_volume, grid)
    spacing = float(grid.spacing[0])
    allowed = mask_on_grid(search_region_volume(mask_volume, config), grid)
    image = np.clip(hu, -1000.0, 200.0)
    image[~allowed] = -1000.0
    background = float(np.median(image[mask])) if mask.any() else -850.0

    progress.update(0.25, "blob enhancement")
    sigmas = blob_sigmas(config.min_diameter_mm, config.max_diameter_mm, config.scales)
    space = blob_scale_space(image, sigmas, spacing)
    peaks = scale_space_peaks(space, allowed, config.min_response_hu, config.max_peaks)
    measure = progress.sub(0.6, 0.95)
    candidates = []
    for index, (scale, *zyx) in enumerate(peaks):
        if index % 20 == 0:
            measure.update(index / max(len(peaks), 1), f"measuring {len(peaks)} blobs")
        features = measure_candidate(image, space, np.asarray(zyx), float(sigmas[scale]), spacing, background,
                                     config.min_blobness, allowed)
        if features is None or not passes_filters(features, config):
            continue
        score = candidate_score(features, config)
        center = grid.zyx_to_world(features.pop("centroid_zyx"))
        size = np.asarray(features.pop("extent_zyx_mm"))[::-1]
        candidates.append(Candidate(center, size, features["diameter_mm"], score, features))
    measure.update(1.0, f"{len(peaks)} blobs measured")
    return candidates


def detect_candidates(volume: Volume, config: ClassicDetectorConfig = ClassicDetectorConfig(),
                      progress: Progress | None = None, mask_volume: Volume | None = None) -> Detections:
    """Nodule candidates of a CT (HU) as Detections in LPS mm, best first, engine ``classic``, their number a
    heuristic ``score`` (``score_name``), at least ``config.min_score``, at most ``config.max_candidates``;
    ``mask_volume`` as for :func:`measure_peaks`."""
    progress = progress or Progress()
    measured = measure_peaks(volume, config, progress.sub(0.0, 0.95), mask_volume)
    candidates = [c for c in measured if c.score >= config.min_score]
    kept = suppress_overlaps(candidates)[:config.max_candidates]
    progress.update(1.0, f"{len(kept)} candidate(s)")
    items = [Detection(center=tuple(c.center), size=tuple(c.size), probability=round(c.score, 6),
                       label="nodule candidate", diameter_mm=c.diameter_mm, score_name="score",
                       extra={k: round(float(v), 4) for k, v in c.features.items()}) for c in kept]
    metadata = {"engine_description": ENGINE_DESCRIPTION, "config": config, "score_name": "score",
                "blobs_measured": len(measured)}
    return Detections(items, volume.geometry, volume.source, ENGINE_NAME, metadata)
