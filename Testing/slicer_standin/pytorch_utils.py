"""Slicer's PyTorch extension (``PyTorchUtils``) as the stand-in offers it: ``torchInstalled`` and ``installTorch``
with the extension's signature; installing makes the test environment's torch importable in the stand-in."""

from __future__ import annotations

import types


def make_module(standin) -> types.ModuleType:
    module = types.ModuleType("PyTorchUtils")

    class PyTorchUtilsLogic:
        calls: list[dict] = []

        @staticmethod
        def torchInstalled() -> bool:  # noqa: N802 -- the extension's name
            return standin.guard.allowed("torch")

        def installTorch(self, askConfirmation=False, forceComputationBackend=None,  # noqa: N802, N803
                         torchVersionRequirement=None, torchvisionVersionRequirement=None):
            PyTorchUtilsLogic.calls.append({"askConfirmation": askConfirmation,
                                            "torchVersionRequirement": torchVersionRequirement})
            import slicer

            if askConfirmation and not slicer.util.confirmOkCancelDisplay(
                    "PyTorch will be downloaded and installed using light-the-torch."):
                return None
            standin.guard.mark_installed({"torch"})
            import torch

            return torch

    module.PyTorchUtilsLogic = PyTorchUtilsLogic
    return module
