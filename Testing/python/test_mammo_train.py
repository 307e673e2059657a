"""Exam lists, GMIC training with its random search, and evaluation (AUC with CI, saliency Dice), on phantom
exams written in the exam-list layout by radassist.synthetic.datasets."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from radassist.errors import InputError
from radassist.io import read_mammogram
from radassist.mammo.datasets import read_exam_list, split_exams
from radassist.mammo.evaluate import evaluate_exams, evaluation_report, read_mask, saliency_dice
from radassist.mammo.pipeline import classify_exam, load_gmic
from radassist.mammo.train import MammoTrainConfig, load_examples, save_trained, train_from_exams, train_gmic
from radassist.metrics.classification import roc_auc
from radassist.synthetic.datasets import write_dataset
from radassist.synthetic.mammo import MammoPhantomConfig
from readable_outputs import assert_curves

MODEL = dict(global_filters=4, global_blocks=(1, 1, 1), global_strides=(1, 2, 2), post_processing_dim=16,
             cam_size=(12, 8), top_t_percent=5.0, num_patches=3, crop_shape=(48, 48), local_filters=4,
             local_blocks=(1, 1, 1), attention_dim=8)
WINDOW = (192, 128)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():  # one torch thread: several test processes share the machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Three phantom exams (12 views, 256 x 160 at 1 mm) with benign and malignant breasts and lesion masks."""
    return write_dataset("mammo", tmp_path_factory.mktemp("exams") / "data", 3, 1,
                         config=MammoPhantomConfig(shape=(256, 160), pixel_spacing_mm=1.0))


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    config = MammoTrainConfig(model=MODEL, image_size=WINDOW, epochs=30, batch_size=4, learning_rate=1e-2,
                              beta=1e-5, augment=False, validation_fraction=0.0)
    result = train_from_exams(read_exam_list(data), config)
    folder = save_trained(result, config, tmp_path_factory.mktemp("trained") / "gmic-phantom", data)
    return result, folder


# -- exam lists ------------------------------------------------------------------------------------------------------

def test_json_and_csv_exam_lists_agree(data):
    from_json = read_exam_list(data)  # the folder: exam_list.json first
    from_csv = read_exam_list(data / "exam_list.csv")
    assert from_json == from_csv
    assert [v.name for v in from_json[0].views] == ["L-CC", "R-CC", "L-MLO", "R-MLO"]
    listed = json.loads((data / "exam_list.json").read_text())
    for exam, entry in zip(from_json, listed):
        for view in exam.views:
            assert view.labels == (entry["breasts"][view.laterality]["benign"],
                                   entry["breasts"][view.laterality]["malignant"])
            assert (view.benign_mask is not None) == ("benign" in entry["masks"].get(view.name, {}))


def test_gmic_cancer_label_layout_is_read(data, tmp_path):
    listed = json.loads((data / "exam_list.json").read_text())
    for entry in listed:  # GMIC's own layout: cancer_label, no 'breasts', no masks
        del entry["breasts"], entry["masks"]
        for name in ("L-CC", "R-CC", "L-MLO", "R-MLO"):
            entry[name] = [str(data / entry[name][0])]
    (tmp_path / "list.json").write_text(json.dumps(listed))
    exams = read_exam_list(tmp_path / "list.json")
    assert [v.labels for v in exams[2].views] == [v.labels for v in read_exam_list(data)[2].views]


