"""The classical engine's registration core: an affine stage, then a coarse-to-fine smooth free-form deformation, both
fitted by L-BFGS to the intensity difference at a lattice of voxels of the fixed brain, with the tumour left out.

Why this design (``benchmarks/BRAIN_REGISTRATION.md`` has the figures): the deformation between two brain MRIs is
smooth at the scale of millimetres, so a few ten thousand control points describe it; fitting them to a hundred
thousand voxels with a quasi-Newton optimiser converges in tens of iterations, where dense demons need hundreds of
passes over the whole volume and elastix's stochastic gradient descent sees 2048 voxels per step.

The voxels are taken only where the similarity may pull: the fixed brain, and, where each voxel lands, the moving
brain. The background pulls on nothing. The tumour (of either image) is either masked the same way (the masked
similarity of Estienne et al. 2020, here with a classical model: the deformation there is carried in from the tissue
around it by the smoothness of the model) or, by default, weighed by a robust square in the free-form stage, so an
unchanged tumour is aligned by its own contrast and a changed one is left to the tissue around it. On the study's
pairs the robust form raised the tumour Dice of unchanged tumours from 0.87-0.92 to 0.92-0.97 and kept the masked
form's error where the tumour had resolved.

The model, per level ``l`` (control spacing ``h_l``, halved at each level): a grid of displacement vectors (LPS mm)
along the fixed image's axes over the brain's box, smoothed by a Gaussian of ``0.6 h_l`` (close to a cubic
B-spline's spread) and interpolated trilinearly. The levels add up: each fits what the coarser ones left, on less
smoothed images. The fixed -> moving map is ``p -> A(p + u(p))``, ``A`` the affine found first. Because the grids
run along the fixed image's axes, the field on any lattice of the fixed grid is three small matrix products, and so
is its gradient: an iteration costs one trilinear lookup of the moving image (intensities and gradient together)
at the lattice voxels, and a few matrix products.

The similarity is the mean squared difference of the intensities z-scored inside each image's mask (both images
show the same sequence), plus two penalties on each level's field: a diffusion (first-difference) penalty that
grows level by level, so the fine grids do not fit noise, and a bending (second-difference) penalty, which carries
the field's slope, not just its value, into the masked tumour (a biharmonic rather than a harmonic fill). Both were
chosen on the study's known-warp pairs (3 to 8 mm), where they lowered the end-point error by 20 to 45 %.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from radassist.errors import InputError
from radassist.runtime.progress import Progress
from radassist.volume import Geometry, Volume

ROUNDS = 2
"""Optimiser runs per level; between them, which sample voxels land in the moving mask is looked at again."""
MIN_CONTROL_VOXELS = 3.0
"""Control points are at least this many voxels apart: finer grids fold coarse images (3 mm voxels)."""
SPLINE_SPREAD = 0.6
"""Gaussian sigma of the control-grid smoothing, in control spacings (a cubic B-spline's is 0.58)."""
TUMOUR_SIMILARITIES = ("robust", "masked")
"""What the tumour adds to the deformable stage's similarity. ``masked``: nothing (Estienne et al. 2020's masked
similarity): its deformation comes from the tissue around it. ``robust``: its voxels pull through Geman-McClure's
robust square, so where the tumour still looks the same in both images it is aligned by its own contrast, and where
it has changed (grown, shrunk, resolved) it pulls almost nothing, as if masked. The affine stage always masks it."""


@dataclass(frozen=True)
class DeformableConfig:
    """Settings of the registration core; distances in mm."""

    affine: bool = True
    affine_sigmas_mm: tuple[float, ...] = (4.0, 2.0)            # image smoothing per affine level
    affine_sample_spacing_mm: tuple[float, ...] = (4.0, 3.0)    # lattice of voxels compared per affine level
    affine_iterations: int = 40
    deformable: bool = True
    image_sigmas_mm: tuple[float, ...] = (2.0, 0.7, 0.7)        # image smoothing per deformable level
    sample_spacing_mm: tuple[float, ...] = (3.0, 2.0, 2.0)      # lattice of voxels compared per level
    control_spacing_mm: float = 24.0                             # first level; halved at each next level
    iterations: int = 60                                         # L-BFGS iterations per level
    regularisation: tuple[float, ...] = (0.05, 0.2, 0.5)         # diffusion penalty weight per level (last repeats)
    bending: float = 1.0                                         # bending (second-difference) penalty weight
    margin_mm: float = 16.0                                      # moving box: its mask's bounding box and this
    tumour_similarity: str = "robust"                            # in the tumour: "robust" or "masked" (below)
    robust_scale: float = 0.15                                   # Geman-McClure scale there, in z-score units
    threads: int | None = 1                                      # torch threads for the fit (None: torch's default)

    def __post_init__(self) -> None:
        if self.tumour_similarity not in TUMOUR_SIMILARITIES:
            raise ValueError(f"tumour_similarity must be one of {', '.join(TUMOUR_SIMILARITIES)}, "
                             f"not {self.tumour_similarity!r}")
        if self.robust_scale <= 0:
            raise ValueError("robust_scale must be positive")
        if not (self.affine or self.deformable):
            raise ValueError("enable the affine stage, the deformable stage or both")
        if len(self.sample_spacing_mm) != len(self.image_sigmas_mm) or not self.image_sigmas_mm:
            raise ValueError("image_sigmas_mm and sample_spacing_mm need one value per level")
        if len(self.affine_sample_spacing_mm) != len(self.affine_sigmas_mm) or not self.affine_sigmas_mm:
            raise ValueError("affine_sigmas_mm and affine_sample_spacing_mm need one value per level")
        if min(*self.sample_spacing_mm, *self.affine_sample_spacing_mm) <= 0:
            raise ValueError("sample spacings must be positive")
        if (self.control_spacing_mm <= 0 or not self.regularisation or min(self.regularisation) < 0
                or self.bending < 0 or min(self.iterations, self.affine_iterations) < 1):
            raise ValueError("control_spacing_mm > 0, regularisation (one or more weights) >= 0, bending >= 0 and "
                             "iterations >= 1 are needed")

    def regularisation_at(self, level: int) -> float:
        """The diffusion weight of deformable level ``level`` (0 = coarsest); the last value serves finer ones."""
        return self.regularisation[min(level, len(self.regularisation) - 1)]


@dataclass
class DeformableResult:
    """The fixed -> moving displacement (z, y, x, 3) in LPS mm on the fixed grid (float32), the affine (4x4, fixed
    world -> moving world) and what each stage's optimiser ended with."""

    vectors: np.ndarray
    affine: np.ndarray
    stages: dict[str, dict]


# -- images ---------------------------------------------------------------------------------------------------------

def normalised(array: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(x - mean) / std inside ``mask`` (float32): the images' own scales never enter the similarity."""
    array = np.asarray(array, dtype=np.float32)
    values = array[mask]
    std = float(values.std()) if values.size else 0.0
    return (array - float(values.mean() if values.size else 0.0)) / np.float32(std if std > 0 else 1.0)


def _box(mask: np.ndarray, spacing_zyx: Sequence[float], margin_mm: float) -> tuple[slice, slice, slice]:
    slices = []
    for axis, (n, spacing) in enumerate(zip(mask.shape, spacing_zyx)):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        margin = int(np.ceil(margin_mm / spacing))
        slices.append(slice(max(int(present[0]) - margin, 0), min(int(present[-1]) + margin + 1, n)))
    return tuple(slices)


def _smoothed(stack: np.ndarray, sigma_mm: float, spacing_zyx: Sequence[float]) -> np.ndarray:
    if sigma_mm <= 0:
        return stack
    sigma = [sigma_mm / s for s in spacing_zyx]
    return np.stack([ndimage.gaussian_filter(channel, sigma, mode="nearest", truncate=3.0) for channel in stack])


@dataclass
class _Image:
    """One image's sequences (C, z, y, x) cropped to its box, its mask there, where it pulls only as far as it
    still matches (its tumour; empty when masked outright), and the box's geometry."""

    stack: np.ndarray
    mask: np.ndarray
    geometry: Geometry
    robust: np.ndarray


def _prepare(volumes: Sequence[Volume], mask: np.ndarray, margin_mm: float,
             robust: np.ndarray | None = None) -> _Image:
    """The sequences z-scored in ``mask`` and cropped to the box of ``mask`` and ``robust`` grown by
    ``margin_mm``."""
    geometry = volumes[0].geometry
    robust = np.zeros_like(mask) if robust is None else robust & ~mask
    box = _box(mask | robust, geometry.spacing_zyx, margin_mm)
    stack = np.stack([normalised(v.array, mask)[box] for v in volumes])
    return _Image(stack, mask[box], geometry.crop([s.start for s in box], [s.stop for s in box]), robust[box])


def _to_normalised(geometry: Geometry) -> np.ndarray:
    """4x4: LPS mm -> grid_sample's (x, y, z) in [-1, 1] (align_corners=True) on ``geometry``."""
    sizes = np.array(geometry.shape[::-1], dtype=float)
    scale = np.diag([*(2.0 / np.maximum(sizes - 1, 1)), 1.0])
    shift = np.eye(4)
    shift[:3, 3] = -1.0
    return shift @ scale @ np.linalg.inv(geometry.ijk_to_lps)


@dataclass
class _Lattice:
    """Every ``stride``-th voxel of the fixed box: its geometry, the world points (N, 3) inside the fixed mask (and,
    with ``robust``, its robust part), their flat indices in the lattice, the smoothed fixed intensities there
    (C, N) and which points lie in the fixed robust part (N,)."""

    geometry: Geometry
    points: torch.Tensor
    flat: torch.Tensor
    values: torch.Tensor
    robust: torch.Tensor


def _lattice(fixed: _Image, spacing_mm: float, sigma_mm: float, robust: bool = False) -> _Lattice:
    box = fixed.geometry
    stride = [max(1, int(round(spacing_mm / s))) for s in box.spacing_zyx]
    take = tuple(slice(None, None, s) for s in stride)
    mask = fixed.mask[take] | fixed.robust[take] if robust else fixed.mask[take]
    geometry = Geometry(shape=mask.shape, spacing=tuple(s * t for s, t in zip(box.spacing, stride[::-1])),
                        origin=box.origin, direction=box.direction)
    values = _smoothed(fixed.stack, sigma_mm, box.spacing_zyx)[(slice(None), *take)][:, mask]
    points = geometry.zyx_to_world(np.argwhere(mask).astype(float))
    return _Lattice(geometry, torch.from_numpy(points.astype(np.float32)), torch.from_numpy(np.flatnonzero(mask)),
                    torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)),
                    torch.from_numpy(fixed.robust[take][mask]))


