"""Device choice: the pure decision on hand-made GPU lists, and the real torch on this machine's CPU."""

from __future__ import annotations

import argparse

import pytest
import torch

from radassist.runtime.device import (
    GIB,
    DeviceChoice,
    DeviceUnavailable,
    amp_dtype_for,
    autocast,
    available_devices,
    choose_device,
    decide_device,
    add_device_arguments,
    device_from_args,
)

TWO_GPUS = [("cuda:0", 3 * GIB, 24 * GIB), ("cuda:1", 20 * GIB, 24 * GIB)]


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


# --- the pure decision -------------------------------------------------------------------------------------------

def test_auto_takes_the_gpu_with_most_free_memory():
    decision = decide_device("auto", TWO_GPUS, mps_available=True)
    assert decision.name == "cuda:1" and not decision.fell_back
    assert "20.0 GB" in decision.reason


def test_auto_without_gpus_prefers_mps_then_cpu():
    assert decide_device("auto", [], mps_available=True).name == "mps"
    assert decide_device("auto", [], mps_available=False).name == "cpu"


def test_auto_falls_back_when_no_gpu_has_enough_free_memory():
    decision = decide_device("auto", TWO_GPUS, mps_available=False, min_free_memory_gb=32)
    assert decision.name == "cpu" and decision.fell_back
    assert "32.0 GB" in decision.reason and "cuda:1" in decision.reason and "CPU" in decision.reason
    assert decide_device("auto", TWO_GPUS, mps_available=True, min_free_memory_gb=32).name == "mps"
    assert decide_device("auto", TWO_GPUS, mps_available=False, min_free_memory_gb=16).name == "cuda:1"


def test_explicit_gpu_index_is_honoured_even_with_less_free_memory():
    decision = decide_device("cuda:0", TWO_GPUS, mps_available=False)
    assert decision.name == "cuda:0"
    assert decide_device("cuda", TWO_GPUS, mps_available=False).name == "cuda:1"


def test_explicit_gpu_under_the_memory_minimum_falls_back_to_cpu_with_reason():
    decision = decide_device("cuda:0", TWO_GPUS, mps_available=False, min_free_memory_gb=4)
    assert decision.name == "cpu" and decision.fell_back
    assert "cuda:0 has 3.0 GB free" in decision.reason


def test_explicit_device_that_is_missing_lists_what_is_available():
    with pytest.raises(DeviceUnavailable, match=r"cuda:2.*not available.*cuda:0 \(3.0 GB free of 24.0 GB\).*cpu"):
        decide_device("cuda:2", TWO_GPUS, mps_available=False)
    with pytest.raises(DeviceUnavailable, match="no CUDA GPU.*available: cpu"):
        decide_device("cuda", [], mps_available=False)
    with pytest.raises(DeviceUnavailable, match="'mps' is not available"):
        decide_device("mps", TWO_GPUS, mps_available=False)


def test_unknown_device_name_is_refused():
    with pytest.raises(DeviceUnavailable, match="unknown device 'gpu'.*auto"):
        decide_device("gpu", TWO_GPUS, mps_available=False)
    with pytest.raises(DeviceUnavailable, match="unknown device"):
        decide_device("cuda:x", TWO_GPUS, mps_available=False)


def test_cpu_is_always_possible():
    assert decide_device("CPU", TWO_GPUS, mps_available=True).name == "cpu"


def test_mixed_precision_type_per_device_kind():
    assert amp_dtype_for("cuda", bf16_supported=True) == torch.bfloat16
    assert amp_dtype_for("cuda", bf16_supported=False) == torch.float16
    assert amp_dtype_for("cpu", bf16_supported=True) is None
    assert amp_dtype_for("mps", bf16_supported=False) is None


# --- the real torch on this machine ------------------------------------------------------------------------------

def test_auto_here_agrees_with_what_torch_offers(restore_threads):
    choice = choose_device("auto")
    if available_devices()[0].name == "cpu":  # no GPU of any kind here
        assert choice.device == torch.device("cpu") and choice.kind == "cpu"
        assert choice.amp_dtype is None and not choice.fell_back
    assert choice.threads == torch.get_num_threads()
    assert str(choice.device) in choice.describe()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_explicit_cuda_is_refused_here_with_the_available_devices():
    with pytest.raises(DeviceUnavailable, match="no CUDA GPU is available here; available: .*cpu"):
        choose_device("cuda")
    with pytest.raises(DeviceUnavailable, match="'cuda:0' is not available"):
        choose_device("cuda:0")


def test_threads_are_applied_to_torch(restore_threads):
    choice = choose_device("cpu", threads=1)
    assert torch.get_num_threads() == 1 and choice.threads == 1
    with pytest.raises(DeviceUnavailable, match="at least 1"):
        choose_device("cpu", threads=0)


def test_autocast_is_a_no_op_on_cpu():
    choice = choose_device("cpu")
    layer = torch.nn.Linear(4, 2)
    with autocast(choice):
        out = layer(torch.ones(1, 4))
    assert out.dtype == torch.float32


def test_autocast_uses_the_choice_dtype():
    """A CPU choice carrying bfloat16 must run the matmul in bfloat16: proves the dtype reaches torch.autocast."""
    choice = DeviceChoice(torch.device("cpu"), "cpu", "test", torch.bfloat16, torch.get_num_threads())
    with autocast(choice):
        out = torch.nn.Linear(4, 2)(torch.ones(1, 4))
    assert out.dtype == torch.bfloat16


def test_argparse_helper_gives_a_choice(restore_threads):
    parser = argparse.ArgumentParser()
    add_device_arguments(parser)
    args = parser.parse_args(["--device", "cpu", "--threads", "1", "--no-mixed-precision"])
    choice = device_from_args(args)
    assert choice.kind == "cpu" and choice.threads == 1 and choice.amp_dtype is None
    defaults = parser.parse_args([])
    assert defaults.device == "auto" and defaults.threads is None and defaults.mixed_precision


def test_available_devices_lists_cpu_last():
    devices = available_devices()
    assert devices[-1].name == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_machine_picks_the_gpu_with_mixed_precision():
    choice = choose_device("auto")
    assert choice.kind == "cuda" and choice.amp_dtype in (torch.bfloat16, torch.float16)
    assert "most free memory" in choice.reason and choice.device.index is not None
    with autocast(choice):
        out = torch.nn.Linear(4, 2).to(choice.device)(torch.ones(1, 4, device=choice.device))
    assert out.dtype == choice.amp_dtype
    fallback = choose_device("auto", min_free_memory_gb=100_000)
    assert fallback.kind == "cpu" and fallback.fell_back and "100000.0 GB" in fallback.reason
    explicit = choose_device("cuda:0", min_free_memory_gb=100_000)
    assert explicit.kind == "cpu" and "cuda:0 has" in explicit.reason
    with pytest.raises(DeviceUnavailable, match=f"cuda:{torch.cuda.device_count()}' is not available"):
        choose_device(f"cuda:{torch.cuda.device_count()}")
