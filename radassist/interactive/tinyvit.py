"""LiteMedSAM's image encoder: a TinyViT-5M variant that keeps a 64 x 64 token grid for a 256 x 256 slice.

Structure (Wu et al., TinyViT, ECCV 2022, as modified by MobileSAM and by LiteMedSAM's release):

* patch embedding: two 1x1 conv + batch norm layers with a GELU between, stride 1 (LiteMedSAM's change: the
  token grid starts at the full 256 x 256 input instead of a quarter of it);
* stage 0: MBConv blocks (1x1 expand, 3x3 depthwise, 1x1 project, residual) at 256 x 256;
* stages 1-3: TinyViT blocks (windowed self-attention with a learned bias per relative offset, a 3x3
  depthwise "local" conv, an MLP) at 128, 64 and 64 tokens a side;
* between stages a patch merging (1x1, 3x3 depthwise with stride, 1x1) halves the grid, except before the last
  stage (stride 1, MobileSAM's change), so the output grid is 64 x 64;
* neck: 1x1 conv to 256 channels, channel layer norm, 3x3 conv, channel layer norm.

Parameter names follow the published checkpoint (``patch_embed.seq.0.c``, ``layers.1.blocks.0.attn.qkv``, ...)
so it loads with strict key and shape checks and no renaming.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.Module):
    """Layer norm over the channels of a (B, C, H, W) map (SAM's, eps 1e-6)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        return self.weight[:, None, None] * ((x - mean) / torch.sqrt(var + self.eps)) + self.bias[:, None, None]


class ConvBN(nn.Sequential):
    """Convolution without bias followed by batch norm; submodules ``c`` and ``bn`` as in the checkpoint."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1, padding: int = 0,
                 groups: int = 1) -> None:
        super().__init__()
        self.add_module("c", nn.Conv2d(in_channels, out_channels, kernel, stride, padding, groups=groups,
                                       bias=False))
        self.add_module("bn", nn.BatchNorm2d(out_channels))


class PatchEmbed(nn.Module):
    """Pixels to tokens without downsampling: 1x1 ConvBN (to half the width), GELU, 1x1 ConvBN."""

    def __init__(self, in_channels: int, dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(ConvBN(in_channels, dim // 2), nn.GELU(), ConvBN(dim // 2, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual block of stage 0 on (B, C, H, W) maps."""

    def __init__(self, dim: int, expand_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * expand_ratio)
        self.conv1 = ConvBN(dim, hidden)
        self.conv2 = ConvBN(hidden, hidden, kernel=3, padding=1, groups=hidden)
        self.conv3 = ConvBN(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.gelu(self.conv1(x))
        y = F.gelu(self.conv2(y))
        return F.gelu(self.conv3(y) + x)


class PatchMerging(nn.Module):
    """Between stages: 1x1 ConvBN, GELU, 3x3 depthwise ConvBN with ``stride``, GELU, 1x1 ConvBN; tokens out."""

    def __init__(self, resolution: int, dim: int, out_dim: int, stride: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.conv1 = ConvBN(dim, out_dim)
        self.conv2 = ConvBN(out_dim, out_dim, kernel=3, stride=stride, padding=1, groups=out_dim)
        self.conv3 = ConvBN(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:  # tokens (B, L, C) from a transformer stage
            x = x.reshape(x.shape[0], self.resolution, self.resolution, -1).permute(0, 3, 1, 2)
        x = F.gelu(self.conv1(x))
        x = F.gelu(self.conv2(x))
        x = self.conv3(x)
        return x.flatten(2).transpose(1, 2)


class Stage(nn.Module):
    """A stage's blocks (MBConv in stage 0, TinyViT blocks in stages 1-3), then patch merging except after the
    last stage (``downsample`` None)."""

    def __init__(self, blocks: Sequence[nn.Module], downsample: PatchMerging | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x) if self.downsample is not None else x


class WindowAttention(nn.Module):
    """Multi-head self-attention inside a window, plus a learned bias per head and per relative offset |dy|, |dx|.

    ``qkv`` packs, for each head in turn, its query, key and value (head_dim each); there is no activation
    before ``proj`` (TinyViT, unlike LeViT).
    """

    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim ** -0.5
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        offsets, index = _relative_offset_index(window)
        self.attention_biases = nn.Parameter(torch.zeros(heads, offsets))
        self.register_buffer("bias_index", index, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        qkv = self.qkv(self.norm(x)).reshape(batch, tokens, self.heads, 3 * self.head_dim)
        q, k, v = qkv.permute(0, 2, 1, 3).split(self.head_dim, dim=3)
        attn = (q @ k.transpose(-2, -1)) * self.scale + self.attention_biases[:, self.bias_index]
        out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, self.heads * self.head_dim))


def _relative_offset_index(window: int) -> tuple[int, torch.Tensor]:
    """Number of distinct (|dy|, |dx|) offsets in a window, and the (N, N) index of each token pair's offset,
    numbered in order of first appearance scanning the pairs row by row (the checkpoint's bias order)."""
    points = [(row, col) for row in range(window) for col in range(window)]
    numbers: dict[tuple[int, int], int] = {}
    index = []
    for a in points:
        for b in points:
            offset = (abs(a[0] - b[0]), abs(a[1] - b[1]))
            index.append(numbers.setdefault(offset, len(numbers)))
    return len(numbers), torch.tensor(index, dtype=torch.long).view(len(points), len(points))


class Mlp(nn.Module):
    """Pre-norm MLP of a TinyViT block: LayerNorm, fc1, GELU, fc2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


class TinyViTBlock(nn.Module):
    """Windowed attention (residual), 3x3 depthwise local conv (no residual), MLP (residual), on (B, L, C)."""

    def __init__(self, resolution: int, dim: int, heads: int, window: int, mlp_ratio: float) -> None:
        super().__init__()
        self.resolution = resolution
        self.window = window
        self.attn = WindowAttention(dim, heads, window)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.local_conv = ConvBN(dim, dim, kernel=3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = self.resolution
        batch, tokens, channels = x.shape
        x = x + self._windowed_attention(x.reshape(batch, size, size, channels)).reshape(batch, tokens, channels)
        x = self.local_conv(x.transpose(1, 2).reshape(batch, channels, size, size))
        x = x.reshape(batch, channels, tokens).transpose(1, 2)
        return x + self.mlp(x)

    def _windowed_attention(self, grid: torch.Tensor) -> torch.Tensor:
        """Attention within windows; the grid is zero-padded at the bottom and right to whole windows and the
        padded tokens take part as keys, as in the published model."""
        batch, size, _, channels = grid.shape
        window = self.window
        pad = (window - size % window) % window
        if pad:
            grid = F.pad(grid, (0, 0, 0, pad, 0, pad))
        padded = size + pad
        count = padded // window
        windows = grid.reshape(batch, count, window, count, window, channels).transpose(2, 3)
        windows = windows.reshape(batch * count * count, window * window, channels)
        out = self.attn(windows).reshape(batch, count, count, window, window, channels).transpose(2, 3)
        return out.reshape(batch, padded, padded, channels)[:, :size, :size]


class TinyViTEncoder(nn.Module):
    """(B, 3, S, S) image in [0, 1] -> (B, out_channels, S/4, S/4) embedding (S = 256: 256 x 64 x 64)."""

    def __init__(self, image_size: int = 256, in_channels: int = 3, dims: Sequence[int] = (64, 128, 160, 320),
                 depths: Sequence[int] = (2, 2, 6, 2), heads: Sequence[int] = (2, 4, 5, 10),
                 windows: Sequence[int] = (7, 7, 14, 7), merge_strides: Sequence[int] = (2, 2, 1),
                 mlp_ratio: float = 4.0, mbconv_expand_ratio: float = 4.0, out_channels: int = 256) -> None:
        super().__init__()
        if not (len(dims) == len(depths) == len(heads) == len(windows) == len(merge_strides) + 1):
            raise ValueError("dims, depths, heads and windows need one value per stage, merge_strides one fewer")
        self.patch_embed = PatchEmbed(in_channels, dims[0])
        resolutions = [image_size]
        for stride in merge_strides:
            resolutions.append(resolutions[-1] // stride)
        self.output_size = resolutions[-1]
        stages = [Stage([MBConv(dims[0], mbconv_expand_ratio) for _ in range(depths[0])],
                        PatchMerging(resolutions[0], dims[0], dims[1], merge_strides[0]))]
        for i in range(1, len(dims)):
            blocks = [TinyViTBlock(resolutions[i], dims[i], heads[i], windows[i], mlp_ratio) for _ in range(depths[i])]
            last = i == len(dims) - 1
            stages.append(Stage(blocks, None if last else PatchMerging(resolutions[i], dims[i], dims[i + 1],
                                                                       merge_strides[i])))
        self.layers = nn.ModuleList(stages)
        self.neck = nn.Sequential(nn.Conv2d(dims[-1], out_channels, 1, bias=False), LayerNorm2d(out_channels),
                                  nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
                                  LayerNorm2d(out_channels))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(image)
        for layer in self.layers:
            x = layer(x)
        batch, _, channels = x.shape
        x = x.reshape(batch, self.output_size, self.output_size, channels).permute(0, 3, 1, 2)
        return self.neck(x)