class _Moving:
    """The moving sequences smoothed for a level, their gradients (LPS, per mm) and the mask, sampled together at
    world points: one trilinear lookup gives the intensities and the similarity's gradient, with no autograd
    through the image."""

    def __init__(self, moving: _Image, sigma_mm: float):
        smoothed = _smoothed(moving.stack, sigma_mm, moving.geometry.spacing_zyx)
        geometry = moving.geometry
        to_index = np.linalg.inv(geometry.direction_matrix @ np.diag(geometry.spacing))  # LPS mm -> (i, j, k)
        gradients = []
        for channel in smoothed:
            by_index = np.gradient(channel)[::-1]                                         # d/di, d/dj, d/dk
            gradients += [sum(np.float32(to_index[a, w]) * by_index[a] for a in range(3)) for w in range(3)]
        stack = np.concatenate([smoothed, np.stack(gradients), moving.mask[None].astype(np.float32),
                                moving.robust[None].astype(np.float32)])
        self.channels = len(smoothed)
        self.tensor = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32))[None]
        self.to_normalised = torch.from_numpy(_to_normalised(geometry).astype(np.float32))

    def _sample(self, moved: torch.Tensor) -> torch.Tensor:
        normalised = moved @ self.to_normalised[:3, :3].T + self.to_normalised[:3, 3]
        return F.grid_sample(self.tensor, normalised.view(1, -1, 1, 1, 3), mode="bilinear", padding_mode="border",
                             align_corners=True).view(self.tensor.shape[1], -1)

    def landing(self, moved: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Where the moved points land (N,): 1 in the moving mask or its robust part, else 0; and True in the robust
        part. Held fixed while the optimiser runs: a weight that flips as points cross the mask's edge would make
        the similarity jump under its feet."""
        mask, robust = self._sample(moved)[-2:]
        return (mask + robust > 0.5).float(), robust > 0.5

    def curvature(self, moved: torch.Tensor, weight: torch.Tensor, linear: torch.Tensor) -> torch.Tensor:
        """Gauss-Newton curvature of the similarity per point and displacement component (N, 3): how fast it
        grows when the point moves along each axis before ``linear`` (the affine) is applied."""
        sampled = self._sample(moved)
        c = self.channels
        gradients = sampled[c:4 * c].view(c, 3, -1).permute(0, 2, 1) @ linear          # (C, N, 3)
        return (2.0 / weight.sum().clamp(min=1.0)) * weight.unsqueeze(1) * (gradients ** 2).sum(0)

    def difference(self, values: torch.Tensor, moved: torch.Tensor, weight: torch.Tensor,
                   robust: torch.Tensor | None = None, scale: float = 1.0) -> tuple[float, torch.Tensor]:
        """The weighted mean squared difference to ``values`` (C, N) and its gradient (N, 3) with respect to the
        moved points (N, 3, LPS mm). At the ``robust`` points (N, bool) the squared difference ``s`` is replaced by
        Geman-McClure's ``s / (1 + s / scale**2)``: a point that matches pulls as in the mean square, one that
        differs by several ``scale`` (a tumour that has changed) pulls almost nothing."""
        sampled = self._sample(moved)
        c = self.channels
        total = weight.sum().clamp(min=1.0)
        residual = (sampled[:c] - values) * weight                              # (C, N)
        squared = (residual * residual).sum(0)                                  # (N,)
        if robust is not None and bool(robust.any()):
            damping = torch.where(robust, 1.0 / (1.0 + squared / scale ** 2), torch.ones_like(squared))
            squared = squared * damping
            residual = residual * damping ** 2                                  # d/ds of s / (1 + s / c^2)
        value = float(squared.sum() / total)
        gradient = (2.0 / total) * (residual.unsqueeze(1) * sampled[c:4 * c].view(c, 3, -1)).sum(0)
        return value, gradient.T


def _minimise(parameters: list[torch.Tensor], loss: Callable[[], float], iterations: int, progress: Progress,
              message: str) -> float:
    """L-BFGS with a strong Wolfe line search; ``loss`` returns the value and leaves the gradients in ``.grad``."""
    optimiser = torch.optim.LBFGS(parameters, lr=1.0, max_iter=iterations, history_size=10,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)
    calls = [0]
    value = [float("nan")]

    def closure() -> torch.Tensor:
        progress.check_cancelled()
        optimiser.zero_grad()
        value[0] = loss()
        calls[0] += 1
        progress.update(min(calls[0] / (1.25 * iterations), 1.0), message)
        return torch.tensor(value[0])

    optimiser.step(closure)
    return value[0]


# -- affine ---------------------------------------------------------------------------------------------------------

def _centroid(image: _Image) -> np.ndarray:
    return image.geometry.zyx_to_world(np.argwhere(image.mask).mean(axis=0))


def fit_affine(fixed: _Image, moving: _Image, config: DeformableConfig, progress: Progress) -> tuple[np.ndarray,
                                                                                                    dict]:
    """4x4 fixed world -> moving world: the masks' centroids matched, then 12 parameters fitted coarse to fine."""
    centre = torch.from_numpy(_centroid(fixed).astype(np.float32))
    shift = torch.from_numpy((_centroid(moving) - _centroid(fixed)).astype(np.float32))
    radius = 50.0  # mm: a unit change of a matrix parameter moves the brain's edge about as far as a mm of shift
    matrix = torch.zeros((3, 3), requires_grad=True)
    translation = torch.zeros(3, requires_grad=True)
    losses = []
    levels = list(zip(config.affine_sigmas_mm, config.affine_sample_spacing_mm))
    for index, (sigma, spacing) in enumerate(levels):
        lattice = _lattice(fixed, spacing, sigma)
        moving_level = _Moving(moving, sigma)
        relative = lattice.points - centre
        def moved() -> torch.Tensor:
            return (relative @ (torch.eye(3) + matrix / radius).T + centre + shift + translation)

        def loss(lattice: _Lattice = lattice, moving_level: _Moving = moving_level) -> float:
            points = moved()
            value, gradient = moving_level.difference(lattice.values, points.detach(), weight)
            (points * gradient).sum().backward()  # the image's gradient chained into the 12 parameters
            return value

        for round_ in range(ROUNDS):
            with torch.no_grad():
                weight = moving_level.landing(moved())[0]
            sub = progress.sub((index + round_ / ROUNDS) / len(levels), (index + (round_ + 1) / ROUNDS) / len(levels))
            value = _minimise([matrix, translation], loss, config.affine_iterations // ROUNDS, sub,
                              "affine registration")
        losses.append(value)
    with torch.no_grad():
        linear = (torch.eye(3) + matrix / radius).double().numpy()
        offset = (centre + shift + translation).double().numpy() - linear @ centre.double().numpy()
    affine = np.eye(4)
    affine[:3, :3], affine[:3, 3] = linear, offset
    return affine, {"loss": losses}


# -- free-form deformation ------------------------------------------------------------------------------------------

def _interpolation(positions: np.ndarray, count: int) -> np.ndarray:
    """(len(positions), count) linear interpolation weights at continuous indices, clamped at both ends."""
    positions = np.clip(positions, 0.0, count - 1.0)
    low = np.minimum(np.floor(positions).astype(int), max(count - 2, 0))
    fraction = positions - low
    weights = np.zeros((len(positions), count), dtype=np.float32)
    rows = np.arange(len(positions))
    weights[rows, low] = 1.0 - fraction
    if count > 1:
        weights[rows, low + 1] += fraction
    return weights


def _gaussian_matrix(count: int, sigma: float) -> np.ndarray:
    """(count, count) Gaussian smoothing along one axis, zero beyond the ends."""
    offsets = np.arange(count)[:, None] - np.arange(count)[None, :]
    radius = max(1, int(np.ceil(2.5 * sigma)))
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2) * (np.abs(offsets) <= radius)
    total = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2).sum()
    return (kernel / total).astype(np.float32)


