"""The panels' review-and-export decisions without Slicer: which exporter each task uses, the case name, the model
that made the AI result, the labels proposed for confirmation, the remembered export settings, the infection
report table, and a server's result files read back into the local result types (brain on a real server)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from radassist.annotation.export import TASK_LAYOUTS, check_case_name
from radassist.annotation.provenance import ModelInfo
from radassist.errors import InputError
from radassist.results.tables import Classification, ClassifiedImage
from radassist.slicer import conversions
from radassist.slicer.export_plan import (EXPORTERS, case_name, exporter_for, model_info_from_metadata,
                                          proposed_labels)
from radassist.slicer.settings_store import ExportSettings, MappingStore, default_annotator

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REVIEW = PROJECT_ROOT / "radassist" / "slicer" / "review.py"


def test_every_export_task_has_a_slicer_exporter_with_the_engine_call():
    from radassist.commands.annotation import EXPORT_TASKS

    assert set(EXPORTERS) == set(EXPORT_TASKS) == set(TASK_LAYOUTS)
    tree = ast.parse(REVIEW.read_text(encoding="utf-8"))
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    engine_calls = {"export_segmentation_node": "export_segmentation", "export_roi_nodes": "export_detections",
                    "export_brain_tumour": "export_registration", "export_mammo_exam": "export_mammography"}
    for task in EXPORT_TASKS:
        name = exporter_for(task)
        called = {getattr(c.func, "id", "") for c in ast.walk(functions[name]) if isinstance(c, ast.Call)}
        assert engine_calls[name] in called, f"{name} must call the engine's {engine_calls[name]}"
    with pytest.raises(InputError, match="no export"):
        exporter_for("spleen")


@pytest.mark.parametrize("name, expected", [
    ("Synthetic chest CT 3", "Synthetic_chest_CT_3"), ("LIDC-IDRI-0001", "LIDC-IDRI-0001"),
    ("  ..weird / name?*  ", "weird_name"), ("é", "case"), ("", "case"), ("a..b", "a.b")])
def test_case_names_are_valid_dataset_names(name, expected):
    assert case_name(name) == expected
    assert check_case_name(case_name(name)) == expected


def test_model_from_what_each_pipeline_records():
    detr = {"engine": "lung-detr", "model": {"id": "my-detr", "version": "2", "sha256": "ab" * 32, "backend": "x"}}
    assert model_info_from_metadata(detr) == ModelInfo("my-detr", "2", "ab" * 32)
    classic = {"engine": "classic", "model": None}
    assert model_info_from_metadata(classic, "classic") == ModelInfo("classic", architecture="classic")
    gmic = {"models": [{"id": "gmic-a", "version": "1", "sha256": "1" * 64},
                       {"id": "gmic-b", "version": "1", "sha256": "2" * 64}]}
    assert model_info_from_metadata(gmic) == ModelInfo("gmic-a + gmic-b", "1 + 1", "1" * 64 + " + " + "2" * 64)
    infection_local = {"model": "lung-infection-unet (my-checkpoint)"}
    assert model_info_from_metadata(infection_local) == ModelInfo("lung-infection-unet",
                                                                  architecture="lung-infection-unet")
    assert model_info_from_metadata({}) == ModelInfo()


def test_a_catalogue_model_is_resolved_as_the_cli_resolves_it():
    """"id version" of a catalogue model gives what `radassist export --model-id ID@VERSION` records."""
    from radassist.annotation.provenance import model_info_for
    from radassist.runtime.catalog import load_catalog

    for entry in load_catalog().entries.values():
        found = model_info_from_metadata({"model": f"{entry.id} {entry.version}"})
        assert found == model_info_for(f"{entry.id}@{entry.version}")
        assert (found.model_id, found.version, found.architecture) == (entry.id, entry.version, entry.architecture)


def test_a_checkpoint_folder_is_read_like_the_cli_reads_it(tmp_path: Path):
    from radassist.runtime.checkpoints import save_checkpoint, sha256_file
    from radassist.runtime.registry import MonaiUNetConfig, build_model

    config = MonaiUNetConfig(spatial_dims=2, channels=(4, 8), strides=(2,))
    folder = save_checkpoint(build_model("monai-unet", config), "monai-unet", config, tmp_path / "ckpt",
                             metadata={"modelId": "my-liver", "modelVersion": "3"})
    found = model_info_from_metadata({"model": "monai-unet", "modelSource": str(folder)})
    assert found == ModelInfo("my-liver", "3", sha256_file(folder / "model.safetensors"), "monai-unet")
    remote = model_info_from_metadata({"model": "liver-unet", "model_source": "/server/only/path"})
    assert remote == ModelInfo("liver-unet", architecture="liver-unet")


def test_proposed_labels_follow_the_ai_per_breast_present():
    groups = [ClassifiedImage("L breast", {"benign": 0.7, "malignant": 0.2}),
              ClassifiedImage("R breast", {"benign": 0.1, "malignant": 0.5})]
    result = Classification(images=[], groups=groups)
    assert proposed_labels(result) == {"L": {"benign": 1, "malignant": 0}, "R": {"benign": 0, "malignant": 1}}
    only_right = Classification(images=[], groups=groups[1:])
    assert proposed_labels(only_right, threshold=0.6) == {"R": {"benign": 0, "malignant": 0}}


def test_export_settings_are_per_task_and_checked(tmp_path: Path):
    store = MappingStore()
    assert ExportSettings.load("liver", store) == ExportSettings("liver", "", default_annotator())
    ExportSettings("liver", str(tmp_path / "liver-set"), " Dr A ").save(store)
    ExportSettings("lung", str(tmp_path / "lung-set"), "Dr B").save(store)
    liver = ExportSettings.load("liver", store)
    assert liver.folder == str(tmp_path / "liver-set") and liver.annotator == "Dr B"  # one annotator, per-task folder
    assert liver.checked() == (tmp_path / "liver-set", "Dr B")
    with pytest.raises(InputError, match="dataset folder"):
        ExportSettings("liver", "  ", "Dr A").checked()
    with pytest.raises(InputError, match="annotator"):
        ExportSettings("liver", str(tmp_path), " ").checked()
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        ExportSettings("liver", str(tmp_path / "file"), "Dr A").checked()


# -- infection: the report table and the server's files read back ---------------------------------------------------

@pytest.fixture(scope="module")
def infection_result():
    from radassist.lung.infection.pipeline import InfectionResult
    from radassist.lung.infection.postprocess import infection_report
    from radassist.lung.infection.preprocess import LungMasks
    from radassist.lung.infection.synthetic import make_infection_ct

    phantom = make_infection_ct(2)
    labelmap = phantom.labelmap
    labelmap.metadata["model"] = "lung-infection-unet 0.1.0"
    lungs = LungMasks.from_labelmap(phantom.lungs)
    return InfectionResult(labelmap, infection_report(labelmap, lungs, "lung-infection-unet 0.1.0"), lungs, "torch")


def test_infection_report_table_has_volumes_and_lung_shares(infection_result):
    columns = {c.name: c for c in conversions.report_table_columns(infection_result.report)}
    rows = infection_result.report.rows
    assert {"structure", "volume_ml", "infected_percent"} <= set(columns)
    assert columns["structure"].values == [str(r["structure"]) for r in rows]
    assert columns["volume_ml"].unit.lower() == "ml"
    lungs = [r for r in rows if r.get("infected_percent") is not None]
    assert {"right lung", "left lung"} <= {str(r["structure"]).lower() for r in lungs}
    voxel_ml = infection_result.labelmap.geometry.voxel_volume_mm3 / 1000.0
    for segment in infection_result.labelmap.segments:
        row = next(r for r in rows if r["structure"] == segment.name)
        assert row["volume_ml"] == pytest.approx(infection_result.labelmap.mask(segment).sum() * voxel_ml, rel=1e-3)


def test_infection_files_read_back_as_the_local_result(infection_result, tmp_path: Path):
    """The CLI's writers make the folder a server returns; the reader gives the panel an InfectionResult."""
    from radassist.results import write_report, write_seg_nrrd
    from radassist.runtime.run_record import RunRecord
    from radassist.slicer.result_files import read_lung_infection

    write_seg_nrrd(infection_result.labelmap, tmp_path / "infection.seg.nrrd")
    write_report(infection_result.report, tmp_path / "infection_report.json", tmp_path / "infection_report.csv")
    RunRecord("lung infection", {}, summary={"model": "lung-infection-unet 0.1.0", "engine": "onnx"}).write(
        tmp_path / "result.json")
    back = read_lung_infection(tmp_path)
    assert back.engine == "onnx" and back.status_line() == infection_result.status_line()
    assert [s.name for s in back.labelmap.segments] == [s.name for s in infection_result.labelmap.segments]
    for segment in infection_result.labelmap.segments:
        assert np.array_equal(back.labelmap.mask(segment.name), infection_result.labelmap.mask(segment))
    assert model_info_from_metadata(back.labelmap.metadata).model_id == "lung-infection-unet"
    (tmp_path / "infection_report.json").unlink()
    with pytest.raises(InputError, match="infection_report.json"):
        read_lung_infection(tmp_path)


