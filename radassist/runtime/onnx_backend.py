"""ONNX export of a torch model, an ONNX Runtime session that runs it, and the parity check every model test uses.

Exporter choice: torch 2.13 defaults to the torch.export-based ("dynamo") exporter, which needs the separate
``onnxscript`` package (not a RadAssist dependency) and expresses dynamic sizes as ``dynamic_shapes``. The
TorchScript exporter (``dynamo=False``) ships inside torch, takes the ONNX-style ``dynamic_axes`` mapping and
exports the conv nets used here (MONAI U-Nets, 2-D and 3-D, instance norm, transposed convs) with dynamic batch
and spatial axes exactly, so RadAssist uses it. torch marks it deprecated; that warning is silenced here only.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from radassist.errors import InputError
from radassist.io.atomic import atomic_path
from radassist.runtime.device import DeviceChoice, choose_device

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17  # supported by every onnxruntime >= 1.14, including the one in Slicer's Python
EXPORTER = "torchscript"

ArrayLike = Union[np.ndarray, torch.Tensor]
Inputs = Union[ArrayLike, Mapping[str, ArrayLike], Sequence[ArrayLike]]
DynamicAxes = dict[str, dict[int, str]]
DeviceLike = Union[str, torch.device, DeviceChoice, None]

_ORT_DTYPES: dict[str, type] = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int16)": np.int16, "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8, "tensor(uint16)": np.uint16, "tensor(bool)": np.bool_,
}


class OnnxExportError(RuntimeError):
    """torch could not turn a model into a valid ONNX graph (a model limitation, not the user's input)."""


class OnnxParityError(AssertionError):
    """The ONNX graph does not compute what the torch model computes."""


# ----------------------------------------------------------------------------------------------- devices


@dataclass(frozen=True)
class ResolvedDevice:
    """Where to run and with how many CPU threads, whatever form the caller gave the device in."""

    torch_device: torch.device
    threads: int


def resolve_device(device: DeviceLike = None, threads: int | None = None) -> ResolvedDevice:
    """The device of None (= "auto"), a preference string (through :func:`choose_device`, so "cuda" where there is
    none is its clear DeviceUnavailable), a torch.device or a :class:`DeviceChoice`. Threads: ``threads`` if
    given, else the choice's, else torch's current count."""
    if device is None or isinstance(device, str):
        device = choose_device(device or "auto", mixed_precision=False)
    if isinstance(device, DeviceChoice):
        chosen, choice_threads = device.device, device.threads
    else:
        chosen, choice_threads = torch.device(device), None
    return ResolvedDevice(chosen, max(int(threads or choice_threads or torch.get_num_threads()), 1))


# ----------------------------------------------------------------------------------------------- names, axes


def default_names(prefix: str, count: int) -> list[str]:
    """``["input"]`` for one tensor, ``["input0", "input1", ...]`` for several."""
    return [prefix] if count == 1 else [f"{prefix}{index}" for index in range(count)]


def batch_and_spatial_axes(ranks: Mapping[str, int], spatial: bool = True) -> DynamicAxes:
    """Dynamic axes for conv nets: axis 0 (shared name "batch") and, with ``spatial``, every axis after the channels.

    Each tensor's spatial axes get their own names, so an output that is smaller than its input (a strided
    head) is not declared equal to it.
    """
    axes: DynamicAxes = {}
    for name, rank in ranks.items():
        tensor_axes = {0: "batch"} if rank >= 1 else {}
        if spatial:
            tensor_axes.update({axis: f"{name}_dim{axis}" for axis in range(2, rank)})
        axes[name] = tensor_axes
    return axes


def named_arrays(inputs: Inputs, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Match ``inputs`` (one array, a sequence in order, or a dict by name) to ``names``; numpy out."""
    if isinstance(inputs, (np.ndarray, torch.Tensor)):
        if len(names) != 1:
            raise ValueError(f"one array given, but the model takes {len(names)} inputs: {list(names)}")
        return {names[0]: to_numpy(inputs)}
    if isinstance(inputs, Mapping):
        missing = [n for n in names if n not in inputs]
        extra = [n for n in inputs if n not in names]
        if missing or extra:
            raise ValueError(f"inputs do not match the model: missing {missing}, unexpected {extra}; "
                             f"the model takes {list(names)}")
        return {name: to_numpy(inputs[name]) for name in names}
    inputs = list(inputs)
    if len(inputs) != len(names):
        raise ValueError(f"{len(inputs)} arrays given, but the model takes {len(names)} inputs: {list(names)}")
    return {name: to_numpy(value) for name, value in zip(names, inputs)}


def to_numpy(value: ArrayLike) -> np.ndarray:
    """A CPU numpy array (bfloat16, which numpy lacks, becomes float32)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16:
            value = value.float()
        return value.numpy()
    return np.asarray(value)


def as_tensors(inputs: Inputs, names: Sequence[str] | None = None) -> list[torch.Tensor]:
    """Inputs as positional tensors: a dict in the order of ``names`` (or its own order without them)."""
    if isinstance(inputs, (np.ndarray, torch.Tensor)):
        inputs = [inputs]
    elif isinstance(inputs, Mapping):
        keys = list(names) if names is not None else list(inputs)
        inputs = [inputs[key] for key in keys]
    return [value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))
            for value in inputs]