def _separable(values: torch.Tensor, matrices: Sequence[torch.Tensor]) -> torch.Tensor:
    """(3, gz, gy, gx) -> (3, nz, ny, nx) through one (n, g) matrix per axis."""
    out = torch.einsum("cijk,zi->czjk", values, matrices[0])
    out = torch.einsum("czjk,yj->czyk", out, matrices[1])
    return torch.einsum("czyk,xk->czyx", out, matrices[2])


class _Level:
    """One level's control grid: displacement vectors (3, gz, gy, gx) in LPS mm along the fixed grid's axes."""

    def __init__(self, box: Geometry, spacing_mm: float):
        extent = (np.array(box.shape[::-1]) - 1) * np.array(box.spacing)            # i, j, k mm
        counts = np.maximum(np.ceil(extent / spacing_mm).astype(int) + 3, 4)          # one spacing more each side
        start = box.ijk_to_world(-((counts - 1) * spacing_mm - extent) / 2 / np.array(box.spacing))
        self.geometry = Geometry(shape=tuple(int(c) for c in counts[::-1]), spacing=(spacing_mm,) * 3,
                                 origin=tuple(start), direction=box.direction)
        self.spacing_mm = spacing_mm
        self.values = torch.zeros((3, *self.geometry.shape), requires_grad=True)
        self.smoothing = [torch.from_numpy(_gaussian_matrix(n, SPLINE_SPREAD)) for n in self.geometry.shape]

    def matrices(self, grid: Geometry) -> list[torch.Tensor]:
        """Per (z, y, x) axis, the (n, g) matrix taking this level's values to ``grid`` (smoothing included)."""
        to_control = np.linalg.inv(self.geometry.ijk_to_lps) @ grid.ijk_to_lps      # grid ijk -> control ijk
        if np.abs(to_control[:3, :3] - np.diag(np.diag(to_control[:3, :3]))).max() > 1e-6:
            raise ValueError("a control grid must run along the axes of the grid it is evaluated on")
        matrices = []
        for axis in range(3):                                                         # z, y, x
            ijk = 2 - axis
            positions = to_control[ijk, 3] + to_control[ijk, ijk] * np.arange(grid.shape[axis])
            weights = torch.from_numpy(_interpolation(positions, self.geometry.shape[axis]))
            matrices.append(weights @ self.smoothing[axis])
        return matrices

    def smoothed(self) -> torch.Tensor:
        return _separable(self.values, self.smoothing)

    def on(self, grid: Geometry) -> torch.Tensor:
        """The displacement (3, z, y, x) on every voxel of ``grid``; beyond the control grid, its edge values."""
        return _separable(self.values, self.matrices(grid))


