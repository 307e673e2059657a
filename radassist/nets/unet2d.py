"""The classic 2-D U-Net (Ronneberger et al., MICCAI 2015), configurable in depth, width, normalisation and dropout.

Contracting path of :class:`~radassist.nets.blocks2d.DownBlock2d`, expanding path of
:class:`~radassist.nets.blocks2d.UpBlock2d` with skip connections, a 1x1 head. Unlike the paper's unpadded
convolutions, every convolution is padded, so the output has the input's size (what slice-wise inference over a
CT needs); batch normalisation is optional (the original predates it). The lung-infection and liver tasks both
use this class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from radassist.nets.blocks2d import DoubleConv2d, DownBlock2d, SegmentationHead2d, UpBlock2d, initialise_weights

UNET_PAPER_CHANNELS = (64, 128, 256, 512, 1024)  # Ronneberger et al. 2015, Fig. 1: 4 poolings, 64 filters doubling


def doubling_channels(base_filters: int, depth: int) -> tuple[int, ...]:
    """Channels per level of a U-Net with ``depth`` poolings that starts at ``base_filters`` and doubles."""
    if base_filters < 1 or depth < 1:
        raise ValueError(f"base_filters and depth must be positive, got {base_filters} and {depth}")
    return tuple(base_filters * 2 ** level for level in range(depth + 1))


class EncoderDecoder2d(nn.Module):
    """What U-Net and mU-Net share (``len(channels) - 1`` poolings): depth, input size rule, contracting and
    expanding paths; they differ only in their skip connections."""

    channels: tuple[int, ...]

    @property
    def depth(self) -> int:
        return len(self.channels) - 1

    @property
    def size_multiple(self) -> int:
        """Image height and width must be multiples of this."""
        return 2 ** self.depth

    def check_input_size(self, x: torch.Tensor, name: str) -> None:
        """Refuse an input whose height or width the poolings cannot halve evenly (skipped while tracing)."""
        if not torch.jit.is_tracing() and (x.shape[-2] % self.size_multiple or x.shape[-1] % self.size_multiple):
            raise ValueError(f"{name} input {tuple(x.shape[-2:])} must be a multiple of {self.size_multiple} in "
                             f"height and width (depth {self.depth})")

    def _build_contracting_path(self, in_channels: int, batch_norm: bool, dropout: float) -> None:
        """``stem`` and ``down``: the U-Net's contracting path over :attr:`channels`, with ``dropout`` after the
        two deepest levels' convolutions (the paper's "drop-out layers at the end of the contracting path")."""
        channels, deep = self.channels, {self.depth - 1, self.depth}
        self.stem = DoubleConv2d(in_channels, channels[0], batch_norm, dropout if 0 in deep else 0.0)
        self.down = nn.ModuleList(
            DownBlock2d(channels[level - 1], channels[level], batch_norm, dropout if level in deep else 0.0)
            for level in range(1, self.depth + 1))

    def _build_expanding_path(self, out_channels: int, upsample: str, batch_norm: bool) -> None:
        """``up`` (deepest level first) and the 1x1 ``head``."""
        channels = self.channels
        self.up = nn.ModuleList(
            UpBlock2d(channels[level + 1], channels[level], channels[level], upsample, batch_norm)
            for level in reversed(range(self.depth)))
        self.head = SegmentationHead2d(channels[0], out_channels)

    def _encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The feature map of every level, top to bottom."""
        features = [self.stem(x)]
        for block in self.down:
            features.append(block(features[-1]))
        return features

    def _decode(self, skips: list[torch.Tensor]) -> torch.Tensor:
        """Logits from the deepest feature (the last of ``skips``), taking the other skips bottom-up."""
        x = skips.pop()
        for block in self.up:
            x = block(x, skips.pop())
        return self.head(x)


class UNet2d(EncoderDecoder2d):
    """2-D U-Net: (N, in_channels, H, W) -> logits (N, out_channels, H, W).

    H and W must be multiples of ``2 ** depth`` (16 for the paper's four poolings); :attr:`size_multiple` says so.

    Args:
        in_channels: image channels (1 for CT).
        out_channels: classes, background included.
        channels: feature channels of each level, top to bottom; ``len(channels) - 1`` is the depth (number of
            poolings). The paper's network is ``(64, 128, 256, 512, 1024)``; see :func:`doubling_channels`.
        batch_norm: batch normalisation after every convolution.
        dropout: dropout probability after the two deepest levels' convolutions (the paper's "drop-out layers at
            the end of the contracting path"); 0 disables it.
        upsample: "transpose" (learned, as in the paper) or "bilinear".
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 2,
                 channels: Sequence[int] = UNET_PAPER_CHANNELS, batch_norm: bool = True, dropout: float = 0.0,
                 upsample: str = "transpose") -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if len(channels) < 2:
            raise ValueError(f"a U-Net needs at least two levels of channels, got {channels}")
        if min(channels) < 1 or in_channels < 1 or out_channels < 1:
            raise ValueError(f"channel counts must be positive: in {in_channels}, out {out_channels}, {channels}")
        self.in_channels, self.out_channels, self.channels = in_channels, out_channels, channels
        self._build_contracting_path(in_channels, batch_norm, dropout)
        self._build_expanding_path(out_channels, upsample, batch_norm)
        initialise_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input_size(x, "U-Net")
        return self._decode(self._encode(x))


def unet_from_config(config: Any) -> UNet2d:
    """The :class:`UNet2d` of a task's config dataclass (``in_channels``, ``out_channels``, ``channels``,
    ``batch_norm``, ``dropout``, ``upsample``): the builder the liver and lung-infection U-Nets register."""
    return UNet2d(in_channels=config.in_channels, out_channels=config.out_channels, channels=config.channels,
                  batch_norm=config.batch_norm, dropout=config.dropout, upsample=config.upsample)
