"""Slice-wise inference: axial reorientation, fitting slices to the network and back, batching, progress, ONNX."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from radassist.runtime.backends import make_backend
from radassist.runtime.progress import Cancelled, Progress
from radassist.runtime.slicewise import (AxialReorientation, SliceInference, class_argmax, fit_slices, plan_fit,
                                         predict_slices, unfit_slices)
from radassist.volume import Volume


class ThresholdNet(nn.Module):
    """A real (fixed-weight) network: class 1 where the input is above 0.5, else class 0; remembers input sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, kernel_size=1)
        with torch.no_grad():
            self.conv.weight[:] = torch.tensor([[[[-10.0]]], [[[10.0]]]])
            self.conv.bias[:] = torch.tensor([5.0, -5.0])
        self.seen: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(x.shape))
        return self.conv(x)


def _volume(shape=(5, 40, 30), direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)) -> Volume:
    """A bright box in a dark volume: the network's answer must land on the box, in any orientation."""
    array = np.zeros(shape, dtype=np.int16)
    array[1:4, 10:25, 5:12] = 100
    return Volume(array, spacing=(0.8, 0.8, 2.0), direction=direction)


def _prepare(raw: np.ndarray) -> np.ndarray:
    return raw / 100.0


def test_labels_come_back_on_the_input_grid_after_resizing():
    volume = _volume()
    net = ThresholdNet()
    prediction = predict_slices(volume, net, _prepare, SliceInference(input_size=(64, 64), batch_size=2))
    assert prediction.labels.shape == volume.shape and prediction.labels.dtype == np.uint8
    np.testing.assert_array_equal(prediction.labels, (volume.array > 50).astype(np.uint8))
    assert {s for s in net.seen} == {(2, 1, 64, 64), (1, 1, 64, 64)}  # batches of 2, the last one of 1
    assert prediction.geometry == volume.geometry


def test_native_size_is_padded_to_the_network_step_and_cropped_back():
    volume = _volume(shape=(3, 30, 21))
    net = ThresholdNet()
    prediction = predict_slices(volume, net, _prepare, SliceInference(input_size=None, size_multiple=8))
    assert net.seen[0][-2:] == (32, 24)
    np.testing.assert_array_equal(prediction.labels, (volume.array > 50).astype(np.uint8))


@pytest.mark.parametrize("direction", [
    (-1, 0, 0, 0, -1, 0, 0, 0, 1),  # RAS-stored file read into LPS: i runs to the right, j to the front
    (1, 0, 0, 0, 0, 1, 0, -1, 0),  # a coronal stack: k runs anterior, j runs inferior
])
def test_reoriented_volumes_give_axial_slices_and_labels_in_the_original_order(direction):
    volume = _volume(shape=(6, 20, 16), direction=direction)
    reorientation = AxialReorientation.of(volume.geometry)
    canonical = reorientation.to_canonical(volume.array)
    np.testing.assert_array_equal(reorientation.from_canonical(canonical), volume.array)
    # the canonical array's axes run to S, P, L: check with world coordinates of two neighbouring voxels
    index = np.array([2, 3, 4])
    probe = np.zeros(canonical.shape, dtype=np.int16)
    probe[tuple(index)] = 1
    back = np.argwhere(reorientation.from_canonical(probe))[0]
    for axis, world_axis in enumerate((2, 1, 0)):  # canonical axis 0 -> S (z), 1 -> P (y), 2 -> L (x)
        step = np.zeros(3, dtype=int)
        step[axis] = 1
        probe[:] = 0
        probe[tuple(index + step)] = 1
        neighbour = np.argwhere(reorientation.from_canonical(probe))[0]
        delta = volume.geometry.zyx_to_world(neighbour.astype(float)) - volume.geometry.zyx_to_world(back.astype(float))
        assert delta[world_axis] > 0 and np.count_nonzero(np.abs(delta) > 1e-6) == 1
    prediction = predict_slices(volume, ThresholdNet(), _prepare, SliceInference(input_size=(32, 32)))
    np.testing.assert_array_equal(prediction.labels, (volume.array > 50).astype(np.uint8))


