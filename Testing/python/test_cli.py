"""The `radassist` command as a user meets it: help everywhere, clean errors with exit code 2, all-or-nothing output,
and a demo whose files Slicer's own formats accept."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
import slicerio
from PIL import Image

from radassist.cli import build_parser, main

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """The installed console entry point, as a user runs it (separate process, real exit code)."""
    return subprocess.run([sys.executable, "-m", "radassist.cli", *args], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, timeout=600)


def all_subcommand_paths(parser=None, prefix=()) -> list[tuple[str, ...]]:
    parser = parser or build_parser()
    paths = []
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                paths.append((*prefix, name))
                paths.extend(all_subcommand_paths(sub, (*prefix, name)))
    return paths


def test_every_command_has_help(capsys) -> None:
    paths = all_subcommand_paths()
    assert {("info",), ("inspect",), ("convert",), ("synth",), ("demo",), ("models",)} <= set(paths)
    for path in paths:
        with pytest.raises(SystemExit) as exit_info:
            main([*path, "--help"])
        assert exit_info.value.code == 0
        assert "usage: radassist " + " ".join(path) in capsys.readouterr().out


def test_info_reports_versions_devices_and_model_folders(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["info", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["versions"]["radassist"] and facts["versions"]["torch"].startswith("2.")
    assert facts["devices"][-1]["name"] == "cpu"
    assert facts["models_dir"] == str(tmp_path / "cache" / "models")


def test_synth_writes_a_dataset_and_result_json(tmp_path: Path) -> None:
    out = tmp_path / "lits"
    assert main(["synth", "liver", "--out", str(out), "--cases", "1", "--seed", "3"]) == 0
    record = json.loads((out / "result.json").read_text())
    assert record["command"] == "synth liver" and record["arguments"]["seed"] == 3
    assert "volume-0.nii" in record["outputs"] and "segmentation-0.nii" in record["outputs"]
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "segmentation-0.nii")))
    assert set(np.unique(labels)) == {0, 1, 2}
    assert record["versions"]["SimpleITK"] and record["timings_s"]["generate"] > 0


def test_synth_refuses_zero_cases(tmp_path: Path) -> None:
    result = run_cli("synth", "lung", "--out", str(tmp_path / "x"), "--cases", "0")
    assert result.returncode == 2 and "--cases must be at least 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_convert_dicom_series_to_nrrd(test_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "converted"
    assert main(["convert", str(test_data / "ct/chest_abdomen_example/dicom"), "--out", str(out),
                 "--name", "ct"]) == 0
    written = sitk.ReadImage(str(out / "ct.nrrd"))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(test_data / "ct/chest_abdomen_example/dicom")))
    reference = reader.Execute()
    assert written.GetSize() == reference.GetSize()
    assert np.allclose(written.GetOrigin(), reference.GetOrigin(), atol=1e-3)
    assert np.allclose(written.GetSpacing(), reference.GetSpacing(), atol=1e-4)
    assert np.array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(reference))
    assert json.loads((out / "result.json").read_text())["outputs"] == ["ct.nrrd", "result.json"]


# -- bad input: one clear line naming the file, exit code 2, nothing half-written -----------------------------

def assert_clean_refusal(result: subprocess.CompletedProcess, names: str, problem: str, out: Path | None) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert names in result.stderr and problem in result.stderr.lower(), result.stderr
    if out is not None and out.exists():
        assert list(out.iterdir()) == [], "a failed run left files in the output folder"


def test_truncated_file(test_data: Path, tmp_path: Path) -> None:
    source = (test_data / "ct/chest_abdomen_example/example_ct.nii.gz").read_bytes()
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(source[: len(source) // 3])
    out = tmp_path / "out"
    assert_clean_refusal(run_cli("convert", str(broken), "--out", str(out)), "broken.nii.gz", "", out)


def test_unreadable_file(tmp_path: Path) -> None:
    junk = tmp_path / "scan.nrrd"
    junk.write_text("this is not an image")
    out = tmp_path / "out"
    assert_clean_refusal(run_cli("convert", str(junk), "--out", str(out)), "scan.nrrd", "", out)


def test_folder_with_no_images(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "notes.txt").write_text("no images here")
    out = tmp_path / "out"
    assert_clean_refusal(run_cli("convert", str(folder), "--out", str(out)), "empty", "dicom", out)


def test_folder_with_two_series_lists_them(test_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "two"
    shutil.copytree(test_data / "ct/chest_abdomen_example/dicom", folder)
    second_uid = pydicom.uid.generate_uid()
    for path in sorted(folder.iterdir())[:10]:
        dataset = pydicom.dcmread(path)
        dataset.SeriesInstanceUID = second_uid
        dataset.SeriesDescription = "second series"
        dataset.save_as(path)
    out = tmp_path / "out"
    result = run_cli("convert", str(folder), "--out", str(out))
    assert_clean_refusal(result, "two", "--series", out)
    assert second_uid in result.stderr and "10 slices" in result.stderr and "second series" in result.stderr
    chosen = run_cli("convert", str(folder), "--series", second_uid, "--out", str(out), "--name", "second")
    assert chosen.returncode == 0, chosen.stderr
    assert sitk.ReadImage(str(out / "second.nrrd")).GetSize()[2] == 10


def test_2d_image_where_a_volume_is_needed(test_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_cli("convert", str(test_data / "mammo/gmic_exam0/0_L-CC.png"), "--out", str(out))
    assert result.returncode == 2 and "0_L-CC.png" in result.stderr and "Traceback" not in result.stderr
    image = sitk.GetImageFromArray(np.zeros((32, 32), np.float32))
    flat = tmp_path / "slice.nii.gz"
    sitk.WriteImage(image, str(flat))
    assert_clean_refusal(run_cli("convert", str(flat), "--out", str(out)), "slice.nii.gz", "2-d", out)


def test_nan_voxels(tmp_path: Path) -> None:
    array = np.zeros((4, 8, 8), np.float32)
    array[2, 3, 3] = np.nan
    path = tmp_path / "nan.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    out = tmp_path / "out"
    assert_clean_refusal(run_cli("convert", str(path), "--out", str(out)), "nan.nrrd", "nan", out)


def test_output_folder_that_cannot_be_written(unwritable_folder: Path, tmp_path: Path) -> None:
    image = tmp_path / "ok.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 4, 4), np.int16)), str(image))
    result = run_cli("convert", str(image), "--out", str(unwritable_folder))
    assert result.returncode == 2 and str(unwritable_folder) in result.stderr and "Traceback" not in result.stderr


# -- the demo: Slicer-loadable files and PNGs ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_output(tmp_path_factory, litemedsam_home) -> Path:
    out = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch:  # the session's model cache: LiteMedSAM is installed there once
        patch.setenv("RADASSIST_CACHE_DIR", str(litemedsam_home))
        result = run_cli("demo", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def test_demo_leaves_slicer_loadable_files_and_previews(demo_output: Path, markups_schema: dict) -> None:
    record = json.loads((demo_output / "result.json").read_text())
    files = {p.relative_to(demo_output).as_posix() for p in demo_output.rglob("*") if p.is_file()}
    assert files == set(record["outputs"])
    assert not any(".radassist-tmp" in name for name in files)

    for seg in [p for p in demo_output.rglob("*.seg.nrrd")]:
        segmentation = slicerio.read_segmentation(str(seg))
        assert segmentation["segments"], seg
        assert all(s.get("terminology") for s in segmentation["segments"]), seg
    for markups in demo_output.rglob("*.mrk.json"):
        document = json.loads(markups.read_text())
        jsonschema.validate(document, markups_schema)
        assert document["markups"] and all(m["type"] == "ROI" for m in document["markups"])
    transform = sitk.ReadTransform(str(demo_output / "brain/transform.h5"))
    assert transform.GetName() in {"DisplacementFieldTransform", "CompositeTransform"}
    assert not (demo_output / "brain/displacement.nii.gz").exists()  # one copy of the field by default
    for volume in ["lung/chest_ct.nrrd", "liver/abdomen_ct.nii.gz", "brain/warped.nii.gz"]:
        assert sitk.ReadImage(str(demo_output / volume)).GetDimension() == 3
    pngs = sorted(demo_output.rglob("*.png"))
    assert len(pngs) >= 8
    for png in pngs:
        with Image.open(png) as image:
            assert image.size[0] > 100 and image.size[1] > 100
            assert len(np.unique(np.asarray(image.convert("L")))) > 10, f"{png} looks blank"


def test_demo_nodules_match_the_csv(demo_output: Path) -> None:
    rows = (demo_output / "lung/nodules.csv").read_text().splitlines()
    # the classical detector ranks candidates with a score, not a probability
    assert rows[0].split(",")[:5] == ["seriesuid", "coordX", "coordY", "coordZ", "score"]
    markups = json.loads((demo_output / "lung/nodules.mrk.json").read_text())["markups"]
    assert 0 < len(markups) <= len(rows) - 1  # every candidate in the CSV, a box for those at the threshold
    csv_centres = [tuple(float(v) for v in row.split(",")[1:4]) for row in rows[1:]]
    for markup in markups:
        assert min(np.abs(np.subtract(markup["center"], c)).max() for c in csv_centres) < 0.02


def test_demo_registration_recovers_the_known_deformation(demo_output: Path) -> None:
    record = json.loads((demo_output / "result.json").read_text())
    brain = record["summary"]["brain"]
    assert brain["mean_abs_intensity_error"]["registered"] < 0.5 * brain["mean_abs_intensity_error"]["unregistered"]
    assert brain["field_error_mm_vs_truth"]["mean"] < 0.25 * brain["max_true_displacement_mm"]


def test_demo_segments_a_phantom_tumour_from_a_box(demo_output: Path) -> None:
    interactive = json.loads((demo_output / "result.json").read_text())["summary"]["interactive"]
    assert interactive["model"].startswith("litemedsam 1.0.0")
    assert interactive["dice_vs_phantom_truth"] > 0.8
    assert interactive["volume_ml"] == pytest.approx(interactive["true_volume_ml"], rel=0.3)
    boxes = json.loads((demo_output / "interactive/tumour_box.mrk.json").read_text())["markups"]
    segments = slicerio.read_segmentation(str(demo_output / "interactive/segmentation.seg.nrrd"))["segments"]
    assert [s["name"] for s in segments] == ["liver tumour"] and len(boxes) == 1


def test_demo_classical_detector_finds_the_phantom_nodules(demo_output: Path) -> None:
    lung = json.loads((demo_output / "result.json").read_text())["summary"]["lung"]
    assert lung["engine"] == "classic"
    assert lung["reference_nodules_found"] >= 0.75 * lung["reference_nodules"]
