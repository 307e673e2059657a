"""SAM's prompt encoder (Kirillov et al., Segment Anything, ICCV 2023), as LiteMedSAM uses it: box prompts.

A box's two corners are encoded with random Fourier features of their position (a fixed Gaussian matrix from
the checkpoint) plus a learned embedding per corner; the dense prompt is the learned "no mask" embedding. The
point and mask branches are kept so the published state dict loads strictly, although boxes are all RadAssist
sends.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from radassist.interactive.tinyvit import LayerNorm2d


class RandomFourierPositions(nn.Module):
    """Positions in [0, 1]^2 -> 2 * features values: sin and cos of 2 pi (2 p - 1) G for a Gaussian G (2, F)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, features))

    def encode(self, unit_xy: torch.Tensor) -> torch.Tensor:
        projected = 2 * math.pi * ((2 * unit_xy - 1) @ self.positional_encoding_gaussian_matrix)
        return torch.cat([torch.sin(projected), torch.cos(projected)], dim=-1)

    def grid(self, height: int, width: int) -> torch.Tensor:
        """(2F, height, width) encoding of every cell centre of a grid."""
        matrix = self.positional_encoding_gaussian_matrix
        ys = (torch.arange(height, dtype=matrix.dtype, device=matrix.device) + 0.5) / height
        xs = (torch.arange(width, dtype=matrix.dtype, device=matrix.device) + 0.5) / width
        unit = torch.stack([xs[None, :].expand(height, width), ys[:, None].expand(height, width)], dim=-1)
        return self.encode(unit).permute(2, 0, 1)


class PromptEncoder(nn.Module):
    """Boxes (B, 4) as x0, y0, x1, y1 in input pixels -> sparse (B, 2, D) and dense (B, D, h, w) embeddings."""

    def __init__(self, embed_dim: int = 256, embedding_size: int = 64, input_size: int = 256,
                 mask_in_channels: int = 16) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.embedding_size = embedding_size
        self.input_size = input_size
        self.pe_layer = RandomFourierPositions(embed_dim // 2)
        # 0: negative point, 1: positive point, 2: box top-left corner, 3: box bottom-right corner
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        quarter = mask_in_channels // 4
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, quarter, 2, stride=2), LayerNorm2d(quarter), nn.GELU(),
            nn.Conv2d(quarter, mask_in_channels, 2, stride=2), LayerNorm2d(mask_in_channels), nn.GELU(),
            nn.Conv2d(mask_in_channels, embed_dim, 1))
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def dense_positions(self) -> torch.Tensor:
        """(1, D, h, w) positional encoding of the image embedding's grid."""
        return self.pe_layer.grid(self.embedding_size, self.embedding_size).unsqueeze(0)

    def forward(self, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        corners = (boxes.reshape(-1, 2, 2) + 0.5) / self.input_size  # pixel centres, input is square
        sparse = self.pe_layer.encode(corners)
        sparse = sparse + torch.cat([self.point_embeddings[2].weight, self.point_embeddings[3].weight])[None]
        size = self.embedding_size
        dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(sparse.shape[0], -1, size, size)
        return sparse, dense
