"""ONNX export, the ONNX Runtime session, the parity helper and the torch/ONNX inference backends, on real
MONAI U-Nets (2-D and 3-D) and a two-output conv net, exported by torch and run by onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from monai.networks.nets import UNet

from radassist.errors import InputError
from radassist.runtime.backends import (OnnxBackend, TorchBackend, cached_onnx, make_backend,
                                        model_fingerprint)
from radassist.runtime.device import DeviceUnavailable, choose_device
from radassist.runtime.onnx_backend import (OnnxExportError, OnnxParityError, OnnxSession, assert_onnx_parity,
                                            batch_and_spatial_axes, export_onnx, max_abs_difference,
                                            named_arrays, resolve_device)


def unet_2d() -> UNet:
    torch.manual_seed(0)
    return UNet(spatial_dims=2, in_channels=1, out_channels=2, channels=(8, 16, 32), strides=(2, 2),
                num_res_units=1).eval()


def unet_3d() -> UNet:
    torch.manual_seed(1)
    return UNet(spatial_dims=3, in_channels=2, out_channels=3, channels=(4, 8, 16), strides=(2, 2),
                num_res_units=1).eval()


class SegmentAndClassify(torch.nn.Module):
    """Two outputs of different rank: a per-pixel map (B, 2, H, W) and a per-image score (B, 3)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(),
                                            torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU())
        self.segment = torch.nn.Conv2d(8, 2, 1)
        self.classify = torch.nn.Linear(8, 3)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(image)
        return self.segment(features), self.classify(features.mean(dim=(2, 3)))