def flatten_outputs(outputs: Any) -> list[torch.Tensor]:
    """A model's output as a list of tensors, in the order the ONNX exporter flattens it."""
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    if isinstance(outputs, (Mapping, list, tuple)):
        values = outputs.values() if isinstance(outputs, Mapping) else outputs
        return [tensor for value in values for tensor in flatten_outputs(value)]
    raise TypeError(f"model output of type {type(outputs).__name__} is not a tensor, tuple, list or dict")


def _on_model(model: torch.nn.Module, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``tensors`` on the model's device (its first parameter's or buffer's; CPU without any), floating ones in
    its floating dtype (float32 without floating parameters)."""
    device = next((t.device for t in itertools.chain(model.parameters(), model.buffers())), torch.device("cpu"))
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    return [t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype) for t in tensors]


@contextlib.contextmanager
def evaluation_mode(model: torch.nn.Module) -> Iterator[None]:
    """Put ``model`` in eval mode and afterwards give every submodule back its own mode.

    ``model.train(was_training)`` alone would switch an eval-mode submodule (a model wrapped for export) to
    training mode."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def run_torch(model: torch.nn.Module, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Run ``model`` in eval mode without gradients on its own device; floating inputs take the model's dtype."""
    moved = _on_model(model, tensors)
    with evaluation_mode(model), torch.inference_mode():
        return flatten_outputs(model(*moved))


@dataclass(frozen=True)
class ExportSpec:
    """Everything an export needs, derived once from the model and its example: tensors, names, dynamic axes."""

    tensors: tuple[torch.Tensor, ...]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    dynamic_axes: DynamicAxes


def prepare_export(model: torch.nn.Module, example_inputs: Inputs, input_names: Sequence[str] | None = None,
                   output_names: Sequence[str] | None = None,
                   dynamic_axes: str | Mapping[str, Mapping[int, str]] | None = "batch_and_spatial") -> ExportSpec:
    """Fill in default names ("input"/"output", numbered when several) and expand an axes shortcut.

    ``dynamic_axes`` is "batch" (axis 0 of every tensor), "batch_and_spatial" (axis 0 and every axis after
    the channels), None (a static graph) or an explicit ``{name: {axis: symbol}}`` mapping.
    """
    tensors = as_tensors(example_inputs, input_names)
    if input_names is None:
        input_names = list(example_inputs) if isinstance(example_inputs, Mapping) else \
            default_names("input", len(tensors))
    outputs = run_torch(model, tensors)
    output_names = list(output_names or default_names("output", len(outputs)))
    if len(output_names) != len(outputs):
        raise ValueError(f"the model gives {len(outputs)} outputs for {len(output_names)} names {output_names}")
    if dynamic_axes is None:
        axes: DynamicAxes = {}
    elif isinstance(dynamic_axes, str):
        if dynamic_axes not in ("batch", "batch_and_spatial"):
            raise ValueError(f"dynamic_axes must be 'batch', 'batch_and_spatial', None or a mapping, "
                             f"got {dynamic_axes!r}")
        ranks = {**{n: t.dim() for n, t in zip(input_names, tensors)},
                 **{n: t.dim() for n, t in zip(output_names, outputs)}}
        axes = batch_and_spatial_axes(ranks, spatial=dynamic_axes == "batch_and_spatial")
    else:
        axes = {name: dict(tensor_axes) for name, tensor_axes in dynamic_axes.items()}
    return ExportSpec(tuple(tensors), tuple(input_names), tuple(output_names), axes)


# ----------------------------------------------------------------------------------------------- export


def export_onnx(model: torch.nn.Module, example_inputs: Inputs, path: str | Path, input_names: Sequence[str],
                output_names: Sequence[str], dynamic_axes: Mapping[str, Mapping[int, str]] | None = None,
                opset: int = DEFAULT_OPSET) -> Path:
    """Export ``model`` (in eval mode) to ``path`` with the TorchScript exporter, check it, and write it atomically.

    ``dynamic_axes`` maps tensor names to ``{axis: symbolic name}``; :func:`batch_and_spatial_axes` builds the
    usual one for conv nets. A graph that fails ``onnx.checker`` is never left at ``path``.
    """
    import onnx

    path = Path(path)
    tensors = as_tensors(example_inputs, input_names)
    if len(tensors) != len(input_names):
        raise ValueError(f"{len(tensors)} example inputs for {len(input_names)} input names {list(input_names)}")
    unknown = set(dynamic_axes or {}) - set(input_names) - set(output_names)
    if unknown:
        raise ValueError(f"dynamic_axes names {sorted(unknown)} are neither inputs nor outputs")
    tensors = _on_model(model, tensors)
    with evaluation_mode(model), atomic_path(path) as temp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*ONNX export mode is set to TrainingMode.EVAL.*")
        warnings.filterwarnings("ignore", message="The feature will be removed", category=DeprecationWarning)
        # A trace that does not generalise is caught by assert_onnx_parity on other sizes, not by warnings.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        try:
            torch.onnx.export(model, tuple(tensors), str(temp), input_names=list(input_names),
                              output_names=list(output_names),
                              dynamic_axes={k: dict(v) for k, v in (dynamic_axes or {}).items()},
                              opset_version=opset, dynamo=False, do_constant_folding=True)
        except Exception as exc:  # torch raises many types here; all mean "this model does not export"
            raise OnnxExportError(f"{type(model).__name__} could not be exported to ONNX: {exc}") from exc
        try:
            onnx.checker.check_model(str(temp), full_check=True)
        except Exception as exc:
            raise OnnxExportError(f"the ONNX graph of {type(model).__name__} is invalid: {exc}") from exc
    return path


# ----------------------------------------------------------------------------------------------- runtime


def onnx_providers(device: ResolvedDevice) -> list[Any]:
    """CUDA (then CPU as fallback) when the device is a GPU and this onnxruntime build has CUDA; else CPU."""
    import onnxruntime as ort

    if device.torch_device.type == "cuda":
        if "CUDAExecutionProvider" in ort.get_available_providers():
            return [("CUDAExecutionProvider", {"device_id": device.torch_device.index or 0}),
                    "CPUExecutionProvider"]
        log.warning("onnxruntime has no CUDAExecutionProvider here (install onnxruntime-gpu); running on the CPU")
    return ["CPUExecutionProvider"]


class OnnxSession:
    """An ONNX Runtime session on the chosen device: named numpy arrays in, named numpy arrays out."""

    def __init__(self, path: str | Path, device: DeviceLike = "cpu", threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(self.path, "ONNX model file not found")
        self.device = resolve_device(device, threads)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.device.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only; shape-inference chatter is not for users
        try:
            self._session = ort.InferenceSession(str(self.path), options, providers=onnx_providers(self.device))
        except Exception as exc:  # onnxruntime's errors derive from Exception directly
            raise InputError(self.path, f"not a usable ONNX model ({exc})") from None
        self.providers: list[str] = self._session.get_providers()
        self.input_names: list[str] = [i.name for i in self._session.get_inputs()]
        self.output_names: list[str] = [o.name for o in self._session.get_outputs()]
        self._input_dtypes = {i.name: _ORT_DTYPES.get(i.type) for i in self._session.get_inputs()}

    def run(self, inputs: Inputs) -> dict[str, np.ndarray]:
        """Run the graph; arrays are cast to the dtypes the graph declares."""
        feed = {name: array if self._input_dtypes[name] is None else
                np.ascontiguousarray(array, dtype=self._input_dtypes[name])
                for name, array in named_arrays(inputs, self.input_names).items()}
        return dict(zip(self.output_names, self._session.run(self.output_names, feed)))

    __call__ = run


# ----------------------------------------------------------------------------------------------- parity


@dataclass(frozen=True)
class ParityCheck:
    """One input run through both torch and ONNX Runtime."""

    input_shapes: dict[str, tuple[int, ...]]
    output_shapes: dict[str, tuple[int, ...]]
    max_abs_difference: float


@dataclass(frozen=True)
class ParityResult:
    """The exported file and how closely it matched torch on each input tried."""

    onnx_path: Path
    atol: float
    checks: tuple[ParityCheck, ...]

    @property
    def max_abs_difference(self) -> float:
        return float(np.max([check.max_abs_difference for check in self.checks]))  # NaN when any check is NaN

    @property
    def passed(self) -> bool:
        return all(check.max_abs_difference <= self.atol for check in self.checks)


def _compare(model: torch.nn.Module, session: OnnxSession, inputs: Inputs) -> ParityCheck:
    feed = named_arrays(inputs, session.input_names)
    expected = [to_numpy(t) for t in run_torch(model, as_tensors(feed, session.input_names))]
    try:
        actual = session.run(feed)
    except Exception as exc:  # onnxruntime refuses sizes a static graph does not have
        raise OnnxParityError(f"ONNX Runtime cannot run inputs {[a.shape for a in feed.values()]}: {exc}") from exc
    if len(expected) != len(actual):
        raise OnnxParityError(f"torch gives {len(expected)} outputs, the ONNX graph {len(actual)}")
    differences = [0.0]
    for (name, got), want in zip(actual.items(), expected):
        if got.shape != want.shape:
            raise OnnxParityError(f"output {name!r}: ONNX shape {got.shape} != torch shape {want.shape} "
                                  f"for inputs {[a.shape for a in feed.values()]}")
        if got.size:
            differences.append(float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))))
    return ParityCheck({k: tuple(v.shape) for k, v in feed.items()},
                       {k: tuple(v.shape) for k, v in actual.items()}, float(np.max(differences)))  # NaN wins


