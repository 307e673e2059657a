"""Building blocks every phantom shares: seeded generators, smooth random fields, soft shapes and tube trees.

Phantoms are drawn in world millimetres on an axis-aligned LPS grid (:class:`Grid`), so a shape placed at an LPS
point lands exactly where :meth:`Geometry.world_to_ijk` says it is. Small shapes are rendered as *coverage* (the
fraction of each voxel inside the shape, from a signed distance), which gives the partial-volume edges a scanner
produces and sub-voxel accuracy for thin vessels and small nodules.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from radassist.volume import Geometry


# -- randomness -----------------------------------------------------------------------------------------------
def make_rng(seed: int, *keys: str | int) -> np.random.Generator:
    """A Generator fixed by ``seed`` and a path of keys, so each part of a phantom has its own stream.

    Keys are hashed with CRC-32 (stable across runs and platforms, unlike ``hash``), so adding a new part to a
    generator never changes the random numbers an existing part draws.
    """
    if int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    entropy = [int(seed)] + [zlib.crc32(str(key).encode()) for key in keys]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def random_rotation(rng: np.random.Generator, max_angle_deg: float = 180.0) -> np.ndarray:
    """A 3x3 rotation about a random axis by an angle up to ``max_angle_deg``."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(rng.uniform(-max_angle_deg, max_angle_deg))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


# -- smooth random fields ---------------------------------------------------------------------------------------
def _smoothing_matrix(n_out: int, step: float) -> np.ndarray:
    """Rows: output samples; columns: coarse nodes ``step`` samples apart; Gaussian weights one node wide."""
    n_nodes = int(np.ceil(n_out / step)) + 4
    positions = np.arange(n_out) / step + 2.0
    weights = np.exp(-0.5 * (positions[:, None] - np.arange(n_nodes)[None, :]) ** 2)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def smooth_noise(rng: np.random.Generator, shape: Sequence[int], correlation: float | Sequence[float]) -> np.ndarray:
    """A smooth Gaussian random field (float32, mean 0, std 1) with features about ``correlation`` samples wide.

    White noise on a coarse lattice is spread by separable Gaussian weights (one matrix product per axis), which
    is an order of magnitude faster than filtering or spline-zooming a full-size array.
    """
    shape = tuple(int(s) for s in shape)
    correlations = np.broadcast_to(np.asarray(correlation, dtype=float), (len(shape),))
    matrices = [_smoothing_matrix(n, max(c / 2.0, 0.5)) for n, c in zip(shape, correlations)]
    field = rng.standard_normal(tuple(m.shape[1] for m in matrices), dtype=np.float32)
    for axis, matrix in enumerate(matrices):
        field = np.moveaxis(np.tensordot(matrix, field, axes=([1], [axis])), 0, axis)
    field = np.ascontiguousarray(field, dtype=np.float32)
    field -= field.mean()
    std = field.std()
    return field / std if std > 0 else field


def fractal_noise(rng: np.random.Generator, shape: Sequence[int], correlations: Sequence[float],
                  weights: Sequence[float] | None = None) -> np.ndarray:
    """Sum of smooth fields at several scales (fine texture on coarse variation), normalised to std 1."""
    weights = list(weights) if weights is not None else [1.0] * len(correlations)
    total = np.zeros(tuple(shape), dtype=np.float32)
    for correlation, weight in zip(correlations, weights, strict=True):
        total += np.float32(weight) * smooth_noise(rng, shape, correlation)
    std = total.std()
    return total / std if std > 0 else total


def correlated_noise(rng: np.random.Generator, shape: Sequence[int], sigma: float,
                     axes: Sequence[int] = (-1, -2)) -> np.ndarray:
    """Scanner-like noise: white noise blurred by a [1, 2, 1]/4 kernel along ``axes``, rescaled to std ``sigma``.

    CT and detector noise is correlated over neighbouring pixels by the reconstruction kernel; pure white noise
    looks artificial and is too easy for a network to filter out.
    """
    noise = rng.standard_normal(tuple(shape), dtype=np.float32)
    kernel = np.array([0.25, 0.5, 0.25], dtype=np.float32)
    gain = 1.0
    for axis in axes:
        noise = ndimage.correlate1d(noise, kernel, axis=axis, mode="reflect")
        gain *= float(np.sqrt(np.sum(kernel ** 2)))
    return noise * np.float32(sigma / gain)


