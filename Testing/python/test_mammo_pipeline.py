"""classify_exam: per-view and per-breast probabilities, saliency maps on each view's grid, patches with their
attention, test-time augmentation, ensembles, ONNX Runtime, and where the weights come from."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from radassist.errors import InputError
from radassist.io import read_mammogram
from radassist.io.mammogram import Mammogram
from radassist.mammo.model import Gmic, GmicConfig
from radassist.mammo.pipeline import (MammoConfig, WeightsMissing, _upsample, classify_exam,
                                      load_gmic)
from radassist.mammo.postprocess import patch_detections, render_visualisation, saliency_volume
from radassist.mammo.preprocess import augmented_windows
from radassist.runtime.checkpoints import save_checkpoint
from radassist.synthetic.mammo import MammoPhantomConfig, make_mammogram_exam

INPUT = (192, 128)
PUBLISHED_MODEL_1 = {"L-CC": (0.1356, 0.0081), "R-CC": (0.8929, 0.3259), "L-MLO": (0.2368, 0.0335),
                     "R-MLO": (0.9509, 0.1812)}


def tiny_config(top_t: float = 5.0) -> GmicConfig:
    return GmicConfig(global_filters=4, global_blocks=(1, 1, 1), global_strides=(1, 2, 2), post_processing_dim=16,
                      cam_size=(12, 8), top_t_percent=top_t, num_patches=3, crop_shape=(48, 48), local_filters=4,
                      local_blocks=(1, 1, 1), attention_dim=8)


def tiny_network(seed: int) -> Gmic:
    torch.manual_seed(seed)
    network = Gmic(tiny_config())
    with torch.no_grad():  # saliency maps with structure, so patch retrieval has something to choose
        network.global_network.saliency_conv.weight.normal_(0.0, 0.5)
    return network.eval()


@pytest.fixture(autouse=True, scope="module")
def _one_thread():  # one torch thread: several test processes share the machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Installs and the ONNX cache go to a temporary folder, never the user's."""
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("gmic-tiny")
    return save_checkpoint(tiny_network(0), "gmic", tiny_config(), folder,
                           metadata={"modelId": "gmic-tiny", "input": {"imageSize": list(INPUT)}},
                           labels={0: "benign", 1: "malignant"})


@pytest.fixture(scope="module")
def exam() -> list[Mammogram]:
    phantoms = make_mammogram_exam(5, MammoPhantomConfig(shape=(256, 160), pixel_spacing_mm=1.0))
    return [Mammogram(v.pixels, (1.0, 1.0), v.laterality, v.view, path=f"{v.name}.png") for v in phantoms.views]


def test_checkpoint_runs_on_an_exam_with_breasts_as_the_mean_of_their_views(checkpoint, exam):
    runner = load_gmic(checkpoint)
    assert runner.input_size == INPUT and runner.model_id == "gmic-tiny"
    result = classify_exam(exam, runner)
    names = [item.image_id for item in result.classification.images]
    assert names == ["L-CC", "R-CC", "L-MLO", "R-MLO"]
    groups = {g.image_id: g for g in result.classification.groups}
    for side in "LR":
        cc, mlo = result.view(f"{side}-CC"), result.view(f"{side}-MLO")
        for name in ("benign", "malignant"):
            assert groups[f"{side} breast"].probabilities[name] == pytest.approx(
                (cc.probabilities[name] + mlo.probabilities[name]) / 2)
    right = result.view("R-CC")
    assert right.prepared.window.flipped and not result.view("L-CC").prepared.window.flipped
    assert result.classification.images[1].attributes["mirrored"] is True


def test_saliency_maps_are_the_networks_own_on_each_views_grid(checkpoint, exam):
    runner = load_gmic(checkpoint)
    result = classify_exam(exam[1:2], runner)
    view = result.views[0]
    assert view.saliency.shape == (2, 256, 160) and view.saliency.dtype == np.float32
    direct = runner.run(view.model_input[None, None])
    expected = view.prepared.window.to_image(_upsample(direct["saliency_maps"], INPUT)[0])
    np.testing.assert_allclose(view.saliency, expected, atol=1e-6)
    covered = view.prepared.window.to_image(np.ones((2,) + INPUT, dtype=bool), fill=False)
    assert not covered.all() and np.all(view.saliency[~covered] == 0)  # outside the window: no evidence
    assert view.probabilities == {"benign": pytest.approx(float(direct["y_fusion"][0, 0])),
                                  "malignant": pytest.approx(float(direct["y_fusion"][0, 1]))}
    volume = saliency_volume(view, 1)
    assert volume.shape == (1, 256, 160) and np.array_equal(volume.array[0], view.saliency[1])


