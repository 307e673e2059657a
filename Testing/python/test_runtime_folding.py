"""Batch norms folded into the convolutions before them: the same outputs from an inference copy, the original
untouched, for the liver networks that the pipeline now runs folded."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from radassist.runtime.folding import fold_sequential_batch_norms, folded_inference_copy
from radassist.runtime.registry import build_model


def _trained_like(network: nn.Module) -> nn.Module:
    """Give every batch norm statistics and affine values away from the identity, as training leaves them."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is not None:
                size = module.num_features
                module.running_mean.copy_(torch.randn(size, generator=generator) * 0.5)
                module.running_var.copy_(torch.rand(size, generator=generator) * 2 + 0.2)
                module.weight.copy_(torch.rand(size, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(size, generator=generator) * 0.3)
    return network.eval()


@pytest.mark.parametrize("architecture", ["liver-unet", "liver-munet"])
def test_folded_liver_networks_compute_the_same_logits(architecture):
    torch.manual_seed(0)
    network = _trained_like(build_model(architecture, {"channels": (4, 8, 16)}))
    before = {k: v.clone() for k, v in network.state_dict().items()}
    norms = sum(isinstance(m, nn.BatchNorm2d) for m in network.modules())
    folded = folded_inference_copy(network)
    assert norms > 0 and not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    images = torch.randn(2, 1, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(folded(images), network(images), atol=1e-4, rtol=1e-4)
    assert not any(p.requires_grad for p in folded.parameters())
    assert network.state_dict().keys() == before.keys()  # the trained network keeps its keys and values
    assert all(torch.equal(network.state_dict()[k], v) for k, v in before.items())


def test_transposed_convolutions_fold_and_batch_statistics_do_not():
    sequence = _trained_like(nn.Sequential(nn.ConvTranspose2d(3, 4, 2, stride=2), nn.BatchNorm2d(4), nn.ReLU(),
                                           nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4, track_running_stats=False)))
    images = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        want = sequence(images)
        assert fold_sequential_batch_norms(sequence) == 1  # the second norm uses each batch's own statistics
        torch.testing.assert_close(sequence(images), want, atol=1e-5, rtol=1e-5)
    assert isinstance(sequence[1], nn.Identity) and isinstance(sequence[4], nn.BatchNorm2d)
    with pytest.raises(ValueError, match="eval-mode"):
        fold_sequential_batch_norms(nn.Sequential(nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1)).train())
