"""The joint network's inference path (issue #7): the folded, channels-last copy computes what the trained network
computes, its ONNX export matches torch in ONNX Runtime, the export is cached, the pipeline gives the same
registration on either backend as with the unmodified network, and freed memory is reused while a pair runs."""

from __future__ import annotations

import platform
import resource

import numpy as np
import pytest
import torch
from torch import nn

from radassist.brain.inference import (JOINT_INPUTS, JOINT_OUTPUTS, ChannelsLastPointwise, JointInferenceNet,
                                       JointRunner, joint_runner)
from radassist.runtime.folding import fold_sequential_batch_norms
from radassist.runtime.memory import reuse_freed_memory
from radassist.brain.model import BrainJointConfig, BrainJointNet
from radassist.brain.pipeline import BrainImages, BrainPipelineConfig, register_brain_pair
from radassist.brain.postprocess import tumour_labelmap
from radassist.brain.preprocess import brats_to_classes
from radassist.runtime.backends import make_backend
from radassist.runtime.onnx_backend import assert_onnx_parity
from radassist.synthetic.brain import BrainPhantomConfig, make_brain_pair

TINY = dict(channels_per_image=2, features=(4, 8, 8, 8, 8), convolutions=(1, 2, 1, 1, 1))
SMALL = BrainPhantomConfig(shape=(40, 56, 48), spacing=(3.0, 3.0, 3.0))


