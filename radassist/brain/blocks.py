"""V-Net building blocks (Milletari et al., 3DV 2016): convolution + PReLU units, residual stages, and the strided
down/transposed up convolutions V-Net uses instead of pooling. The joint brain network is assembled from these."""

from __future__ import annotations

import torch
from torch import nn

NORMALIZATIONS = ("instance", "batch", "none")


def _normalization(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {kind!r}")


class ConvUnit(nn.Sequential):
    """Conv3d -> normalization -> PReLU.

    Args:
        in_channels: input feature maps.
        out_channels: output feature maps.
        kernel_size: cubic kernel size (odd; padded to keep the size when ``stride`` is 1).
        stride: convolution stride (2 halves every spatial size, V-Net's down-sampling).
        normalization: "instance", "batch" or "none".
        activation: end with a PReLU (False leaves the unit linear, for the last conv of a residual stage).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 normalization: str = "instance", activation: bool = True) -> None:
        padding = 0 if stride > 1 else kernel_size // 2
        layers: list[nn.Module] = [nn.Conv3d(in_channels, out_channels, kernel_size, stride=stride, padding=padding),
                                   _normalization(normalization, out_channels)]
        if activation:
            layers.append(nn.PReLU(out_channels))
        super().__init__(*layers)


class ResidualStage(nn.Module):
    """V-Net stage: ``convolutions`` ConvUnits whose output is added to the stage input, then a PReLU.

    Args:
        channels: feature maps in and out (the residual sum needs them equal).
        convolutions: number of convolutions in the stage (V-Net: 1, 2, 3, 3, 3 from top to bottom).
        kernel_size: cubic kernel size.
        normalization: "instance", "batch" or "none".
    """

    def __init__(self, channels: int, convolutions: int = 2, kernel_size: int = 3,
                 normalization: str = "instance") -> None:
        super().__init__()
        if convolutions < 1:
            raise ValueError(f"a residual stage needs at least one convolution, got {convolutions}")
        units = [ConvUnit(channels, channels, kernel_size, normalization=normalization,
                          activation=index < convolutions - 1) for index in range(convolutions)]
        self.convolutions = nn.Sequential(*units)
        self.activation = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(x + self.convolutions(x))


class DownConvolution(ConvUnit):
    """2x2x2 convolution with stride 2: halves the grid and changes the feature count (V-Net's pooling)."""

    def __init__(self, in_channels: int, out_channels: int, normalization: str = "instance") -> None:
        super().__init__(in_channels, out_channels, kernel_size=2, stride=2, normalization=normalization)


class UpConvolution(nn.Sequential):
    """2x2x2 transposed convolution with stride 2 -> normalization -> PReLU: doubles the grid."""

    def __init__(self, in_channels: int, out_channels: int, normalization: str = "instance") -> None:
        super().__init__(nn.ConvTranspose3d(in_channels, out_channels, kernel_size=2, stride=2),
                         _normalization(normalization, out_channels), nn.PReLU(out_channels))


class DecoderStage(nn.Module):
    """Up-sample the coarser features, concatenate the skip features, fuse them, then a residual stage.

    Args:
        coarse_channels: feature maps coming up from the level below.
        skip_channels: feature maps of the skip connection at this level.
        out_channels: feature maps of this level's output.
        convolutions: convolutions in the residual stage.
        kernel_size: cubic kernel size.
        normalization: "instance", "batch" or "none".
    """

    def __init__(self, coarse_channels: int, skip_channels: int, out_channels: int, convolutions: int = 2,
                 kernel_size: int = 3, normalization: str = "instance") -> None:
        super().__init__()
        self.up = UpConvolution(coarse_channels, out_channels, normalization)
        self.fuse = ConvUnit(out_channels + skip_channels, out_channels, kernel_size, normalization=normalization)
        self.stage = ResidualStage(out_channels, convolutions, kernel_size, normalization)

    def forward(self, coarse: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.stage(self.fuse(torch.cat([self.up(coarse), skip], dim=1)))
