"""SegNet (Badrinarayanan et al., IEEE TPAMI 2017): a VGG encoder, and a decoder that upsamples with the encoder's
max-pooling indices instead of learned upsampling or skip connections of whole feature maps.

Each encoder stage is a :class:`~radassist.nets.blocks2d.ConvStack2d` followed by max pooling that remembers where
each maximum was; the mirrored decoder stage first puts values back at those positions
(:class:`~radassist.nets.blocks2d.MaxUnpoolByIndices2d`), then densifies the sparse map with its own conv stack.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from radassist.nets.blocks2d import (ConvStack2d, MaxPoolWithIndices2d, MaxUnpoolByIndices2d, SegmentationHead2d,
                                     initialise_weights)

# VGG-16 with batch normalisation, the encoder of the paper (Sec. 3): 13 convolutions in 5 stages.
VGG16_CHANNELS = (64, 128, 256, 512, 512)
VGG16_CONVS = (2, 2, 3, 3, 3)
ENCODER_PRESETS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "vgg16-bn": (VGG16_CHANNELS, VGG16_CONVS),
    "vgg11-bn": ((64, 128, 256, 512, 512), (1, 1, 2, 2, 2)),
}


class SegNet2d(nn.Module):
    """2-D SegNet: (N, in_channels, H, W) -> logits (N, out_channels, H, W); H, W multiples of 2 ** stages.

    Args:
        in_channels: image channels (1 for CT).
        out_channels: classes, background included.
        channels: feature channels of each encoder stage (the decoder mirrors them); default VGG-16.
        convs_per_stage: conv-norm-ReLU units in each encoder stage (and its decoder mirror); default VGG-16.
        batch_norm: batch normalisation after every convolution (SegNet uses it throughout).
        dropout: dropout after the deepest encoder and decoder stages (the Bayesian SegNet variant); 0 = none.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 2, channels: Sequence[int] = VGG16_CHANNELS,
                 convs_per_stage: Sequence[int] = VGG16_CONVS, batch_norm: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        convs = tuple(int(c) for c in convs_per_stage)
        if not channels or len(channels) != len(convs):
            raise ValueError(f"SegNet needs one conv count per stage: channels {channels}, convs {convs}")
        if min(channels) < 1 or min(convs) < 1 or in_channels < 1 or out_channels < 1:
            raise ValueError(f"channel and conv counts must be positive: in {in_channels}, out {out_channels}, "
                             f"channels {channels}, convs {convs}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.channels, self.convs_per_stage = channels, convs
        last = len(channels) - 1
        inputs = (in_channels,) + channels[:-1]
        self.encoder = nn.ModuleList(
            ConvStack2d(inputs[s], channels[s], convs[s], batch_norm, dropout if s == last else 0.0)
            for s in range(len(channels)))
        self.pool = MaxPoolWithIndices2d()
        self.unpool = MaxUnpoolByIndices2d()
        # Decoder stage s (deepest first) mirrors encoder stage s: its last unit maps to the channels of the stage
        # above, so the next unpooling receives as many channels as that stage's pooling produced indices for.
        self.decoder = nn.ModuleList(
            self._decoder_stage(channels[s], channels[s - 1] if s > 0 else channels[0], convs[s], batch_norm,
                                dropout if s == last else 0.0)
            for s in reversed(range(len(channels))))
        self.head = SegmentationHead2d(channels[0], out_channels)
        initialise_weights(self)

    @staticmethod
    def _decoder_stage(channels: int, out_channels: int, convs: int, batch_norm: bool, dropout: float) -> nn.Module:
        first = [ConvStack2d(channels, channels, convs - 1, batch_norm)] if convs > 1 else []
        return nn.Sequential(*first, ConvStack2d(channels, out_channels, 1, batch_norm, dropout))

    @property
    def size_multiple(self) -> int:
        """Image height and width must be multiples of this (one halving per stage)."""
        return 2 ** len(self.channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and (x.shape[-2] % self.size_multiple or x.shape[-1] % self.size_multiple):
            raise ValueError(f"SegNet input {tuple(x.shape[-2:])} must be a multiple of {self.size_multiple} in "
                             f"height and width ({len(self.channels)} pooling stages)")
        switches: list[tuple[torch.Tensor, int | torch.Tensor, int | torch.Tensor]] = []
        for stage in self.encoder:
            x = stage(x)
            height, width = x.shape[-2], x.shape[-1]
            x, indices = self.pool(x)
            switches.append((indices, height, width))
        for stage in self.decoder:
            indices, height, width = switches.pop()
            x = stage(self.unpool(x, indices, height, width))
        return self.head(x)