@pytest.mark.parametrize("edit, message", [
    (lambda rows: rows[0].update(benign="2"), "line 2: label '2' is not 0 or 1"),
    (lambda rows: rows[1].update(path="images/missing.png"), "line 3: file images/missing.png not found"),
    (lambda rows: rows[1].update(view="XCCL"), "line 3: view 'R-XCCL' is not one of"),
    (lambda rows: rows[1].update(view="CC", laterality="L"), "exam 0 lists L-CC more than once"),
])
def test_bad_exam_lists_name_the_file_and_the_row(data, tmp_path, edit, message):
    with (data / "exam_list.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    edit(rows)
    target = data / "edited.csv"
    with target.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    try:
        with pytest.raises(InputError, match=message) as error:
            read_exam_list(target)
        assert error.value.path == str(target)
    finally:
        target.unlink()
    (tmp_path / "no_columns.csv").write_text("path,exam\nx.png,0\n")
    with pytest.raises(InputError, match="missing column"):
        read_exam_list(tmp_path / "no_columns.csv")


def test_split_keeps_each_exam_on_one_side(data):
    exams = read_exam_list(data)
    training, validation = split_exams(exams, 0.34, seed=0)
    assert len(validation) == 1 and len(training) == 2
    assert {e.exam for e in training}.isdisjoint({e.exam for e in validation})
    assert split_exams(exams, 0.34, seed=0) == (training, validation)


# -- training --------------------------------------------------------------------------------------------------------

def test_training_loss_falls_and_the_training_exams_are_learnt(trained, data):
    result, _ = trained
    losses = result.chosen.train_loss
    assert losses[-1] < 0.5 * losses[0]
    exams = read_exam_list(data)
    examples = load_examples(exams, WINDOW, (48, 48))
    with torch.no_grad():
        predictions = result.model(torch.from_numpy(np.stack([e.view.model_input() for e in examples])[:, None]))
    labels = np.stack([e.labels for e in examples])
    for index in range(2):
        assert roc_auc(labels[:, index], predictions.y_fusion[:, index].numpy()) > 0.9


def test_validation_auc_is_the_fused_prediction_auc_per_class(trained, data):
    """The AUC a registered model is listed with: per class on held-out views; a one-label class has none."""
    from radassist.mammo.train import validation_auc

    result, _ = trained
    config = MammoTrainConfig(model=MODEL, image_size=WINDOW, batch_size=4)
    examples = load_examples(read_exam_list(data), WINDOW, (48, 48))
    auc = validation_auc(result.model, examples, config, "cpu")
    with torch.no_grad():
        predictions = result.model(torch.from_numpy(np.stack([e.view.model_input() for e in examples])[:, None]))
    labels = np.stack([e.labels for e in examples])
    assert set(auc) == {"auc_benign", "auc_malignant"}
    assert auc["auc_malignant"] == pytest.approx(roc_auc(labels[:, 1], predictions.y_fusion[:, 1].numpy()))
    negatives = [e for e in examples if e.labels[1] == 0]
    assert "auc_malignant" not in validation_auc(result.model, negatives, config, "cpu")
    assert validation_auc(result.model, [], config, "cpu") == {}


def test_random_search_draws_in_its_ranges_and_keeps_the_best_trial(data):
    exams = read_exam_list(data)
    config = MammoTrainConfig(model=MODEL, image_size=WINDOW, epochs=2, batch_size=4, trials=3,
                              lr_range=(1e-4, 1e-2), beta_range=(1e-6, 1e-4), validation_fraction=0.34, seed=4)
    training, validation = split_exams(exams, config.validation_fraction, config.seed)
    train = load_examples(training, WINDOW, (48, 48))
    held_out = load_examples(validation, WINDOW, (48, 48))
    result = train_gmic(train, held_out, config)
    rates = [t.learning_rate for t in result.trials]
    betas = [t.beta for t in result.trials]
    assert len(set(rates)) == 3 and all(1e-4 <= r <= 1e-2 for r in rates) and all(1e-6 <= b <= 1e-4 for b in betas)
    assert result.best == int(np.argmin([t.validation_loss[-1] for t in result.trials]))
    assert (result.train_images, result.validation_images) == (8, 4)
    with pytest.raises(InputError, match="lr_range"):
        MammoTrainConfig(lr_range=(1e-2, 1e-4))


def test_saved_checkpoint_classifies_with_its_training_window(trained, data):
    result, folder = trained
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "gmic" and [label["name"] for label in config["labels"]] == \
        ["benign", "malignant"]
    assert config["metadata"]["input"]["imageSize"] == list(WINDOW)
    runner = load_gmic(folder)
    assert runner.input_size == WINDOW
    view = read_exam_list(data)[0].views[0]
    outcome = classify_exam([read_mammogram(view.path, view.laterality, view.view)], runner)
    with torch.no_grad():
        expected = result.model(torch.from_numpy(outcome.views[0].model_input[None, None])).y_fusion[0]
    assert outcome.views[0].probabilities["malignant"] == pytest.approx(float(expected[1]), abs=1e-6)


# -- evaluation ------------------------------------------------------------------------------------------------------

def test_saliency_dice_values():
    mask = np.zeros((4, 4), bool)
    mask[:2] = True
    assert saliency_dice(mask.astype(float), mask) == (1.0, 1.0)
    assert saliency_dice(np.where(mask, 0.4, 0.0), mask) == (pytest.approx(2 * 3.2 / (3.2 + 8)), 0.0)
    assert saliency_dice(np.zeros((4, 4)), mask) == (0.0, 0.0)


def test_evaluation_scores_images_breasts_and_localisation(trained, data):
    _, folder = trained
    exams = read_exam_list(data)
    evaluation = evaluate_exams(exams, load_gmic(folder))
    assert len(evaluation.images) == 12 and len(evaluation.breasts) == 6
    for key in ("image benign", "image malignant", "breast benign", "breast malignant"):
        result = evaluation.auc[key]
        assert result["auc"] is not None and result["ci_low"] <= result["auc"] <= result["ci_high"]
    masked = [s for s in evaluation.images if "malignant" in s.dice]
    assert evaluation.localisation["malignant"]["images"] == len(masked) > 0
    for score in evaluation.images:
        assert set(score.dice) == {k for k in ("benign", "malignant") if score.labels[k]}
    report = evaluation_report(evaluation, "gmic-phantom")
    assert report.summary["image_malignant_auc"] == evaluation.auc["image malignant"]["auc"]
    assert len(report.rows) == 12 and "malignant_dice" in report.rows[0]
    breast = evaluation.breasts[0]
    views = [s for s in evaluation.images[:4] if s.view.startswith(breast["breast"][0])]
    assert breast["malignant_probability"] == pytest.approx(np.mean([s.probabilities["malignant"] for s in views]))


def test_masks_in_the_model_window_frame_are_put_back_on_the_image(trained, data, tmp_path):
    _, folder = trained
    record = next(v for e in read_exam_list(data) for v in e.views if v.malignant_mask is not None)
    outcome = classify_exam([read_mammogram(record.path, record.laterality, record.view)], load_gmic(folder))
    view = outcome.views[0]
    on_image = read_mask(record.malignant_mask, view)
    framed = view.prepared.window.to_input(on_image.astype(np.uint8) * 255)
    Image.fromarray(framed).save(tmp_path / "window_frame.png")
    covered = view.prepared.window.to_image(np.ones(WINDOW, bool), fill=False)
    assert np.array_equal(read_mask(tmp_path / "window_frame.png", view), on_image & covered)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "wrong.png")
    with pytest.raises(InputError, match="must match its image"):
        read_mask(tmp_path / "wrong.png", view)


