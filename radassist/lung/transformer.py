"""Deformable DETR's transformer: sine positional encoding, encoder and decoder layers, reference points.

Post-norm layers as in Zhu et al. (ICLR 2021): the encoder's self-attention and the decoder's cross-attention are
multi-scale deformable attention; the decoder's self-attention among object queries is ordinary multi-head
attention. Every size is taken from tensor shapes, so the same module runs (and exports) at any image size.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from radassist.lung.deformable_attention import MultiScaleDeformableAttention, SpatialShapes


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """logit(x), clamped so that 0 and 1 stay finite."""
    x = x.clamp(0.0, 1.0)
    return torch.log(x.clamp(min=eps) / (1.0 - x).clamp(min=eps))


def refine_boxes(delta: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Box head output added to its reference, (x, y) points or (cx, cy, w, h) boxes, in logit space (no sigmoid)."""
    reference = inverse_sigmoid(reference)
    if reference.shape[-1] == 4:
        return delta + reference
    return torch.cat([delta[..., :2] + reference, delta[..., 2:]], -1)


class SinePositionEncoding(nn.Module):
    """2-D sine-cosine position encoding (DETR): half the channels encode y, half x, at geometric frequencies.

    Coordinates are normalised to (0, scale] over the *valid* (unpadded) part of the image, so a padded image
    encodes its content the same as an unpadded one.

    Args:
        num_features: output channels (the model width); must be even, half go to each axis.
        temperature: base of the geometric frequency ladder (10000, as in "Attention is all you need").
        scale: range the normalised coordinates are stretched to (2*pi in DETR).
    """

    def __init__(self, num_features: int = 256, temperature: float = 10000.0, scale: float = 2 * math.pi) -> None:
        super().__init__()
        if num_features % 4:
            raise ValueError(f"num_features must be divisible by 4 for the sine encoding, got {num_features}")
        self.per_axis = num_features // 2
        self.temperature = temperature
        self.scale = scale

    def forward(self, features: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, H, W) features [+ (B, H, W) padding mask, True = padding] -> (B, num_features, H, W)."""
        not_mask = torch.ones_like(features[:, 0]) if padding_mask is None else (~padding_mask).to(features.dtype)
        eps = 1e-6
        y = not_mask.cumsum(1)
        x = not_mask.cumsum(2)
        y = (y - 0.5) / (y[:, -1:, :] + eps) * self.scale
        x = (x - 0.5) / (x[:, :, -1:] + eps) * self.scale
        index = torch.arange(self.per_axis, dtype=features.dtype, device=features.device)
        frequencies = self.temperature ** (2 * torch.div(index, 2, rounding_mode="floor") / self.per_axis)

        def encode(positions: torch.Tensor) -> torch.Tensor:  # (B, H, W) -> (B, H, W, per_axis): sin, cos, ...
            angles = positions[..., None] / frequencies
            return torch.stack([angles[..., 0::2].sin(), angles[..., 1::2].cos()], dim=4).flatten(3)

        return torch.cat([encode(y), encode(x)], dim=3).permute(0, 3, 1, 2)


class FeedForward(nn.Module):
    """Linear - ReLU - dropout - linear - dropout, added back and layer-normed (post-norm)."""

    def __init__(self, embed_dim: int, hidden_dim: int, dropout: float) -> None:
        super().__init__()
        self.linear1 = nn.Linear(embed_dim, hidden_dim)
        self.linear2 = nn.Linear(hidden_dim, embed_dim)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.dropout2(self.linear2(self.dropout1(F.relu(self.linear1(x))))))


class DeformableEncoderLayer(nn.Module):
    """Deformable self-attention over all levels' pixels, then the feed-forward block."""

    def __init__(self, embed_dim: int = 256, feedforward_dim: int = 1024, dropout: float = 0.1, num_heads: int = 8,
                 num_levels: int = 4, num_points: int = 4) -> None:
        super().__init__()
        self.self_attn = MultiScaleDeformableAttention(embed_dim, num_heads, num_levels, num_points)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(embed_dim)
        self.ffn = FeedForward(embed_dim, feedforward_dim, dropout)

    def forward(self, src: torch.Tensor, pos: torch.Tensor, reference_points: torch.Tensor,
                spatial_shapes: SpatialShapes, padding_mask: torch.Tensor | None) -> torch.Tensor:
        attended = self.self_attn(src + pos, reference_points, src, spatial_shapes, padding_mask)
        return self.ffn(self.norm(src + self.dropout(attended)))


