"""Small 2-D building blocks that the segmentation networks (U-Net, SegNet, the liver's mU-Net) are assembled from.

Each block does one thing and names every constructor argument; the convolution unit is MONAI's
``Convolution`` and the blocks here only arrange it as the papers' figures do. All blocks export to ONNX with
dynamic batch and image size (the unpooling of :class:`MaxUnpoolByIndices2d` is a scatter, because torch's
``MaxUnpool2d`` does not export).
"""

from __future__ import annotations

import torch
from monai.networks.blocks import Convolution
from torch import nn


def conv_norm_act_2d(in_channels: int, out_channels: int, kernel_size: int = 3, batch_norm: bool = True,
                     activation: bool = True) -> Convolution:
    """Convolution (padded to keep the image size; no bias of its own before batch norm), then batch
    normalisation (optional), then ReLU (optional): the unit U-Net and SegNet repeat, as MONAI's ``Convolution``."""
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd to keep the image size, got {kernel_size}")
    return Convolution(2, in_channels, out_channels, kernel_size=kernel_size, adn_ordering="NA", bias=not batch_norm,
                       norm="batch" if batch_norm else None, act=("relu", {"inplace": True}) if activation else None)


class ConvStack2d(nn.Sequential):
    """``repeats`` :func:`conv_norm_act_2d` units in a row, with optional dropout after them.

    Args:
        in_channels: channels coming in.
        out_channels: channels of every unit's output.
        repeats: how many conv-norm-ReLU units (U-Net uses 2, SegNet's VGG stages 2 or 3).
        batch_norm: batch normalisation in every unit.
        dropout: dropout probability after the stack (0 = none); ``Dropout2d`` drops whole feature maps.
        kernel_size: square kernel size of every unit.
    """

    def __init__(self, in_channels: int, out_channels: int, repeats: int = 2, batch_norm: bool = True,
                 dropout: float = 0.0, kernel_size: int = 3) -> None:
        if repeats < 1:
            raise ValueError(f"a conv stack needs at least one unit, got repeats={repeats}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = [conv_norm_act_2d(in_channels if index == 0 else out_channels, out_channels,
                                                    kernel_size, batch_norm) for index in range(repeats)]
        if dropout > 0:
            layers.append(nn.Dropout2d(dropout))
        super().__init__(*layers)


class DoubleConv2d(ConvStack2d):
    """The U-Net unit: two 3x3 conv-norm-ReLU layers (Ronneberger et al. 2015, Fig. 1), optional dropout."""

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool = True, dropout: float = 0.0) -> None:
        super().__init__(in_channels, out_channels, repeats=2, batch_norm=batch_norm, dropout=dropout)


class DownBlock2d(nn.Module):
    """2x2 max pooling, then a :class:`DoubleConv2d`: one step down the U-Net's contracting path.

    Args:
        in_channels: channels of the feature map being pooled.
        out_channels: channels after the convolutions (U-Net doubles them at every step).
        batch_norm: batch normalisation in the convolutions.
        dropout: dropout after the convolutions.
    """

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.conv = DoubleConv2d(in_channels, out_channels, batch_norm, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pool(x))


class UpBlock2d(nn.Module):
    """Upsample 2x, concatenate the skip connection of the same level, then a :class:`DoubleConv2d`.

    Args:
        in_channels: channels of the coarser feature map coming up.
        skip_channels: channels of the skip connection from the contracting path.
        out_channels: channels after the convolutions.
        upsample: "transpose" (a learned 2x2 transposed convolution to ``skip_channels`` channels, as in the
            paper) or "bilinear" (fixed interpolation followed by a 1x1 convolution; fewer weights).
        batch_norm: batch normalisation in the convolutions.
        dropout: dropout after the convolutions.
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, upsample: str = "transpose",
                 batch_norm: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        if upsample == "transpose":
            self.up: nn.Module = nn.ConvTranspose2d(in_channels, skip_channels, kernel_size=2, stride=2)
        elif upsample == "bilinear":
            self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                    nn.Conv2d(in_channels, skip_channels, kernel_size=1))
        else:
            raise ValueError(f"upsample must be 'transpose' or 'bilinear', got {upsample!r}")
        self.conv = DoubleConv2d(2 * skip_channels, out_channels, batch_norm, dropout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class MaxPoolWithIndices2d(nn.MaxPool2d):
    """2x2 max pooling that also returns where each maximum was (SegNet's "pooling indices").

    The indices are flat positions within each (batch, channel) plane of the input, as ``MaxPool2d`` gives them.
    """

    def __init__(self) -> None:
        super().__init__(kernel_size=2, stride=2, return_indices=True)


class MaxUnpoolByIndices2d(nn.Module):
    """SegNet's unpooling: put each value back where the encoder's maximum was, zeros elsewhere.

    Computes what ``nn.MaxUnpool2d`` computes, as a scatter into a zero map of the pre-pooling size, so the
    network exports to ONNX (``ScatterElements``) with dynamic sizes; ``MaxUnpool2d`` does not export.
    """

    def forward(self, values: torch.Tensor, indices: torch.Tensor, height: int | torch.Tensor,
                width: int | torch.Tensor) -> torch.Tensor:
        """``values`` and ``indices`` (N, C, h, w) from :class:`MaxPoolWithIndices2d`; output (N, C, height, width)."""
        batch, channels = values.shape[0], values.shape[1]
        flat = values.new_zeros((batch, channels, height * width))
        flat = flat.scatter(2, indices.flatten(2), values.flatten(2))
        return flat.reshape(batch, channels, height, width)


class SegmentationHead2d(nn.Conv2d):
    """1x1 convolution from features to one logit per class (no activation: losses take logits)."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__(in_channels, num_classes, kernel_size=1)


def initialise_weights(module: nn.Module) -> None:
    """He (Kaiming) normal initialisation for the ReLU convolutions, ones/zeros for batch norm.

    U-Net's paper draws initial weights from a Gaussian with std sqrt(2/N), N the incoming connections of a
    neuron (Sec. 3): He initialisation in fan-in mode.
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)
