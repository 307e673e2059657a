"""The liver networks: U-Net and mU-Net build from the catalogue's configs, learn a tiny synthetic liver on the CPU,
and export to ONNX with the same answers."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from radassist.errors import InputError
from radassist.liver.datasets import LitsCase, LitsVolume, training_slices
from radassist.liver.losses import CrossEntropyDiceLoss
from radassist.liver.model import MUNET, UNET, LiverMUNetConfig, MUNet2d, ResidualSkipPath2d, liver_segments
from radassist.liver.preprocess import ABDOMINAL_WINDOW, LiverPreprocessing
from radassist.liver.train import LiverTrainConfig, predict_batches, train_liver
from radassist.metrics.segmentation import SegmentationScores, confusion_matrix
from radassist.runtime.catalog import load_catalog
from radassist.runtime.onnx_backend import assert_onnx_parity
from radassist.runtime.registry import build_model, make_config
from radassist.synthetic.abdomen import AbdomenPhantomConfig, make_abdomen_ct
from readable_outputs import assert_curves

TINY = {"channels": (8, 16, 32)}
PHANTOM = AbdomenPhantomConfig(shape=(16, 48, 64), spacing=(4.4, 4.4, 12.0), tumour_count=(1, 2),
                               tumour_radius_mm=(12.0, 25.0), tumour_contrast_hu=(40.0, 60.0))


@pytest.mark.parametrize("architecture", [UNET, MUNET])
def test_networks_give_three_class_logits_at_input_size(architecture):
    model = build_model(architecture, TINY).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 32, 48)).shape == (2, 3, 32, 48)
    with pytest.raises(ValueError, match="multiple of 4"):
        model(torch.randn(1, 1, 30, 32))


@pytest.mark.parametrize("model_id", ["liver-unet", "liver-munet"])
def test_catalogue_configs_build(model_id):
    """The catalogue's camelCase config (spatialDims, residualSkipPaths...) is accepted by our config classes."""
    entry = load_catalog().get(model_id)
    config = make_config(model_id, entry.architecture_config)
    assert config.out_channels == 3 and config.channels == (64, 128, 256, 512, 1024)
    assert len(entry.labels) == 2


def test_25d_switch_needs_matching_channels():
    config = make_config(MUNET, {**TINY, "context_slices": 2, "in_channels": 5})
    assert build_model(MUNET, config)(torch.randn(1, 5, 16, 16)).shape == (1, 3, 16, 16)
    with pytest.raises(InputError, match="in_channels must be 2 \\* context_slices \\+ 1 = 3"):
        LiverMUNetConfig(context_slices=1, in_channels=1)
    with pytest.raises(InputError, match="2-D"):
        make_config(UNET, {"spatialDims": 3})


def test_residual_skip_path_subtracts_the_deconvolved_deeper_feature():
    path = ResidualSkipPath2d(skip_channels=2, deeper_channels=3, convolutions=0, residual=True)
    skip, deeper = torch.randn(1, 2, 8, 8), torch.randn(1, 3, 4, 4)
    expected = skip - torch.relu(path.residual[0](deeper))
    assert torch.allclose(path(skip, deeper), expected)
    plain = ResidualSkipPath2d(skip_channels=2, deeper_channels=3, convolutions=0, residual=False)
    assert torch.equal(plain(skip, deeper), skip)


def test_munet_skip_convolutions_default_to_more_at_the_top():
    model = MUNet2d(channels=(4, 8, 16, 32))
    assert [len(path.convs) for path in model.skips] == [3, 2, 1]


def test_losses_reward_the_right_answer():
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[0, 2:6, 2:6] = 1
    target[0, 3:4, 3:4] = 2
    good = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() * 20
    bad = good.roll(1, dims=1)
    loss = CrossEntropyDiceLoss()
    assert loss(good, target) < 0.01 < 1.0 < loss(bad, target)
    assert CrossEntropyDiceLoss(ce_weight=0.0)(good, target) < 1e-3
    logits = torch.zeros(1, 3, 8, 8, requires_grad=True)
    loss(logits, target).backward()
    assert logits.grad.abs().sum() > 0



def test_class_weights_weight_the_cross_entropy_alone():
    """Lung infection's median-frequency weights go to the cross-entropy term only: the Dice term is unchanged."""
    torch.manual_seed(0)
    logits, target = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8))
    weights = torch.tensor([0.2, 1.0, 5.0])
    ce_only = CrossEntropyDiceLoss(dice_weight=0.0, class_weights=weights)(logits, target)
    assert ce_only == pytest.approx(torch.nn.functional.cross_entropy(logits, target, weight=weights).item(), rel=1e-5)
    dice_only = CrossEntropyDiceLoss(ce_weight=0.0, class_weights=weights)(logits, target)
    assert dice_only == pytest.approx(CrossEntropyDiceLoss(ce_weight=0.0)(logits, target).item(), rel=1e-6)