def _trained_like(config: BrainJointConfig, seed: int = 0) -> BrainJointNet:
    """A network off its start values with batch-norm statistics that are not 0 and 1, as after training, so that
    folding, the heads and the registration outputs all matter."""
    torch.manual_seed(seed)
    model = BrainJointNet(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
        for module in model.modules():
            if isinstance(module, nn.BatchNorm3d):
                module.running_mean.normal_(0.0, 0.3)
                module.running_var.uniform_(0.5, 2.0)
    return model


def _close(got: torch.Tensor, want: torch.Tensor, atol: float) -> None:
    assert got.shape == want.shape
    difference = float((got.float() - want.float()).abs().max())
    assert difference <= atol, difference


@pytest.mark.parametrize("options", [dict(normalization="batch", merge="subtract"),
                                     dict(normalization="instance", merge="concatenate"),
                                     dict(normalization="none", merge="add")])
def test_inference_copy_computes_what_the_network_computes(options):
    model = _trained_like(BrainJointConfig(**TINY, **options))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = JointInferenceNet(model)
    moving, fixed = torch.randn(2, 2, 16, 32, 48), torch.randn(2, 2, 16, 32, 48)
    with torch.inference_mode():
        want, got = model(moving, fixed), fast(moving, fixed)
    for name, a, b in zip(JOINT_OUTPUTS, got, want):
        _close(a, b, atol=1e-4 if name != "grid" else 1e-3)  # the grid sums up to 48 gradients
    assert float(want.gradients.std()) > 0.01  # the registration head is off the identity: the check means something
    # the trained module is untouched: same keys, same values, its own layout
    assert list(model.state_dict()) == list(before)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    assert model.encoder.stem[0].weight.is_contiguous()
    norms = [m for m in fast.modules() if isinstance(m, nn.BatchNorm3d)]
    assert not norms  # every batch norm folded (instance norms cannot be, and stay)
    assert isinstance(fast.net.registration_decoder.head, ChannelsLastPointwise)


def test_folding_needs_running_statistics():
    sequence = nn.Sequential(nn.Conv3d(2, 3, 3), nn.BatchNorm3d(3, track_running_stats=False)).eval()
    assert fold_sequential_batch_norms(sequence) == 0
    assert isinstance(sequence[1], nn.BatchNorm3d)  # normalised by the batch's own statistics: nothing to fold
    with pytest.raises(ValueError, match="1x1x1"):
        ChannelsLastPointwise(nn.Conv3d(2, 3, 3))


def test_onnx_export_of_the_folded_network_matches_torch(tmp_path):
    model = _trained_like(BrainJointConfig(**TINY))
    network = JointInferenceNet(model, channels_last=False)
    moving, fixed = torch.randn(1, 2, 16, 16, 16), torch.randn(1, 2, 16, 16, 16)
    result = assert_onnx_parity(network, (moving, fixed), tmp_path, atol=1e-3, input_names=JOINT_INPUTS,
                                output_names=JOINT_OUTPUTS)
    assert result.passed and len(result.checks) == 2  # the example and a batch of 2 at twice the size


def test_onnx_runner_matches_the_torch_runner_and_is_exported_once(tmp_path):
    model = _trained_like(BrainJointConfig(**TINY))
    torch_runner = joint_runner(model, "torch", "cpu")
    onnx_runner = joint_runner(model, "onnx", "cpu", cache_dir=tmp_path)
    assert isinstance(onnx_runner, JointRunner) and onnx_runner.backend.kind == "onnx"
    assert onnx_runner.config == model.config
    rng = np.random.default_rng(1)
    moving, fixed = (rng.standard_normal((1, 2, 32, 48, 16)).astype(np.float32) for _ in range(2))
    want, got = torch_runner(moving, fixed), onnx_runner(moving, fixed)
    assert list(got) == list(JOINT_OUTPUTS)
    for name in JOINT_OUTPUTS:
        _close(torch.from_numpy(got[name]), torch.from_numpy(np.ascontiguousarray(want[name])), atol=1e-3)
    files = list(tmp_path.glob("*.onnx"))
    assert len(files) == 1 and files[0].name.startswith("brain-joint-")
    stamp = files[0].stat().st_mtime_ns
    again = joint_runner(model, "onnx", "cpu", cache_dir=tmp_path)
    assert again.backend.onnx_path == files[0] and files[0].stat().st_mtime_ns == stamp
    assert joint_runner(again) is again


@pytest.fixture(scope="module")
def pair():
    images = make_brain_pair(0, SMALL)

    def brain_images(volumes, labels):
        return BrainImages(dict(volumes), tumour=tumour_labelmap(brats_to_classes(labels.flattened()),
                                                                 labels.geometry))

    return brain_images(images.moving, images.moving_labels), brain_images(images.fixed, images.fixed_labels)


def test_pipeline_gives_the_same_registration_on_every_path(pair, tmp_path, monkeypatch):
    """The unmodified network (plain torch, no folding, no channels-last), the fast torch path and ONNX Runtime."""
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "cache"))
    moving, fixed = pair
    model = _trained_like(BrainJointConfig(channels_per_image=4, features=(4, 8, 8, 8, 8),
                                           convolutions=(1, 1, 1, 1, 1)), seed=2)
    reference = JointRunner(make_backend(model, "torch", "cpu", input_names=JOINT_INPUTS,
                                         output_names=JOINT_OUTPUTS), model.config)
    results = {"reference": register_brain_pair(moving, fixed, BrainPipelineConfig(engine="joint"),
                                                model=reference)}
    for backend in ("torch", "onnx"):
        results[backend] = register_brain_pair(moving, fixed, BrainPipelineConfig(engine="joint", backend=backend),
                                               model=model)
    assert list((tmp_path / "cache" / "onnx").glob("brain-joint-*.onnx"))  # exported into the RadAssist cache
    expected = results["reference"]
    assert np.abs(expected.field.vectors).max() > 0.5  # a real deformation (mm), not the identity
    for backend in ("torch", "onnx"):
        result = results[backend]
        assert np.abs(result.field.vectors - expected.field.vectors).max() < 1e-2  # mm, 3 mm voxels
        for name in ("fixed_tumour", "moving_tumour"):
            got, want = getattr(result, name).labels, getattr(expected, name).labels
            assert np.mean(got == want) > 0.999, name  # argmax may flip only at exact ties
        assert np.allclose(result.jacobian.array, expected.jacobian.array, atol=1e-3)
        warped, want_warped = result.warped["t1"].array, expected.warped["t1"].array
        assert np.abs(warped - want_warped).max() < 1e-3 * np.abs(want_warped).max()
        assert result.report.summary["folding_percent"] == pytest.approx(expected.report.summary["folding_percent"],
                                                                         abs=0.01)


def test_bad_backend_is_refused():
    with pytest.raises(ValueError, match="backend"):
        BrainPipelineConfig(backend="tensorrt")


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_memory_is_reused_inside_the_block():
    size = 64 * 2 ** 20 // 8  # 64 MiB of float64: far above glibc's 128 KiB mmap threshold

    def faults_of_one_array() -> int:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        array = np.ones(size)  # written everywhere: every page is touched
        del array
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    with reuse_freed_memory() as active:
        assert active
        faults_of_one_array()  # the heap grows once
        with reuse_freed_memory() as nested:
            assert nested
        assert faults_of_one_array() < 0.05 * size * 8 / 4096  # the same pages again, no fresh ones
