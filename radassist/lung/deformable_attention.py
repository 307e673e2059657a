"""Multi-scale deformable attention (Zhu et al., Deformable DETR, ICLR 2021, Sec. 4.1) in plain PyTorch.

Each query looks at a few learned sampling points around its reference point on every feature level and mixes
them with learned weights, instead of attending to every pixel. The official implementation ships a CUDA kernel;
here there are two plain-PyTorch ways to compute the same sum:

* ``torch.nn.functional.grid_sample`` (bilinear, zero outside the map), then weigh and sum: what training uses
  (its backward is grid_sample's) and what ONNX export traces (GridSample, opset >= 16). Level sizes are read from
  tensor shapes and never turned into Python constants, so an exported graph accepts any image size.
* for inference on the CPU, every sample's four bilinear corners are looked up in one zero-bordered table and
  summed with weights (bilinear times attention) by a single ``embedding_bag`` call, a fused gather-multiply-add.
  On a 2-core CPU this takes a third of the time of the grid_sample path, which is about 40 % of Lung-DETR's time
  per slab.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

SpatialShapes = Sequence[tuple[int, int]]
"""(height, width) of each feature level, in the order the levels were flattened."""


def level_sizes_xy(spatial_shapes: SpatialShapes, like: torch.Tensor) -> torch.Tensor:
    """(levels, 2) tensor of (width, height), the scale that turns pixel offsets into normalised ones."""
    rows = [torch.stack([torch.as_tensor(w), torch.as_tensor(h)]) for h, w in spatial_shapes]
    return torch.stack(rows).to(device=like.device, dtype=like.dtype)


BORDER = 2  # zero pixels around each level in the lookup table: every clamped corner lands on the map or on them


def multi_scale_deformable_attention(value: torch.Tensor, spatial_shapes: SpatialShapes,
                                     sampling_locations: torch.Tensor,
                                     attention_weights: torch.Tensor) -> torch.Tensor:
    """Sample every level bilinearly at the given points and take the weighted sum per head.

    Args:
        value: (batch, sum of H*W over levels, heads, head_dim), the levels flattened one after another.
        spatial_shapes: (H, W) of each level.
        sampling_locations: (batch, queries, heads, levels, points, 2), (x, y) in [0, 1] of each level's map,
            0 and 1 being the outer edges of the first and last pixel (``align_corners=False``).
        attention_weights: (batch, queries, heads, levels, points), already normalised over levels and points.

    Returns:
        (batch, queries, heads * head_dim).
    """
    if torch.is_grad_enabled() or torch.onnx.is_in_onnx_export() or value.device.type != "cpu":
        return _attention_by_grid_sample(value, spatial_shapes, sampling_locations, attention_weights)
    return _attention_by_corner_lookup(value, spatial_shapes, sampling_locations, attention_weights)


def _attention_by_grid_sample(value: torch.Tensor, spatial_shapes: SpatialShapes, sampling_locations: torch.Tensor,
                              attention_weights: torch.Tensor) -> torch.Tensor:
    """grid_sample per level, weighted and summed as soon as it is sampled (training, ONNX export, GPU)."""
    head_dim = value.shape[3]
    grids = 2 * sampling_locations - 1  # grid_sample's [-1, 1]
    # (B, Q, M, L, P) -> (B*M, 1, Q, L, P): one weight per sampled point, broadcast over the head's channels
    weights = attention_weights.transpose(1, 2).flatten(0, 1).unsqueeze(1)
    # Weigh and sum each level as soon as it is sampled: no (B*M, D, Q, L*P) stack is ever built, which on the
    # CPU is most of this function's time (a 5440-token encoder layer would allocate ~90 MB per slab for it).
    in_place = not torch.is_grad_enabled()
    output: torch.Tensor | None = None
    start = 0
    for level, (height, width) in enumerate(spatial_shapes):
        end = start + height * width
        # (B, HW, M, D) -> (B*M, D, H, W)
        level_value = value[:, start:end].permute(0, 2, 3, 1).flatten(0, 1).reshape(-1, head_dim, height, width)
        # (B, Q, M, P, 2) -> (B*M, Q, P, 2)
        level_grid = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
        sampled = F.grid_sample(level_value, level_grid, mode="bilinear", padding_mode="zeros",
                                align_corners=False)  # (B*M, D, Q, P)
        level_weights = weights[:, :, :, level]
        weighted = (sampled.mul_(level_weights) if in_place else sampled * level_weights).sum(-1)  # (B*M, D, Q)
        if output is None:
            output = weighted
        elif in_place:
            output += weighted
        else:
            output = output + weighted
        start = end
    if output is None:
        raise ValueError("spatial_shapes names no feature level")
    batch, queries, heads = sampling_locations.shape[0], sampling_locations.shape[1], sampling_locations.shape[2]
    return output.reshape(batch, heads * head_dim, queries).transpose(1, 2)


def _attention_by_corner_lookup(value: torch.Tensor, spatial_shapes: SpatialShapes,
                                sampling_locations: torch.Tensor, attention_weights: torch.Tensor) -> torch.Tensor:
    """The same sum as one embedding_bag over the four bilinear corners of every sample (CPU inference).

    Each level is laid out with a zero border of BORDER pixels; sample positions are clamped to at most 1.5 pixels
    outside the map, where all four corners fall on the border, so points outside contribute exactly zero as with
    grid_sample's zero padding, and no index needs a validity mask.
    """
    if not spatial_shapes:
        raise ValueError("spatial_shapes names no feature level")
    batch, _, heads, head_dim = value.shape
    queries = sampling_locations.shape[1]
    tables, table_starts, start, rows = [], [], 0, 0
    for height, width in spatial_shapes:
        level = value[:, start:start + height * width].reshape(batch, height, width, heads, head_dim)
        bordered = F.pad(level.permute(0, 3, 1, 2, 4), (0, 0, BORDER, BORDER, BORDER, BORDER))
        tables.append(bordered.reshape(batch, heads, -1, head_dim))
        table_starts.append(rows)
        rows += (height + 2 * BORDER) * (width + 2 * BORDER)
        start += height * width
    table = torch.cat(tables, 2).reshape(-1, head_dim)  # rows: (batch, head, level, y, x)
    size_xy = torch.tensor([[w, h] for h, w in spatial_shapes], dtype=value.dtype)[:, None, :]  # (L, 1, 2)
    # (B, Q, M, L, P, 2) -> (B, M, Q, L, P, 2) pixel positions, pixel centres at integers
    pixels = sampling_locations.permute(0, 2, 1, 3, 4, 5) * size_xy - 0.5
    pixels = torch.clamp(pixels, min=torch.full_like(size_xy, -1.5), max=size_xy + 0.5)
    corner = pixels.floor()
    fraction = pixels - corner
    corner = corner.to(torch.int64) + BORDER
    pitch = torch.tensor([w + 2 * BORDER for _, w in spatial_shapes], dtype=torch.int64)[:, None]  # (L, 1)
    head_base = torch.arange(batch * heads, dtype=torch.int64).reshape(batch, heads, 1, 1, 1) * rows
    top_left = head_base + torch.tensor(table_starts, dtype=torch.int64)[:, None] + corner[..., 1] * pitch \
        + corner[..., 0]  # (B, M, Q, L, P)
    indices = torch.stack([top_left, top_left + 1, top_left + pitch, top_left + pitch + 1], -1)
    weights = attention_weights.permute(0, 2, 1, 3, 4)
    fx, fy = fraction[..., 0], fraction[..., 1]
    lower = weights * fy
    upper = weights - lower
    corner_weights = torch.stack([upper - upper * fx, upper * fx, lower - lower * fx, lower * fx], -1)
    summed = F.embedding_bag(indices.reshape(batch * heads * queries, -1), table,
                             per_sample_weights=corner_weights.reshape(batch * heads * queries, -1), mode="sum")
    return summed.reshape(batch, heads, queries, head_dim).permute(0, 2, 1, 3).reshape(batch, queries, -1)


class MultiScaleDeformableAttention(nn.Module):
    """The attention module: projections around :func:`multi_scale_deformable_attention`.

    Args:
        embed_dim: model width (Deformable DETR: 256).
        num_heads: attention heads (Deformable DETR: 8); ``embed_dim`` must be divisible by it.
        num_levels: feature levels sampled (Deformable DETR: 4).
        num_points: sampling points per head and level (Deformable DETR: 4).
    """

    def __init__(self, embed_dim: int = 256, num_heads: int = 8, num_levels: int = 4, num_points: int = 4) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim, self.num_heads, self.num_levels, self.num_points = embed_dim, num_heads, num_levels, num_points
        self.sampling_offsets = nn.Linear(embed_dim, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(embed_dim, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(embed_dim, embed_dim)
        self.output_proj = nn.Linear(embed_dim, embed_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Start with points on a ring of directions, one per head, at distances 1..P pixels (paper's init)."""
        nn.init.zeros_(self.sampling_offsets.weight)
        angles = torch.arange(self.num_heads, dtype=torch.float32) * (2.0 * math.pi / self.num_heads)
        directions = torch.stack([angles.cos(), angles.sin()], -1)
        directions = directions / directions.abs().max(-1, keepdim=True).values
        grid = directions[:, None, None, :].repeat(1, self.num_levels, self.num_points, 1)
        grid = grid * torch.arange(1, self.num_points + 1, dtype=torch.float32)[None, None, :, None]
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for projection in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(projection.weight)
            nn.init.zeros_(projection.bias)

    def forward(self, query: torch.Tensor, reference_points: torch.Tensor, value: torch.Tensor,
                spatial_shapes: SpatialShapes, value_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attend from ``query`` to the flattened multi-level ``value``.

        Args:
            query: (batch, queries, embed_dim), positional encoding already added.
            reference_points: (batch, queries, levels, 2) as normalised (x, y), or (..., 4) as normalised
                (cx, cy, w, h) boxes whose size scales the offsets (box refinement / two-stage variants).
            value: (batch, sum of H*W, embed_dim).
            spatial_shapes: (H, W) of each level.
            value_padding_mask: (batch, sum of H*W), True where the value is image padding (ignored).
        """
        batch, queries = query.shape[0], query.shape[1]
        heads, levels, points = self.num_heads, self.num_levels, self.num_points
        projected = self.value_proj(value)
        if value_padding_mask is not None:
            projected = projected.masked_fill(value_padding_mask[..., None], 0.0)
        projected = projected.reshape(batch, -1, heads, self.embed_dim // heads)
        offsets = self.sampling_offsets(query).reshape(batch, queries, heads, levels, points, 2)
        weights = self.attention_weights(query).reshape(batch, queries, heads, levels * points)
        weights = weights.softmax(-1).reshape(batch, queries, heads, levels, points)
        if reference_points.shape[-1] == 2:
            scale = level_sizes_xy(spatial_shapes, offsets)[None, None, None, :, None, :]
            locations = reference_points[:, :, None, :, None, :] + offsets / scale
        elif reference_points.shape[-1] == 4:
            centre = reference_points[:, :, None, :, None, :2]
            size = reference_points[:, :, None, :, None, 2:]
            locations = centre + offsets / points * size * 0.5
        else:
            raise ValueError(f"reference_points must end in 2 or 4 values, got {reference_points.shape[-1]}")
        sampled = multi_scale_deformable_attention(projected, spatial_shapes, locations, weights)
        return self.output_proj(sampled)
