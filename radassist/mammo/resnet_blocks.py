"""Residual networks for GMIC, built from our own blocks (no torchvision).

Ours, not MONAI's ResNet: the global network is pre-activation (MONAI has post-activation blocks only) and the
local one takes any number of stages (MONAI's has exactly four), and GMIC's published checkpoints map onto both.

Two families, named so that GMIC's published checkpoints map onto them one module at a time:

* :class:`PreActResNet` -- pre-activation ("v2") ResNet: BN -> ReLU -> conv inside each block, one final
  BN + ReLU. With its defaults it is GMIC's global "ResNet-22" (16 filters, five stages of two blocks).
* :class:`ResNet` -- the classic post-activation ("v1") ResNet: conv -> BN -> ReLU. With blocks (2, 2, 2, 2)
  it is GMIC's local network (ResNet-18 without its classifier).

Block parameter names (``bn1``, ``conv1``, ``bn2``, ``conv2``) are the ones every ResNet uses, so a block of a
published checkpoint loads without renaming; only the container names differ (see ``checkpoint_mapping``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a batch norm always follows or precedes it)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class PreActBasicBlock(nn.Module):
    """Pre-activation basic block: ``x + conv2(relu(bn2(conv1(relu(bn1(x))))))``.

    Args:
        in_channels: channels of the block's input.
        out_channels: channels of its output.
        stride: stride of the first 3x3 convolution (2 halves the resolution).
        projection: add a 1x1 convolution (no bias, no norm) on the shortcut. As in GMIC's ResNet-22 it is
            applied to the *pre-activated* input, and GMIC gives the first block of every stage one, even where
            shapes already match.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, projection: bool = False) -> None:
        super().__init__()
        if not projection and (stride != 1 or in_channels != out_channels):
            raise ValueError("a block that changes stride or channels needs a projection shortcut")
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.projection = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False) \
            if projection else None
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.relu(self.bn1(x))
        shortcut = self.projection(activated) if self.projection is not None else x
        out = self.conv1(activated)
        out = self.conv2(self.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet(nn.Module):
    """Pre-activation ResNet feature extractor: stem conv, max pool, stages of :class:`PreActBasicBlock`,
    final BN + ReLU. Defaults are GMIC's global network, "ResNet-22" (Shen et al. 2021).

    Args:
        in_channels: image channels (1: a grey mammogram).
        filters: channels of the stem and of the first stage; doubled at every later stage.
        blocks: number of blocks per stage (five stages of two blocks give 2 + 5*2*2 = 22 weighted layers).
        strides: stride of the first block of each stage.
        Stem: 7x7 stride-2 convolution, then a 3x3 stride-2 max pool without padding (GMIC's; it is what makes a
        2944 x 1920 input give 46 x 30 features).
    """

    def __init__(self, in_channels: int = 1, filters: int = 16, blocks: Sequence[int] = (2, 2, 2, 2, 2),
                 strides: Sequence[int] = (1, 2, 2, 2, 2)) -> None:
        super().__init__()
        if len(blocks) != len(strides) or not blocks:
            raise ValueError(f"blocks {tuple(blocks)} and strides {tuple(strides)} need one value per stage")
        self.stem_conv = nn.Conv2d(in_channels, filters, kernel_size=7, stride=2, padding=3, bias=False)
        self.stem_pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=0)
        self.stages = nn.ModuleList()
        channels, width = filters, filters
        for count, stride in zip(blocks, strides):
            stage = [PreActBasicBlock(channels, width, stride, projection=True)]
            stage += [PreActBasicBlock(width, width) for _ in range(1, count)]
            self.stages.append(nn.Sequential(*stage))
            channels, width = width, width * 2
        self.out_channels = channels
        self.final_bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem_pool(self.stem_conv(x))
        for stage in self.stages:
            h = stage(h)
        return self.relu(self.final_bn(h))


class ConvNormProjection(nn.Module):
    """Shortcut of a post-activation block that changes shape: 1x1 convolution (no bias) then batch norm."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class BasicBlock(nn.Module):
    """Post-activation basic block: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.

    Args:
        in_channels: channels of the block's input.
        out_channels: channels of its output.
        stride: stride of the first 3x3 convolution.
        The shortcut is a :class:`ConvNormProjection` exactly when stride or channels change.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.projection = ConvNormProjection(in_channels, out_channels, stride) \
            if stride != 1 or in_channels != out_channels else None
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.projection(x) if self.projection is not None else x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class ResNet(nn.Module):
    """Post-activation ResNet feature extractor (no pooling head, no classifier).

    Args:
        in_channels: input channels (3 for GMIC's local network: each grey patch is repeated).
        filters: channels of the stem and first stage; doubled at every later stage.
        blocks: blocks per stage; (2, 2, 2, 2) is ResNet-18.
        Stem: 7x7 stride-2 convolution, BN, ReLU, 3x3 stride-2 max pool with padding 1; stage strides 1, 2, 2, ...
        Convolutions start from Kaiming-normal (fan-out) weights, batch norms from weight 1 and bias 0 (torch's).
    """

    def __init__(self, in_channels: int = 3, filters: int = 64, blocks: Sequence[int] = (2, 2, 2, 2)) -> None:
        super().__init__()
        if not blocks:
            raise ValueError("a ResNet needs at least one stage")
        self.stem_conv = nn.Conv2d(in_channels, filters, kernel_size=7, stride=2, padding=3, bias=False)
        self.stem_bn = nn.BatchNorm2d(filters)
        self.relu = nn.ReLU()
        self.stem_pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.stages = nn.ModuleList()
        channels = filters
        for index, count in enumerate(blocks):
            width = filters * 2 ** index
            stride = 1 if index == 0 else 2
            stage = [BasicBlock(channels, width, stride)] + [BasicBlock(width, width) for _ in range(1, count)]
            self.stages.append(nn.Sequential(*stage))
            channels = width
        self.out_channels = channels
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem_pool(self.relu(self.stem_bn(self.stem_conv(x))))
        for stage in self.stages:
            h = stage(h)
        return h