# -- fine-tuning from exported corrections ----------------------------------------------------------------------------

def test_fine_tuning_starts_from_the_init_checkpoint_on_data_mixed_with_an_export(trained, data, tmp_path,
                                                                                   monkeypatch, capsys):
    """`radassist train mammo --data ORIGINAL --data EXPORT --model CHECKPOINT --register-as ID`: the network and the
    training window come from the checkpoint, the corrected exam replaces its original, and with a vanishing
    learning rate the kept network is the starting one."""
    from radassist import cli
    from radassist.annotation.export_exam_list import export_mammography
    from radassist.runtime.catalog import installed_path, load_catalog
    from radassist.runtime.checkpoints import load_checkpoint, sha256_file

    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "cache"))
    _, base = trained
    exam = read_exam_list(data)[0]
    export = tmp_path / "export"
    export_mammography(export, exam.exam, {view.name: view.path for view in exam.views},
                       {"L": {"benign": 1, "malignant": 1}, "R": {"benign": 0, "malignant": 0}})
    out = tmp_path / "tuned"
    assert cli.main(["train", "mammo", "--data", str(data), "--data", str(export), "--model", str(base),
                     "--register-as", "gmic-tuned", "--out", str(out), "--epochs", "1", "--batch-size", "4",
                     "--learning-rate", "1e-12", "--beta", "1e-5", "--validation-fraction", "0", "--no-augment",
                     "--device", "cpu", "--threads", "1"]) == 0
    assert "registered as model gmic-tuned 1.0.0" in capsys.readouterr().out
    tuned, start = load_checkpoint(out), load_checkpoint(base)
    assert tuned.config == start.config
    begin = dict(start.model.named_parameters())
    assert all(torch.allclose(value, begin[name], atol=1e-6) for name, value in tuned.model.named_parameters())
    assert tuned.metadata["finetunedFrom"]["weights_sha256"] == sha256_file(base / "model.safetensors")
    assert tuned.metadata["input"]["imageSize"] == list(WINDOW)  # the checkpoint's training window
    assert tuned.metadata["data"] == [str(data), str(export)]
    record = json.loads((out / "result.json").read_text())
    assert record["summary"]["exams"] == 3 and record["summary"]["train_images"] == 12
    assert_curves(out)
    entry = load_catalog().get("gmic-tuned")
    assert (entry.version, entry.task, entry.architecture) == ("1.0.0", "mammography-classification", "gmic")
    installed = load_checkpoint(installed_path(entry))
    assert installed.metadata["metrics"]["final_train_loss"] == pytest.approx(record["summary"]["final_train_loss"])
    assert installed.metadata["input"]["imageSize"] == list(WINDOW)


def test_init_that_does_not_fit_gmic_is_refused(trained, tmp_path, monkeypatch, capsys):
    from radassist import cli
    from radassist.runtime.checkpoints import save_checkpoint
    from radassist.runtime.registry import MonaiUNetConfig, build_model

    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "cache"))
    _, base = trained
    unet = MonaiUNetConfig(spatial_dims=2, channels=(8, 16), strides=(2,))
    other = save_checkpoint(build_model("monai-unet", unet), "monai-unet", unet, tmp_path / "other")
    out = tmp_path / "out"
    for options, message in ((["--model", str(other)], "is a monai-unet network; this training needs gmic"),
                             (["--model", str(base), "--config", '{"top_t_percent": 10.0}'], "top_t_percent 5.0"),
                             (["--model", "gmic-1"], "is not installed")):
        assert cli.main(["train", "mammo", "--data", str(tmp_path / "unread"), "--out", str(out), *options]) == 2
        assert message in capsys.readouterr().err
        assert not out.exists()
