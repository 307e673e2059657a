"""The joint registration + tumour segmentation network of Estienne et al., "Deep learning-based concurrent brain
registration and tumor segmentation", Frontiers in Computational Neuroscience 14:17 (2020).

One V-Net-style encoder, shared, reads the moving and the fixed multi-sequence MRI separately. Their latent codes
are merged level by level (moving - fixed in the paper) and a registration decoder turns the merged codes into
spatial gradients (2 x sigmoid), integrated into a sampling grid (:mod:`radassist.brain.spatial`). A segmentation
decoder, also shared, turns each image's own codes into tumour class logits (background, necrotic/non-enhancing
core, oedema, enhancing tumour). Registered in the architecture registry as ``brain-joint``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from radassist.brain.blocks import NORMALIZATIONS, ConvUnit, DecoderStage, DownConvolution, ResidualStage
from radassist.brain.spatial import integrate_gradients

ARCHITECTURE_NAME = "brain-joint"
MERGES = ("subtract", "add", "concatenate")
CLASS_NAMES = ("background", "tumour necrosis", "oedema", "enhancing tumour")


@dataclass(frozen=True)
class BrainJointConfig:
    """Every constructor argument of :class:`BrainJointNet`, with the paper's defaults.

    Field names follow the catalogue (``channelsPerImage`` -> ``channels_per_image``, ...).
    """

    spatial_dims: int = 3                       # 3-D MRI only
    channels_per_image: int = 4                 # FLAIR, T1, T1ce, T2 (paper, Sec. 2.1); fewer allowed
    segmentation_classes: int = 4               # background, necrosis/non-enhancing, oedema, enhancing (paper)
    features: tuple[int, ...] = (8, 16, 32, 64, 128)  # f, 2f, 4f, 8f, 16f with f = 8 (paper, Sec. 2.2)
    convolutions: tuple[int, ...] = (1, 2, 3, 3, 3)   # convolutions per residual stage (V-Net, Milletari 2016)
    kernel_size: int = 3                        # cubic kernels
    normalization: str = "batch"                # V-Net implementations add batch norm; "instance", "none"
    merge: str = "subtract"                     # moving - fixed (paper); "add" and "concatenate" are options
    displacement: str = "gradient"              # 2 x sigmoid spatial gradients integrated by cumulative sum (paper)
    max_gradient: float = 2.0                   # gradients lie in (0, max_gradient); 2 in the paper
    similarity: str = "mse"                     # image term of the loss (paper: mean squared error)
    tumour_masked_similarity: bool = True       # similarity switched off inside both tumours (paper)

    def __post_init__(self) -> None:
        if self.spatial_dims != 3:
            raise ValueError(f"brain-joint is a 3-D network, spatial_dims must be 3, got {self.spatial_dims}")
        if self.channels_per_image < 1 or self.segmentation_classes < 2:
            raise ValueError("channels_per_image must be >= 1 and segmentation_classes >= 2")
        if len(self.features) < 2 or len(self.features) != len(self.convolutions):
            raise ValueError(f"features {self.features} and convolutions {self.convolutions} need the same "
                             f"length (the number of levels, at least 2)")
        if min(self.features) < 1 or min(self.convolutions) < 1:
            raise ValueError("features and convolutions must be positive")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        if self.merge not in MERGES:
            raise ValueError(f"merge must be one of {MERGES}, got {self.merge!r}")
        if self.displacement != "gradient":
            raise ValueError(f"displacement must be 'gradient' (integrated spatial gradients), got "
                             f"{self.displacement!r}")
        if self.max_gradient <= 1.0:
            raise ValueError(f"max_gradient must exceed 1 so the identity (gradient 1) is reachable, got "
                             f"{self.max_gradient}")
        if self.similarity != "mse":
            raise ValueError(f"similarity must be 'mse', got {self.similarity!r}")

    @property
    def levels(self) -> int:
        return len(self.features)

    @property
    def size_multiple(self) -> int:
        """Every spatial size must be a multiple of this (one halving per level below the top)."""
        return 2 ** (self.levels - 1)


class JointOutput(NamedTuple):
    """What the network returns: logits of both images, the spatial gradients and their integrated grid."""

    segmentation_moving: torch.Tensor  # (N, classes, z, y, x) logits
    segmentation_fixed: torch.Tensor   # (N, classes, z, y, x) logits
    gradients: torch.Tensor            # (N, 3, z, y, x) in (0, max_gradient)
    grid: torch.Tensor                 # (N, 3, z, y, x) moving voxel index sampled by every fixed voxel


class SharedEncoder(nn.Module):
    """V-Net encoder: a stem, then per level a stride-2 down-convolution and a residual stage.

    Args:
        in_channels: MRI sequences per image.
        features: feature maps per level, top to bottom.
        convolutions: convolutions in each level's residual stage.
        kernel_size: cubic kernel size.
        normalization: "instance", "batch" or "none".
    """

    def __init__(self, in_channels: int, features: tuple[int, ...], convolutions: tuple[int, ...],
                 kernel_size: int = 3, normalization: str = "instance") -> None:
        super().__init__()
        self.stem = ConvUnit(in_channels, features[0], kernel_size, normalization=normalization)
        stages: list[nn.Module] = [ResidualStage(features[0], convolutions[0], kernel_size, normalization)]
        for level in range(1, len(features)):
            stages.append(nn.Sequential(DownConvolution(features[level - 1], features[level], normalization),
                                        ResidualStage(features[level], convolutions[level], kernel_size,
                                                      normalization)))
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        codes = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            codes.append(x)
        return codes


class Decoder(nn.Module):
    """V-Net decoder over per-level codes (coarsest last) ending in a 1x1x1 head with ``out_channels`` outputs.

    Args:
        features: feature maps of the codes per level, top to bottom.
        convolutions: convolutions in each level's residual stage.
        out_channels: outputs of the head.
        kernel_size: cubic kernel size.
        normalization: "instance", "batch" or "none".
    """

    def __init__(self, features: tuple[int, ...], convolutions: tuple[int, ...], out_channels: int,
                 kernel_size: int = 3, normalization: str = "instance") -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            DecoderStage(features[level + 1], features[level], features[level], convolutions[level], kernel_size,
                         normalization)
            for level in reversed(range(len(features) - 1)))
        self.head = nn.Conv3d(features[0], out_channels, kernel_size=1)

    def forward(self, codes: list[torch.Tensor]) -> torch.Tensor:
        x = codes[-1]
        for stage, skip in zip(self.stages, reversed(codes[:-1])):
            x = stage(x, skip)
        return self.head(x)


def merge_codes(moving: torch.Tensor, fixed: torch.Tensor, how: str) -> torch.Tensor:
    """Combine the two images' codes of one level: moving - fixed, moving + fixed, or both stacked."""
    if how == "subtract":
        return moving - fixed
    if how == "add":
        return moving + fixed
    if how == "concatenate":
        return torch.cat([moving, fixed], dim=1)
    raise ValueError(f"merge must be one of {MERGES}, got {how!r}")


