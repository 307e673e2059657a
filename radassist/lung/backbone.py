"""ResNet backbone for Lung-DETR: MONAI's ResNet (2-D) returning three feature levels, with frozen batch norm.

Deformable DETR takes C3, C4 and C5 (strides 8, 16, 32) from a ResNet-50 and derives a fourth, coarser level
itself. The module and parameter names follow the usual ResNet layout (``conv1``, ``bn1``, ``layer1``..``layer4``,
``downsample``), so ImageNet ResNet weights map onto it by prefix alone. Depth 18/34 and a smaller base width exist
for fast tests; they are not what the paper trains.
"""

from __future__ import annotations

import torch
from monai.networks.nets.resnet import ResNet, ResNetBlock, ResNetBottleneck
from torch import nn


class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics and affine terms (buffers, not parameters).

    Detection batches are small (Lung-DETR: 6 slabs), too small for batch statistics; DETR-family models keep the
    pretrained backbone's statistics frozen instead. The state dict has BatchNorm2d's keys, so weights load either way.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):  # noqa: D401 - torch hook
        state_dict.pop(prefix + "num_batches_tracked", None)  # a BatchNorm2d counter that means nothing here
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale[None, :, None, None] + shift[None, :, None, None]


def _foldable(norm: nn.Module | None) -> bool:
    return isinstance(norm, FrozenBatchNorm2d) or (isinstance(norm, nn.BatchNorm2d) and not norm.training
                                                     and norm.running_mean is not None)


@torch.no_grad()
def _fold_into(conv: nn.Conv2d, norm: nn.Module) -> None:
    """conv then norm == one conv with scaled weights and a shifted bias (per output channel)."""
    scale = norm.weight * (norm.running_var + norm.eps).rsqrt()
    shift = norm.bias - norm.running_mean * scale
    conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
    if conv.bias is None:
        conv.bias = nn.Parameter(shift.clone())
    else:
        conv.bias.mul_(scale).add_(shift)


def fold_batch_norms(network: nn.Module) -> int:
    """Fold every frozen (or eval-mode) batch norm that directly follows a convolution into it, in place.

    Inference only: the result computes the same function (up to float rounding) with one pass over each feature
    map instead of two, which on the CPU is a large share of the backbone's time. The state dict changes
    (norms become ``nn.Identity``, convolutions gain a bias), so fold a copy, never a network that is trained or
    saved. Returns how many norms were folded.
    """
    folded = 0
    for module in list(network.modules()):
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            pairs = list(zip(names, names[1:]))
        else:
            pairs = [(f"conv{i}", f"bn{i}") for i in range(1, 4)]
        for conv_name, norm_name in pairs:
            conv, norm = getattr(module, conv_name, None), getattr(module, norm_name, None)
            if isinstance(conv, nn.Conv2d) and _foldable(norm):
                _fold_into(conv, norm)
                setattr(module, norm_name, nn.Identity())
                folded += 1
    return folded


def freeze_batch_norms(network: nn.Module) -> None:
    """Replace every ``BatchNorm2d`` of ``network`` by a :class:`FrozenBatchNorm2d` of the same size, in place."""
    for module in list(network.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.BatchNorm2d):
                setattr(module, name, FrozenBatchNorm2d(child.num_features, child.eps))


RESNETS: dict[str, tuple[str, tuple[int, int, int, int]]] = {  # block type and blocks per stage
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),   # Lung-DETR / Deformable DETR backbone
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
}


class ResNetBackbone(ResNet):
    """MONAI's 2-D ResNet without its classifier, returning the C3, C4, C5 feature maps (strides 8, 16, 32).

    Args:
        name: one of :data:`RESNETS` ("resnet50" for the paper's model).
        in_channels: image channels (1 for a windowed CT slab; 3 when ImageNet weights are loaded).
        base_width: channels of the stem and the first stage (64 in every standard ResNet); stage ``i`` has
            ``base_width * 2**i`` block width. A smaller value gives a tiny network for tests.
        frozen_batch_norm: freeze normalisation statistics (right for pretrained weights and small batches).
    """

    def __init__(self, name: str = "resnet50", in_channels: int = 1, base_width: int = 64,
                 frozen_batch_norm: bool = True) -> None:
        if name not in RESNETS:
            raise ValueError(f"unknown backbone '{name}'; known: {', '.join(RESNETS)}")
        block, blocks = RESNETS[name]
        widths = [base_width * 2 ** index for index in range(4)]
        super().__init__(block, list(blocks), widths, spatial_dims=2, n_input_channels=in_channels,
                         conv1_t_stride=2, feed_forward=False, bias_downsample=False)
        # Zero the last norm of each residual branch so every block starts as identity: trains from scratch stably.
        for module in self.modules():
            last = getattr(module, "bn3", None) if isinstance(module, ResNetBottleneck) else \
                getattr(module, "bn2", None) if isinstance(module, ResNetBlock) else None
            if last is not None:
                nn.init.zeros_(last.weight)
        if frozen_batch_norm:
            freeze_batch_norms(self)
        expansion = ResNetBottleneck.expansion if block == "bottleneck" else ResNetBlock.expansion
        self.out_channels: tuple[int, ...] = tuple(widths[index] * expansion for index in (1, 2, 3))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c2 = self.layer1(self.maxpool(self.act(self.bn1(self.conv1(x)))))
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return [c3, c4, c5]
