"""ResNet backbone for Lung-DETR, built from our own residual blocks (no torchvision here).

Deformable DETR takes C3, C4 and C5 (strides 8, 16, 32) from a ResNet-50 and derives a fourth, coarser level
itself. The module and parameter names follow the usual ResNet layout (``conv1``, ``bn1``, ``layer1``..``layer4``,
``downsample``), so ImageNet ResNet weights map onto it by prefix alone. Depth 18/34 and a smaller base width exist
for fast tests; they are not what the paper trains.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
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


def _foldable(norm: nn.Module) -> bool:
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
        pairs: list[tuple[nn.Module, str, str]] = []
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            pairs = [(module, a, b) for a, b in zip(names, names[1:])]
        else:
            pairs = [(module, f"conv{i}", f"bn{i}") for i in range(1, 4)]
        for owner, conv_name, norm_name in pairs:
            conv, norm = getattr(owner, conv_name, None), getattr(owner, norm_name, None)
            if isinstance(conv, nn.Conv2d) and norm is not None and _foldable(norm):
                _fold_into(conv, norm)
                setattr(owner, norm_name, nn.Identity())
                folded += 1
    return folded


def make_norm(num_features: int, frozen: bool) -> nn.Module:
    """Frozen batch norm (pretrained statistics) or ordinary batch norm (training from scratch)."""
    return FrozenBatchNorm2d(num_features) if frozen else nn.BatchNorm2d(num_features)


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut: ResNet-18/34.

    Args:
        in_channels: channels coming in.
        width: channels of the block (its output has ``width * expansion``).
        stride: 2 for the first block of a stage that halves the resolution.
        frozen_norm: use :class:`FrozenBatchNorm2d` instead of BatchNorm2d.
    """

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int = 1, frozen_norm: bool = False) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = conv3x3(in_channels, width, stride)
        self.bn1 = make_norm(width, frozen_norm)
        self.conv2 = conv3x3(width, out_channels)
        self.bn2 = make_norm(out_channels, frozen_norm)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, out_channels, stride, frozen_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride, as in ResNet v1.5), 1x1 expand by 4: ResNet-50/101.

    Args:
        in_channels: channels coming in.
        width: channels of the 3x3 convolution (its output has ``width * 4``).
        stride: 2 for the first block of a stage that halves the resolution.
        frozen_norm: use :class:`FrozenBatchNorm2d` instead of BatchNorm2d.
    """

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1, frozen_norm: bool = False) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = conv1x1(in_channels, width)
        self.bn1 = make_norm(width, frozen_norm)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = make_norm(width, frozen_norm)
        self.conv3 = conv1x1(width, out_channels)
        self.bn3 = make_norm(out_channels, frozen_norm)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, out_channels, stride, frozen_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _shortcut(in_channels: int, out_channels: int, stride: int, frozen_norm: bool) -> nn.Sequential | None:
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(conv1x1(in_channels, out_channels, stride), make_norm(out_channels, frozen_norm))


@dataclass(frozen=True)
class ResNetSpec:
    """Block type and blocks per stage of one ResNet depth."""

    block: type[BasicBlock] | type[Bottleneck]
    blocks: tuple[int, int, int, int]


RESNETS: dict[str, ResNetSpec] = {
    "resnet18": ResNetSpec(BasicBlock, (2, 2, 2, 2)),
    "resnet34": ResNetSpec(BasicBlock, (3, 4, 6, 3)),
    "resnet50": ResNetSpec(Bottleneck, (3, 4, 6, 3)),   # Lung-DETR / Deformable DETR backbone
    "resnet101": ResNetSpec(Bottleneck, (3, 4, 23, 3)),
}


class ResNetBackbone(nn.Module):
    """A ResNet without its classifier, returning the C3, C4, C5 feature maps (strides 8, 16, 32).

    Args:
        name: one of :data:`RESNETS` ("resnet50" for the paper's model).
        in_channels: image channels (1 for a windowed CT slab; 3 when ImageNet weights are loaded).
        base_width: channels of the stem and the first stage (64 in every standard ResNet); stage ``i`` has
            ``base_width * 2**i`` block width. A smaller value gives a tiny network for tests.
        frozen_batch_norm: freeze normalisation statistics (right for pretrained weights and small batches).
    """

    def __init__(self, name: str = "resnet50", in_channels: int = 1, base_width: int = 64,
                 frozen_batch_norm: bool = True) -> None:
        super().__init__()
        if name not in RESNETS:
            raise ValueError(f"unknown backbone '{name}'; known: {', '.join(RESNETS)}")
        spec = RESNETS[name]
        self.conv1 = nn.Conv2d(in_channels, base_width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = make_norm(base_width, frozen_batch_norm)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = base_width
        stages = []
        for index, count in enumerate(spec.blocks):
            width = base_width * 2 ** index
            stride = 1 if index == 0 else 2
            blocks = []
            for number in range(count):
                blocks.append(spec.block(channels, width, stride if number == 0 else 1, frozen_batch_norm))
                channels = width * spec.block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_channels: tuple[int, int, int] = tuple(  # type: ignore[assignment]
            base_width * 2 ** index * spec.block.expansion for index in (1, 2, 3))
        self.strides: tuple[int, int, int] = (8, 16, 32)
        self._initialise()

    def _initialise(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        # Zero the last norm of each residual branch so every block starts as identity: trains from scratch stably.
        for module in self.modules():
            last = getattr(module, "bn3", None) if isinstance(module, Bottleneck) else \
                getattr(module, "bn2", None) if isinstance(module, BasicBlock) else None
            if isinstance(last, nn.BatchNorm2d):
                nn.init.zeros_(last.weight)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return [c3, c4, c5]