class BrainJointNet(nn.Module):
    """Registers ``moving`` to ``fixed`` and segments the tumour in both (Estienne et al. 2020).

    ``forward(moving, fixed)`` takes two (N, channels_per_image, z, y, x) tensors on the same grid, every size a
    multiple of ``config.size_multiple``, and returns a :class:`JointOutput`. The registration head starts at
    gradients of exactly 1, so an untrained network outputs the identity transform.
    """

    def __init__(self, config: BrainJointConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or BrainJointConfig()
        self.encoder = SharedEncoder(config.channels_per_image, config.features, config.convolutions,
                                     config.kernel_size, config.normalization)
        self.segmentation_decoder = Decoder(config.features, config.convolutions, config.segmentation_classes,
                                            config.kernel_size, config.normalization)
        merged = tuple(2 * f for f in config.features) if config.merge == "concatenate" else config.features
        self.registration_decoder = Decoder(merged, config.convolutions, 3, config.kernel_size,
                                            config.normalization)
        # identity at start: zero weights and the bias whose sigmoid is 1 / max_gradient (0 when it is 2)
        identity = 1.0 / config.max_gradient
        nn.init.zeros_(self.registration_decoder.head.weight)
        nn.init.constant_(self.registration_decoder.head.bias, math.log(identity / (1.0 - identity)))

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> JointOutput:
        batch = moving.shape[0]
        codes = self.encoder(torch.cat([moving, fixed], dim=0))  # one pass, the encoder is shared
        segmentation = self.segmentation_decoder(codes)
        merged = [merge_codes(code[:batch], code[batch:], self.config.merge) for code in codes]
        # 2 x sigmoid in the paper
        gradients = self.config.max_gradient * torch.sigmoid(self.registration_decoder(merged))
        return JointOutput(segmentation[:batch], segmentation[batch:], gradients, integrate_gradients(gradients))


def _register() -> None:
    from radassist.runtime.registry import register_architecture

    register_architecture(ARCHITECTURE_NAME, BrainJointConfig, BrainJointNet,
                          description="Joint brain MRI registration and tumour segmentation (Estienne et al. 2020): "
                                      "shared V-Net encoder, merged codes, integrated spatial gradients")


_register()