class SizeDependentBranch(torch.nn.Module):
    """Python control flow on the input size: tracing bakes in the branch taken for the example, so an ONNX
    graph exported with dynamic axes silently computes the wrong thing at other sizes. Parity must catch it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        out = self.conv(image)
        return out if image.shape[-1] <= 32 else out * 2.0


def slices(batch: int, size: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, channels, size, size)).astype(np.float32)


# ------------------------------------------------------------------------------------------- parity helper


def test_unet_2d_parity_holds_at_the_export_size_and_at_another_batch_and_size(tmp_path):
    result = assert_onnx_parity(unet_2d(), slices(1, 32), tmp_path, atol=1e-4)

    assert result.passed and result.max_abs_difference < 1e-4
    example, varied = result.checks
    assert example.input_shapes == {"input": (1, 1, 32, 32)}
    assert example.output_shapes == {"output": (1, 2, 32, 32)}
    assert varied.input_shapes == {"input": (2, 1, 64, 64)}  # batch + 1, spatial doubled
    assert varied.output_shapes == {"output": (2, 2, 64, 64)}
    graph_input = onnx.load(str(result.onnx_path)).graph.input[0]
    dims = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    assert dims == ["batch", 1, "input_dim2", "input_dim3"]


def test_unet_3d_parity_on_explicit_other_inputs(tmp_path):
    model = unet_3d()
    example = torch.randn(1, 2, 16, 16, 16)
    others = [np.random.default_rng(3).standard_normal((3, 2, 16, 32, 24)).astype(np.float32)]
    result = assert_onnx_parity(model, example, tmp_path, other_inputs=others)

    assert [c.output_shapes["output"] for c in result.checks] == [(1, 3, 16, 16, 16), (3, 3, 16, 32, 24)]
    assert result.max_abs_difference < 1e-4


def test_two_outputs_of_different_rank_keep_their_own_dynamic_axes(tmp_path):
    result = assert_onnx_parity(SegmentAndClassify(), slices(2, 24), tmp_path,
                                output_names=["mask_logits", "scores"])

    varied = result.checks[1]
    assert varied.input_shapes == {"input": (3, 1, 48, 48)}
    assert varied.output_shapes == {"mask_logits": (3, 2, 48, 48), "scores": (3, 3)}
    session = OnnxSession(result.onnx_path)
    assert session.output_names == ["mask_logits", "scores"]


def test_parity_catches_a_graph_that_is_wrong_at_other_sizes(tmp_path):
    with pytest.raises(OnnxParityError, match=r"\(> atol 0.0001\).*\(2, 1, 64, 64\)"):
        assert_onnx_parity(SizeDependentBranch(), slices(1, 32), tmp_path)


def test_parity_catches_a_graph_exported_from_other_weights(tmp_path):
    model = unet_2d()
    path = export_onnx(model, slices(1, 32), tmp_path / "unet.onnx", ["image"], ["logits"])
    assert max_abs_difference(model, path, slices(1, 32, seed=5)) < 1e-4

    with torch.no_grad():
        model.model[0].conv.unit0.conv.weight.add_(0.05)  # the first conv: a different network now
    assert max_abs_difference(model, path, slices(1, 32, seed=5)) > 1e-2


def test_parity_catches_a_static_graph_given_another_size(tmp_path):
    with pytest.raises(OnnxParityError, match="cannot run inputs"):
        assert_onnx_parity(unet_2d(), slices(1, 32), tmp_path, other_inputs=[slices(1, 64)], dynamic_axes=None)


def test_parity_catches_an_output_of_the_wrong_shape(tmp_path):
    model = SegmentAndClassify()
    path = export_onnx(model, slices(1, 16), tmp_path / "two.onnx", ["image"], ["a", "b"])
    onnx_model = onnx.load(str(path))
    onnx_model.graph.output.pop()  # the graph now gives one output where torch gives two
    onnx.save(onnx_model, str(path))
    with pytest.raises(OnnxParityError, match="torch gives 2 outputs, the ONNX graph 1"):
        max_abs_difference(model, path, slices(1, 16))


# ------------------------------------------------------------------------------------------- export


def test_export_writes_a_checked_graph_with_the_given_names_and_axes(tmp_path):
    axes = batch_and_spatial_axes({"image": 4, "logits": 4})
    path = export_onnx(unet_2d(), slices(1, 32), tmp_path / "sub" / "unet.onnx", ["image"], ["logits"], axes,
                       opset=17)

    assert path == tmp_path / "sub" / "unet.onnx"
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert model.opset_import[0].version == 17
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == ["logits"]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["sub", "unet.onnx"]  # no temporary left


def test_export_restores_training_mode_and_exports_in_eval_mode(tmp_path):
    model = unet_2d().train()
    path = export_onnx(model, slices(1, 32), tmp_path / "unet.onnx", ["image"], ["logits"])
    assert model.training
    assert max_abs_difference(model, path, slices(1, 32)) < 1e-4  # dropout/norm as in eval


class NotExportable(torch.nn.Module):
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.linalg.svd(image)[1]  # no ONNX operator for an SVD


class LeavesTheGraph(torch.nn.Module):
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(image.numpy() * 2)  # the tracer records the example's result as a constant


def test_a_model_that_cannot_be_exported_leaves_no_file(tmp_path):
    with pytest.raises(OnnxExportError, match="NotExportable could not be exported.*linalg_svd"):
        export_onnx(NotExportable(), slices(1, 8), tmp_path / "broken.onnx", ["image"], ["out"])
    assert list(tmp_path.iterdir()) == []


def test_parity_catches_a_model_exported_as_a_constant(tmp_path):
    with pytest.raises(OnnxParityError, match=r"takes inputs \[\], not \['input'\]"):
        assert_onnx_parity(LeavesTheGraph(), slices(1, 8), tmp_path, other_inputs=[slices(1, 8, seed=9)],
                           dynamic_axes=None)


def test_export_refuses_axes_for_unknown_names(tmp_path):
    with pytest.raises(ValueError, match="neither inputs nor outputs"):
        export_onnx(unet_2d(), slices(1, 32), tmp_path / "u.onnx", ["image"], ["logits"], {"img": {0: "batch"}})


# ------------------------------------------------------------------------------------------- session


def test_session_refuses_a_missing_or_corrupt_file(tmp_path):
    with pytest.raises(InputError, match="ONNX model file not found") as missing:
        OnnxSession(tmp_path / "absent.onnx")
    assert missing.value.path == str(tmp_path / "absent.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"this is not a protobuf")
    with pytest.raises(InputError, match="not a usable ONNX model"):
        OnnxSession(corrupt)


def test_session_casts_inputs_and_checks_their_names(tmp_path):
    path = export_onnx(unet_2d(), slices(1, 32), tmp_path / "u.onnx", ["image"], ["logits"])
    session = OnnxSession(path, "cpu", threads=1)
    out = session.run({"image": slices(1, 32).astype(np.float64)})
    assert out["logits"].dtype == np.float32 and out["logits"].shape == (1, 2, 32, 32)
    with pytest.raises(ValueError, match=r"missing \['image'\], unexpected \['img'\]"):
        session.run({"img": slices(1, 32)})


def test_session_takes_cuda_only_when_onnxruntime_has_it(tmp_path):
    path = export_onnx(unet_2d(), slices(1, 32), tmp_path / "u.onnx", ["image"], ["logits"])
    assert OnnxSession(path, "cpu").providers == ["CPUExecutionProvider"]
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailable):
            OnnxSession(path, "cuda")
        return
    session = OnnxSession(path, "cuda")
    expected = "CUDAExecutionProvider" if "CUDAExecutionProvider" in ort.get_available_providers() \
        else "CPUExecutionProvider"
    assert session.providers[0] == expected


def test_device_choice_sets_the_thread_count():
    choice = choose_device("cpu", mixed_precision=False)
    resolved = resolve_device(choice)
    assert resolved.torch_device == torch.device("cpu") and resolved.threads == choice.threads
    assert resolve_device(torch.device("cpu"), threads=1).threads == 1


def test_named_arrays_matches_sequences_by_position_and_refuses_wrong_counts():
    a, b = np.zeros(2), np.ones(3)
    assert list(named_arrays([a, b], ["x", "y"])) == ["x", "y"]
    with pytest.raises(ValueError, match="one array given, but the model takes 2 inputs"):
        named_arrays(a, ["x", "y"])


# ------------------------------------------------------------------------------------------- backends


def test_torch_and_onnx_backends_give_the_same_outputs(tmp_path):
    model = unet_2d()
    torch_backend = make_backend(model, "torch", "cpu", input_names=["image"], output_names=["logits"])
    onnx_backend = make_backend(model, "onnx", "cpu", example_inputs=slices(1, 32), input_names=["image"],
                                output_names=["logits"], cache_dir=tmp_path)
    assert isinstance(torch_backend, TorchBackend) and isinstance(onnx_backend, OnnxBackend)

    batch = slices(3, 64, seed=7)  # another batch and size than the export example
    by_array, by_name = torch_backend(batch), onnx_backend({"image": batch})
    assert list(by_array) == list(by_name) == ["logits"]
    assert by_array["logits"].shape == by_name["logits"].shape == (3, 2, 64, 64)
    np.testing.assert_allclose(by_name["logits"], by_array["logits"], atol=1e-4, rtol=0)
    assert onnx_backend.input_names == torch_backend.input_names == ["image"]


def test_backends_agree_on_a_two_output_model(tmp_path):
    model = SegmentAndClassify()
    outputs = {kind: make_backend(model, kind, "cpu", example_inputs=slices(1, 16), cache_dir=tmp_path)(
        slices(2, 40, seed=2)) for kind in ("torch", "onnx")}
    assert list(outputs["torch"]) == list(outputs["onnx"]) == ["output0", "output1"]
    for name in ("output0", "output1"):
        np.testing.assert_allclose(outputs["onnx"][name], outputs["torch"][name], atol=1e-4, rtol=0)


def test_onnx_file_is_cached_per_weights_and_opset(tmp_path):
    model = unet_2d()
    first = cached_onnx(model, slices(1, 32), cache_dir=tmp_path, model_id="liver-unet")
    stamp = first.stat().st_mtime_ns
    again = cached_onnx(model, slices(2, 48), cache_dir=tmp_path, model_id="liver-unet")  # dynamic sizes only
    assert again == first and again.stat().st_mtime_ns == stamp
    assert first.name.startswith("liver-unet-") and first.name.endswith("-opset17.onnx")

    other_opset = cached_onnx(model, slices(1, 32), cache_dir=tmp_path, model_id="liver-unet", opset=16)
    with torch.no_grad():
        model.model[0].conv.unit0.conv.weight.mul_(1.5)
    retrained = cached_onnx(model, slices(1, 32), cache_dir=tmp_path, model_id="liver-unet")
    assert len({first, other_opset, retrained}) == 3
    assert len(list(tmp_path.glob("*.onnx"))) == 3
    assert max_abs_difference(model, retrained, slices(1, 32)) < 1e-4


def test_fingerprint_depends_on_weights_not_on_the_model_object():
    assert model_fingerprint(unet_2d(), {"opset": 17}) == model_fingerprint(unet_2d(), {"opset": 17})
    assert model_fingerprint(unet_2d(), {"opset": 17}) != model_fingerprint(unet_2d(), {"opset": 18})
    assert model_fingerprint(unet_2d(), {}) != model_fingerprint(unet_3d(), {})


def test_make_backend_uses_an_existing_onnx_path_and_explains_what_it_needs(tmp_path):
    model = unet_2d()
    path = export_onnx(model, slices(1, 32), tmp_path / "given.onnx", ["image"], ["logits"])
    backend = make_backend(model, "onnx", "cpu", onnx_path=path)
    assert backend.onnx_path == path and backend.output_names == ["logits"]
    assert backend.describe().startswith("onnxruntime CPUExecutionProvider")
    with pytest.raises(ValueError, match="needs example_inputs"):
        make_backend(model, "onnx", "cpu", onnx_path=tmp_path / "absent.onnx")
    with pytest.raises(ValueError, match="'torch' or 'onnx'"):
        make_backend(model, "tensorrt", "cpu")


def test_export_gives_each_submodule_its_own_mode_back(tmp_path) -> None:
    """A freshly made export wrapper is in training mode; exporting it must not flip the wrapped eval model."""
    from radassist.runtime.onnx_backend import export_onnx

    inner = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.BatchNorm2d(2), torch.nn.Dropout(0.5))
    inner.eval()
    wrapper = torch.nn.Sequential(inner)  # training mode, like a new wrapper module
    assert wrapper.training and not inner.training
    export_onnx(wrapper, (torch.zeros(1, 1, 8, 8),), tmp_path / "w.onnx", ["x"], ["y"])
    assert wrapper.training and not any(m.training for m in inner.modules())
