"""Lung-DETR exports to ONNX with dynamic batch, height and width, and ONNX Runtime computes what torch computes.

The deformable attention reads every level's size from tensor shapes; if any size were baked into the graph as a
constant, the runs at other sizes below would fail or differ.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch

from radassist.lung.model import LungDetrConfig, LungDetrInference, build_lung_detr, postprocess_outputs
from radassist.runtime.onnx_backend import OnnxSession, assert_onnx_parity

DYNAMIC_AXES = {"images": {0: "batch", 2: "height", 3: "width"},
                "pred_logits": {0: "batch"}, "pred_boxes": {0: "batch"}}


def trained_looking(config: LungDetrConfig, seed: int = 0) -> LungDetrInference:
    """A tiny detector whose zero-initialised offsets and box head have weights, as after training, so that
    sampling positions and boxes depend on the image."""
    torch.manual_seed(seed)
    model = build_lung_detr(config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if any(part in name for part in ("sampling_offsets.weight", "attention_weights.weight", "bbox_embed")):
                parameter.add_(0.1 * torch.randn_like(parameter))
    return LungDetrInference(model).eval()


def test_onnx_export_matches_torch_at_other_batch_and_image_sizes(tmp_path):
    model = trained_looking(LungDetrConfig.tiny())
    generator = torch.Generator().manual_seed(1)
    others = [torch.randn(2, 1, 96, 160, generator=generator), torch.randn(1, 1, 128, 64, generator=generator),
              torch.randn(3, 1, 32, 32, generator=generator)]
    result = assert_onnx_parity(model, torch.randn(1, 1, 64, 64, generator=generator), tmp_path, atol=1e-4,
                                other_inputs=others, input_names=["images"], output_names=list(model.output_names),
                                dynamic_axes=DYNAMIC_AXES)
    assert result.passed
    assert [check.output_shapes["pred_boxes"] for check in result.checks] == [(1, 16, 4), (2, 16, 4), (1, 16, 4),
                                                                             (3, 16, 4)]
    graph = onnx.load(str(result.onnx_path)).graph
    assert any(node.op_type == "GridSample" for node in graph.node)
    dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 1, "height", "width"]


def test_onnx_outputs_feed_the_postprocessing(tmp_path):
    """What ONNX Runtime returns (numpy) gives the same pixel boxes as the torch outputs."""
    model = trained_looking(LungDetrConfig.tiny(with_box_refine=True, in_channels=3), seed=3)
    images = torch.randn(2, 3, 64, 96)
    result = assert_onnx_parity(model, images, tmp_path, atol=1e-4, input_names=["images"],
                                output_names=list(model.output_names),
                                dynamic_axes={**DYNAMIC_AXES, "images": {0: "batch", 2: "height", 3: "width"}})
    onnx_outputs = OnnxSession(result.onnx_path, "cpu").run({"images": images.numpy()})
    with torch.no_grad():
        logits, boxes = model(images)
    from_onnx = postprocess_outputs(onnx_outputs, (64, 96), top_k=5)
    from_torch = postprocess_outputs({"pred_logits": logits, "pred_boxes": boxes}, (64, 96), top_k=5)
    for a, b in zip(from_onnx, from_torch):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
