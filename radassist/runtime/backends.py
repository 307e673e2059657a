"""One call interface for model inference, whether torch or ONNX Runtime runs the network.

A pipeline holds an :class:`InferenceBackend` and calls ``backend(inputs)`` with numpy arrays; it gets a dict
of numpy outputs by name and never needs to know which engine ran. :func:`make_backend` builds either kind from
the same torch model; the ONNX file is cached per model weights, export settings and opset, so a pipeline
exports once and later runs reuse the file.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from radassist.runtime.onnx_backend import (DEFAULT_OPSET, EXPORTER, DeviceLike, ExportSpec, Inputs,
                                            OnnxSession, ResolvedDevice, default_names, export_onnx,
                                            named_arrays, prepare_export, resolve_device, run_torch, to_numpy)
from radassist.runtime.paths import cache_dir as radassist_cache_dir

BackendKind = Literal["torch", "onnx"]
AxesSpec = str | Mapping[str, Mapping[int, str]] | None


class InferenceBackend(ABC):
    """``backend(inputs) -> {output name: array}``: inputs are one array, a sequence, or a dict by input name."""

    kind: str = ""

    def __init__(self, device: ResolvedDevice) -> None:
        self.device = device

    @property
    @abstractmethod
    def input_names(self) -> list[str]:
        """Names of the inputs, in the model's argument order."""

    @abstractmethod
    def __call__(self, inputs: Inputs) -> dict[str, np.ndarray]:
        """Run the network on ``inputs`` and return its outputs as numpy arrays on the CPU."""

    def describe(self) -> str:
        """A short line for logs and benchmark tables, e.g. "torch on cpu (2 threads)"."""
        return f"{self.kind} on {self.device.torch_device} ({self.device.threads} threads)"


class TorchBackend(InferenceBackend):
    """The torch model itself, moved to the device, in eval mode, without gradients."""

    kind = "torch"

    def __init__(self, model: torch.nn.Module, device: DeviceLike = None,
                 input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
                 threads: int | None = None) -> None:
        super().__init__(resolve_device(device, threads))
        self.model = model.to(self.device.torch_device).eval()
        self._input_names = list(input_names) if input_names else None
        self.output_names = list(output_names) if output_names else None

    @property
    def input_names(self) -> list[str]:
        return self._input_names or ["input"]

    def __call__(self, inputs: Inputs) -> dict[str, np.ndarray]:
        if self._input_names is None and not isinstance(inputs, (np.ndarray, torch.Tensor, Mapping)):
            arrays = [to_numpy(a) for a in inputs]  # positional inputs of an unnamed multi-input model
        else:
            arrays = list(named_arrays(inputs, self.input_names).values())
        outputs = run_torch(self.model, [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays])
        names = self.output_names or default_names("output", len(outputs))
        if len(names) != len(outputs):
            raise ValueError(f"the model gave {len(outputs)} outputs for {len(names)} output names {names}")
        return {name: to_numpy(tensor) for name, tensor in zip(names, outputs)}


class OnnxBackend(InferenceBackend):
    """An exported graph run by ONNX Runtime: CUDA when the device is a GPU and the build has it, else CPU."""

    kind = "onnx"

    def __init__(self, onnx_path: str | Path, device: DeviceLike = None, threads: int | None = None) -> None:
        self.session = OnnxSession(onnx_path, device, threads)
        super().__init__(self.session.device)
        self.onnx_path = self.session.path

    @property
    def input_names(self) -> list[str]:
        return self.session.input_names

    @property
    def output_names(self) -> list[str]:
        return self.session.output_names

    def __call__(self, inputs: Inputs) -> dict[str, np.ndarray]:
        return self.session.run(inputs)

    def describe(self) -> str:
        return f"onnxruntime {self.session.providers[0]} ({self.device.threads} threads)"


