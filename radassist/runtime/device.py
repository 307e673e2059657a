"""What compute devices this machine offers, for `radassist info` and the device selectors."""

from __future__ import annotations

from dataclasses import dataclass


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
            devices.append(DeviceInfo(f"cuda:{index}", props.name, round(props.total_memory / 2**30, 1)))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append(DeviceInfo("mps", "Apple Metal (MPS)"))
    devices.append(DeviceInfo("cpu", f"CPU, {torch.get_num_threads()} threads"))
    return devices