def _diffusion(field: torch.Tensor, spacing_mm: float) -> torch.Tensor:
    """Mean squared first difference of a smoothed control grid, per mm (the field's gradient energy)."""
    return sum(((torch.diff(field, dim=dim) / spacing_mm) ** 2).mean() for dim in (1, 2, 3))


def _bending(field: torch.Tensor, spacing_mm: float) -> torch.Tensor:
    """Mean squared second difference of a smoothed control grid along each axis, per mm (its curvature energy),
    times the spacing squared so that it weighs like :func:`_diffusion` at every level."""
    return sum(((torch.diff(field, n=2, dim=dim) / spacing_mm ** 2) ** 2).mean()
               for dim in (1, 2, 3)) * spacing_mm ** 2


def _step_scale(level: _Level, matrices: Sequence[torch.Tensor], lattice: _Lattice, curvature: torch.Tensor) -> float:
    """How many mm one unit of the optimiser's parameters is: the inverse square root of the median Gauss-Newton
    curvature of the control points that see data. With it the optimiser's first step is about a Newton step;
    without it a fine level (many control points, each seeing few voxels) barely moves in its iteration budget."""
    probe = torch.zeros_like(level.values, requires_grad=True)
    with torch.enable_grad():
        squared = _separable(probe, [m * m for m in matrices]).reshape(3, -1)[:, lattice.flat].T
        (squared * curvature).sum().backward()
    diagonal = probe.grad.flatten()
    seen = diagonal[diagonal > 1e-3 * float(diagonal.max())]
    return 1.0 / float(seen.median().sqrt()) if len(seen) and float(seen.median()) > 0 else 1.0


