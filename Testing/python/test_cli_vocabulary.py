"""One vocabulary: the same option name for the same thing in every command, old spellings still working (with a
note), errors that name the command, and `inspect` for people (--json for programs)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from radassist.cli import build_parser, main
from radassist.commands.options import model_folder
from radassist.commands.run_context import leaf_parsers
from radassist.errors import InputError
from radassist.server.options import OptionSpec, parse_options

RETIRED = ("--checkpoint", "--init", "--lr", "--lr-backbone", "--lr-step", "--lr-gamma", "--registration-channel")


def visible_options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions if action.help != argparse.SUPPRESS
            for option in action.option_strings}


def test_no_command_shows_a_retired_option_name() -> None:
    seen_model = []
    for leaf in leaf_parsers(build_parser()):
        options = visible_options(leaf)
        assert not options & set(RETIRED), (leaf.prog, options & set(RETIRED))
        if "--model" in options:
            seen_model.append(leaf.prog.removeprefix("radassist "))
        engine = leaf._option_string_actions.get("--engine")
        if engine is not None and engine.help != argparse.SUPPRESS:  # --engine is the algorithm, never torch/onnx
            assert "onnx" not in (engine.choices or ()), leaf.prog
        sequences = leaf._option_string_actions.get("--channels")
        if sequences is not None and sequences.help != argparse.SUPPRESS:  # --channels is network widths
            assert sequences.metavar == "N", leaf.prog
    for command in ("lung detect", "lung infection", "liver segment", "mammo classify", "brain register",
                    "train lung", "train lung-infection", "train liver", "train brain", "train mammo",
                    "evaluate lung-infection", "evaluate liver", "evaluate brain", "evaluate mammo", "export liver"):
        assert command in seen_model, command


@pytest.mark.parametrize("argv, expected, notes", [
    (["lung", "infection", "ct.nrrd", "--out", "o", "--checkpoint", "ck", "--engine", "onnx"],
     {"model": "ck", "backend": "onnx"}, ["--checkpoint is deprecated; use --model",
                                         "--engine is deprecated; use --backend"]),
    (["evaluate", "lung-infection", "--data", "d", "--out", "o", "--checkpoint", "ck"], {"model": ["ck"]},
     ["--checkpoint is deprecated; use --model"]),  # a list: --model may be given more than once (an ensemble)
    (["brain", "register", "m", "f", "--out", "o", "--checkpoint", "ck", "--channels", "flair", "t1",
      "--registration-channel", "t1"], {"model": "ck", "sequences": ["flair", "t1"], "registration_sequence": "t1"},
     ["--checkpoint is deprecated", "--channels is deprecated; use --sequences",
      "--registration-channel is deprecated; use --registration-sequence"]),
    (["train", "lung", "--data", "d", "--out", "o", "--lr", "0.5", "--lr-backbone", "0.25", "--lr-step", "3",
      "--lr-gamma", "0.2", "--init", "base"],
     {"learning_rate": 0.5, "learning_rate_backbone": 0.25, "learning_rate_step": 3, "learning_rate_gamma": 0.2,
      "model": "base"}, ["--lr is deprecated; use --learning-rate", "--init is deprecated; use --model"]),
    (["train", "brain", "--data", "d", "--out", "o", "--lr", "0.5", "--channels", "flair", "--init", "b"],
     {"learning_rate": 0.5, "sequences": ["flair"], "model": "b"}, ["--lr is deprecated"]),
    (["train", "liver", "--data", "d", "--out", "o", "--init", "b"], {"model": "b"}, ["--init is deprecated"]),
    (["export", "liver", "--image", "ct", "--ai-result", "a", "--corrected", "c", "--out", "o", "--model-id",
      "liver-unet"], {"model": "liver-unet"}, ["--model-id is deprecated; use --model"]),
    (["batch", "lung-infection", "--inputs", "l", "--out", "o", "--checkpoint", "ck"], {"model": "ck"},
     ["radassist batch lung-infection: note: --checkpoint is deprecated; use --model"]),
])
def test_old_spellings_still_work_and_say_what_to_write(argv, expected, notes, capsys) -> None:
    args = build_parser().parse_args(argv)
    for name, value in expected.items():
        assert getattr(args, name) == value, name
    err = capsys.readouterr().err
    for note in notes:
        assert note in err
    assert len(err.strip().splitlines()) == sum(1 for a in argv if a in RETIRED + ("--engine", "--channels",
                                                                                     "--model-id"))


def test_new_spellings_print_nothing_and_widths_read_both_ways(capsys) -> None:
    parser = build_parser()
    spaced = parser.parse_args(["train", "liver", "--data", "d", "--out", "o", "--channels", "8", "16", "32"])
    commas = parser.parse_args(["train", "liver", "--data", "d", "--out", "o", "--channels", "8,16,32"])
    infection = parser.parse_args(["train", "lung-infection", "--data", "d", "--out", "o", "--channels", "8,16"])
    from radassist.commands.options import flat_widths

    assert flat_widths(spaced.channels) == flat_widths(commas.channels) == (8, 16, 32)
    assert flat_widths(infection.channels) == (8, 16)
    assert capsys.readouterr().err == ""
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "liver", "--data", "d", "--out", "o", "--channels", "8,x"])
    assert "channel widths are whole numbers" in capsys.readouterr().err


@pytest.mark.parametrize("argv, prefix", [
    (["lung", "detect", "missing.nrrd", "--out", "o"], "radassist lung detect: error: missing.nrrd: does not exist"),
    (["liver", "segment", "missing.nii.gz", "--out", "o"], "radassist liver segment: error: missing.nii.gz"),
    (["models", "install", "no-such-model"], "radassist models install: error: no model 'no-such-model'"),
    (["inspect", "missing.nrrd"], "radassist inspect: error: missing.nrrd: does not exist"),
])
def test_errors_name_the_command_that_failed(argv, prefix, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(prefix)


def test_a_model_id_is_accepted_where_a_folder_was(tmp_path, monkeypatch) -> None:
    from radassist.runtime.registry import build_model, import_model

    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RADASSIST_CATALOGS", raising=False)
    small = {"spatial_dims": 2, "out_channels": 3, "channels": [4, 8], "strides": [2], "num_res_units": 1}
    weights = tmp_path / "unet.pt"
    torch.save(build_model("monai-unet", small).state_dict(), weights)
    folder = import_model("liver-segmentation", weights, "my-liver", architecture="monai-unet", config=small)
    assert model_folder("my-liver") == folder == model_folder("my-liver@1.0.0")
    assert model_folder(str(folder)) == folder
    with pytest.raises(InputError, match="--model liver-unet: model liver-unet 0.1.0 is not installed"):
        model_folder("liver-unet")
    with pytest.raises(InputError, match="no such file or folder, and no model 'nothing-here'"):
        model_folder("nothing-here")
    assert model_folder(None) is None


def test_the_server_accepts_the_old_option_name_too() -> None:
    specs = (OptionSpec("registration_sequence", str, None, "sequence", choices=("t1", "t2"),
                        aliases=("registration_channel",)),)
    assert parse_options(specs, {"registration_channel": "t1"}) == {"registration_sequence": "t1"}
    assert parse_options(specs, {"registration_sequence": "t2"}) == {"registration_sequence": "t2"}
    with pytest.raises(InputError, match="give option 'registration_sequence' once"):
        parse_options(specs, {"registration_channel": "t1", "registration_sequence": "t2"})
    from radassist.server.tasks import TASKS

    brain = {spec.name: spec for spec in TASKS["brain-register"].options}
    assert "registration_channel" in brain["registration_sequence"].aliases
    lung_infection = {spec.name for spec in TASKS["lung-infection"].options}
    assert "backend" in lung_infection  # the CLI's --backend (formerly --engine)


def test_inspect_prints_a_summary_for_people_and_json_for_programs(tmp_path, capsys) -> None:
    image = sitk.GetImageFromArray(np.zeros((4, 5, 6), np.int16))
    image.SetSpacing((0.5, 0.75, 2.0))
    image.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))  # RAS voxel axes, as NIfTI often has them
    path = tmp_path / "ct.nrrd"
    sitk.WriteImage(image, str(path))
    assert main(["inspect", str(path)]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0] == str(path)
    assert "grid        6 x 5 x 4 voxels (x, y, z), int16" in text
    assert "spacing     0.5 x 0.75 x 2 mm; extent 3.0 x 3.8 x 8.0 mm" in text
    assert "orientation RAS" in text and "{" not in text
    assert main(["inspect", str(path), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["shape_zyx"] == [4, 5, 6] and document["orientation"] == "RAS"
    assert len(document["ijk_to_ras"]) == 4