def test_patches_come_with_their_attention_and_map_to_image_boxes(checkpoint, exam):
    result = classify_exam(exam[:1], load_gmic(checkpoint))
    view = result.views[0]
    assert len(view.patches) == 3
    assert sum(p.attention for p in view.patches) == pytest.approx(1.0, abs=1e-5)
    for patch, pixels in zip(view.patches, view.patch_pixels):
        top, left = patch.window_corner
        np.testing.assert_array_equal(pixels, view.model_input[top:top + 48, left:left + 48])
        rows, cols = view.prepared.window.input_to_image([top], [left])
        assert (patch.top, patch.left, patch.height, patch.width) == (rows[0], cols[0], 48, 48)  # L-CC: no mirror
    boxes = patch_detections(view)
    centre = boxes.items[0].center
    first = view.patches[0]
    assert centre == pytest.approx((first.left + 23.5, first.top + 23.5, 0.0))  # 1 mm pixels at the origin
    assert boxes.items[0].size == (48.0, 48.0, 1.0)
    assert boxes.items[0].probability == pytest.approx(first.attention)


def test_any_subset_of_views_and_duplicates_refused(checkpoint, exam):
    result = classify_exam([exam[3], exam[1]], load_gmic(checkpoint))
    assert [v.name for v in result.views] == ["R-CC", "R-MLO"]
    assert [g.image_id for g in result.classification.groups] == ["R breast"]
    with pytest.raises(InputError, match="second L-CC view"):
        classify_exam([exam[0], exam[0]], load_gmic(checkpoint))


def test_test_time_augmentation_averages_the_published_and_random_windows(checkpoint, exam):
    runner = load_gmic(checkpoint)
    config = MammoConfig(tta=3, tta_seed=7)
    result = classify_exam(exam[2:3], runner, config)
    view = result.views[0]
    assert view.runs == 4
    windows = [view.prepared.window] + augmented_windows(
        view.prepared.window, 3, np.random.default_rng(7),
        config.preprocess.__class__(input_size=INPUT))
    outputs = [runner.run(view.prepared.model_input(w)[None, None])["y_fusion"][0] for w in windows]
    expected = np.mean(outputs, axis=0)
    assert view.probabilities["malignant"] == pytest.approx(float(expected[1]), abs=1e-6)
    assert not np.allclose(outputs[0], outputs[1])  # the augmented windows really differ
    assert classify_exam(exam[2:3], runner, config).views[0].probabilities == view.probabilities


def test_an_ensemble_averages_its_networks(checkpoint, exam):
    first, second = load_gmic(checkpoint), load_gmic(tiny_network(1))
    second.input_size = INPUT
    alone = [classify_exam(exam[:2], r).views for r in (first, second)]
    both = classify_exam(exam[:2], [first, second])
    for index, view in enumerate(both.views):
        for name in ("benign", "malignant"):
            assert view.probabilities[name] == pytest.approx(
                (alone[0][index].probabilities[name] + alone[1][index].probabilities[name]) / 2)
        np.testing.assert_allclose(view.saliency, (alone[0][index].saliency + alone[1][index].saliency) / 2,
                                   atol=1e-6)
    assert both.classification.model == "gmic-tiny + in-memory"


def test_onnx_runtime_gives_the_torch_result(checkpoint, exam, tmp_path):
    torch_result = classify_exam(exam[:2], load_gmic(checkpoint))
    onnx_result = classify_exam(exam[:2], load_gmic(checkpoint, backend="onnx", cache_dir=tmp_path))
    assert len(list(tmp_path.glob("*.onnx"))) == 2  # the two halves, exported once
    for a, b in zip(torch_result.views, onnx_result.views):
        for name in a.probabilities:
            assert b.probabilities[name] == pytest.approx(a.probabilities[name], abs=1e-5)
        assert [p.window_corner for p in a.patches] == [p.window_corner for p in b.patches]
        np.testing.assert_allclose(a.saliency, b.saliency, atol=1e-5)


