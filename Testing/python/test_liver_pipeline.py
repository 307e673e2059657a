"""The liver pipeline end to end with a fixed, hand-made network (an HU band: no training needed), so what is
tested is the plumbing: slices back onto the input grid in any voxel order, 2-D and 2.5-D, torch and ONNX
Runtime, cleaning, coded segments, measurements, "no liver found" and cancel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from radassist.errors import InputError
from radassist.liver.pipeline import LiverModel, NoLiverFound, segment_liver
from radassist.liver.preprocess import ABDOMINAL_WINDOW, LiverPreprocessing
from radassist.metrics.segmentation import dice
from radassist.runtime.progress import Cancelled, Progress
from radassist.synthetic.abdomen import AbdomenPhantomConfig, make_abdomen_ct
from radassist.volume import Volume

PHANTOM = AbdomenPhantomConfig(shape=(16, 48, 64), spacing=(4.4, 4.4, 12.0), tumour_count=(1, 1),
                               tumour_radius_mm=(15.0, 20.0))


class BandNetwork(nn.Module):
    """Liver where the windowed value (abdominal window) lies in the parenchyma's band; uses the middle channel."""

    def __init__(self, low_hu: float = 40.0, high_hu: float = 130.0, silent: bool = False) -> None:
        super().__init__()
        span = ABDOMINAL_WINDOW[1] - ABDOMINAL_WINDOW[0]
        self.low = (low_hu - ABDOMINAL_WINDOW[0]) / span
        self.high = (high_hu - ABDOMINAL_WINDOW[0]) / span
        self.silent = silent

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        middle = x[:, x.shape[1] // 2:x.shape[1] // 2 + 1]
        liver = 100.0 * (middle - self.low) * (self.high - middle) - (1000.0 if self.silent else 0.0)
        return torch.cat([torch.zeros_like(middle), liver, torch.full_like(middle, -10.0)], dim=1)


def _model(context: int = 0, silent: bool = False) -> LiverModel:
    return LiverModel(BandNetwork(silent=silent), "band", LiverPreprocessing(ABDOMINAL_WINDOW, context),
                      input_size=None, size_multiple=1)


def phantom_volume() -> Volume:
    return make_abdomen_ct(1, PHANTOM).volume


@pytest.fixture(scope="module")
def phantom():
    return make_abdomen_ct(1, PHANTOM)


@pytest.fixture(scope="module")
def result(phantom):
    return segment_liver(phantom.volume, _model())


def test_result_is_a_coded_liver_on_the_input_grid(phantom, result):
    assert result.labelmap.geometry.same_grid(phantom.volume.geometry)
    assert [s.name for s in result.labelmap.segments] == ["Liver", "Liver tumour"]
    truth = phantom.labels.labels[0] > 0
    assert dice(truth, result.labelmap.labels[0] > 0) > 0.7
    summary = result.report.summary
    voxels = int(np.count_nonzero(result.labelmap.labels))
    assert summary["liver_voxels"] == voxels
    assert np.isclose(summary["liver_volume_ml"], round(voxels * phantom.volume.geometry.voxel_volume_mm3 / 1000, 3))
    assert result.report.metadata["backend"].startswith("torch")


def test_voxel_order_does_not_change_the_answer(phantom, result):
    """The same CT stored right-to-left and upside down (flipped axes, direction saying so)."""
    volume = phantom.volume
    flipped = volume.array[::-1, :, ::-1].copy()
    corner = volume.geometry.zyx_to_world(np.array([volume.shape[0] - 1, 0, volume.shape[2] - 1]))
    direction = volume.geometry.direction_matrix @ np.diag([-1.0, 1.0, -1.0])
    other = Volume(flipped, volume.spacing, tuple(corner), tuple(direction.ravel()), volume.source)
    again = segment_liver(other, _model())
    assert np.array_equal(again.labelmap.labels[0][::-1, :, ::-1], result.labelmap.labels[0])


def test_25d_and_onnx_give_the_same_labels(phantom, result, tmp_path):
    context = segment_liver(phantom.volume, _model(context=1))
    assert np.array_equal(context.labelmap.labels, result.labelmap.labels)
    model = _model()
    onnx = segment_liver(phantom.volume, model, backend=model.backend("onnx", "cpu", tmp_path))
    assert onnx.backend.startswith("onnxruntime")
    assert np.array_equal(onnx.labelmap.labels, result.labelmap.labels)


def test_no_liver_is_an_error_naming_the_file(phantom):
    volume = Volume.from_geometry(phantom.volume.array, phantom.volume.geometry, phantom.volume.source)
    volume.source.path = "abdomen.nii.gz"
    with pytest.raises(NoLiverFound, match="abdomen.nii.gz: no liver found") as caught:
        segment_liver(volume, _model(silent=True))
    assert isinstance(caught.value, InputError)


def test_cancel_stops_the_run(phantom):
    progress = Progress()
    progress.cancel()
    with pytest.raises(Cancelled):
        segment_liver(phantom.volume, _model(), progress=progress)