def coverage(signed_distance: np.ndarray, voxel_size: float) -> np.ndarray:
    """Fraction of a voxel inside a shape, from the signed distance (mm, negative inside) of its centre."""
    return np.clip(0.5 - signed_distance / voxel_size, 0.0, 1.0).astype(np.float32)


# -- the grid phantoms are drawn on ----------------------------------------------------------------------------
def centred_geometry(shape: Sequence[int], spacing: Sequence[float], z_origin: float | None = None) -> Geometry:
    """An axis-aligned LPS grid centred on x = y = 0 (and on z = 0 unless ``z_origin`` is given)."""
    nz, ny, nx = (int(s) for s in shape)
    sx, sy, sz = (float(s) for s in spacing)
    oz = -(nz - 1) / 2 * sz if z_origin is None else float(z_origin)
    return Geometry(shape=(nz, ny, nx), spacing=(sx, sy, sz), origin=(-(nx - 1) / 2 * sx, -(ny - 1) / 2 * sy, oz))


@dataclass(frozen=True)
class Grid:
    """World coordinates of the voxel centres of an axis-aligned LPS grid, one 1-D array per array axis."""

    geometry: Geometry

    def __post_init__(self) -> None:
        if not np.allclose(self.geometry.direction_matrix, np.eye(3)):
            raise ValueError("phantoms are drawn on axis-aligned grids (identity direction)")

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.geometry.shape

    @property
    def spacing_zyx(self) -> np.ndarray:
        return np.asarray(self.geometry.spacing_zyx)

    def axis(self, index: int) -> np.ndarray:
        """World coordinate (mm) of every sample along array axis ``index`` (0 = z, 1 = y, 2 = x)."""
        n = self.shape[index]
        world_axis = 2 - index
        return self.geometry.origin[world_axis] + np.arange(n) * self.geometry.spacing[world_axis]

    def open_mesh(self, slices: tuple[slice, slice, slice] | None = None) -> tuple[np.ndarray, np.ndarray,
                                                                                   np.ndarray]:
        """Broadcastable (z, y, x) world coordinates of the grid or of a box of it."""
        slices = slices or (slice(None),) * 3
        z = self.axis(0)[slices[0]][:, None, None]
        y = self.axis(1)[slices[1]][None, :, None]
        x = self.axis(2)[slices[2]][None, None, :]
        return z, y, x

    def box(self, low_xyz: Sequence[float], high_xyz: Sequence[float]) -> tuple[slice, slice, slice] | None:
        """Array slices covering the world box [low, high] (x, y, z mm), or None when it misses the grid."""
        corners = np.stack([self.geometry.world_to_zyx(low_xyz), self.geometry.world_to_zyx(high_xyz)])
        start = np.maximum(np.floor(corners.min(axis=0)).astype(int) - 1, 0)
        stop = np.minimum(np.ceil(corners.max(axis=0)).astype(int) + 2, self.shape)
        if np.any(start >= stop):
            return None
        return tuple(slice(int(first), int(last)) for first, last in zip(start, stop))

    @property
    def voxel_size(self) -> float:
        """The typical voxel edge (geometric mean), the width of a partial-volume edge."""
        return float(np.prod(self.geometry.spacing) ** (1.0 / 3.0))


@dataclass
class Stamp:
    """A shape's coverage (0..1) on a box of a grid: paint it into an image or mark it in a mask."""

    slices: tuple[slice, slice, slice]
    coverage: np.ndarray

    def paint(self, image: np.ndarray, value: float | np.ndarray) -> None:
        """Blend ``value`` into ``image`` by coverage (partial volume)."""
        region = image[self.slices]
        if isinstance(value, np.ndarray) and value.shape == image.shape:
            value = value[self.slices]
        region += (value - region) * self.coverage

    def mark(self, mask: np.ndarray, threshold: float = 0.5) -> None:
        mask[self.slices] |= self.coverage >= threshold

    def accumulate(self, total: np.ndarray) -> None:
        """Union of soft shapes: keep the larger coverage."""
        np.maximum(total[self.slices], self.coverage, out=total[self.slices])


def paint_stamp(image: np.ndarray, stamp: Stamp | None, value: float | np.ndarray) -> None:
    """:meth:`Stamp.paint` for a shape that may have missed the grid (None: nothing to paint)."""
    if stamp is not None:
        stamp.paint(image, value)


