"""The registration half of the joint network: spatial gradients -> sampling grid -> warped image, and the grid as a
:class:`DisplacementField` in LPS millimetres.

Conventions (tensors are ``(batch, channel, z, y, x)``, NumPy order):

* The registration decoder predicts **spatial gradients** ``g`` of shape (N, 3, z, y, x): channel ``c`` is the
  derivative, along array axis ``c`` (z, y, x), of the position that voxel samples in the moving image, in voxels
  per voxel. They lie in (0, 2) (2 x sigmoid), so positions grow strictly along every axis and the grid never folds
  along an axis.
* **Integration**: position_c = cumsum(g_c along axis c) - 1. Gradients of exactly 1 give position = voxel index,
  the identity; raising the first gradient of a row by ``s`` shifts the whole row by ``s`` voxels.
* The **sampling grid** holds, for every fixed voxel, the continuous (z, y, x) index it reads in the moving array.
  Both images are on the same (fixed, working) grid, so the displacement in world mm is
  ``D @ diag(spacing) @ (grid_ijk - ijk)``: ITK's fixed -> moving direction, what DisplacementField stores.
* The **spatial transformer** is MONAI's ``Warp``: it samples the moving image trilinearly at identity + the
  grid's displacement (``grid_sample`` with ``align_corners=True``: index 0 and n-1 are the ends of [-1, 1]).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from monai.networks.blocks import Warp

from radassist.results.displacement import DisplacementField
from radassist.volume import Geometry


def integrate_gradients(gradients: torch.Tensor) -> torch.Tensor:
    """Sampling grid (N, 3, z, y, x) of continuous (z, y, x) voxel indices from spatial gradients (N, 3, z, y, x)."""
    if gradients.ndim != 5 or gradients.shape[1] != 3:
        raise ValueError(f"gradients must be (N, 3, z, y, x), got {tuple(gradients.shape)}")
    positions = [torch.cumsum(gradients[:, axis], dim=axis + 1) - 1.0 for axis in range(3)]
    return torch.stack(positions, dim=1)


def identity_grid(spatial_shape: tuple[int, int, int], batch: int = 1, device: torch.device | str | None = None,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The identity sampling grid (N, 3, z, y, x): every voxel reads its own index."""
    axes = [torch.arange(n, device=device, dtype=dtype) for n in spatial_shape]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=0)
    return grid.unsqueeze(0).expand(batch, -1, -1, -1, -1)


def warp(moving: torch.Tensor, grid: torch.Tensor, mode: str = "bilinear",
         padding_mode: str = "border") -> torch.Tensor:
    """3-D spatial transformer: ``moving`` (N, C, z, y, x) sampled at ``grid`` (N, 3, z, y, x) voxel indices.

    ``mode="bilinear"`` is trilinear for 5-D tensors; use ``"nearest"`` for label maps.
    """
    if moving.ndim != 5 or grid.ndim != 5 or moving.shape[2:] != grid.shape[2:]:
        raise ValueError(f"moving {tuple(moving.shape)} and grid {tuple(grid.shape)} must be 5-D on the same grid")
    grid = grid.to(moving.dtype)
    displacement = grid - identity_grid(tuple(grid.shape[2:]), grid.shape[0], grid.device, grid.dtype)
    with warnings.catch_warnings():  # MONAI says each time that it uses torch's grid_sample (it is what we want)
        warnings.simplefilter("ignore", UserWarning)
        warper = Warp(mode, padding_mode)  # a new one each call: Warp caches its identity grid by shape only
    return warper(moving, displacement)


def grid_to_displacement(grid: np.ndarray | torch.Tensor, geometry: Geometry) -> DisplacementField:
    """One sampling grid (3, z, y, x) on ``geometry`` as a fixed -> moving DisplacementField in LPS mm."""
    if isinstance(grid, torch.Tensor):
        grid = grid.detach().cpu().double().numpy()
    grid = np.asarray(grid, dtype=np.float64)
    if grid.shape != (3, *geometry.shape):
        raise ValueError(f"grid must be (3, {', '.join(map(str, geometry.shape))}), got {grid.shape}")
    return shift_to_displacement(grid - np.indices(geometry.shape, dtype=np.float64), geometry)


def shift_to_displacement(shift: np.ndarray, geometry: Geometry) -> DisplacementField:
    """A (3, z, y, x) shift in voxels along (z, y, x) (sampled index minus own index) as a fixed -> moving
    DisplacementField in LPS mm: ``D @ diag(spacing) @ (di, dj, dk)`` at every voxel.

    The matrix is applied term by term, skipping its zero entries (all off-diagonal ones on an axis-aligned grid),
    in float64 whatever the shift's type.
    """
    if shift.shape != (3, *geometry.shape):
        raise ValueError(f"shift must be (3, {', '.join(map(str, geometry.shape))}), got {shift.shape}")
    matrix = geometry.direction_matrix @ np.diag(geometry.spacing)  # (i, j, k) voxels -> LPS mm
    vectors = np.zeros((*geometry.shape, 3), dtype=np.float64)
    for world in range(3):
        component = vectors[..., world]
        for index in range(3):
            if matrix[world, index] != 0.0:
                component += np.multiply(shift[2 - index], matrix[world, index], dtype=np.float64)
    return DisplacementField(vectors=vectors, geometry=geometry,
                             metadata={"direction": "fixed->moving", "source": "radassist.brain sampling grid"})


def displacement_to_grid(field: DisplacementField) -> np.ndarray:
    """Inverse of :func:`grid_to_displacement`: the (3, z, y, x) voxel-index sampling grid of a field."""
    geometry = field.geometry
    inverse = np.linalg.inv(geometry.direction_matrix @ np.diag(geometry.spacing))
    shift_ijk = np.einsum("ab,zyxb->azyx", inverse, field.vectors)
    return np.indices(geometry.shape, dtype=np.float64) + shift_ijk[::-1]
