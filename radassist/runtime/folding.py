"""Inference copies of trained networks with their batch norms folded into the convolutions before them.

An eval-mode batch norm is a fixed per-channel scale and shift, so the convolution before it can absorb it: the
copy computes the same function (up to float rounding) with one pass over each activation fewer. On a 2-core CPU
that pass is a large share of a convolutional network's time (the light liver U-Net runs 1.6x faster folded, its
mU-Net 2x). ONNX Runtime folds the same pairs itself when it optimises a graph, so exporting a folded copy changes
nothing there. Fold copies only: the state-dict keys change (norms become ``nn.Identity``, convolutions gain a
bias), and a network that is trained or saved must keep its own.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, *_TRANSPOSED)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _leading(module: nn.Module) -> tuple[nn.Sequential, int] | None:
    """Where the first layer of ``module`` sits, looking inside nested sequences (MONAI's ``Convolution`` is
    ``conv`` followed by an ``adn`` sequence that starts with its norm)."""
    parent, index = None, 0
    while isinstance(module, nn.Sequential) and len(module):
        parent, index, module = module, 0, module[0]
    return (parent, index) if parent is not None else None


def fold_sequential_batch_norms(module: nn.Module) -> int:
    """Fold, in place, every batch norm with running statistics that directly follows a (transposed) convolution
    inside an ``nn.Sequential`` of ``module`` (which must be in eval mode), also when it opens a nested sequence
    that follows the convolution; returns how many were folded. Norms without running statistics normalise by
    each batch's own and are left as they are."""
    if module.training:
        raise ValueError("fold batch norms of an eval-mode network only (training norms use batch statistics)")
    folded = 0
    for sequence in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        for index in range(len(sequence) - 1):
            conv, following = sequence[index], sequence[index + 1]
            holder, position = (sequence, index + 1) if not isinstance(following, nn.Sequential) else \
                (_leading(following) or (None, 0))
            norm = holder[position] if holder is not None else None
            if isinstance(conv, _CONVOLUTIONS) and isinstance(norm, _NORMS) and \
                    norm.running_mean is not None and norm.running_var is not None:
                sequence[index] = fuse_conv_bn_eval(conv, norm, transpose=isinstance(conv, _TRANSPOSED))
                holder[position] = nn.Identity()
                folded += 1
    return folded


def folded_inference_copy(network: nn.Module) -> nn.Module:
    """An eval-mode deep copy of ``network`` with its batch norms folded and no parameter needing gradients;
    ``network`` itself is untouched."""
    inference = copy.deepcopy(network).eval()
    fold_sequential_batch_norms(inference)
    for parameter in inference.parameters():
        parameter.requires_grad_(False)
    return inference


__all__ = ["fold_sequential_batch_norms", "folded_inference_copy"]
