"""Lung-DETR preprocessing: resample, lung mask, CLAHE and 7.5 mm maximum-intensity-projection slabs.

The steps of Ramezani, Aleman and Letourneau (Lung-DETR, arXiv:2409.05200), each a pure function:

1. :func:`resample_volume`: onto an axis-aligned LPS grid at a target spacing (:func:`axis_aligned_grid`), so
   array axis 0 runs inferior -> superior whatever the file's orientation and slabs are always axial.
2. :func:`lung_mask`: Otsu threshold, removal of the air around the patient and of everything outside the body
   (the table's mattress), erosion, connected components (the large ones that are tissue, not pure gas, are the
   lungs), then the mask is grown back and its holes (vessels, nodules) filled; the edge slices with little lung
   are removed (:func:`lung_slice_range`).
3. :func:`window_to_unit` then :func:`apply_clahe`: HU window to 0..1 and contrast-limited adaptive histogram
   equalisation, applied to each slab image after the projection (cheaper than per slice, same purpose: local
   contrast where small nodules sit).
4. :func:`slab_ranges` / :func:`make_slab_stack`: maximum-intensity projections over ``thickness_mm`` of slices
   every ``stride_mm``; every slab keeps the slice range it covers so boxes map back to world millimetres.

:func:`annotations_to_slab_boxes` builds the same slabs for training, with each annotated nodule's pixel box on
every slab it appears in.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from radassist.extent import nonzero_extent, span_to_multiple
from radassist.io.sitk_bridge import reference_image, volume_to_sitk
from radassist.results.detections import Detection, Detections
from radassist.volume import Geometry, Volume

IDENTITY_DIRECTION = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
HU_AIR = -1024.0


# -- configuration ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LungMaskConfig:
    """How the lungs are found; distances in mm so the same settings work at any voxel size."""

    clip_hu: tuple[float, float] = (-1024.0, 600.0)  # values outside (FOV padding, metal) are clipped first
    max_threshold_hu: float = -320.0  # Otsu may sit higher on scans with much bone; lung stays below this
    erosion_mm: float = 2.0  # cuts thin bridges (diaphragm, bowel wall); at least one voxel in-plane
    gas_hu: float = -950.0  # below this a voxel is gas rather than lung tissue (the emphysema-index threshold)
    skin_mm: float = 3.0  # the air around the patient is grown by this much in-plane (the skin's blurred rim)
    max_gas_fraction: float = 0.5  # components with more gas than this are bowel gas or outside air, not lung
    min_component_ml: float = 5.0  # smaller low-density components are not lung
    min_component_fraction: float = 0.15  # keep components with at least this fraction of the largest lung
    min_lung_ml: float = 30.0  # less lung than this in the whole scan counts as no lung
    closing_mm: float = 5.0  # grow back past the erosion, closing gaps at the pleura (juxtapleural nodules)
    edge_slice_fraction: float = 0.04  # remove end slices with less lung than this fraction of the fullest slice
    mask_spacing_mm: float = 2.0  # the mask is computed on a grid at least this coarse (speed), then resampled


@dataclass(frozen=True)
class SlabConfig:
    """Maximum-intensity-projection slabs as Lung-DETR uses them."""

    thickness_mm: float = 7.5  # Lung-DETR paper: 7.5 mm MIP
    stride_mm: float = 7.5  # Lung-DETR paper: adjacent slabs (no overlap); smaller values overlap them
    target_spacing_mm: tuple[float | None, float | None, float | None] = (None, None, 1.25)
    #  (x, y, z): None keeps the scan's own spacing (in-plane, as the catalogue's 512x512 input); 1.25 mm in z
    #  makes a 7.5 mm slab exactly 6 slices
    window_hu: tuple[float, float] = (-1350.0, 150.0)  # lung window of the catalogue entry (low, high)
    clahe_clip_limit: float = 0.01  # skimage's default clip limit (fraction of the histogram)
    clahe_kernel_mm: float = 64.0  # CLAHE context region, about a lung segment
    mask_outside_lung: bool = True  # outside the (grown) lung mask the slab shows the window's low value
    mask_margin_mm: float = 5.0  # extra growth of the lung mask before masking (keeps juxtapleural nodules)
    min_z_overlap: float = 0.3  # a nodule is on a slab when they overlap by this fraction of the smaller z size
    lung_windows: bool = True  # the network sees each slab cut to its own lung box (the grown mask's bounding box,
    #                            sides rounded up to window_multiple_px), not the constant background around it: about
    #                            40 % of the pixels of a 512x512 slab. Weights are tied to it (LungDetrConfig)
    window_multiple_px: int = 32  # the backbone's coarsest stride: every feature level stays aligned

    def __post_init__(self) -> None:
        if self.thickness_mm <= 0 or self.stride_mm <= 0:
            raise ValueError(f"slab thickness and stride must be positive, got {self.thickness_mm}, "
                             f"{self.stride_mm}")
        if self.window_hu[1] <= self.window_hu[0]:
            raise ValueError(f"window_hu must be (low, high), got {self.window_hu}")
        if self.window_multiple_px < 1:
            raise ValueError(f"window_multiple_px must be at least 1, got {self.window_multiple_px}")


# -- resampling ---------------------------------------------------------------------------------------------------

def resampling_factor(spacing: Sequence[float], target_spacing: Sequence[float | None]) -> np.ndarray:
    """Original spacing / target spacing per axis (None keeps an axis: factor 1). > 1 means more voxels."""
    return np.array([1.0 if t is None else float(s) / float(t) for s, t in zip(spacing, target_spacing)])


def world_axis_spacing(geometry: Geometry) -> np.ndarray:
    """The voxel size along world x, y and z: the spacing of the array axis that runs most along each."""
    along = np.argmax(np.abs(geometry.direction_matrix), axis=1)  # array axis (i, j, k) nearest each world axis
    return np.array([geometry.spacing[a] for a in along])


def axis_aligned_grid(geometry: Geometry, target_spacing: Sequence[float | None]) -> Geometry:
    """An identity-direction LPS grid over the same world box as ``geometry``, at (about) ``target_spacing``.

    The size along each world axis is the original count times the resampling factor, rounded; the spacing is
    then the extent divided by that count, so the box is covered exactly. ``None`` keeps the spacing of the array
    axis that runs along that world axis.
    """
    corners = itertools.product(*[(-0.5, n - 0.5) for n in geometry.shape[::-1]])  # (i, j, k) of the box's corners
    world = geometry.ijk_to_world(np.array(list(corners)))
    low, high = world.min(axis=0), world.max(axis=0)
    extent = high - low
    own_spacing = world_axis_spacing(geometry)
    counts = np.maximum(1, np.round(extent / own_spacing * resampling_factor(own_spacing, target_spacing)))
    spacing = extent / counts
    return Geometry(shape=tuple(int(c) for c in counts[::-1]), spacing=tuple(spacing), origin=tuple(low + spacing / 2),
                    direction=IDENTITY_DIRECTION)


def resample_to_grid(volume: Volume, geometry: Geometry, linear: bool = True, default: float = HU_AIR) -> Volume:
    """``volume`` sampled on ``geometry`` (float32 when linear, the input type when nearest neighbour)."""
    if volume.geometry.same_grid(geometry):
        return volume.with_array(volume.array.astype(np.float32) if linear else volume.array)
    image = volume_to_sitk(volume)
    if linear:
        image = sitk.Cast(image, sitk.sitkFloat32)
    interpolator = sitk.sitkLinear if linear else sitk.sitkNearestNeighbor
    resampled = sitk.Resample(image, reference_image(geometry), sitk.Transform(), interpolator, float(default))
    return Volume.from_geometry(sitk.GetArrayFromImage(resampled), geometry, volume.source)


def resample_volume(volume: Volume, target_spacing: Sequence[float | None], default: float = HU_AIR) -> Volume:
    """``volume`` resampled (linear) onto an axis-aligned grid at ``target_spacing`` (x, y, z mm; None keeps)."""
    return resample_to_grid(volume, axis_aligned_grid(volume.geometry, target_spacing), True, default)


def mask_box_on_grid(mask: Volume, geometry: Geometry, in_plane: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(start, stop) voxel indices (z, y, x) of ``geometry`` outside which :func:`mask_on_grid` of ``mask`` is
    certainly empty: the box of the mask's voxels grown by one of its (coarse) voxels, where linear interpolation
    can still pass 0.5. With ``in_plane`` False only z is limited. An empty mask gives the whole grid."""
    extent = nonzero_extent(mask.array)
    if extent is None:
        return np.zeros(3, dtype=int), np.asarray(geometry.shape)
    low = np.array([first for first, _ in extent], dtype=float) - 1.0
    high = np.array([stop for _, stop in extent], dtype=float)  # the last voxel + 1
    corners_zyx = np.array(list(itertools.product(*zip(low, high))))
    on_grid = geometry.world_to_zyx(mask.geometry.zyx_to_world(corners_zyx))
    start = np.maximum(np.floor(on_grid.min(axis=0)).astype(int), 0)
    stop = np.minimum(np.ceil(on_grid.max(axis=0)).astype(int) + 1, geometry.shape)
    if not in_plane:
        start[1:], stop[1:] = 0, geometry.shape[1:]
    return start, stop


