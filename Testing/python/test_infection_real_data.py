"""The infection networks on real COVID-19 CT slices: the COVID-SemiSeg layout (../shared/data/ct/covid19-semiseg,
research use only: read in place, never copied), its intensity handling, the augmentation, and a short training on
part of the real training slices that must lift the Dice on held-out real slices well above an untrained network's.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from radassist.cli import main as run  # the real command line, as a user types it
from radassist.errors import InputError
from radassist.lung.infection.augment import SliceAugment, augment_slice
from radassist.lung.infection.covid_semiseg import is_covid_semiseg, read_covid_semiseg
from radassist.lung.infection.evaluate import score_columns
from radassist.lung.infection.pipeline import InfectionModel, segment_infection, segment_picture
from radassist.lung.infection.predict import predict_prepared
from radassist.lung.infection.preprocess import InfectionInput, display_to_unit
from radassist.lung.infection.train import InfectionTrainConfig, build_network, train_infection

MULTI_TRAIN = Path("TrainingSet/MultiClassInfection-Train")
BINARY_TEST = Path("TestingSet/LungInfection-Test")


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small networks: one thread is fastest on a shared machine, and reproducible
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def semiseg(test_data: Path) -> Path:
    folder = test_data / "ct" / "covid19-semiseg"
    assert folder.is_dir(), f"{folder} is missing from the real test data"
    return folder




# ------------------------------------------------------------------------------------------------ the layout


def test_multiclass_and_binary_labels_of_the_same_slices(semiseg):
    multi = read_covid_semiseg(semiseg, "train")
    binary = read_covid_semiseg(semiseg, "train", "binary")
    assert multi.classes == "multiclass" and binary.classes == "binary"
    assert len(multi.dataset) == len(binary.dataset) == 50 and multi.dataset.names == binary.dataset.names
    assert [e["name"] for e in multi.label_table] == ["ground-glass opacity", "consolidation"]
    assert [e["name"] for e in binary.label_table] == ["lung infection"]
    assert multi.dataset.max_label == 2 and binary.dataset.max_label == 1
    for m, b in zip(multi.dataset.masks, binary.dataset.masks):
        np.testing.assert_array_equal(m > 0, b == 1)  # the binary labels are the union of the two classes
    test = read_covid_semiseg(semiseg, "test")
    assert len(test.dataset) == 48 and not set(test.dataset.names) & set(multi.dataset.names)
    # every picture is stretched between its own 1st and 99th percentile
    for image, picture in zip(multi.dataset.images[:5], multi.pictures[:5]):
        assert image.shape == picture.shape and image.min() == 0.0 and image.max() == 1.0
        assert 0.005 < np.mean(image == 0.0) < 0.05


def test_the_layout_is_recognised_from_any_of_its_folders(semiseg):
    assert is_covid_semiseg(semiseg) and is_covid_semiseg(semiseg / "TrainingSet")
    assert is_covid_semiseg(semiseg / MULTI_TRAIN) and not is_covid_semiseg(semiseg / MULTI_TRAIN / "Imgs")
    assert read_covid_semiseg(semiseg / "TrainingSet", "train").split.folder.name == "MultiClassInfection-Train"
    assert read_covid_semiseg(semiseg / BINARY_TEST, "test").classes == "binary"  # from the folder's name


def test_training_never_reads_a_test_slice(semiseg):
    with pytest.raises(InputError, match="test split; training never reads test slices"):
        read_covid_semiseg(semiseg / BINARY_TEST, "train")
    with pytest.raises(InputError, match="TrainingSet"):
        read_covid_semiseg(semiseg / "TestingSet", "train")


def test_bad_files_are_named(semiseg, tmp_path):
    split = tmp_path / "MultiClassInfection-Train"
    (split / "Imgs").mkdir(parents=True)
    (split / "GT").mkdir()
    for name in ("0", "1"):
        shutil.copy(semiseg / MULTI_TRAIN / "Imgs" / f"{name}.jpg", split / "Imgs")
    shutil.copy(semiseg / MULTI_TRAIN / "GT" / "0.png", split / "GT")
    with pytest.raises(InputError, match=r"1\.jpg: has no mask 1\.png"):
        read_covid_semiseg(split, "train")
    Image.fromarray(np.full((5, 5), 7, np.uint8)).save(split / "GT" / "1.png")
    with pytest.raises(InputError, match=r"1\.png: is 5x5 pixels"):
        read_covid_semiseg(split, "train")
    size = Image.open(split / "Imgs" / "1.jpg").size
    Image.fromarray(np.full(size[::-1], 7, np.uint8)).save(split / "GT" / "1.png")
    with pytest.raises(InputError, match=r"1\.png: holds values \[7\]"):
        read_covid_semiseg(split, "train")
    Image.new("RGB", size, (10, 200, 30)).save(split / "Imgs" / "1.jpg")
    with pytest.raises(InputError, match=r"1\.jpg: is a RGB picture"):
        read_covid_semiseg(split, "train")


# ------------------------------------------------------------------------------------------------ intensity


def test_the_display_stretch_undoes_a_change_of_display_window(semiseg):
    """The same slice exported in two windows (a linear map of grey values) gives nearly the same network input."""
    picture = np.asarray(Image.open(semiseg / MULTI_TRAIN / "Imgs" / "10.jpg")).astype(np.float64)
    other_window = np.round(40 + 0.7 * picture).astype(np.uint8)  # air 40 instead of 0, less contrast
    a, b = display_to_unit(picture.astype(np.uint8)), display_to_unit(other_window)
    assert np.abs(a - b).mean() < 0.01 and np.abs(picture / 255 - other_window / 255).mean() > 0.1


def test_a_picture_model_reads_ct_through_a_lung_window_picture(test_data):
    from radassist.io import read_volume

    ct = read_volume(test_data / "slicer" / "CTChest4.nrrd")
    spec = InfectionInput(image_size=(64, 64), normalization="display-percentile")
    prepared = spec.prepare_ct(ct.array[10:12].astype(np.float32))
    for index in range(2):
        picture = np.round((np.clip(ct.array[10 + index], -1350, 150) + 1350) / 1500 * 255)
        np.testing.assert_allclose(prepared[index], display_to_unit(picture), atol=1e-6)


# ------------------------------------------------------------------------------------------------ augmentation


def test_augmentation_moves_image_and_mask_together(semiseg):
    data = read_covid_semiseg(semiseg, "train")
    image, mask = data.dataset.images[0], data.dataset.masks[0]
    marked = np.where(mask > 0, 1.0, 0.0).astype(np.float32)  # an image that shows its own mask
    still = SliceAugment(crop_size=(96, 96), elastic_probability=1.0).with_intensity("off")
    rng = np.random.default_rng(0)
    for _ in range(5):
        drawn_image, drawn_mask = augment_slice(marked, mask, rng, still)
        assert drawn_image.shape == drawn_mask.shape == (96, 96)
        labelled = drawn_mask > 0
        assert labelled.any()  # half the windows are centred on a finding; this slice is 35 % infected
        assert drawn_image[labelled].mean() > 0.9 and drawn_image[~labelled].mean() < 0.1
    varied, _ = augment_slice(image, mask, rng, SliceAugment())
    assert varied.dtype == np.float32 and varied.shape == image.shape


# ------------------------------------------------------------------------------------------------ learning

LEARN_SIZE = (64, 64)
LEARN_NETWORK = {"channels": (8, 16, 32, 64)}


def test_a_short_training_on_real_slices_lifts_held_out_dice_well_above_an_untrained_network(semiseg):
    """25 of the 50 training slices, 25 epochs at 64x64 (about 15 s on two idle cores), scored on 16 of the test
    slices that training never saw, against the same network untrained."""
    train = read_covid_semiseg(semiseg, "train", "binary")
    held_out = read_covid_semiseg(semiseg, "test", "binary").dataset.subset(range(0, 48, 3))
    part = train.dataset.subset(range(0, 50, 2))
    names = ["background", "lung infection"]
    _, _, untrained = build_network("unet", LEARN_NETWORK, 2, seed=0)
    before = score_columns(held_out.masks, predict_prepared([untrained], held_out.images, LEARN_SIZE), names)[0]
    config = InfectionTrainConfig(architecture="unet", model=LEARN_NETWORK, epochs=25, learning_rate=4e-3,
                                  batch_size=8, image_size=LEARN_SIZE, validation_fraction=0.0,
                                  normalization="display-percentile", augment=SliceAugment(), lr_schedule="poly")
    trained = train_infection(part, config, train.label_table)
    after = score_columns(held_out.masks, predict_prepared([trained.model], held_out.images, LEARN_SIZE), names)[0]
    assert trained.history[-1].train_loss < 0.6 * trained.history[0].train_loss
    assert after.mean("dice") > 0.45 and after.mean("dice") > before.mean("dice") + 0.2, \
        (before.mean("dice"), after.mean("dice"))
    assert after.infnet_label_map["dice"] > 0.45  # the published protocol agrees
    assert trained.metadata()["input"] == {"imageSize": [64, 64], "normalization": "display-percentile",
                                           "percentiles": [1.0, 99.0]}


# ------------------------------------------------------------------------------------------------ the commands


@pytest.fixture(scope="module")
def checkpoint(semiseg, tmp_path_factory):
    """A multi-class U-Net trained for 2 epochs through the CLI (wiring, not quality)."""
    out = tmp_path_factory.mktemp("semiseg") / "model"
    assert run(["train", "lung-infection", "--data", str(semiseg), "--out", str(out), "--epochs", "2",
                "--channels", "4", "8", "16", "--image-size", "64", "--crop-size", "32", "--learning-rate", "1e-2",
                "--lr-schedule", "poly", "--seed", "1", "--dice-loss"]) == 0
    return out


def test_train_on_the_layout_records_its_intensity_split_and_log(checkpoint):
    config = json.loads((checkpoint / "config.json").read_text())
    metadata = config["metadata"]
    assert metadata["input"]["normalization"] == "display-percentile"
    assert metadata["lossFunction"] == "median-frequency weighted cross-entropy + soft Dice"
    assert metadata["training"]["augment"]["crop_size"] == [32, 32]
    assert metadata["trainSlices"] == 42 and metadata["validationSlices"] == 8
    summary = json.loads((checkpoint / "result.json").read_text())["summary"]
    assert summary["layout"] == "covid-semiseg" and len(summary["validation_slice_names"]) == 8
    rows = list(csv.DictReader((checkpoint / "train_log.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"] and sum(int(r["kept"]) for r in rows) == 1
    assert float(rows[0]["learning_rate"]) == pytest.approx(1e-2) and float(rows[1]["learning_rate"]) < 1e-2


def test_evaluate_prints_our_rows_beside_the_published_table(semiseg, checkpoint, tmp_path, capsys):
    out = tmp_path / "evaluation"
    assert run(["evaluate", "lung-infection", "--data", str(semiseg), "--model", str(checkpoint),
                "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "published: Inf-Net" in printed and "0.682" in printed and "ours: lung-infection-unet" in printed
    document = json.loads((out / "evaluation.json").read_text())
    findings = document["per_image"]["findings"]
    assert set(findings) == {"infection", "ground-glass opacity", "consolidation"}
    assert findings["consolidation"]["images_with_empty_reference"] == 10  # 10 test slices have no consolidation
    assert findings["infection"]["images_with_empty_reference"] == 0 and document["slices"] == 48
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert len(rows) == 3 * 48
    empty = [r for r in rows if r["finding"] == "consolidation" and r["reference_pixels"] == "0"]
    assert len(empty) == 10 and all(r["dice"] == "" for r in empty)
    with Image.open(out / "best_worst.png") as figure:
        assert figure.width >= 600 and figure.height > 6 * 200
    assert (out / "confusion_matrix.png").is_file()
    summary = json.loads((out / "result.json").read_text())["summary"]
    assert len(summary["worst_slices"]) == 3 and len(summary["best_slices"]) == 3


def test_an_ensemble_averages_its_models_and_their_mirrored_runs(semiseg, checkpoint, tmp_path, capsys):
    """Two checkpoints and --mirror: the softmax of each model on each slice and on the slice flipped left-right,
    averaged; a model with other input handling is refused by name."""
    second = tmp_path / "second"
    assert run(["train", "lung-infection", "--data", str(semiseg), "--out", str(second), "--epochs", "2",
                "--channels", "4", "8", "16", "--image-size", "64", "--crop-size", "32", "--learning-rate", "1e-2",
                "--lr-schedule", "poly", "--seed", "2", "--dice-loss"]) == 0
    models = [InfectionModel.from_checkpoint(folder) for folder in (checkpoint, second)]
    slices = read_covid_semiseg(semiseg, "test", intensity=models[0].input).dataset.subset(range(0, 48, 8)).images
    size = models[0].input.image_size
    single = [predict_prepared([m.network], views, size).probabilities
              for m in models for views in (slices, [np.ascontiguousarray(s[:, ::-1]) for s in slices])]
    ensemble = predict_prepared([m.network for m in models], slices, size, mirror=True)
    for index in range(len(slices)):
        expected = np.mean([p[index][:, :, ::-1] if view % 2 else p[index] for view, p in enumerate(single)],
                           axis=0)
        assert np.abs(ensemble.probabilities[index] - expected).max() <= 1.0  # each map rounded to 1/255
        assert not np.array_equal(ensemble.probabilities[index], single[0][index])  # not one model alone
        clear = np.sort(expected, axis=0)[-1] - np.sort(expected, axis=0)[-2] > 2
        np.testing.assert_array_equal(ensemble.labels[index][clear], expected.argmax(axis=0)[clear])

    out = tmp_path / "evaluation"
    assert run(["evaluate", "lung-infection", "--data", str(semiseg), "--model", str(checkpoint), "--model",
                str(second), "--mirror", "--out", str(out)]) == 0
    assert "ours: ensemble of 2 (lung-infection-unet), mirrored, label map" in capsys.readouterr().out
    document = json.loads((out / "evaluation.json").read_text())
    assert document["models"] == [str(checkpoint), str(second)] and document["mirror"] is True

    other = tmp_path / "other-input"
    shutil.copytree(checkpoint, other)
    config = json.loads((other / "config.json").read_text())
    config["metadata"]["input"]["imageSize"] = [48, 48]
    (other / "config.json").write_text(json.dumps(config))
    assert run(["evaluate", "lung-infection", "--data", str(semiseg), "--model", str(checkpoint), "--model",
                str(other), "--out", str(tmp_path / "refused")]) != 0
    error = capsys.readouterr().err
    assert str(other) in error and "input handling or classes" in error
    assert not (tmp_path / "refused" / "evaluation.json").exists()


def test_a_picture_is_segmented_as_evaluation_segments_it(semiseg, checkpoint, tmp_path):
    """`lung infection PICTURE` applies the checkpoint's intensity handling: the same labels as evaluation."""
    picture_path = semiseg / "TestingSet" / "MultiClassInfection-Test" / "Imgs" / "21.jpg"
    out = tmp_path / "picture"
    assert run(["lung", "infection", str(picture_path), "--model", str(checkpoint), "--out", str(out)]) == 0
    labels = np.asarray(Image.open(out / "infection_labels.png"))
    model = InfectionModel.from_checkpoint(checkpoint)
    test = read_covid_semiseg(semiseg, "test", intensity=model.input)
    index = test.dataset.names.index("21")
    expected = predict_prepared([model.network], test.dataset.subset([index]).images,
                                model.input.image_size).labels[0]
    np.testing.assert_array_equal(labels, expected)
    report = json.loads((out / "infection_report.json").read_text())
    assert report["summary"]["infected_pixels"] == int((expected > 0).sum())
    assert (out / "infection_preview.png").is_file()