def fit_free_form(fixed: _Image, moving: _Image, affine: np.ndarray, config: DeformableConfig,
                  progress: Progress) -> tuple[list[_Level], dict]:
    """The coarse-to-fine control grids; each level fits what the ones before left, on less smoothed images."""
    linear = torch.from_numpy(affine[:3, :3].astype(np.float32))
    offset = torch.from_numpy(affine[:3, 3].astype(np.float32))
    levels: list[_Level] = []
    losses = []
    count = len(config.image_sigmas_mm)
    for index, (sigma, spacing) in enumerate(zip(config.image_sigmas_mm, config.sample_spacing_mm)):
        lattice = _lattice(fixed, spacing, sigma, robust=True)
        moving_level = _Moving(moving, sigma)
        with torch.no_grad():
            base = lattice.points.clone()
            for level in levels:
                base += level.on(lattice.geometry).reshape(3, -1)[:, lattice.flat].T
        spacing_mm = max(config.control_spacing_mm / 2 ** index, MIN_CONTROL_VOXELS * max(fixed.geometry.spacing))
        level = _Level(fixed.geometry, spacing_mm)
        matrices = level.matrices(lattice.geometry)

        with torch.no_grad():
            weight = moving_level.landing(base @ linear.T + offset)[0]
            scale = _step_scale(level, matrices, lattice, moving_level.curvature(base @ linear.T + offset, weight,
                                                                               linear))

        def displacement(level: _Level = level, matrices: list = matrices, lattice: _Lattice = lattice,
                         scale: float = scale) -> torch.Tensor:
            return scale * _separable(level.values, matrices).reshape(3, -1)[:, lattice.flat].T   # (N, 3)

        def loss(level: _Level = level, base: torch.Tensor = base, lattice: _Lattice = lattice,
                 moving_level: _Moving = moving_level) -> float:
            shift = displacement()
            with torch.no_grad():
                value, gradient = moving_level.difference(lattice.values, (base + shift) @ linear.T + offset,
                                                          weight, robust, config.robust_scale)
            smoothed = scale * level.smoothed()
            penalty = (config.regularisation_at(index) * _diffusion(smoothed, level.spacing_mm)
                       + config.bending * _bending(smoothed, level.spacing_mm))
            ((shift * (gradient @ linear)).sum() + penalty).backward()
            return value + float(penalty.detach())

        for round_ in range(ROUNDS):
            with torch.no_grad():
                moved = (base + displacement()) @ linear.T + offset
                weight, lands_robust = moving_level.landing(moved)
                robust = lattice.robust | lands_robust
            sub = progress.sub((index + round_ / ROUNDS) / count, (index + (round_ + 1) / ROUNDS) / count)
            value = _minimise([level.values], loss, config.iterations // ROUNDS, sub,
                              f"deformable registration, level {index + 1}/{count}")
        losses.append(value)
        level.values = (scale * level.values).detach()
        levels.append(level)
    return levels, {"loss": losses, "control_spacing_mm": [level.spacing_mm for level in levels]}