def mask_on_grid(mask: Volume, geometry: Geometry) -> np.ndarray:
    """A binary mask volume resampled onto ``geometry`` (linear, then > 0.5: smoother than nearest neighbour)."""
    return resample_to_grid(mask.with_array(mask.array.astype(np.float32)), geometry, True, 0.0).array > 0.5


# -- lung mask ----------------------------------------------------------------------------------------------------

def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold (scikit-image's) on a ``bins``-bin histogram, returned as the upper edge of the chosen bin,
    so that ``values < threshold`` holds that whole bin (skimage itself returns the bin's centre)."""
    from skimage.filters import threshold_otsu

    counts, edges = np.histogram(np.asarray(values, dtype=np.float64), bins=bins)
    return float(threshold_otsu(hist=(counts, edges[1:])))  # a constant shift of the bin values leaves the split


def ellipsoid_footprint(radius_mm: float, spacing_zyx: Sequence[float]) -> np.ndarray:
    """A ball of ``radius_mm`` on a grid of ``spacing_zyx``; axes with voxels larger than the radius are flat."""
    half = [int(np.floor(radius_mm / s)) if np.isfinite(s) else 0 for s in spacing_zyx]
    axes = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    distance = sum((a * (s if np.isfinite(s) else 0.0) / max(radius_mm, 1e-9)) ** 2
                   for a, s in zip(axes, spacing_zyx))
    return distance <= 1.0


def _in_plane_structure() -> np.ndarray:
    """4-connectivity within each axial slice and none across slices (labels every slice in one call)."""
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = ndimage.generate_binary_structure(2, 1)
    return structure


def _touching_border(mask: np.ndarray) -> np.ndarray:
    """The parts of ``mask`` connected, within their axial slice, to the slice's border."""
    labels, _ = ndimage.label(mask, structure=_in_plane_structure())
    border = np.unique(np.concatenate([labels[:, 0].ravel(), labels[:, -1].ravel(), labels[:, :, 0].ravel(),
                                       labels[:, :, -1].ravel()]))
    return np.isin(labels, border[border > 0])


def remove_outside_air(low: np.ndarray, gas: np.ndarray | None = None, spacing_zyx: Sequence[float] = (1, 1, 1),
                       skin_mm: float = 3.0) -> np.ndarray:
    """Low-density regions minus the air around the patient, slice by slice.

    The outside is the pure gas (``gas``) connected to a slice's border, grown by ``skin_mm`` in-plane to take the
    partial-volume rim of the skin; testing gas rather than all low density keeps a lung whose thin wall blurs
    into the outside air. What still touches a border (a body cut by the field of view) is removed too.
    """
    if gas is not None:
        disk = ellipsoid_footprint(skin_mm, (np.inf,) + tuple(spacing_zyx[1:]))  # in-plane only
        low = low & ~ndimage.binary_dilation(_touching_border(gas), structure=disk)
    return low & ~_touching_border(low)


def body_region(tissue: np.ndarray) -> np.ndarray:
    """The patient, slice by slice: the convex hull of the largest 3-D component of tissue-density voxels. The
    hull holds the lungs even where a thin chest wall is blurred into the air; the CT table and its mattress,
    apart from the patient, stay outside (the air the hull takes in is removed by :func:`remove_outside_air`)."""
    labels, count = ndimage.label(tissue)
    if count == 0:
        return tissue
    largest = labels == (int(np.argmax(np.bincount(labels.ravel())[1:])) + 1)
    body = np.zeros_like(largest)
    for index in np.flatnonzero(largest.reshape(largest.shape[0], -1).any(axis=1)):
        body[index] = convex_hull_2d(largest[index])
    return body


def convex_hull_2d(mask: np.ndarray) -> np.ndarray:
    """The filled convex hull of a 2-D mask's pixel centres (scikit-image), with the mask itself (a line has none)."""
    import warnings

    from skimage.morphology import convex_hull_image

    with warnings.catch_warnings():  # fewer than three points or all on a line: skimage warns and returns nothing
        warnings.simplefilter("ignore", UserWarning)
        return convex_hull_image(mask, offset_coordinates=False) | mask


def lung_components(mask: np.ndarray, hu: np.ndarray, voxel_ml: float,
                    config: LungMaskConfig) -> np.ndarray:
    """The 3-D components of ``mask`` that are lung: mostly tissue-density air spaces (not pure gas), large
    enough, and at least ``min_component_fraction`` of the largest such component."""
    labels, count = ndimage.label(mask)
    if count == 0:
        return np.zeros_like(mask, dtype=bool)
    index = np.arange(1, count + 1)
    sizes = ndimage.sum_labels(np.ones_like(hu, dtype=np.float32), labels, index) * voxel_ml
    gas = ndimage.mean((hu < config.gas_hu).astype(np.float32), labels, index)
    lung_like = (gas <= config.max_gas_fraction) & (sizes >= config.min_component_ml)
    if not lung_like.any():
        return np.zeros_like(mask, dtype=bool)
    keep = index[lung_like & (sizes >= config.min_component_fraction * sizes[lung_like].max())]
    return np.isin(labels, keep)


def bounding_box(mask: np.ndarray, margin_mm: float, spacing_zyx: Sequence[float]) -> tuple[slice, ...]:
    """Slices of the box around ``mask`` grown by ``margin_mm`` (clipped to the array)."""
    extent = nonzero_extent(mask)
    if extent is None:
        return tuple(slice(0, n) for n in mask.shape)
    pad = [int(np.ceil(margin_mm / s)) + 1 for s in spacing_zyx]
    return tuple(slice(max(first - p, 0), min(stop + p, n)) for (first, stop), p, n in zip(extent, pad, mask.shape))


def lung_slice_range(mask: np.ndarray, min_fraction: float) -> tuple[int, int]:
    """(first, stop) of the slices whose lung area is at least ``min_fraction`` of the fullest slice."""
    areas = mask.reshape(mask.shape[0], -1).sum(axis=1)
    if areas.max(initial=0) == 0:
        return 0, 0
    kept = np.flatnonzero(areas >= min_fraction * areas.max())
    return int(kept[0]), int(kept[-1]) + 1


def lung_mask(volume: Volume, config: LungMaskConfig = LungMaskConfig()) -> np.ndarray:
    """Both lungs (bool, on ``volume``'s grid, axial slices along array axis 0); empty when none is found."""
    spacing_zyx = volume.geometry.spacing_zyx
    hu = np.clip(volume.array.astype(np.float32), *config.clip_hu)
    threshold = min(otsu_threshold(hu), config.max_threshold_hu)
    inside = remove_outside_air(hu < threshold, hu < config.gas_hu, spacing_zyx, config.skin_mm)
    inside &= body_region(hu >= threshold)
    radius = max(float(config.erosion_mm), float(max(spacing_zyx[1], spacing_zyx[2])))  # >= 1 in-plane voxel
    eroded = ndimage.binary_erosion(inside, structure=ellipsoid_footprint(radius, spacing_zyx))
    voxel_ml = volume.geometry.voxel_volume_mm3 / 1000.0
    lungs = lung_components(eroded, hu, voxel_ml, config)
    if not lungs.any():
        return lungs
    # undo the erosion inside the low-density region only, then close over vessels and pleural nodules;
    # distance transforms are exact in mm and fast for any radius; they run on the lungs' box only
    box = bounding_box(lungs, radius + 2 * config.closing_mm, spacing_zyx)
    part = lungs[box]
    recovered = (ndimage.distance_transform_edt(~part, sampling=spacing_zyx) <= radius * 1.01) & inside[box]
    grown = ndimage.distance_transform_edt(~recovered, sampling=spacing_zyx) <= config.closing_mm
    closed = (ndimage.distance_transform_edt(grown, sampling=spacing_zyx) > config.closing_mm) | recovered
    filled = np.zeros_like(lungs)
    filled[box] = ndimage.binary_fill_holes(closed, structure=_in_plane_structure())
    first, stop = lung_slice_range(filled, config.edge_slice_fraction)
    filled[:first] = False
    filled[stop:] = False
    # judged on the lungs as found, not as eroded: thin crescents over the diaphragm lose most of their volume to
    # the erosion, and a pleural nodule in them was enough to push a real 76 mL lung base under the limit
    if filled.sum() * voxel_ml < config.min_lung_ml:
        return np.zeros_like(filled)
    return filled


def lung_mask_volume(volume: Volume, config: LungMaskConfig = LungMaskConfig()) -> Volume:
    """The lung mask (uint8) on an axis-aligned grid no finer than ``config.mask_spacing_mm`` (fast on big scans)."""
    target = np.maximum(world_axis_spacing(volume.geometry), config.mask_spacing_mm)
    grid = axis_aligned_grid(volume.geometry, tuple(target))
    resampled = resample_to_grid(volume, grid)
    return resampled.with_array(lung_mask(resampled, config).astype(np.uint8))


def grow_mask(mask: Volume, margin_mm: float) -> Volume:
    """``mask`` grown by ``margin_mm`` (exact, in mm); done on the coarse mask grid, where it is cheap."""
    if margin_mm <= 0 or not mask.array.any():
        return mask
    box = bounding_box(mask.array, margin_mm, mask.geometry.spacing_zyx)  # nothing grows beyond it: no work there
    distance = ndimage.distance_transform_edt(mask.array[box] == 0, sampling=mask.geometry.spacing_zyx)
    grown = np.zeros(mask.shape, dtype=np.uint8)
    grown[box] = distance <= margin_mm
    return mask.with_array(grown)


# -- intensity ----------------------------------------------------------------------------------------------------

def window_to_unit(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """HU window [low, high] mapped to 0..1 (float32), clipped."""
    scaled = (np.asarray(values, dtype=np.float32) - np.float32(low)) / np.float32(high - low)
    return np.clip(scaled, 0.0, 1.0)


def apply_clahe(image: np.ndarray, clip_limit: float, kernel_px: Sequence[int] | int | None = None) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of a 0..1 image (2-D or a stack), float32 0..1."""
    from skimage.exposure import equalize_adapthist

    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3:
        return np.stack([apply_clahe(plane, clip_limit, kernel_px) for plane in image])
    if image.size == 0 or float(image.max()) <= float(image.min()):
        return image.copy()  # nothing to equalise (and skimage would stretch a constant image to 1)
    return equalize_adapthist(image, kernel_size=kernel_px, clip_limit=clip_limit).astype(np.float32)


# -- slabs --------------------------------------------------------------------------------------------------------

def slab_ranges(slice_count: int, slice_spacing_mm: float, thickness_mm: float,
                stride_mm: float) -> list[tuple[int, int]]:
    """(start, stop) slice ranges of ``thickness_mm`` slabs every ``stride_mm``; the last one ends at the top."""
    if slice_count < 1:
        return []
    per_slab = max(1, int(round(thickness_mm / slice_spacing_mm)))
    step = max(1, int(round(stride_mm / slice_spacing_mm)))
    if slice_count <= per_slab:
        return [(0, slice_count)]
    ranges = [(start, start + per_slab) for start in range(0, slice_count - per_slab + 1, step)]
    if ranges[-1][1] < slice_count:
        ranges.append((slice_count - per_slab, slice_count))
    return ranges


def maximum_projection(array: np.ndarray, ranges: Sequence[tuple[int, int]]) -> np.ndarray:
    """The maximum over each (start, stop) slice range of a (z, y, x) array: (slabs, y, x)."""
    return np.stack([array[start:stop].max(axis=0) for start, stop in ranges])


@dataclass
class SlabStack:
    """MIP slab images and where they come from.

    ``images`` (S, H, W) float32 0..1; ``z_ranges`` (S, 2) slice ranges [start, stop) of ``geometry``, the
    axis-aligned grid the slabs were projected from (rows = y, columns = x of that grid); ``windows`` the part of
    each slab the network sees (boxes found in a window are shifted back by its corner). Pixel coordinates are
    continuous: x = 0 is the left edge of column 0, so a pixel centre is at index + 0.5.
    """

    images: np.ndarray
    z_ranges: np.ndarray
    geometry: Geometry
    lung_fraction: np.ndarray = field(default_factory=lambda: np.zeros(0))  # lung area share per slab
    windows: np.ndarray | None = None  # (S, 4) y0, x0, y1, x1: the part of each slab the network sees; None: all

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def window(self, index: int) -> tuple[int, int, int, int]:
        """(y0, x0, y1, x1) of the part of slab ``index`` the network sees (the whole image without windows)."""
        if self.windows is None:
            return 0, 0, int(self.images.shape[1]), int(self.images.shape[2])
        y0, x0, y1, x1 = (int(v) for v in self.windows[index])
        return y0, x0, y1, x1

    def window_image(self, index: int) -> np.ndarray:
        """What the network sees of slab ``index``: its window of the image (a view, not a copy)."""
        y0, x0, y1, x1 = self.window(index)
        return self.images[index, y0:y1, x0:x1]

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[1]), int(self.images.shape[2])

    def z_extent_mm(self, index: int) -> tuple[float, float]:
        """World z (mm) of the lower and upper faces of slab ``index``."""
        start, stop = self.z_ranges[index]
        sz, oz = self.geometry.spacing[2], self.geometry.origin[2]
        return oz + (start - 0.5) * sz, oz + (stop - 0.5) * sz

    def pixel_to_world(self, index: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """World LPS points (N, 3) of pixel positions on slab ``index``, at the slab's middle height."""
        start, stop = self.z_ranges[index]
        x, y = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
        ijk = np.stack([x.ravel() - 0.5, y.ravel() - 0.5, np.full(x.size, (start + stop - 1) / 2.0)], axis=-1)
        return self.geometry.ijk_to_world(ijk)

    def world_to_pixel(self, points: np.ndarray) -> np.ndarray:
        """Pixel (x, y) of world LPS points (N, 3) on any slab (the slabs share one in-plane grid)."""
        ijk = self.geometry.world_to_ijk(np.asarray(points, dtype=float).reshape(-1, 3))
        return ijk[:, :2] + 0.5


def crop_to_lungs(volume: Volume, mask: np.ndarray) -> tuple[Volume, np.ndarray]:
    """Keep only the slices (array axis 0) that contain lung; the in-plane size is kept."""
    rows = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
    if rows.size == 0:
        return volume, mask
    first, stop = int(rows[0]), int(rows[-1]) + 1
    cropped = volume.geometry.crop((first, 0, 0), (stop,) + volume.geometry.shape[1:])
    return Volume.from_geometry(volume.array[first:stop], cropped, volume.source), mask[first:stop]


def lung_windows(lung: np.ndarray, multiple: int = 32) -> np.ndarray:
    """Per slab, the window (y0, x0, y1, x1) the network sees: the box of that slab's lung pixels (``lung`` (S, H,
    W) bool, the projected grown mask), each side grown evenly to a multiple of ``multiple`` pixels and moved to
    stay inside the image (a side longer than the image is the whole image). A slab without lung gets the box of
    the whole stack's lung, or the whole image if there is none."""
    count, height, width = lung.shape
    windows = np.zeros((count, 4), dtype=np.int64)
    union = nonzero_extent(lung.any(axis=0))
    for index in range(count):
        extent = nonzero_extent(lung[index]) or union
        if extent is None:
            windows[index] = (0, 0, height, width)
            continue
        (y0, y1), (x0, x1) = (_span_within(*span, size, multiple) for span, size in zip(extent, (height, width)))
        windows[index] = (y0, x0, y1, x1)
    return windows


def _span_within(start: int, stop: int, size: int, multiple: int) -> tuple[int, int]:
    """[start, stop) grown to a multiple of ``multiple`` and moved to lie within [0, size) (capped at size)."""
    first, last = span_to_multiple(start, stop, multiple)
    if last - first >= size:
        return 0, size
    shift = max(0, -first) - max(0, last - size)
    return first + shift, last + shift


def make_slab_stack(volume: Volume, mask: np.ndarray, config: SlabConfig = SlabConfig()) -> SlabStack:
    """Slabs of an axis-aligned volume (HU) and its lung mask (already grown by ``config.mask_margin_mm``, see
    :func:`grow_mask`): window, mask, MIP, CLAHE."""
    geometry = volume.geometry
    if not np.allclose(geometry.direction, IDENTITY_DIRECTION, atol=1e-6):
        raise ValueError("make_slab_stack needs an axis-aligned volume; resample it with resample_volume first")
    image = window_to_unit(volume.array, *config.window_hu)
    if config.mask_outside_lung:
        image[~mask] = 0.0
    ranges = slab_ranges(geometry.shape[0], geometry.spacing[2], config.thickness_mm, config.stride_mm)
    projected = maximum_projection(image, ranges)
    kernel = [max(8, int(round(config.clahe_kernel_mm / s))) for s in (geometry.spacing[1], geometry.spacing[0])]
    slabs = apply_clahe(projected, config.clahe_clip_limit, kernel)
    lung = maximum_projection(mask.astype(np.uint8), ranges) > 0
    windows = lung_windows(lung, config.window_multiple_px) if config.lung_windows else None
    return SlabStack(images=slabs, z_ranges=np.asarray(ranges, dtype=int).reshape(-1, 2), geometry=geometry,
                     lung_fraction=lung.reshape(len(ranges), -1).mean(axis=1), windows=windows)


def slabs_from_mask(volume: Volume, mask_volume: Volume, config: SlabConfig = SlabConfig()) -> SlabStack:
    """The slabs of a scan whose lung mask volume is known: grow the mask, resample the scan and the mask onto the
    part of the target grid the lungs can occupy (in-plane too when the slabs are cut to lung windows: the rest
    would only be masked away), crop to the lung slices, project."""
    grown = grow_mask(mask_volume, config.mask_margin_mm)
    grid = axis_aligned_grid(volume.geometry, config.target_spacing_mm)
    grid = grid.crop(*mask_box_on_grid(grown, grid, in_plane=config.lung_windows))
    resampled = resample_to_grid(volume, grid)
    mask = mask_on_grid(grown, grid)
    cropped, cropped_mask = crop_to_lungs(resampled, mask)
    return make_slab_stack(cropped, cropped_mask, config)


# -- training targets ---------------------------------------------------------------------------------------------

def nodule_boxes_on_slabs(stack: SlabStack, nodules: Sequence[Detection],
                          min_z_overlap: float = 0.3) -> list[np.ndarray]:
    """For every slab, the pixel boxes (N, 4: x0, y0, x1, y1) of the nodules it shows.

    A nodule is on a slab when their z ranges overlap by at least ``min_z_overlap`` of the smaller of the two
    (so a 4 mm nodule counts on a 7.5 mm slab that holds most of it). Boxes are clipped to the image.
    """
    height, width = stack.image_size
    boxes: list[list[list[float]]] = [[] for _ in range(len(stack))]
    for nodule in nodules:
        low, high = nodule.box_min, nodule.box_max
        pixels = stack.world_to_pixel(np.array(list(itertools.product(*zip(low, high)))))  # the box's 8 corners
        x0, y0 = np.clip(pixels.min(axis=0), 0, [width, height])
        x1, y1 = np.clip(pixels.max(axis=0), 0, [width, height])
        if x1 <= x0 or y1 <= y0:
            continue
        for index in range(len(stack)):
            z_low, z_high = stack.z_extent_mm(index)
            overlap = min(high[2], z_high) - max(low[2], z_low)
            needed = min_z_overlap * min(max(high[2] - low[2], 1e-6), z_high - z_low)
            if overlap >= needed and overlap > 0:
                boxes[index].append([x0, y0, x1, y1])
    return [np.asarray(b, dtype=np.float32).reshape(-1, 4) for b in boxes]


def annotations_to_slab_boxes(volume: Volume, annotations: Detections | Sequence[Detection],
                              config: SlabConfig = SlabConfig(),
                              mask_config: LungMaskConfig = LungMaskConfig()) -> tuple[SlabStack, list[np.ndarray]]:
    """Training pairs: the scan's slabs and, per slab, the pixel boxes of the annotated nodules (world mm in).

    Annotations are Detections in LPS mm (e.g. LUNA16's annotations.csv read with read_detections_csv, where each
    nodule is a cube of side ``diameter_mm``).
    """
    stack = slabs_from_mask(volume, lung_mask_volume(volume, mask_config), config)
    items = annotations.items if isinstance(annotations, Detections) else list(annotations)
    return stack, nodule_boxes_on_slabs(stack, items, config.min_z_overlap)
