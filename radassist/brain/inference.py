"""The joint network made ready for inference, run by torch or ONNX Runtime behind one call.

:class:`JointInferenceNet` computes what :class:`~radassist.brain.model.BrainJointNet` computes (the same four
outputs, equal within float rounding) with less work, on a copy, so the trained module and its state-dict keys stay
as training and checkpoints know them:

* eval-mode batch norms are folded into the convolution before them (one pass over each activation fewer);
* for torch, weights and activations are channels-last (oneDNN's 3-D convolutions with 4-32 channels run about
  twice as fast so on the CPU; cuDNN takes the layout as well), and the 1x1x1 heads become a matrix product over
  the channel axis, because oneDNN converts layouts for a 1x1x1 convolution with few outputs (~5x slower).

The encoder already reads moving and fixed as one batch of two and the shared segmentation decoder decodes both at
once (:meth:`BrainJointNet.forward`). ONNX Runtime gets the folded network in the plain layout; the graph holds the
whole network including the integration of the gradients into the sampling grid, and the warping stays outside
(the pipeline warps with SimpleITK). :func:`joint_runner` builds either backend, the ONNX file exported once per
weights and cached like the liver and lung models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from radassist.brain.model import ARCHITECTURE_NAME, BrainJointConfig, BrainJointNet, JointOutput
from radassist.runtime.backends import InferenceBackend, make_backend
from radassist.runtime.folding import folded_inference_copy

JOINT_INPUTS = ("moving", "fixed")
JOINT_OUTPUTS = JointOutput._fields  # segmentation_moving, segmentation_fixed, gradients, grid


class ChannelsLastPointwise(nn.Module):
    """A 1x1x1 convolution as a matrix product over the channel axis: on channels-last tensors it reads and writes
    memory in order and returns a channels-last tensor."""

    def __init__(self, conv: nn.Conv3d) -> None:
        super().__init__()
        if conv.kernel_size != (1, 1, 1) or conv.stride != (1, 1, 1) or conv.groups != 1:
            raise ValueError(f"only a plain 1x1x1 convolution is a matrix product, got {conv}")
        self.weight = nn.Parameter(conv.weight.detach().flatten(1).clone(), requires_grad=False)
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.permute(0, 2, 3, 4, 1), self.weight, self.bias).permute(0, 4, 1, 2, 3)


class JointInferenceNet(nn.Module):
    """A folded, inference-only copy of a :class:`BrainJointNet`; ``forward(moving, fixed)`` returns its
    :class:`JointOutput`. ``channels_last``: the torch CPU/GPU layout (False for export to ONNX)."""

    def __init__(self, model: BrainJointNet, channels_last: bool = True) -> None:
        super().__init__()
        net = folded_inference_copy(model)
        if channels_last:
            for decoder in (net.segmentation_decoder, net.registration_decoder):
                decoder.head = ChannelsLastPointwise(decoder.head)
            net = net.to(memory_format=torch.channels_last_3d)
        self.net = net.eval()
        self.config: BrainJointConfig = model.config
        self.channels_last = channels_last

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> JointOutput:
        if self.channels_last:
            moving = moving.contiguous(memory_format=torch.channels_last_3d)
            fixed = fixed.contiguous(memory_format=torch.channels_last_3d)
        return self.net(moving, fixed)


@dataclass
class JointRunner:
    """The joint network ready to run on arrays: its backend (torch or ONNX Runtime) and its config."""

    backend: InferenceBackend
    config: BrainJointConfig

    def __call__(self, moving: np.ndarray, fixed: np.ndarray) -> dict[str, np.ndarray]:
        """(N, channels, z, y, x) float32 arrays in, the outputs named as :data:`JOINT_OUTPUTS` out (numpy)."""
        return self.backend(dict(zip(JOINT_INPUTS, (moving, fixed))))

    def describe(self) -> str:
        return self.backend.describe()


def joint_runner(model: BrainJointNet | JointRunner, kind: str = "torch", device: Any = "cpu",
                 cache_dir: str | Path | None = None) -> JointRunner:
    """``model`` on a torch or ONNX Runtime backend (``kind``); a runner is returned as it is.

    For ONNX the folded network is exported with dynamic batch and spatial sizes once per weights, into
    ``cache_dir`` or the RadAssist cache (:func:`radassist.runtime.backends.cached_onnx`).
    """
    if isinstance(model, JointRunner):
        return model
    config = model.config
    network = JointInferenceNet(model, channels_last=kind == "torch")
    side = 2 * config.size_multiple  # the smallest size every level halves cleanly, two voxels at the bottom
    example = np.zeros((1, config.channels_per_image, side, side, side), dtype=np.float32)
    backend = make_backend(network, kind, device, example_inputs=(example, example), input_names=JOINT_INPUTS,
                           output_names=JOINT_OUTPUTS, model_id=ARCHITECTURE_NAME, cache_dir=cache_dir)
    return JointRunner(backend, config)