def _dense(levels: list[_Level], geometry: Geometry, affine: np.ndarray) -> np.ndarray:
    """u(p) = A(p + sum_l u_l(p)) - p at every voxel of ``geometry`` (z, y, x, 3), float32."""
    total = torch.zeros((3, *geometry.shape))
    for level in levels:
        total += level.on(geometry)
    total = total.numpy()
    to_world = geometry.ijk_to_lps
    linear = affine[:3, :3] @ to_world[:3, :3] - to_world[:3, :3]            # (A - I) on voxel positions
    offset = affine[:3, :3] @ to_world[:3, 3] + affine[:3, 3] - to_world[:3, 3]
    vectors = np.empty((*geometry.shape, 3), dtype=np.float32)
    for c in range(3):
        component = vectors[..., c]
        component[...] = offset[c]
        for axis in range(3):                                                # z, y, x
            index = np.arange(geometry.shape[axis], dtype=np.float32).reshape([-1 if b == axis else 1
                                                                               for b in range(3)])
            component += np.float32(linear[c, 2 - axis]) * index
        for d in range(3):
            if affine[c, d] != 0.0:
                component += np.float32(affine[c, d]) * total[d]
    return vectors


def register_deformable(fixed: Sequence[Volume], moving: Sequence[Volume], fixed_mask: np.ndarray,
                        moving_mask: np.ndarray, config: DeformableConfig | None = None,
                        progress: Progress | None = None, fixed_robust: np.ndarray | None = None,
                        moving_robust: np.ndarray | None = None) -> DeformableResult:
    """Register ``moving`` to ``fixed`` (the same sequences in the same order, each list on one grid).

    ``*_mask``: where each image's intensities pull (its brain minus its tumour), on its own grid. ``*_robust``:
    where they pull only as far as they still match (its tumour), in the deformable stage; None: nowhere.
    """
    config = config or DeformableConfig()
    progress = progress or Progress()
    if len(fixed) != len(moving) or not fixed:
        raise ValueError("give the same non-empty list of sequences for both images")
    for mask, volume, role in ((fixed_mask, fixed[0], "fixed"), (moving_mask, moving[0], "moving")):
        if np.shape(mask) != volume.shape or not np.any(mask):
            raise InputError(volume.source.path, f"the {role} image has no voxel left for registration once the "
                                                 f"tumour is excluded: check its brain mask and tumour labels")
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        fixed_image = _prepare(fixed, np.asarray(fixed_mask, dtype=bool), 0.0,  # the control grids reach beyond
                               None if fixed_robust is None else np.asarray(fixed_robust, dtype=bool))
        moving_image = _prepare(moving, np.asarray(moving_mask, dtype=bool), config.margin_mm,
                                None if moving_robust is None else np.asarray(moving_robust, dtype=bool))
        stages: dict[str, dict] = {}
        affine = np.eye(4)
        split = 0.2 if config.affine and config.deformable else (0.9 if config.affine else 0.0)
        if config.affine:
            affine, stages["affine"] = fit_affine(fixed_image, moving_image, config, progress.sub(0.0, split))
        levels: list[_Level] = []
        if config.deformable:
            levels, stages["deformable"] = fit_free_form(fixed_image, moving_image, affine, config,
                                                         progress.sub(split, 0.9))
        progress.update(0.92, "dense displacement field")
        with torch.no_grad():
            vectors = _dense(levels, fixed[0].geometry, affine)
    finally:
        torch.set_num_threads(threads)
    progress.update(1.0, "registration done")
    return DeformableResult(vectors, affine, stages)