def test_fitting_keeps_the_aspect_ratio_and_unfitting_restores_the_slice():
    fit = plan_fit((40, 20), (32, 32))
    assert fit.padding == (0, 0, 10, 10) and fit.padded == (40, 40) and fit.size == (32, 32)
    image = np.zeros((1, 1, 40, 20), dtype=np.float32)
    image[0, 0, 10:30, 5:15] = 1.0
    fitted = fit_slices(image, fit, pad_value=0.0)
    assert fitted.shape == (1, 1, 32, 32)
    logits = torch.cat([1.0 - fitted, fitted], dim=1)
    back = unfit_slices(logits, fit).argmax(dim=1).numpy()[0]
    assert back.shape == (40, 20)
    assert (back == (image[0, 0] > 0.5)).mean() > 0.97  # only resampling at the box edges may differ


def test_probabilities_sum_to_one_and_progress_reports_each_batch():
    reports = []
    prediction = predict_slices(_volume(), ThresholdNet(), _prepare, SliceInference(input_size=(32, 32), batch_size=2),
                                Progress(lambda fraction, message: reports.append((fraction, message))),
                                keep_probabilities=True)
    assert prediction.probabilities.shape == (2, 5, 40, 30)
    np.testing.assert_allclose(prediction.probabilities.sum(axis=0), 1.0, atol=1e-5)
    fractions = [f for f, m in reports if m.startswith("slice")]
    assert fractions == pytest.approx([0.4, 0.8, 1.0])


def test_cancel_stops_between_batches():
    progress = Progress()
    net = ThresholdNet()

    class CancelAfterFirst(nn.Module):
        def forward(self, x):
            progress.cancel()
            return net(x)

    with pytest.raises(Cancelled):
        predict_slices(_volume(), CancelAfterFirst(), _prepare, SliceInference(input_size=(32, 32), batch_size=2),
                       progress)
    assert len(net.seen) == 1


def test_onnx_backend_gives_the_same_labels(tmp_path):
    volume = _volume()
    net = ThresholdNet().eval()
    example = np.zeros((1, 1, 32, 32), dtype=np.float32)
    backend = make_backend(net, "onnx", "cpu", example_inputs=example, input_names=["image"],
                           output_names=["logits"], cache_dir=tmp_path)
    settings = SliceInference(input_size=(48, 48), batch_size=3, output="logits")
    onnx_labels = predict_slices(volume, backend, _prepare, settings).labels
    torch_labels = predict_slices(volume, net, _prepare, settings).labels
    np.testing.assert_array_equal(onnx_labels, torch_labels)
    assert onnx_labels.sum() > 0


def test_a_network_with_the_wrong_output_is_reported():
    class Shrinks(nn.Module):
        def forward(self, x):
            return x[..., ::2, ::2].repeat(1, 2, 1, 1)

    with pytest.raises(ValueError, match="expected"):
        predict_slices(_volume(), Shrinks(), _prepare, SliceInference(input_size=(32, 32)))


def test_class_argmax_is_argmax_over_the_classes_first_on_ties():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(3, 5, 17, 19, generator=generator)
    scores[0, 2, :4] = scores[0, 4, :4] = 9.0  # ties: the first of the equal classes wins, as argmax says
    scores[1, :, 5] = 0.0  # all equal: class 0
    labels = class_argmax(scores)
    assert labels.dtype == torch.uint8 and labels.shape == (3, 17, 19)
    assert torch.equal(labels.long(), scores.argmax(dim=1))
    assert (labels[0, :4] == 2).all() and (labels[1, 5] == 0).all()
    assert torch.equal(class_argmax(scores[:, :1]), torch.zeros(3, 17, 19, dtype=torch.uint8))
    with pytest.raises(ValueError, match="at most 256"):
        class_argmax(torch.zeros(1, 257, 2, 2))
