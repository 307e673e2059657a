"""GMIC in ONNX Runtime: the global half (any batch and image size), the local half (any batch), the two halves
joined by the numpy patch selection, and the whole model as one graph at a fixed image size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from radassist.mammo.model import (
    FULL_EXPORT_OUTPUTS,
    GLOBAL_EXPORT_OUTPUTS,
    LOCAL_EXPORT_OUTPUTS,
    Gmic,
    GmicConfig,
    GmicFullExport,
    GmicGlobalExport,
    GmicLocalExport,
    select_patches_numpy,
)
from radassist.runtime.onnx_backend import OnnxSession, assert_onnx_parity, export_onnx


def small_model() -> Gmic:
    torch.manual_seed(0)
    config = GmicConfig(global_filters=4, post_processing_dim=64, local_filters=4, local_blocks=(1, 1, 1, 1),
                        attention_dim=8, crop_shape=(64, 48), num_patches=3, top_t_percent=10.0)
    model = Gmic(config)
    for module in model.modules():  # non-trivial batch-norm statistics, so eval mode is really exercised
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def image(batch: int, height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 1, height, width)).astype(np.float32)


def test_global_half_matches_for_other_batch_and_image_sizes(tmp_path: Path) -> None:
    model = small_model()
    axes = {"image": {0: "batch", 2: "height", 3: "width"}, "saliency_maps": {0: "batch", 2: "h", 3: "w"},
            "y_global": {0: "batch"}, "global_vector": {0: "batch"}}
    result = assert_onnx_parity(GmicGlobalExport(model), {"image": image(1, 256, 192, 0)}, tmp_path, atol=1e-4,
                                other_inputs=[{"image": image(3, 512, 256, 1)}, {"image": image(2, 384, 320, 2)}],
                                output_names=GLOBAL_EXPORT_OUTPUTS, dynamic_axes=axes)
    assert result.passed and len(result.checks) == 3
    assert result.checks[1].output_shapes["saliency_maps"] == (3, 2, 8, 4)


def test_local_half_matches_for_another_batch(tmp_path: Path) -> None:
    model = small_model()
    rng = np.random.default_rng(3)
    example = {"patches": rng.standard_normal((1, 3, 64, 48)).astype(np.float32),
               "global_vector": rng.random((1, 64)).astype(np.float32)}
    other = {"patches": rng.standard_normal((4, 3, 64, 48)).astype(np.float32),
             "global_vector": rng.random((4, 64)).astype(np.float32)}
    axes = {"patches": {0: "batch"}, "global_vector": {0: "batch"},
            **{name: {0: "batch"} for name in LOCAL_EXPORT_OUTPUTS}}
    result = assert_onnx_parity(GmicLocalExport(model), example, tmp_path, atol=1e-5, other_inputs=[other],
                                output_names=LOCAL_EXPORT_OUTPUTS, dynamic_axes=axes)
    assert result.passed


def test_two_onnx_halves_with_numpy_selection_reproduce_the_torch_model(tmp_path: Path) -> None:
    model = small_model()
    x = image(2, 256, 192, 4)
    export_onnx(GmicGlobalExport(model), {"image": x}, tmp_path / "global.onnx", ["image"],
                list(GLOBAL_EXPORT_OUTPUTS), {"image": {0: "batch", 2: "height", 3: "width"}})
    export_onnx(GmicLocalExport(model), {"patches": np.zeros((2, 3, 64, 48), np.float32),
                                         "global_vector": np.zeros((2, 64), np.float32)},
                tmp_path / "local.onnx", ["patches", "global_vector"], list(LOCAL_EXPORT_OUTPUTS),
                {"patches": {0: "batch"}, "global_vector": {0: "batch"}})
    glob = OnnxSession(tmp_path / "global.onnx").run({"image": x})
    corners, patches = select_patches_numpy(x, glob["saliency_maps"], model.config)
    local = OnnxSession(tmp_path / "local.onnx").run({"patches": patches, "global_vector": glob["global_vector"]})
    with torch.no_grad():
        expected = model(torch.from_numpy(x))
    assert np.array_equal(corners, expected.patch_locations.numpy())
    np.testing.assert_allclose(local["y_fusion"], expected.y_fusion.numpy(), atol=1e-5)
    np.testing.assert_allclose(local["attention"], expected.attention.numpy(), atol=1e-5)


def test_full_model_exports_as_one_graph_for_a_fixed_image_size(tmp_path: Path) -> None:
    model = small_model()
    axes = {"image": {0: "batch"}, **{name: {0: "batch"} for name in FULL_EXPORT_OUTPUTS}}
    result = assert_onnx_parity(GmicFullExport(model), {"image": image(1, 256, 192, 5)}, tmp_path, atol=1e-4,
                                other_inputs=[{"image": image(3, 256, 192, 6)}], output_names=FULL_EXPORT_OUTPUTS,
                                dynamic_axes=axes)
    assert result.passed
    session = OnnxSession(result.onnx_path)
    x = image(2, 256, 192, 7)
    with torch.no_grad():
        expected = model(torch.from_numpy(x))
    got = session.run({"image": x})
    assert np.array_equal(got["patch_locations"], expected.patch_locations.numpy())