def test_pictures_and_hu_models_do_not_mix(semiseg, checkpoint, tmp_path):
    model = InfectionModel.from_checkpoint(checkpoint)
    hu_model = InfectionModel(model.network, model.label_table, InfectionInput(image_size=(64, 64)), "hu model")
    picture = np.asarray(Image.open(semiseg / MULTI_TRAIN / "Imgs" / "0.jpg"))
    with pytest.raises(InputError, match="trained on CT in HU"):
        segment_picture(picture, hu_model, name="0.jpg")
    with pytest.raises(InputError, match="8-bit grey slice"):
        segment_picture(picture.astype(np.float32), model, name="0.jpg")
    assert segment_picture(picture, model).labels.shape == picture.shape


def test_a_picture_model_runs_on_a_real_ct(test_data, checkpoint):
    from radassist.io import read_volume

    ct = read_volume(test_data / "slicer" / "CTChest4.nrrd")
    result = segment_infection(ct, InfectionModel.from_checkpoint(checkpoint), find_lungs=False)
    assert result.labelmap.labels.shape[-3:] == ct.array.shape


def test_perfect_predictions_score_one_and_the_protocol_counts_threshold_zero(semiseg, tmp_path, capsys):
    """Prediction masks equal to the binary references: per-image Dice 1; the Inf-Net protocol gives
    (255 * 1 + Dice of everything-positive) / 256 per image, the tool's threshold 0 marking every pixel."""
    test = read_covid_semiseg(semiseg, "test", "binary")
    predictions = tmp_path / "predictions"
    predictions.mkdir()
    expected = []
    for name, mask in zip(test.dataset.names, test.dataset.masks):
        Image.fromarray(mask).save(predictions / f"{name}.png")
        expected.append((255 + 2 * mask.sum() / (mask.sum() + mask.size)) / 256)
    out = tmp_path / "scores"
    assert run(["evaluate", "lung-infection", "--data", str(semiseg / BINARY_TEST), "--predictions",
                str(predictions), "--out", str(out)]) == 0
    findings = json.loads((out / "evaluation.json").read_text())["per_image"]["findings"]
    assert list(findings) == ["infection"]
    assert findings["infection"]["mean_dice"] == 1.0 and findings["infection"]["mean_specificity"] == 1.0
    assert findings["infection"]["infnet_protocol"]["label_map"]["dice"] == pytest.approx(np.mean(expected), abs=1e-6)
    assert findings["infection"]["infnet_protocol"]["probability_map"] is None  # masks carry no probabilities
    assert "ours: " in capsys.readouterr().out