def test_without_weights_the_message_says_how_to_get_them():
    with pytest.raises(WeightsMissing, match="radassist models import gmic-3 sample_model_3.p"):
        load_gmic("gmic-3")
    with pytest.raises(WeightsMissing, match="radassist train mammo"):
        classify_exam([], [])
    with pytest.raises(InputError, match="not a mammogram classifier"):
        load_gmic("lung-detr")


def test_weights_imported_as_gmic_1_run_as_gmic_1(tmp_path, exam, monkeypatch):
    """`radassist models import gmic-1 FILE` installs a state dict; load_gmic finds it by id. The file must have the
    git blob id the catalogue names (upstream's, for the shipped entry): a site catalogue names this file's."""
    import json

    from radassist.runtime.download import file_git_blob_id
    from radassist.runtime.paths import bundled_catalog
    from radassist.runtime.registry import import_model

    torch.manual_seed(0)
    weights = tmp_path / "sample_model_1.p"
    torch.save(Gmic(GmicConfig.for_published_model(1)).state_dict(), weights)
    entry = next(m for m in json.loads(bundled_catalog().read_text())["models"] if m["id"] == "gmic-1")
    entry["files"][0]["gitBlobSha1"] = file_git_blob_id(weights)
    (tmp_path / "site.json").write_text(json.dumps({"catalogueVersion": 1, "models": [entry]}))
    monkeypatch.setenv("RADASSIST_CATALOGS", str(tmp_path / "site.json"))
    import_model("gmic-1", weights)
    runner = load_gmic("gmic-1")
    assert (runner.model_id, runner.input_size, runner.config.top_t_percent) == ("gmic-1", (2944, 1920), 2.0)
    big = make_mammogram_exam(0, MammoPhantomConfig(shape=(512, 320), pixel_spacing_mm=0.5)).view("L-CC")
    result = classify_exam([Mammogram(big.pixels, (0.5, 0.5), "L", "CC", path="big.png")], runner)
    assert result.views[0].model_input.shape == (2944, 1920) and len(result.views[0].patches) == 6


def test_visualisation_png_has_one_row_per_view(checkpoint, exam, tmp_path):
    from PIL import Image

    result = classify_exam(exam[:2], load_gmic(checkpoint))
    path = render_visualisation(result, tmp_path / "gmic.png", panel_height=120)
    with Image.open(path) as image:
        assert image.mode == "RGB" and image.height == 2 * (120 + 16 + 6) + 6
        pixels = np.asarray(image)
    assert (pixels[..., 1] > pixels[..., 0] + 40).any() and (pixels[..., 0] > pixels[..., 1] + 40).any()


@pytest.mark.skipif(not os.environ.get("RADASSIST_GMIC_CHECKPOINT"),
                    reason="the published GMIC weights are not redistributed; set RADASSIST_GMIC_CHECKPOINT to "
                           "nyukat/GMIC's models/sample_model_1.p to compare with its published output")
def test_published_model_1_reproduces_the_published_probabilities(test_data):
    from radassist.runtime.checkpoints import read_weights_file

    from radassist.mammo.checkpoint_mapping import load_published_state_dict

    content, _ = read_weights_file(os.environ["RADASSIST_GMIC_CHECKPOINT"])
    network = load_published_state_dict(Gmic(GmicConfig.for_published_model(1)), content)
    exam0 = [read_mammogram(test_data / "mammo" / "gmic_exam0" / f"0_{name}.png") for name in PUBLISHED_MODEL_1]
    result = classify_exam(exam0, load_gmic(network))
    for name, (benign, malignant) in PUBLISHED_MODEL_1.items():
        probabilities = result.view(name).probabilities
        assert probabilities["benign"] == pytest.approx(benign, abs=2e-3)
        assert probabilities["malignant"] == pytest.approx(malignant, abs=2e-3)


def test_a_cancelled_run_stops_with_cancelled(checkpoint, exam):
    from radassist.runtime.progress import Cancelled, Progress

    progress = Progress()
    progress.cancel()
    with pytest.raises(Cancelled):
        classify_exam(exam, load_gmic(checkpoint), progress=progress)