def encoder_reference_points(spatial_shapes: SpatialShapes, valid_ratios: torch.Tensor | None,
                             like: torch.Tensor) -> torch.Tensor:
    """Every pixel centre of every level as normalised (x, y), seen from every level: (B, sum HW, levels, 2).

    ``valid_ratios`` (B, levels, 2) is the unpadded fraction (x, y) of each level; None means no padding.
    """
    batch = like.shape[0]
    points = []
    for level, (height, width) in enumerate(spatial_shapes):
        ys = torch.arange(height, dtype=like.dtype, device=like.device) + 0.5
        xs = torch.arange(width, dtype=like.dtype, device=like.device) + 0.5
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        grid_y, grid_x = grid_y.reshape(1, -1), grid_x.reshape(1, -1)
        if valid_ratios is not None:
            grid_y = grid_y / (valid_ratios[:, None, level, 1] * height)
            grid_x = grid_x / (valid_ratios[:, None, level, 0] * width)
        else:
            grid_y, grid_x = grid_y / height, grid_x / width
        points.append(torch.stack([grid_x, grid_y], -1).expand(batch, -1, -1))
    reference = torch.cat(points, 1)[:, :, None]  # (B, S, 1, 2)
    if valid_ratios is None:
        return reference.expand(-1, -1, len(spatial_shapes), -1)
    return reference * valid_ratios[:, None]


class DeformableEncoder(nn.Module):
    """``num_layers`` copies of an encoder layer applied in turn."""

    def __init__(self, layer: DeformableEncoderLayer, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))

    def forward(self, src: torch.Tensor, pos: torch.Tensor, spatial_shapes: SpatialShapes,
                valid_ratios: torch.Tensor | None, padding_mask: torch.Tensor | None) -> torch.Tensor:
        reference_points = encoder_reference_points(spatial_shapes, valid_ratios, src)
        for layer in self.layers:
            src = layer(src, pos, reference_points, spatial_shapes, padding_mask)
        return src


class DeformableDecoderLayer(nn.Module):
    """Self-attention among the object queries, deformable cross-attention into the image, feed-forward."""

    def __init__(self, embed_dim: int = 256, feedforward_dim: int = 1024, dropout: float = 0.1, num_heads: int = 8,
                 num_levels: int = 4, num_points: int = 4) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(embed_dim, num_heads, dropout=dropout, batch_first=True)
        self.dropout_self = nn.Dropout(dropout)
        self.norm_self = nn.LayerNorm(embed_dim)
        self.cross_attn = MultiScaleDeformableAttention(embed_dim, num_heads, num_levels, num_points)
        self.dropout_cross = nn.Dropout(dropout)
        self.norm_cross = nn.LayerNorm(embed_dim)
        self.ffn = FeedForward(embed_dim, feedforward_dim, dropout)

    def forward(self, target: torch.Tensor, query_pos: torch.Tensor, reference_points: torch.Tensor,
                memory: torch.Tensor, spatial_shapes: SpatialShapes,
                memory_padding_mask: torch.Tensor | None) -> torch.Tensor:
        q = k = target + query_pos
        attended = self.self_attn(q, k, target, need_weights=False)[0]
        target = self.norm_self(target + self.dropout_self(attended))
        attended = self.cross_attn(target + query_pos, reference_points, memory, spatial_shapes, memory_padding_mask)
        target = self.norm_cross(target + self.dropout_cross(attended))
        return self.ffn(target)