def ellipsoid_stamp(grid: Grid, center_xyz: Sequence[float], radii_xyz: Sequence[float],
                    rotation: np.ndarray | None = None,
                    surface: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None
                    ) -> Stamp | None:
    """Soft ellipsoid: centre and semi-axes in world mm, optional rotation (columns = its axes in LPS).

    ``surface(u, v, w)`` may return a multiplicative radius factor per point (unit-sphere directions u, v, w)
    to make the outline lobulated or irregular. Distances use a first-order signed-distance estimate
    ``(r - 1) / |grad r|``, exact for spheres and close for ellipsoids.
    """
    center = np.asarray(center_xyz, dtype=float)
    radii = np.asarray(radii_xyz, dtype=float)
    rotation = np.eye(3) if rotation is None else np.asarray(rotation, dtype=float)
    reach = float(radii.max()) * (1.6 if surface is not None else 1.0) + 2 * grid.voxel_size
    slices = grid.box(center - reach, center + reach)
    if slices is None:
        return None
    z, y, x = grid.open_mesh(slices)
    dx, dy, dz = x - center[0], y - center[1], z - center[2]
    # coordinates along the ellipsoid's own axes, scaled to the unit sphere
    local = [(rotation[0, a] * dx + rotation[1, a] * dy + rotation[2, a] * dz) / radii[a] for a in range(3)]
    r = np.sqrt(local[0] ** 2 + local[1] ** 2 + local[2] ** 2)
    safe = np.maximum(r, 1e-6)
    gradient = np.sqrt(sum((component / radii[a]) ** 2 for a, component in enumerate(local))) / safe
    if surface is not None:
        factor = surface(local[0] / safe, local[1] / safe, local[2] / safe)
        r = r / factor
        gradient = gradient / factor
    signed = (r - 1.0) / np.maximum(gradient, 1e-6)
    return Stamp(slices, coverage(signed, grid.voxel_size))


