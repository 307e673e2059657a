"""Network building blocks and the networks the task packages assemble from them (2-D U-Net, SegNet)."""

from radassist.nets.blocks2d import (ConvStack2d, DoubleConv2d, DownBlock2d, MaxPoolWithIndices2d, MaxUnpoolByIndices2d,
                                     SegmentationHead2d, UpBlock2d, conv_norm_act_2d, initialise_weights)
from radassist.nets.segnet import ENCODER_PRESETS, SegNet2d
from radassist.nets.unet2d import UNET_PAPER_CHANNELS, UNet2d, doubling_channels

__all__ = [
    "ENCODER_PRESETS", "UNET_PAPER_CHANNELS", "ConvStack2d", "DoubleConv2d", "DownBlock2d", "MaxPoolWithIndices2d",
    "MaxUnpoolByIndices2d", "SegNet2d", "SegmentationHead2d", "UNet2d", "UpBlock2d", "conv_norm_act_2d",
    "doubling_channels", "initialise_weights",
]