class DeformableDecoder(nn.Module):
    """Decoder layers; returns every layer's output (for auxiliary losses) and the reference points each used.

    With ``bbox_embed`` set (one box head per layer: iterative box refinement), each layer's box becomes the
    next layer's reference; otherwise all layers share the initial reference points.
    """

    def __init__(self, layer: DeformableDecoderLayer, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.bbox_embed: nn.ModuleList | None = None

    def forward(self, target: torch.Tensor, reference_points: torch.Tensor, memory: torch.Tensor,
                spatial_shapes: SpatialShapes, valid_ratios: torch.Tensor | None, query_pos: torch.Tensor,
                memory_padding_mask: torch.Tensor | None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        outputs, references = [], []
        levels = len(spatial_shapes)
        for index, layer in enumerate(self.layers):
            if valid_ratios is None:
                level_reference = reference_points[:, :, None].expand(-1, -1, levels, -1)
            elif reference_points.shape[-1] == 4:
                level_reference = reference_points[:, :, None] * torch.cat([valid_ratios, valid_ratios], -1)[:, None]
            else:
                level_reference = reference_points[:, :, None] * valid_ratios[:, None]
            references.append(reference_points)
            target = layer(target, query_pos, level_reference, memory, spatial_shapes, memory_padding_mask)
            outputs.append(target)
            if self.bbox_embed is not None:
                reference_points = refine_boxes(self.bbox_embed[index](target), reference_points).sigmoid().detach()
        return outputs, references


class DeformableTransformer(nn.Module):
    """Flatten the levels, encode them, decode the object queries. The sizes are those of
    :class:`~radassist.lung.model.LungDetrConfig`; the defaults are Deformable DETR's."""

    def __init__(self, embed_dim: int = 256, num_heads: int = 8, encoder_layers: int = 6, decoder_layers: int = 6,
                 feedforward_dim: int = 1024, dropout: float = 0.1, num_levels: int = 4, encoder_points: int = 4,
                 decoder_points: int = 4) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.encoder = DeformableEncoder(DeformableEncoderLayer(embed_dim, feedforward_dim, dropout, num_heads,
                                                                num_levels, encoder_points), encoder_layers)
        self.decoder = DeformableDecoder(DeformableDecoderLayer(embed_dim, feedforward_dim, dropout, num_heads,
                                                                num_levels, decoder_points), decoder_layers)
        self.level_embed = nn.Parameter(torch.empty(num_levels, embed_dim))
        self.reference_points = nn.Linear(embed_dim, 2)
        self._initialise()

    def _initialise(self) -> None:
        for parameter in self.parameters():
            if parameter.dim() > 1:
                nn.init.xavier_uniform_(parameter)
        for module in self.modules():
            if isinstance(module, MultiScaleDeformableAttention):
                module.reset_parameters()
        nn.init.xavier_uniform_(self.reference_points.weight, gain=1.0)
        nn.init.zeros_(self.reference_points.bias)
        nn.init.normal_(self.level_embed)

    @staticmethod
    def valid_ratios(mask: torch.Tensor) -> torch.Tensor:
        """(B, H, W) padding mask -> (B, 2) unpadded fraction along (x, y)."""
        valid_h = (~mask[:, :, 0]).sum(1).to(torch.float32)
        valid_w = (~mask[:, 0, :]).sum(1).to(torch.float32)
        return torch.stack([valid_w / mask.shape[2], valid_h / mask.shape[1]], -1)

    def forward(self, sources: list[torch.Tensor], masks: list[torch.Tensor] | None,
                positions: list[torch.Tensor], query_embed: torch.Tensor
                ) -> tuple[list[torch.Tensor], torch.Tensor, list[torch.Tensor]]:
        """Levels (B, C, H_l, W_l) with masks (B, H_l, W_l, or None) and encodings -> decoder outputs per layer,
        the initial reference points (B, Q, 2) and the reference points each decoder layer used."""
        spatial_shapes = [(source.shape[2], source.shape[3]) for source in sources]
        flat_sources = torch.cat([source.flatten(2).transpose(1, 2) for source in sources], 1)
        flat_positions = torch.cat([position.flatten(2).transpose(1, 2) + self.level_embed[level][None, None]
                                    for level, position in enumerate(positions)], 1)
        if masks is not None:
            flat_mask: torch.Tensor | None = torch.cat([mask.flatten(1) for mask in masks], 1)
            valid_ratios: torch.Tensor | None = torch.stack([self.valid_ratios(mask) for mask in masks], 1)
            valid_ratios = valid_ratios.to(flat_sources.dtype)
        else:
            flat_mask = valid_ratios = None
        memory = self.encoder(flat_sources, flat_positions, spatial_shapes, valid_ratios, flat_mask)
        query_pos, target = (part[None].expand(memory.shape[0], -1, -1)
                             for part in torch.split(query_embed, self.embed_dim, dim=1))
        initial_reference = self.reference_points(query_pos).sigmoid()
        outputs, references = self.decoder(target, initial_reference, memory, spatial_shapes, valid_ratios, query_pos,
                                           flat_mask)
        return outputs, initial_reference, references