def lobulated_surface(rng: np.random.Generator, amplitude: float
                      ) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """A random smooth radius factor over directions (a few bumps): an irregular, lobulated lesion outline.

    Pass it as ``surface`` to :func:`ellipsoid_stamp`; ``amplitude`` is the largest bump's relative height.
    """
    bumps = rng.normal(size=(5, 3))
    bumps /= np.linalg.norm(bumps, axis=1, keepdims=True)
    heights = rng.uniform(-amplitude, amplitude, size=5)
    sharpness = rng.uniform(1.5, 4.0, size=5)

    def factor(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        total = np.ones(np.broadcast_shapes(np.shape(u), np.shape(v), np.shape(w)))
        for direction, height, sharp in zip(bumps, heights, sharpness):
            total = total + height * np.exp(sharp * (u * direction[0] + v * direction[1] + w * direction[2] - 1.0))
        return np.maximum(total, 0.5)

    return factor


def cylinder_z_stamp(grid: Grid, center_xy: Sequence[float], radii_xy: Sequence[float],
                     z_range: Sequence[float]) -> Stamp | None:
    """Soft elliptic cylinder along z (vertebral bodies, spinal canal): soft side wall, soft flat ends."""
    cx, cy = (float(c) for c in center_xy)
    rx, ry = (float(r) for r in radii_xy)
    z0, z1 = sorted(float(z) for z in z_range)
    slices = grid.box((cx - rx, cy - ry, z0), (cx + rx, cy + ry, z1))
    if slices is None:
        return None
    z, y, x = grid.open_mesh(slices)
    r = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
    side = (r - 1.0) * min(rx, ry)
    ends = np.maximum(z0 - z, z - z1)
    signed = np.maximum(side, ends)
    return Stamp(slices, coverage(signed, grid.voxel_size))


# -- tubes and trees --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TubeSegment:
    """A straight piece of tube from ``start`` to ``end`` (LPS mm) whose radius goes linearly r0 -> r1."""

    start: tuple[float, float, float]
    end: tuple[float, float, float]
    r0: float
    r1: float
    generation: int = 0


def tube_stamp(grid: Grid, segment: TubeSegment, radius_scale: float = 1.0, radius_add: float = 0.0) -> Stamp | None:
    """Soft tube around a segment with round caps; ``radius_scale``/``radius_add`` draw walls around lumens."""
    p0, p1 = np.asarray(segment.start, dtype=float), np.asarray(segment.end, dtype=float)
    r0 = segment.r0 * radius_scale + radius_add
    r1 = segment.r1 * radius_scale + radius_add
    reach = max(r0, r1) + grid.voxel_size
    slices = grid.box(np.minimum(p0, p1) - reach, np.maximum(p0, p1) + reach)
    if slices is None:
        return None
    z, y, x = grid.open_mesh(slices)
    axis = p1 - p0
    length_sq = float(axis @ axis)
    dx, dy, dz = x - p0[0], y - p0[1], z - p0[2]
    if length_sq > 0:
        t = np.clip((dx * axis[0] + dy * axis[1] + dz * axis[2]) / length_sq, 0.0, 1.0)
    else:
        t = np.zeros(np.broadcast_shapes(dx.shape, dy.shape, dz.shape))
    distance = np.sqrt((dx - t * axis[0]) ** 2 + (dy - t * axis[1]) ** 2 + (dz - t * axis[2]) ** 2)
    radius = r0 + (r1 - r0) * t
    return Stamp(slices, coverage(distance - radius, grid.voxel_size))


def render_tubes(grid: Grid, segments: Sequence[TubeSegment], radius_scale: float = 1.0,
                 radius_add: float = 0.0) -> np.ndarray:
    """Coverage (float32, full grid) of the union of tube segments."""
    total = np.zeros(grid.shape, dtype=np.float32)
    for segment in segments:
        stamp = tube_stamp(grid, segment, radius_scale, radius_add)
        if stamp is not None:
            stamp.accumulate(total)
    return total


def _perpendicular(direction: np.ndarray) -> np.ndarray:
    helper = np.array([1.0, 0.0, 0.0]) if abs(direction[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    normal = np.cross(direction, helper)
    return normal / np.linalg.norm(normal)


def branching_tree(rng: np.random.Generator, root: Sequence[float], direction: Sequence[float], length: float,
                   radius: float, generations: int, inside: Callable[[np.ndarray], bool] | None = None,
                   length_ratio: float = 0.78, radius_ratio: float = 0.76, spread_deg: tuple[float, float] = (
                       22.0, 42.0), min_radius: float = 0.35, first_generation: int = 0) -> list[TubeSegment]:
    """A bifurcating tube tree (airways, vessels): each branch splits in two, shorter and thinner.

    Radii shrink by ``radius_ratio`` per generation (Murray's law gives 2**(-1/3) ~ 0.79 for symmetric splits)
    and each segment tapers into its children. Branches whose end point falls outside ``inside`` are shortened
    and stop there, so a tree fills its organ without leaving it.
    """
    segments: list[TubeSegment] = []
    stack = [(np.asarray(root, dtype=float), np.asarray(direction, dtype=float) / np.linalg.norm(direction),
              float(length), float(radius), first_generation)]
    while stack:
        start, heading, seg_length, seg_radius, generation = stack.pop()
        end = start + heading * seg_length
        stop = False
        if inside is not None and not inside(end):
            for fraction in (0.7, 0.45, 0.25):
                end = start + heading * seg_length * fraction
                if inside(end):
                    break
            else:
                continue
            stop = True
        child_radius = max(seg_radius * radius_ratio, min_radius)
        segments.append(TubeSegment(tuple(start), tuple(end), seg_radius, child_radius, generation))
        if stop or generation - first_generation + 1 >= generations or seg_radius <= min_radius:
            continue
        normal = _perpendicular(heading)
        spin = rng.uniform(0, 2 * np.pi)
        normal = normal * np.cos(spin) + np.cross(heading, normal) * np.sin(spin)
        for sign in (1.0, -1.0):
            angle = np.deg2rad(rng.uniform(*spread_deg))
            child = heading * np.cos(angle) + sign * normal * np.sin(angle)
            child += rng.normal(scale=0.08, size=3)
            child /= np.linalg.norm(child)
            child_length = seg_length * length_ratio * rng.uniform(0.8, 1.2)
            stack.append((end, child, child_length, child_radius, generation + 1))
    return segments


def polyline_segments(points: Sequence[Sequence[float]], radius: float | Sequence[float]) -> list[TubeSegment]:
    """Tube segments joining consecutive points (a curved tube such as a rib)."""
    points = np.asarray(points, dtype=float)
    radii = np.broadcast_to(np.asarray(radius, dtype=float), (len(points),))
    return [TubeSegment(tuple(points[i]), tuple(points[i + 1]), float(radii[i]), float(radii[i + 1]))
            for i in range(len(points) - 1)]


def psf_blur(image: np.ndarray, sigma_mm: float, spacing_zyx: Sequence[float]) -> np.ndarray:
    """The scanner's point-spread function: a Gaussian blur of ``sigma_mm`` (no blur along axes it would not reach)."""
    sigmas = [sigma_mm / s if sigma_mm / s >= 0.3 else 0.0 for s in spacing_zyx]
    if not any(sigmas):
        return image
    return ndimage.gaussian_filter(image, sigmas, truncate=3.0)


# -- anatomy both CT phantoms share -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Body:
    """Sizes of a trunk phantom's patient in mm, derived from the field of view so small test grids stay anatomical."""

    ax: float  # half width
    ay: float  # half depth (anterior-posterior)
    z_low: float
    z_high: float
    k: float  # anatomy scale relative to an adult (half width 160 mm)

    @classmethod
    def of(cls, grid: Grid) -> Body:
        x, y, z = grid.axis(2), grid.axis(1), grid.axis(0)
        ax = 0.46 * (x[-1] - x[0])
        ay = min(0.42 * (y[-1] - y[0]), 0.75 * ax)
        return cls(ax=ax, ay=ay, z_low=float(z[0]), z_high=float(z[-1]), k=ax / 160.0)

    def z_at(self, fraction: float) -> float:
        return self.z_low + fraction * (self.z_high - self.z_low)

    def fraction_of(self, z: np.ndarray | float) -> np.ndarray | float:
        return (z - self.z_low) / (self.z_high - self.z_low)


def trunk_mask(grid: Grid, half_width: float, half_depth: float, shrink_mm: float = 0.0) -> np.ndarray:
    """Inside of a trunk cross-section (a slightly boxy ellipse, flatter at the back), ``shrink_mm`` inside the skin.

    Returned at full grid shape so it can index an image directly.
    """
    _, y, x = grid.open_mesh()
    ax, ay = half_width - shrink_mm, half_depth - shrink_mm
    ay_local = np.where(y > 0, ay * 0.95, ay)  # lying on the table flattens the back
    inside = (np.abs(x / ax) ** 2.3 + np.abs(y / ay_local) ** 2.3) <= 1.0
    return np.broadcast_to(inside, grid.shape)


def paint_vertebral_column(grid: Grid, image: np.ndarray, center_y: float, scale: float, z_low: float,
                           z_high: float) -> None:
    """Vertebrae (cortical shell, cancellous core), discs, neural arch, spinous processes and the spinal canal.

    ``center_y`` is the vertebral bodies' centre (LPS y, mm); ``scale`` shrinks an adult's sizes for small phantoms.
    """
    k = scale
    body_rx, body_ry = 18.0 * k, 15.0 * k
    vertebra, disc = 22.0 * k, 5.0 * k
    arch_center = (0.0, center_y + body_ry + 6.0 * k)
    stamps: list[tuple[Stamp | None, float]] = []
    z = z_high + vertebra
    while z > z_low - vertebra:
        top, bottom = z, z - vertebra
        stamps += [
            (cylinder_z_stamp(grid, (0.0, center_y), (body_rx, body_ry), (bottom, top)), 1000.0),
            (cylinder_z_stamp(grid, (0.0, center_y), (body_rx - 2.0, body_ry - 2.0), (bottom + 1.5, top - 1.5)),
             250.0),
            (cylinder_z_stamp(grid, (0.0, center_y), (body_rx, body_ry), (bottom - disc, bottom)), 90.0),
            (cylinder_z_stamp(grid, arch_center, (10 * k, 10 * k), (bottom + 2, top - 2)), 700.0),
            (ellipsoid_stamp(grid, (0.0, center_y + body_ry + 22 * k, (top + bottom) / 2 - 4 * k),
                             (3.5 * k, 12 * k, 7 * k)), 650.0),
        ]
        z -= vertebra + disc
    stamps.append((cylinder_z_stamp(grid, arch_center, (6 * k, 6 * k), (z_low - 5, z_high + 5)), 15.0))
    for stamp, value in stamps:
        paint_stamp(image, stamp, value)