@pytest.fixture(scope="module")
def tiny_slices():
    phantom = make_abdomen_ct(0, PHANTOM)
    case = LitsVolume(LitsCase(0, None, None), phantom.volume, phantom.labels.flattened())
    return training_slices([case], LiverPreprocessing(window=ABDOMINAL_WINDOW), (32, 32))


@pytest.mark.parametrize("arch", ["unet", "munet"])
def test_both_architectures_learn_a_tiny_liver(arch, tiny_slices):
    torch.set_num_threads(2)
    config = LiverTrainConfig(architecture=arch, model=TINY, window=ABDOMINAL_WINDOW, image_size=(32, 32),
                              epochs=20, learning_rate=3e-3, batch_size=8, validation_fraction=0.0, augment=None)
    trained = train_liver(tiny_slices, config)
    losses = [record.train_loss for record in trained.history]
    assert losses[-1] < 0.6 * losses[0]
    predicted = predict_batches(trained.model, tiny_slices.images, 8, torch.device("cpu"))
    scores = SegmentationScores(["background", "liver", "tumour"], confusion_matrix(tiny_slices.masks, predicted, 3))
    assert scores.dice[1] > 0.8, scores.dice


@pytest.mark.parametrize("architecture", [UNET, MUNET])
def test_onnx_export_matches_torch(architecture, tmp_path):
    torch.manual_seed(0)
    model = build_model(architecture, TINY).eval()
    example = np.random.default_rng(0).standard_normal((1, 1, 32, 32)).astype(np.float32)
    result = assert_onnx_parity(model, example, tmp_path, atol=1e-4, input_names=["image"],
                                output_names=["logits"])
    assert result.passed and len(result.checks) == 2  # the example and a different batch and slice size


def test_segments_are_coded_with_snomed():
    liver, tumour = liver_segments()
    assert (liver.name, liver.label_value, liver.terminology.type.value) == ("Liver", 1, "10200004")
    assert (tumour.name, tumour.label_value, tumour.terminology.type.value) == ("Liver tumour", 2, "108369006")
    assert tumour.terminology.anatomic_region.value == "10200004"


@pytest.fixture(scope="module")
def two_case_slices():
    cases = []
    for number in (0, 1):
        phantom = make_abdomen_ct(number, PHANTOM)
        cases.append(LitsVolume(LitsCase(number, None, None), phantom.volume, phantom.labels.flattened()))
    return training_slices(cases, LiverPreprocessing(window=ABDOMINAL_WINDOW), (32, 32))


def test_training_returns_the_best_validated_epoch_and_logs_every_epoch(two_case_slices, tmp_path):
    torch.set_num_threads(2)
    config = LiverTrainConfig(architecture="unet", model=TINY, window=ABDOMINAL_WINDOW, image_size=(32, 32),
                              epochs=4, learning_rate=1e-2, batch_size=8, validation_fraction=0.5, augment=None)
    trained = train_liver(two_case_slices, config)
    scores = [r.selection_score for r in trained.history]
    assert all(s is not None for s in scores)
    assert trained.best_epoch == 1 + int(np.nanargmax(scores))
    kept = trained.kept_record
    assert trained.validation.dice[1] == pytest.approx(kept.validation_dice_liver, nan_ok=True)
    # the returned weights are the kept epoch's: they score its validation Dice again
    validation = two_case_slices.subset(np.isin(two_case_slices.cases, trained.validation_cases))
    predicted = predict_batches(trained.model, validation.images, 8, torch.device("cpu"))
    again = SegmentationScores(["background", "liver", "tumour"], confusion_matrix(validation.masks, predicted, 3))
    assert np.array_equal(again.confusion, trained.validation.confusion)

    trained.save(tmp_path / "checkpoint")
    assert_curves(tmp_path / "checkpoint")
    with open(tmp_path / "checkpoint" / "train_log.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert [r["epoch"] for r in rows if r["kept"] == "1"] == [str(trained.best_epoch)]
    assert float(rows[0]["train_loss"]) == pytest.approx(trained.history[0].train_loss, abs=1e-6)
    assert all(float(r["seconds"]) >= 0 for r in rows) and sum(float(r["seconds"]) for r in rows) > 0
    saved = json.loads((tmp_path / "checkpoint" / "config.json").read_text())
    assert saved["metadata"]["best_epoch"] == trained.best_epoch
