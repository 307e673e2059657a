"""The joint network (Estienne et al. 2020): config and registry, identity at start, merge options, ONNX parity,
and a tiny configuration that learns on the CPU to undo a small deformation and to segment the tumour."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from radassist.brain.losses import JointLossConfig, joint_loss, masked_mse, similarity_mask
from radassist.brain.model import ARCHITECTURE_NAME, BrainJointConfig, BrainJointNet
from radassist.brain.spatial import identity_grid, warp
from radassist.brain.train import BrainTrainConfig, TrainingSubject, make_batch, train_brain
from radassist.errors import InputError
from radassist.runtime.registry import build_model, get_architecture

TINY = dict(channels_per_image=2, features=(4, 8, 8, 8, 8), convolutions=(1, 1, 1, 1, 1))
TOY_SIZE = 24  # the learning test uses three levels (sizes: multiples of 4) to stay fast on two cores
TOY = dict(channels_per_image=2, features=(4, 8, 16), convolutions=(1, 1, 1), normalization="instance")


def test_registered_with_catalogue_field_names():
    architecture = get_architecture(ARCHITECTURE_NAME)
    assert architecture.config_class is BrainJointConfig
    model = build_model(ARCHITECTURE_NAME, {"spatialDims": 3, "channelsPerImage": 2, "segmentationClasses": 4,
                                            "features": [4, 8, 8, 8, 8], "convolutions": [1, 1, 1, 1, 1],
                                            "similarity": "mse", "tumourMaskedSimilarity": True})
    assert isinstance(model, BrainJointNet)
    assert model.config.channels_per_image == 2 and model.config.features == (4, 8, 8, 8, 8)
    with pytest.raises(InputError, match="unknown config field"):
        build_model(ARCHITECTURE_NAME, {"inputSize": 3})


def test_paper_defaults():
    config = BrainJointConfig()
    assert config.features == (8, 16, 32, 64, 128)  # f = 8, five levels
    assert config.merge == "subtract" and config.channels_per_image == 4 and config.segmentation_classes == 4
    assert config.max_gradient == 2.0 and config.size_multiple == 16
    loss = JointLossConfig()
    assert loss.alpha == 1e-10 and loss.beta == 1.0
    train = BrainTrainConfig()
    assert (train.learning_rate, train.lr_factor, train.lr_patience, train.early_stop_patience, train.batch_size) == \
        (2e-3, 0.2, 30, 50, 2)
    assert train.crop_size == (144, 208, 144)


@pytest.mark.parametrize("bad", [dict(spatial_dims=2), dict(merge="multiply"), dict(displacement="dense"),
                                 dict(features=(8, 16), convolutions=(1,)), dict(kernel_size=4),
                                 dict(max_gradient=1.0), dict(normalization="group")])
def test_config_refuses_bad_values(bad):
    with pytest.raises(ValueError):
        BrainJointConfig(**bad)


@pytest.mark.parametrize("merge", ["subtract", "add", "concatenate"])
def test_untrained_network_is_the_identity(merge):
    torch.manual_seed(0)
    model = BrainJointNet(BrainJointConfig(**TINY, merge=merge)).eval()
    moving, fixed = torch.randn(2, 2, 16, 32, 16), torch.randn(2, 2, 16, 32, 16)
    with torch.no_grad():
        output = model(moving, fixed)
    assert output.segmentation_moving.shape == (2, 4, 16, 32, 16)
    assert output.segmentation_fixed.shape == (2, 4, 16, 32, 16)
    assert torch.allclose(output.gradients, torch.ones_like(output.gradients), atol=1e-6)
    assert torch.allclose(output.grid, identity_grid((16, 32, 16), batch=2), atol=1e-4)


def test_segmentation_decoder_is_shared_between_images():
    torch.manual_seed(0)
    model = BrainJointNet(BrainJointConfig(**TINY, normalization="instance")).eval()
    a, b = torch.randn(1, 2, 32, 32, 32), torch.randn(1, 2, 32, 32, 32)  # instance norm needs > 1 voxel below
    with torch.no_grad():
        first, second = model(a, b), model(b, a)
    assert torch.allclose(first.segmentation_moving, second.segmentation_fixed, atol=1e-5)
    assert torch.allclose(first.segmentation_fixed, second.segmentation_moving, atol=1e-5)


def test_loss_ignores_the_tumour_of_both_images():
    """The similarity term is blind to differences inside either predicted tumour."""
    logits = torch.zeros(1, 4, 16, 16, 16)
    logits[:, 0] = 1.0
    fixed_logits, moving_logits = logits.clone(), logits.clone()
    fixed_logits[:, 2, 2:6, 2:6, 2:6] = 5.0       # tumour in the fixed image
    moving_logits[:, 3, 10:14, 10:14, 10:14] = 5.0  # another in the moving one
    grid = identity_grid((16, 16, 16))
    from radassist.brain.model import JointOutput

    output = JointOutput(moving_logits, fixed_logits, torch.ones(1, 3, 16, 16, 16), grid)
    mask = similarity_mask(output)
    assert mask[0, 0, 3, 3, 3] == 0 and mask[0, 0, 11, 11, 11] == 0 and mask[0, 0, 8, 8, 8] == 1
    fixed = torch.zeros(1, 1, 16, 16, 16)
    moving = fixed.clone()
    moving[..., 2:6, 2:6, 2:6] = 7.0
    moving[..., 10:14, 10:14, 10:14] = -3.0
    terms = joint_loss(output, moving, fixed, JointLossConfig())
    assert float(terms.similarity) == pytest.approx(0.0, abs=1e-7)
    unmasked = joint_loss(output, moving, fixed, JointLossConfig(tumour_masked_similarity=False))
    assert float(unmasked.similarity) == pytest.approx((64 * 7.0 ** 2 + 64 * 3.0 ** 2) / 16 ** 3)
    assert float(masked_mse(moving, fixed)) == pytest.approx(float(unmasked.similarity))


def test_onnx_export_matches_torch(tmp_path):
    from radassist.runtime.onnx_backend import assert_onnx_parity

    torch.manual_seed(0)
    model = BrainJointNet(BrainJointConfig(**TINY)).eval()
    with torch.no_grad():  # move the heads off their start values so the parity check means something
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    moving, fixed = torch.randn(1, 2, 16, 16, 16), torch.randn(1, 2, 16, 16, 16)
    result = assert_onnx_parity(model, (moving, fixed), tmp_path, atol=1e-3, input_names=["moving", "fixed"],
                                output_names=["segmentation_moving", "segmentation_fixed", "gradients", "grid"])
    assert result.passed and len(result.checks) == 2  # the example and a larger, batch + 1 input


# -- learning -----------------------------------------------------------------------------------------------------

def _toy_subjects() -> tuple[TrainingSubject, TrainingSubject]:
    """A smooth random 'brain' with a bright spherical tumour, and the same deformed by a smooth known field."""
    rng = np.random.default_rng(3)
    n = TOY_SIZE
    texture = ndimage.gaussian_filter(rng.standard_normal((n, n, n)), 2.0)
    texture = (texture - texture.mean()) / texture.std()
    z, y, x = np.mgrid[:n, :n, :n].astype(float)
    tumour = ((z - n / 2) ** 2 + (y - n / 2 + 1) ** 2 + (x - n / 2 - 1) ** 2) < 5.0 ** 2
    fixed_image = texture + 3.0 * tumour
    shift = np.stack([1.5 * np.sin(2 * np.pi * y / n), 1.5 * np.cos(2 * np.pi * x / n),
                      1.5 * np.sin(2 * np.pi * z / n)])
    coordinates = np.stack([z, y, x]) + shift
    moving_image = ndimage.map_coordinates(fixed_image, coordinates, order=1, mode="nearest")
    moving_tumour = ndimage.map_coordinates(tumour.astype(float), coordinates, order=1) > 0.5
    brain = np.ones((n, n, n), bool)

    def subject(name, image, labels):
        images = np.stack([image, 0.5 * image]).astype(np.float32)
        return TrainingSubject(name, images, labels.astype(np.int64) * 3, brain)  # class 3: enhancing tumour

    return subject("moving", moving_image, moving_tumour), subject("fixed", fixed_image, tumour)


def test_tiny_network_learns_to_undo_a_deformation_and_segment():
    moving, fixed = _toy_subjects()
    config = BrainJointConfig(**TOY)
    crop = (TOY_SIZE,) * 3
    train = BrainTrainConfig(epochs=60, batch_size=2, learning_rate=1e-2, crop_size=crop,
                             loss=JointLossConfig(alpha=1e-4), lr_patience=1000, early_stop_patience=1000)
    result = train_brain([moving, fixed], [], config, train, channels=("flair", "t1"))
    history = result.history
    assert history[-1].train_loss < 0.3 * history[0].train_loss

    batch = make_batch([moving, fixed], [(0, 1)], crop, None, config.size_multiple)
    with torch.no_grad():
        output = result.model(batch["moving"], batch["fixed"])
        warped = warp(batch["moving"], output.grid)
    before = float(((batch["moving"] - batch["fixed"]) ** 2).mean())
    after = float(((warped - batch["fixed"]) ** 2).mean())
    assert after < 0.5 * before, (before, after)
    predicted = output.segmentation_fixed.argmax(1)[0].numpy() == 3
    truth = batch["fixed_tumour"][0].numpy() == 3
    dice = 2 * np.count_nonzero(predicted & truth) / (predicted.sum() + truth.sum())
    assert dice > 0.8, dice
    assert result.channels == ("flair", "t1")