def model_fingerprint(model: torch.nn.Module, settings: Mapping[str, Any]) -> str:
    """sha256 of the architecture, every weight's bytes, and the export settings: equal only for equal graphs."""
    digest = hashlib.sha256()
    digest.update(f"{type(model).__module__}.{type(model).__qualname__}\n{model!r}\n".encode())
    for name, tensor in model.state_dict().items():
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    digest.update(repr(sorted((k, repr(v)) for k, v in settings.items())).encode())
    return digest.hexdigest()


def _export_settings(spec: ExportSpec, opset: int) -> dict[str, Any]:
    """What, besides the weights, decides the exported graph: names, axes, static example sizes, exporter."""
    static = {name: [None if axis in spec.dynamic_axes.get(name, {}) else size
                     for axis, size in enumerate(tensor.shape)] + [str(tensor.dtype)]
              for name, tensor in zip(spec.input_names, spec.tensors)}
    return {"inputs": static, "outputs": list(spec.output_names), "axes": spec.dynamic_axes, "opset": opset,
            "exporter": EXPORTER, "torch": torch.__version__}


def cached_onnx(model: torch.nn.Module, example_inputs: Inputs, *, input_names: Sequence[str] | None = None,
                output_names: Sequence[str] | None = None, dynamic_axes: AxesSpec = "batch_and_spatial",
                opset: int = DEFAULT_OPSET, cache_dir: str | Path | None = None, model_id: str | None = None) -> Path:
    """The ONNX file of ``model`` in ``cache_dir`` (default: the RadAssist cache's ``onnx`` folder), exported now
    only if no file with the same fingerprint (weights, architecture, export settings) exists. Finding the output
    names and ranks runs the model once on the example, so keep the example small (one slice or patch)."""
    spec = prepare_export(model, example_inputs, input_names, output_names, dynamic_axes)
    sha = model_fingerprint(model, _export_settings(spec, opset))
    folder = Path(cache_dir) if cache_dir is not None else radassist_cache_dir() / "onnx"
    path = folder / f"{model_id or type(model).__name__}-{sha[:16]}-opset{opset}.onnx"
    if not path.is_file():
        export_onnx(model, spec.tensors, path, spec.input_names, spec.output_names, spec.dynamic_axes, opset)
    return path


def make_backend(model: torch.nn.Module, kind: BackendKind = "torch", device: DeviceLike = None, *,
                 example_inputs: Inputs | None = None, input_names: Sequence[str] | None = None,
                 output_names: Sequence[str] | None = None, onnx_path: str | Path | None = None,
                 cache_dir: str | Path | None = None, dynamic_axes: AxesSpec = "batch_and_spatial",
                 opset: int = DEFAULT_OPSET, model_id: str | None = None,
                 threads: int | None = None) -> InferenceBackend:
    """A torch or ONNX Runtime backend for ``model`` on ``device`` (None/"auto", "cpu", "cuda", a DeviceChoice).

    For ``kind="onnx"``: an existing ``onnx_path`` is used as it is; otherwise the model is exported (to
    ``onnx_path`` if given, else into the cache, see :func:`cached_onnx`), which needs ``example_inputs``.
    """
    if kind == "torch":
        return TorchBackend(model, device, input_names, output_names, threads)
    if kind != "onnx":
        raise ValueError(f"backend kind must be 'torch' or 'onnx', got {kind!r}")
    if onnx_path is not None and Path(onnx_path).is_file():
        return OnnxBackend(onnx_path, device, threads)
    if example_inputs is None:
        raise ValueError("exporting to ONNX needs example_inputs (one batch of the size the pipeline uses)")
    if onnx_path is not None:
        spec = prepare_export(model, example_inputs, input_names, output_names, dynamic_axes)
        path = export_onnx(model, spec.tensors, onnx_path, spec.input_names, spec.output_names,
                           spec.dynamic_axes, opset)
    else:
        path = cached_onnx(model, example_inputs, input_names=input_names, output_names=output_names,
                           dynamic_axes=dynamic_axes, opset=opset, cache_dir=cache_dir, model_id=model_id)
    return OnnxBackend(path, device, threads)
