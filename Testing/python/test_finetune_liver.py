"""The annotation loop closed for liver, through the real commands: a base model segments a case from a scanner it
never saw, the annotator's correction is exported (MSD), `radassist train liver --data ORIGINAL --data EXPORT
--model BASE --register-as ID` fine-tunes from the base on the original set mixed with the export, and the corrected
case is segmented better (Dice against the corrected labels, scored by `radassist evaluate liver`). The start is in
the new checkpoint, the result is a new catalogue version with its validation metrics, and weights that do not fit
the liver network are refused before any data is read."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from radassist import cli
from radassist.annotation.export_msd import export_segmentation
from radassist.annotation.retrain import resolve_init
from radassist.io import read_volume
from radassist.liver.pipeline import NoLiverFound, segment_liver
from radassist.liver.train import split_by_case
from radassist.liver.weights import load_liver_model
from radassist.results import LabelMap, Segment
from radassist.results.terminology import terminology_for
from radassist.runtime.catalog import installed_path, load_catalog
from radassist.runtime.checkpoints import load_checkpoint, save_checkpoint, sha256_file
from radassist.runtime.registry import MonaiUNetConfig, build_model
from radassist.synthetic.abdomen import AbdomenPhantomConfig
from radassist.synthetic.datasets import write_dataset

PHANTOM = AbdomenPhantomConfig(shape=(16, 48, 64), spacing=(4.4, 4.4, 12.0), tumour_count=(1, 2),
                               tumour_radius_mm=(12.0, 25.0), tumour_contrast_hu=(40.0, 60.0))
BRIGHT = dataclasses.replace(PHANTOM, liver_hu=(220.0, 240.0))  # a protocol the base model never saw
RECIPE = ["--keep-empty-fraction", "1", "--no-augment", "--learning-rate", "3e-3", "--device", "cpu",
          "--threads", "1"]
SEGMENTS = [Segment("liver", 1, terminology=terminology_for("liver")),
            Segment("liver tumour", 2, terminology=terminology_for("liver tumour"))]


@pytest.fixture(scope="module", autouse=True)
def model_home(tmp_path_factory):
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RADASSIST_CACHE_DIR", str(tmp_path_factory.mktemp("radassist-cache")))
        patch.delenv("RADASSIST_CATALOGS", raising=False)
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> Path:
    return write_dataset("liver", tmp_path_factory.mktemp("lits") / "lits", 2, 0, config=PHANTOM)


@pytest.fixture(scope="module")
def base(original, tmp_path_factory) -> Path:
    """An earlier, briefly trained checkpoint (abdominal window, 32-pixel slices)."""
    out = tmp_path_factory.mktemp("base") / "base"
    assert cli.main(["train", "liver", "--data", str(original), "--out", str(out), "--arch", "unet", "--channels",
                     "8,16,32", "--image-size", "32", "--window", "abdominal", "--epochs", "5",
                     "--validation-fraction", "0", *RECIPE]) == 0
    return out


@pytest.fixture(scope="module")
def export(base, tmp_path_factory) -> tuple[Path, np.ndarray]:
    """The base model's result on a new case, corrected by the annotator (the phantom's truth) and exported."""
    new_case = write_dataset("liver", tmp_path_factory.mktemp("new") / "new", 1, 7, config=BRIGHT)
    image = read_volume(new_case / "volume-0.nii")
    corrected = np.rint(read_volume(new_case / "segmentation-0.nii").array).astype(np.uint8)
    try:
        ai = segment_liver(image, load_liver_model(model_path=base)).labelmap
    except NoLiverFound:
        ai = LabelMap(np.zeros_like(corrected), image.geometry, SEGMENTS)
    root = tmp_path_factory.mktemp("export") / "corrections"
    export_segmentation(root, "liver", "bright-case", image, ai, LabelMap(corrected, image.geometry, SEGMENTS),
                        model=resolve_init(base).model, annotator="tester")
    return root, corrected


def liver_dice(data: Path, model: Path, out: Path) -> float:
    assert cli.main(["evaluate", "liver", "--data", str(data), "--model", str(model), "--out", str(out),
                     "--device", "cpu"]) == 0
    return json.loads((out / "evaluation.json").read_text())["summary"]["liver"]["dice_per_case"]


def test_fine_tuning_on_the_export_segments_the_corrected_case_better(original, base, export, tmp_path, capsys):
    root, corrected = export
    before = liver_dice(root, base, tmp_path / "before")
    # the mix numbers the original cases 0, 1 and the exported one 2: seed 1 trains on it, validates on case 0
    assert split_by_case(np.arange(3), 0.34, 1) == ([1, 2], [0])
    tuned = tmp_path / "tuned"
    capsys.readouterr()
    assert cli.main(["train", "liver", "--data", str(original), "--data", str(root), "--model", str(base),
                     "--register-as", "tiny-liver", "--out", str(tuned), "--epochs", "10",
                     "--validation-fraction", "0.34", "--seed", "1", *RECIPE]) == 0
    assert "registered as model tiny-liver 1.0.0" in capsys.readouterr().out
    after = liver_dice(root, tuned, tmp_path / "after")
    assert after > before + 0.1 and after > 0.85, (before, after)

    checkpoint = json.loads((tuned / "config.json").read_text())
    assert checkpoint["architecture"] == "liver-unet" and checkpoint["config"]["channels"] == [8, 16, 32]
    metadata = checkpoint["metadata"]
    assert metadata["finetunedFrom"]["source"] == str(base)
    assert metadata["finetunedFrom"]["weights_sha256"] == sha256_file(base / "model.safetensors")
    assert metadata["window"] == [-200.0, 250.0] and metadata["image_size"] == [32, 32]  # the base's, kept
    assert metadata["train_cases"] == [1, 2] and len(metadata["history"]) == 10
    record = json.loads((tuned / "result.json").read_text())
    assert record["inputs"] == [str(original), str(root)]
    assert record["summary"]["registered_model"] == "tiny-liver 1.0.0"

    entry = load_catalog().get("tiny-liver")
    assert (entry.version, entry.task, entry.architecture) == ("1.0.0", "liver-segmentation", "liver-unet")
    reported = {m.name: m.value for m in entry.reported_metrics}
    assert set(reported) == {"validation_dice_liver", "validation_dice_tumour"}
    # the registered weights are those of the epoch with the best mean validation Dice of liver and tumour
    means = [np.nanmean([r["validation_dice_liver"], r["validation_dice_tumour"]]) for r in metadata["history"]]
    assert metadata["best_epoch"] == 1 + int(np.argmax(means))
    kept = metadata["history"][metadata["best_epoch"] - 1]
    assert reported["validation_dice_liver"] == pytest.approx(kept["validation_dice_liver"])
    installed = load_checkpoint(installed_path(entry))
    assert installed.metadata["finetunedFrom"]["weights_sha256"] == sha256_file(base / "model.safetensors")
    assert installed.metadata["window"] == [-200.0, 250.0]  # the pipeline windows the CT as the training did
    assert installed.metadata["trainingData"] == [str(original.resolve()), str(root.resolve())]
    for key, value in load_checkpoint(tuned).model.state_dict().items():
        assert torch.equal(installed.model.state_dict()[key], value)


def test_weights_that_do_not_fit_are_refused_before_reading_data(base, tmp_path, capsys):
    other = save_checkpoint(build_model("monai-unet", MonaiUNetConfig(spatial_dims=2, channels=(8, 16), strides=(2,))),
                            "monai-unet", MonaiUNetConfig(spatial_dims=2, channels=(8, 16), strides=(2,)),
                            tmp_path / "other")
    missing = tmp_path / "no-data"  # never read: the refusal comes first
    out = tmp_path / "out"
    for options, message in ((["--model", str(other)], "is a monai-unet network; this training needs liver-munet"),
                             (["--model", str(base), "--channels", "8,16"], "channels"),
                             (["--model", str(base), "--arch", "munet"], "is a liver-unet network"),
                             (["--model", str(tmp_path / "nothing")], "neither a file nor a model"),
                             (["--model", str(base), "--register-as", "Bad_Id"], "must be lower-case")):
        capsys.readouterr()
        assert cli.main(["train", "liver", "--data", str(missing), "--out", str(out), *options, *RECIPE]) == 2
        assert message in capsys.readouterr().err
        assert not out.exists()


def test_fine_tuning_starts_from_the_init_weights_even_from_a_bare_file(original, base, tmp_path):
    """With a vanishing learning rate the trained parameters are the starting ones: the base's (a bare state-dict
    file, sized by --arch/--channels), not a fresh network's."""
    weights = tmp_path / "base-weights.pt"
    torch.save(load_checkpoint(base).model.state_dict(), weights)
    tiny_step = ["--epochs", "1", "--validation-fraction", "0", "--keep-empty-fraction", "1", "--no-augment",
                 "--learning-rate", "1e-12", "--device", "cpu", "--threads", "1", "--arch", "unet", "--channels",
                 "8,16,32", "--image-size", "32", "--window", "abdominal"]
    assert cli.main(["train", "liver", "--data", str(original), "--out", str(tmp_path / "from-file"), "--model",
                     str(weights), *tiny_step]) == 0
    assert cli.main(["train", "liver", "--data", str(original), "--out", str(tmp_path / "fresh"), *tiny_step]) == 0
    start = dict(load_checkpoint(base).model.named_parameters())
    tuned = dict(load_checkpoint(tmp_path / "from-file").model.named_parameters())
    fresh = dict(load_checkpoint(tmp_path / "fresh").model.named_parameters())
    assert all(torch.allclose(tuned[name], value, atol=1e-6) for name, value in start.items())
    assert not all(torch.allclose(fresh[name], value, atol=1e-3) for name, value in start.items())
    started = json.loads((tmp_path / "from-file" / "config.json").read_text())["metadata"]["finetunedFrom"]
    assert started["weights_sha256"] == sha256_file(weights) and started["source"] == str(weights)
