"""The liver networks: the classic 2-D U-Net and mU-Net (Seo et al., IEEE TMI 39(5):1316-1325, 2020), registered
as ``liver-unet`` and ``liver-munet``.

The U-Net is :class:`radassist.nets.UNet2d`, configured. mU-Net is assembled from the same blocks; what it changes
is the skip connection of every level (our reading of the paper, Sec. II and Fig. 2):

* a **residual path**: the next-deeper encoder feature is brought back up by a 2x2 deconvolution and an activation
  and subtracted from the skip feature. The low-resolution content that the deeper path carries anyway is then
  not copied a second time (the duplication that blurs edges); a small object, which vanishes after pooling,
  gives almost nothing to subtract and passes the skip unchanged.
* **extra convolutions on the skip path**, more of them at the high-resolution levels, which extract high-level
  features from the skip features themselves (global features of small objects, edge features of large ones)
  instead of relying on the number of poolings alone.

Both networks take ``2 * context_slices + 1`` input channels: 0 is plain 2-D, 1 or more is 2.5-D input (the
neighbouring axial slices as extra channels, see :mod:`radassist.liver.preprocess`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from radassist.errors import InputError
from radassist.nets.blocks2d import ConvStack2d, initialise_weights
from radassist.nets.unet2d import UNET_PAPER_CHANNELS, EncoderDecoder2d, unet_from_config
from radassist.results.segments import Segment
from radassist.results.terminology import CATALOGUE, terminology_from_dict, terminology_to_dict
from radassist.runtime.registry import register_architecture

TASK = "liver-segmentation"  # the catalogue's task name
UNET = "liver-unet"
MUNET = "liver-munet"
ARCHITECTURES = {"munet": MUNET, "unet": UNET}  # --arch choice -> architecture (and catalogue model id)
CLASS_COUNT = 3  # LiTS: 0 background, 1 liver, 2 tumour
LIVER_LABEL, TUMOUR_LABEL = 1, 2
SEGMENT_NAMES = {LIVER_LABEL: "Liver", TUMOUR_LABEL: "Liver tumour"}
_CATALOGUE_KEYS = {LIVER_LABEL: "liver", TUMOUR_LABEL: "liver tumour"}


def _check_common(name: str, spatial_dims: int, in_channels: int, out_channels: int, context_slices: int,
                  channels: Sequence[int]) -> None:
    if spatial_dims != 2:
        raise InputError(None, f"{name}: the liver networks are 2-D (spatial_dims 2), got {spatial_dims}")
    if context_slices < 0:
        raise InputError(None, f"{name}: context_slices must be 0 (2-D) or more (2.5-D), got {context_slices}")
    if in_channels != 2 * context_slices + 1:
        raise InputError(None, f"{name}: in_channels must be 2 * context_slices + 1 = {2 * context_slices + 1} "
                               f"(one channel per slice), got {in_channels}")
    if out_channels < 2 or len(channels) < 2:
        raise InputError(None, f"{name}: needs at least 2 classes and 2 levels, got {out_channels} and {channels}")


@dataclass(frozen=True)
class LiverUNetConfig:
    """``liver-unet``: :class:`radassist.nets.UNet2d` for background, liver and tumour."""

    spatial_dims: int = 2  # slice-wise 2-D network (the catalogue's "spatialDims")
    in_channels: int = 1  # one CT slice; 2 * context_slices + 1 for 2.5-D input
    out_channels: int = CLASS_COUNT  # background, liver, tumour (LiTS labels 0/1/2)
    channels: tuple[int, ...] = UNET_PAPER_CHANNELS  # 64..1024, four poolings (Ronneberger et al. 2015, Fig. 1)
    context_slices: int = 0  # neighbouring slices on each side given as extra channels (0 = plain 2-D)
    batch_norm: bool = True
    dropout: float = 0.0
    upsample: str = "transpose"  # learned 2x2 up-convolution (Ronneberger et al. 2015)

    def __post_init__(self) -> None:
        _check_common(UNET, self.spatial_dims, self.in_channels, self.out_channels, self.context_slices,
                      self.channels)


@dataclass(frozen=True)
class LiverMUNetConfig:
    """``liver-munet``: mU-Net (Seo et al. 2020). ``skip_convolutions`` empty = depth, depth-1, ..., 1 extra
    conv units from the top skip to the deepest one; ``residual_skip_paths`` False leaves only the extra
    convolutions (an ablation of the residual path)."""

    spatial_dims: int = 2
    in_channels: int = 1
    out_channels: int = CLASS_COUNT
    channels: tuple[int, ...] = UNET_PAPER_CHANNELS  # mU-Net keeps U-Net's 64..1024 levels (Seo et al. 2020, Fig. 2)
    context_slices: int = 0
    residual_skip_paths: bool = True  # deconvolution + activation subtracted on every skip (Seo et al. 2020)
    skip_convolutions: tuple[int, ...] = ()  # extra conv units per skip, top level first (Seo et al. 2020)
    batch_norm: bool = True
    dropout: float = 0.0

    def __post_init__(self) -> None:
        _check_common(MUNET, self.spatial_dims, self.in_channels, self.out_channels, self.context_slices,
                      self.channels)
        depth = len(self.channels) - 1
        if self.skip_convolutions and (len(self.skip_convolutions) != depth or min(self.skip_convolutions) < 0):
            raise InputError(None, f"{MUNET}: skip_convolutions needs {depth} non-negative counts (one per skip), "
                                   f"got {self.skip_convolutions}")


class ResidualSkipPath2d(nn.Module):
    """One mU-Net skip connection: ``skip - ReLU(deconv(deeper))`` (optional), then extra conv units.

    Args:
        skip_channels: channels of the encoder feature at this level (and of the path's output).
        deeper_channels: channels of the next-deeper encoder feature (half the size).
        convolutions: extra 3x3 conv-norm-ReLU units on the path (0 = none).
        residual: subtract the deconvolved deeper feature.
        batch_norm: batch normalisation in the extra units.
    """

    def __init__(self, skip_channels: int, deeper_channels: int, convolutions: int, residual: bool = True,
                 batch_norm: bool = True) -> None:
        super().__init__()
        self.residual = (nn.Sequential(nn.ConvTranspose2d(deeper_channels, skip_channels, kernel_size=2, stride=2),
                                       nn.ReLU(inplace=True)) if residual else None)
        self.convs = (ConvStack2d(skip_channels, skip_channels, repeats=convolutions, batch_norm=batch_norm)
                      if convolutions > 0 else nn.Identity())

    def forward(self, skip: torch.Tensor, deeper: torch.Tensor) -> torch.Tensor:
        if self.residual is not None:
            skip = skip - self.residual(deeper)
        return self.convs(skip)


class MUNet2d(EncoderDecoder2d):
    """mU-Net: (N, in_channels, H, W) -> logits (N, out_channels, H, W); H, W multiples of ``2 ** depth``.

    Args:
        in_channels: image channels (slices).
        out_channels: classes, background included.
        channels: feature channels per level, top to bottom (``len - 1`` poolings).
        skip_convolutions: extra conv units on each skip path, top level first (``len(channels) - 1`` values;
            empty: depth, depth-1, ..., 1).
        residual_skip_paths: add the deconvolution-and-activation residual path to every skip.
        batch_norm: batch normalisation after every convolution.
        dropout: dropout after the two deepest levels' convolutions.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = CLASS_COUNT,
                 channels: Sequence[int] = UNET_PAPER_CHANNELS, skip_convolutions: Sequence[int] | None = None,
                 residual_skip_paths: bool = True, batch_norm: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        depth = len(channels) - 1
        counts = tuple(skip_convolutions) if skip_convolutions else tuple(range(depth, 0, -1))
        if depth < 1 or len(counts) != depth:
            raise ValueError(f"mU-Net needs >= 2 levels and one skip count per level, got {channels}, {counts}")
        self.channels = channels
        self._build_contracting_path(in_channels, batch_norm, dropout)
        self.skips = nn.ModuleList(
            ResidualSkipPath2d(channels[level], channels[level + 1], counts[level], residual_skip_paths, batch_norm)
            for level in range(depth))
        self._build_expanding_path(out_channels, "transpose", batch_norm)
        initialise_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input_size(x, "mU-Net")
        features = self._encode(x)
        skips = [path(features[level], features[level + 1]) for level, path in enumerate(self.skips)]
        return self._decode(skips + features[-1:])


def build_munet(config: LiverMUNetConfig) -> nn.Module:
    return MUNet2d(in_channels=config.in_channels, out_channels=config.out_channels, channels=config.channels,
                   skip_convolutions=config.skip_convolutions, residual_skip_paths=config.residual_skip_paths,
                   batch_norm=config.batch_norm, dropout=config.dropout)


register_architecture(UNET, LiverUNetConfig, unet_from_config,
                      description="2-D U-Net for liver and liver tumour on axial CT slices (LiTS labels)")
register_architecture(MUNET, LiverMUNetConfig, build_munet,
                      description="2-D mU-Net (Seo et al. 2020): residual, convolved skip paths; liver and tumour")


# ------------------------------------------------------------------------------------------------ label tables


def default_label_table() -> list[dict[str, Any]]:
    """Liver (1) and liver tumour (2) with the terminology catalogue's codes and colours (0..255)."""
    return [{"name": SEGMENT_NAMES[value], "value": value, "color": [int(round(c * 255)) for c in CATALOGUE[key].color],
             "terminology": terminology_to_dict(CATALOGUE[key].terminology)} for value, key in _CATALOGUE_KEYS.items()]


def liver_segments(table: Sequence[Mapping[str, Any]] | None = None) -> list[Segment]:
    """Segments "Liver" (1) and "Liver tumour" (2), coded from ``table`` (a checkpoint's) or the defaults.

    The names stay the LiTS task's whatever the table calls them, so the quantification always finds them.
    """
    by_value = {int(e["value"]): e for e in (table or default_label_table())}
    segments = []
    for value, name in SEGMENT_NAMES.items():
        entry = by_value.get(value) or next(e for e in default_label_table() if e["value"] == value)
        color = tuple(float(c) / 255.0 for c in entry.get("color", (128, 128, 128)))
        terminology = terminology_from_dict(entry["terminology"]) if entry.get("terminology") else \
            CATALOGUE[_CATALOGUE_KEYS[value]].terminology
        segments.append(Segment(name=name, label_value=value, color=color, terminology=terminology))
    return segments