def max_abs_difference(torch_model: torch.nn.Module, onnx_path: str | Path, inputs: Inputs) -> float:
    """Largest absolute difference between torch and ONNX Runtime (CPU) outputs; raises on a shape mismatch."""
    return _compare(torch_model, OnnxSession(onnx_path, "cpu"), inputs).max_abs_difference


def varied_inputs(example: Mapping[str, np.ndarray], dynamic_axes: Mapping[str, Mapping[int, str]],
                  seed: int = 0) -> dict[str, np.ndarray] | None:
    """Random inputs whose dynamic axes differ from the example: batch + 1, every other dynamic axis doubled.

    Doubling keeps a size divisible by whatever the network's strides need. None when no input axis is dynamic.
    """
    rng = np.random.default_rng(seed)
    varied, changed = {}, False
    for name, array in example.items():
        shape = list(array.shape)
        for axis in (dynamic_axes.get(name) or {}):
            shape[axis] = shape[axis] + 1 if axis == 0 else shape[axis] * 2
            changed = True
        if np.issubdtype(array.dtype, np.floating):
            varied[name] = rng.standard_normal(shape).astype(array.dtype)
        else:
            varied[name] = np.resize(array, shape)
    return varied if changed else None


def assert_onnx_parity(model: torch.nn.Module, example_inputs: Inputs, tmp_path: str | Path, atol: float = 1e-4,
                       other_inputs: Sequence[Inputs] | None = None, *, input_names: Sequence[str] | None = None,
                       output_names: Sequence[str] | None = None,
                       dynamic_axes: str | Mapping[str, Mapping[int, str]] | None = "batch_and_spatial",
                       opset: int = DEFAULT_OPSET) -> ParityResult:
    """Export ``model`` into ``tmp_path``, run torch and ONNX Runtime, and raise :class:`OnnxParityError` (an
    AssertionError naming the worst difference) unless every output matches within ``atol``: on the example, on
    each of ``other_inputs`` or, without them and with dynamic axes (see :func:`prepare_export`), on
    :func:`varied_inputs`."""
    spec = prepare_export(model, example_inputs, input_names, output_names, dynamic_axes)
    path = Path(tmp_path) / f"{type(model).__name__}.onnx"
    for number in itertools.count(2):
        if not path.exists():
            break
        path = path.with_name(f"{type(model).__name__}-{number}.onnx")
    export_onnx(model, spec.tensors, path, spec.input_names, spec.output_names, spec.dynamic_axes, opset)
    session = OnnxSession(path, "cpu")
    if session.input_names != list(spec.input_names):
        raise OnnxParityError(f"{type(model).__name__}: the ONNX graph takes inputs {session.input_names}, not "
                              f"{list(spec.input_names)}; the trace lost an input (does the model leave torch, "
                              f"e.g. through numpy or .item()?)")
    example = named_arrays(spec.tensors, spec.input_names)
    trials: list[Inputs] = [example, *(other_inputs or [])]
    if not other_inputs and spec.dynamic_axes:
        if (extra := varied_inputs(example, spec.dynamic_axes)) is not None:
            trials.append(extra)
    result = ParityResult(path, atol, tuple(_compare(model, session, trial) for trial in trials))
    if not result.passed:
        worst = next(c for c in result.checks if not c.max_abs_difference <= atol)
        raise OnnxParityError(f"{type(model).__name__}: ONNX differs from torch by {worst.max_abs_difference:.3g} "
                              f"(> atol {atol:g}) for inputs {worst.input_shapes}")
    return result