def test_brain_registration_on_a_server_comes_back_as_the_local_result_type(tmp_path: Path):
    from radassist.brain.pipeline import BrainRegistrationResult
    import sys

    from radassist.synthetic.brain import BrainPhantomConfig, make_brain_pair
    from radassist.slicer.task_requests import brain_request, run_request

    from server_fixtures import TOKEN, running_server

    pair = make_brain_pair(0, BrainPhantomConfig(shape=(40, 56, 48), spacing=(3.0, 3.0, 3.0)))
    fixed = {name: pair.fixed[name] for name in ("flair", "t1")}
    moving = {name: pair.moving[name] for name in ("flair", "t1")}
    request = brain_request(fixed, moving, "classic")
    with running_server(tmp_path / "server") as (url, _):
        result = run_request(request, tmp_path / "job", sys.executable, "cpu", server_url=url, token=TOKEN)
    assert isinstance(result, BrainRegistrationResult) and result.engine == "classic"
    assert set(result.warped) == {"flair", "t1"} and result.sequence in fixed
    for name, volume in result.warped.items():
        assert volume.geometry.same_grid(fixed[name].geometry, tolerance=1e-3)
    assert result.field.geometry.shape == fixed["flair"].geometry.shape
    assert "classic engine" in result.status_line()


def test_a_liver_result_names_its_weights_even_from_a_server(tmp_path: Path):
    """The liver pipeline records the weights' id, version and sha256, so a result whose checkpoint path exists
    only on a server still names them for the export's provenance."""
    import dataclasses

    from test_liver_pipeline import _model, phantom_volume

    from radassist.liver.model import UNET, LiverUNetConfig
    from radassist.liver.pipeline import LiverModel, segment_liver
    from radassist.runtime.catalog import load_catalog
    from radassist.runtime.checkpoints import load_checkpoint, save_checkpoint, sha256_file
    from radassist.runtime.registry import build_model

    config = LiverUNetConfig(channels=(4, 8))
    folder = save_checkpoint(build_model(UNET, config), UNET, config, tmp_path / "site" / "liver-unet" / "2.1.0")
    entry = load_catalog().get("liver-unet")
    identity = LiverModel.from_checkpoint(load_checkpoint(folder), entry=entry).identity
    assert identity == {"id": entry.id, "version": entry.version, "sha256": sha256_file(folder / "model.safetensors")}
    # A network that finds the phantom's liver, carrying those weights' identity, through the real pipeline:
    report = segment_liver(phantom_volume(), dataclasses.replace(_model(), architecture=UNET, identity=identity)).report
    metadata = {**{k: report.metadata[k] for k in ("model", "model_identity")}, "model_source": "/server/only/path"}
    assert model_info_from_metadata(metadata) == ModelInfo(entry.id, entry.version, identity["sha256"], UNET)
