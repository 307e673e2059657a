"""SAM's mask decoder (Kirillov et al., Segment Anything, ICCV 2023) with its two-way transformer, as in LiteMedSAM.

Output tokens (an IoU token and four mask tokens) are joined by the prompt tokens; a two-layer transformer lets
tokens attend to the image embedding and the image attend back to the tokens; the embedding is upscaled 4x by
two transposed convolutions and each mask token, through its own 3-layer MLP, gives the weights of a dot
product with the upscaled map. LiteMedSAM uses the first mask (single-mask output) and a 256 x 256 logit map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from radassist.interactive.tinyvit import LayerNorm2d
from radassist.nets.mlp import HeadMlp


class TokenAttention(nn.Module):
    """Multi-head attention whose projections may shrink the width (``downsample`` 2 for cross-attention)."""

    def __init__(self, dim: int, heads: int, downsample: int = 1) -> None:
        super().__init__()
        inner = dim // downsample
        self.heads = heads
        self.q_proj = nn.Linear(dim, inner)
        self.k_proj = nn.Linear(dim, inner)
        self.v_proj = nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        return x.reshape(batch, tokens, self.heads, width // self.heads).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q, k, v = self._split(self.q_proj(q)), self._split(self.k_proj(k)), self._split(self.v_proj(v))
        attn = (q @ k.transpose(-2, -1)) / (q.shape[-1] ** 0.5)
        out = attn.softmax(dim=-1) @ v
        batch, heads, tokens, width = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(batch, tokens, heads * width))


class FeedForward(nn.Module):
    """lin1, ReLU, lin2 (the MLP inside the two-way transformer)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(F.relu(self.lin1(x)))


class TwoWayBlock(nn.Module):
    """Token self-attention, tokens -> image, token MLP, image -> tokens; post-norm after each, residual except
    for the first layer's self-attention (which also skips the token positional encoding)."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, downsample: int, first: bool) -> None:
        super().__init__()
        self.first = first
        self.self_attn = TokenAttention(dim, heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = TokenAttention(dim, heads, downsample)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, mlp_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = TokenAttention(dim, heads, downsample)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor,
                key_pe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.first:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        queries = self.norm2(queries + self.cross_attn_token_to_image(queries + query_pe, keys + key_pe, keys))
        queries = self.norm3(queries + self.mlp(queries))
        keys = self.norm4(keys + self.cross_attn_image_to_token(keys + key_pe, queries + query_pe, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """``depth`` two-way blocks and a last token -> image attention."""

    def __init__(self, depth: int = 2, dim: int = 256, heads: int = 8, mlp_dim: int = 2048,
                 downsample: int = 2) -> None:
        super().__init__()
        self.layers = nn.ModuleList(TwoWayBlock(dim, heads, mlp_dim, downsample, first=i == 0) for i in range(depth))
        self.final_attn_token_to_image = TokenAttention(dim, heads, downsample)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(self, image: torch.Tensor, image_pe: torch.Tensor,
                tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keys = image.flatten(2).transpose(1, 2)
        key_pe = image_pe.flatten(2).transpose(1, 2)
        queries = tokens
        for layer in self.layers:
            queries, keys = layer(queries, keys, tokens, key_pe)
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(queries + tokens, keys + key_pe, keys))
        return queries, keys


class MaskDecoder(nn.Module):
    """Image embedding (B, D, h, w) + prompts -> mask logits (B, 1, 4h, 4w) and predicted IoU (B, 1)."""

    def __init__(self, dim: int = 256, multimask_outputs: int = 3, depth: int = 2, heads: int = 8,
                 mlp_dim: int = 2048, iou_head_depth: int = 3, iou_head_hidden: int = 256) -> None:
        super().__init__()
        self.mask_count = multimask_outputs + 1
        self.transformer = TwoWayTransformer(depth, dim, heads, mlp_dim)
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(self.mask_count, dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, 2, stride=2), LayerNorm2d(dim // 4), nn.GELU(),
            nn.ConvTranspose2d(dim // 4, dim // 8, 2, stride=2), nn.GELU())
        self.output_hypernetworks_mlps = nn.ModuleList(HeadMlp(dim, dim, dim // 8, 3) for _ in range(self.mask_count))
        self.iou_prediction_head = HeadMlp(dim, iou_head_hidden, self.mask_count, iou_head_depth)

    def forward(self, image_embedding: torch.Tensor, image_pe: torch.Tensor, sparse: torch.Tensor,
                dense: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The single-mask output (the first mask token), as LiteMedSAM predicts with ``multimask_output=False``."""
        batch = sparse.shape[0]
        outputs = torch.cat([self.iou_token.weight, self.mask_tokens.weight])[None].expand(batch, -1, -1)
        tokens = torch.cat([outputs, sparse], dim=1)
        if image_embedding.shape[0] != batch:
            image_embedding = image_embedding.expand(batch, -1, -1, -1)
        source = image_embedding + dense
        _, channels, height, width = source.shape
        hs, keys = self.transformer(source, image_pe.expand(batch, -1, -1, -1), tokens)
        upscaled = self.output_upscaling(keys.transpose(1, 2).reshape(batch, channels, height, width))
        weights = self.output_hypernetworks_mlps[0](hs[:, 1])  # (B, C/8) for the first mask token
        _, small, up_h, up_w = upscaled.shape
        masks = (weights[:, None, :] @ upscaled.reshape(batch, small, up_h * up_w)).reshape(batch, 1, up_h, up_w)
        iou = self.iou_prediction_head(hs[:, 0])[:, :1]
        return masks, iou
