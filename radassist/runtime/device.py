"""Which device a model runs on: one decision shared by the CLI, the Slicer panels and the server.

``choose_device("auto")`` takes the CUDA GPU with the most free memory, then Apple MPS, then the CPU. A GPU with
less free memory than a model needs is passed over with the reason recorded, so the user sees why a run is slow
instead of an out-of-memory crash half-way through. The decision itself (:func:`decide_device`) is a pure function
of the GPUs' free and total memory, so it is tested without a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from radassist.errors import RadAssistError

if TYPE_CHECKING:
    import torch

GIB = 2**30
PREFERENCES_HELP = "auto (CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:N or mps"


@dataclass
class DeviceInfo:
    name: str          # "cpu", "cuda:0", "mps"
    description: str
    memory_total_gb: float | None = None


def available_devices() -> list[DeviceInfo]:
    """Every device torch can use here, the CPU last (it is always there)."""
    import torch

    devices: list[DeviceInfo] = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            devices.append(DeviceInfo(f"cuda:{index}", props.name, round(props.total_memory / GIB, 1)))
    if _mps_available():
        devices.append(DeviceInfo("mps", "Apple Metal (MPS)"))
    devices.append(DeviceInfo("cpu", f"CPU, {torch.get_num_threads()} threads"))
    return devices


class DeviceUnavailable(RadAssistError):
    """The device the user asked for does not exist here, or the request is not a device name."""


class GpuMemory(NamedTuple):
    """Free and total memory of one CUDA device, as torch.cuda.mem_get_info reports it."""

    name: str           # "cuda:0"
    free_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class DeviceDecision:
    """What :func:`decide_device` picked and why; ``fell_back`` when the wanted device was passed over."""

    name: str           # "cpu", "cuda:1", "mps"
    reason: str
    fell_back: bool = False


@dataclass(frozen=True)
class DeviceChoice:
    """The device a job runs on, with the mixed-precision type and CPU threads that go with it."""

    device: torch.device
    kind: str                       # "cuda", "mps" or "cpu"
    reason: str                     # one line for the log / status bar: why this device
    amp_dtype: torch.dtype | None   # autocast type on a GPU; None runs in float32
    threads: int                    # torch CPU threads in use
    fell_back: bool = False         # the preferred device was passed over (reason says why)

    def describe(self) -> str:
        precision = "float32" if self.amp_dtype is None else f"mixed precision {str(self.amp_dtype).split('.')[-1]}"
        return f"{self.device} ({precision}, {self.threads} CPU threads): {self.reason}"


def _gb(num_bytes: int) -> str:
    return f"{num_bytes / GIB:.1f} GB"


def _gpu_listing(gpus: Sequence[GpuMemory], mps_available: bool) -> str:
    names = [f"{g.name} ({_gb(g.free_bytes)} free of {_gb(g.total_bytes)})" for g in gpus]
    return ", ".join(names + (["mps"] if mps_available else []) + ["cpu"])


def _parse_preference(preference: str) -> tuple[str, int | None]:
    """'auto' | 'cpu' | 'mps' | 'cuda' | 'cuda:N' -> (kind, index or None); anything else is refused."""
    text = preference.strip().lower()
    if text in ("auto", "cpu", "mps", "cuda"):
        return text, None
    if text.startswith("cuda:") and text[5:].isdigit():
        return "cuda", int(text[5:])
    raise DeviceUnavailable(f"unknown device '{preference}'; use {PREFERENCES_HELP}")


def decide_device(preference: str, gpus: Sequence[tuple[str, int, int]], mps_available: bool,
                  min_free_memory_gb: float | None = None) -> DeviceDecision:
    """Pick a device from the CUDA GPUs' (name, free bytes, total bytes), MPS availability and a memory need.

    auto: the GPU with the most free memory if it has at least ``min_free_memory_gb``, else MPS, else the CPU.
    An explicit device that does not exist raises :class:`DeviceUnavailable` listing what does; an explicit GPU
    with too little free memory falls back to the CPU with the reason recorded.
    """
    gpus = [GpuMemory(*g) for g in gpus]
    kind, index = _parse_preference(preference)
    available = _gpu_listing(gpus, mps_available)
    need = None if min_free_memory_gb is None else min_free_memory_gb * GIB

    if kind == "cpu":
        return DeviceDecision("cpu", "CPU requested")
    if kind == "mps":
        if not mps_available:
            raise DeviceUnavailable(f"device 'mps' is not available here; available: {available}")
        return DeviceDecision("mps", "Apple MPS requested")
    if kind == "cuda":
        candidates = [g for g in gpus if index is None or g.name == f"cuda:{index}"]
        if not candidates:
            wanted = "no CUDA GPU is" if index is None else f"device 'cuda:{index}' is not"
            raise DeviceUnavailable(f"{wanted} available here; available: {available}")
        best = max(candidates, key=lambda g: g.free_bytes)
        if need is not None and best.free_bytes < need:
            return DeviceDecision("cpu", f"{best.name} has {_gb(best.free_bytes)} free, {min_free_memory_gb:.1f} GB "
                                         f"needed; running on the CPU instead (slower)", fell_back=True)
        return DeviceDecision(best.name, f"{best.name} requested, {_gb(best.free_bytes)} free")

    # auto
    if gpus:
        best = max(gpus, key=lambda g: g.free_bytes)
        if need is None or best.free_bytes >= need:
            return DeviceDecision(best.name, f"GPU with the most free memory ({_gb(best.free_bytes)} of "
                                             f"{_gb(best.total_bytes)})")
        short = (f"no CUDA GPU has {min_free_memory_gb:.1f} GB free (best: {best.name} with "
                 f"{_gb(best.free_bytes)})")
        if mps_available:
            return DeviceDecision("mps", f"{short}; using Apple MPS", fell_back=True)
        return DeviceDecision("cpu", f"{short}; running on the CPU instead (slower)", fell_back=True)
    if mps_available:
        return DeviceDecision("mps", "Apple MPS (no CUDA GPU found)")
    return DeviceDecision("cpu", "no GPU found")


def amp_dtype_for(kind: str, bf16_supported: bool) -> torch.dtype | None:
    """bfloat16 where the GPU supports it, else float16; none on MPS (incomplete autocast support) and CPU."""
    import torch

    if kind != "cuda":
        return None
    return torch.bfloat16 if bf16_supported else torch.float16


def _cuda_memory() -> list[GpuMemory]:
    import torch

    if not torch.cuda.is_available():
        return []
    return [GpuMemory(f"cuda:{index}", *map(int, torch.cuda.mem_get_info(index)))
            for index in range(torch.cuda.device_count())]


def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def choose_device(preference: str = "auto", min_free_memory_gb: float | None = None, threads: int | None = None,
                  mixed_precision: bool = True) -> DeviceChoice:
    """Decide the device for a job on this machine and apply the CPU thread count (torch.set_num_threads)."""
    import torch

    if threads is not None:
        if threads < 1:
            raise DeviceUnavailable(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    gpus = _cuda_memory() if _parse_preference(preference)[0] in ("auto", "cuda") else []
    decision = decide_device(preference, gpus, _mps_available(), min_free_memory_gb)
    device = torch.device(decision.name)
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    amp = amp_dtype_for(device.type, bf16) if mixed_precision else None
    return DeviceChoice(device=device, kind=device.type, reason=decision.reason, amp_dtype=amp,
                        threads=torch.get_num_threads(), fell_back=decision.fell_back)


@contextlib.contextmanager
def autocast(choice: DeviceChoice) -> Iterator[None]:
    """Mixed precision for inference/training on a GPU choice; nothing changes when amp_dtype is None."""
    import torch

    with contextlib.nullcontext() if choice.amp_dtype is None else \
            torch.autocast(device_type=choice.kind, dtype=choice.amp_dtype):
        yield


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """The --device/--threads options of every command that runs a model."""
    group = parser.add_argument_group("compute device")
    group.add_argument("--device", default="auto", help=PREFERENCES_HELP)
    group.add_argument("--threads", type=int, default=None, metavar="N",
                       help="CPU threads for torch (default: torch's own choice)")
    group.add_argument("--min-gpu-memory", type=float, default=None, metavar="GB",
                       help="use a GPU only with at least this much free memory, else fall back")
    group.add_argument("--no-mixed-precision", dest="mixed_precision", action="store_false",
                       help="run in float32 on a GPU too")


def device_from_args(args: argparse.Namespace, announce: bool = True) -> DeviceChoice:
    """The DeviceChoice for parsed :func:`add_device_arguments` options; a fallback is announced on stderr."""
    choice = choose_device(args.device, min_free_memory_gb=args.min_gpu_memory, threads=args.threads,
                           mixed_precision=args.mixed_precision)
    if announce and choice.fell_back:
        print(f"note: {choice.reason}", file=sys.stderr)
    return choice
