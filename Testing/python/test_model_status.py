"""model_status: the rows, actions, advice, device choices and cache folder behind `radassist models list` and the
Slicer "Models" section, checked on the real catalogue with the cache in a temporary folder."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from http_fixtures import unused_port

from radassist.errors import DownloadError, InputError, OutputError, RadAssistError
from radassist.runtime import model_status, paths
from radassist.runtime.catalog import load_catalog
from radassist.runtime.device import DeviceInfo, decide_device
from radassist.runtime.download import LicenceConsentRequired, ModelUnavailable, install_model
from radassist.runtime.model_status import (
    INSTALLED,
    NEEDS_IMPORT,
    NOT_INSTALLED,
    PLANNED_STATUS,
    STATUSES,
    Frontend,
)
from radassist.runtime.registry import build_model, import_model

SMALL = {"spatial_dims": 2, "out_channels": 3, "channels": [4, 8], "strides": [2], "num_res_units": 1}
MODEL_ID = "my-liver-unet"
MODULE = Path(model_status.__file__)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(paths.CATALOG_ENV, raising=False)
    return tmp_path / "cache"


@pytest.fixture
def unet_file(tmp_path):
    """A real MONAI UNet state dict saved with torch.save, as a user would bring it."""
    torch.manual_seed(0)
    path = tmp_path / "unet_state.pt"
    torch.save(build_model("monai-unet", SMALL).state_dict(), path)
    return path


def rows_by_id(task=None):
    return {row.id: row for row in model_status.model_rows(task)}


def site_catalogue(tmp_path, monkeypatch, *entries):
    """A site catalogue (via $RADASSIST_CATALOGS) whose entries are the bundled liver-unet entry changed by
    ``entries`` (dicts of fields to replace)."""
    bundled = json.loads(load_catalog().get("liver-unet").catalogue.read_text())
    template = next(m for m in bundled["models"] if m["id"] == "liver-unet")
    site = tmp_path / "site.json"
    site.write_text(json.dumps({"catalogueVersion": 1, "models": [dict(template, **e) for e in entries]}))
    monkeypatch.setenv(paths.CATALOG_ENV, str(site))
    return site


# --- rows --------------------------------------------------------------------------------------------------------

def test_every_catalogue_model_has_one_row_with_its_status(cache):
    catalog = load_catalog()
    rows = model_status.model_rows()
    assert [(r.id, r.version) for r in rows] == [e.key for e in catalog]
    assert {r.status for r in rows} <= set(STATUSES)
    by_id = {r.id: r for r in rows}

    detr = by_id["lung-detr"]
    assert detr.status == PLANNED_STATUS and detr.task == "lung-nodule-detection" and detr.licence == "Apache-2.0"
    assert detr.folder == cache / "models" / "lung-detr" / "0.1.0" and not detr.has_files

    gmic = by_id["gmic-3"]
    assert gmic.status == NOT_INSTALLED and gmic.licence == "AGPL-3.0-only" and gmic.consent_required
    assert gmic.size_bytes is None and gmic.size_text == "?"
    assert gmic.title == catalog.get("gmic-3").title
    record = gmic.as_json()
    assert record["status"] == NOT_INSTALLED and record["state"] == NOT_INSTALLED
    assert record["path"] is None and record["folder"] == str(gmic.folder) and record["size"] is None
    ensemble = by_id["gmic-ensemble"]
    assert ensemble.members == tuple(f"gmic-{n}" for n in range(1, 6)) and ensemble.status == NOT_INSTALLED
    actions = model_status.row_actions(ensemble)
    assert actions.can_install and "gmic-1, gmic-2" in actions.install_tip and "accept" in actions.install_tip
    assert not actions.can_remove and actions.import_target == "mammography-classification"


def test_a_task_prefix_selects_its_tasks(cache):
    assert {r.task for r in model_status.model_rows("lung")} == {"lung-nodule-detection",
                                                                 "lung-infection-segmentation"}
    assert {r.task for r in model_status.model_rows("liver-segmentation")} == {"liver-segmentation"}
    assert {r.task for r in model_status.model_rows("mammo")} == {"mammography-classification"}
    with pytest.raises(InputError, match="no models for task 'kidney'; tasks: .*liver-segmentation"):
        model_status.model_rows("kidney")


def test_an_imported_unet_is_installed_sized_and_removable(cache, unet_file):
    folder = import_model("liver-segmentation", unet_file, MODEL_ID, architecture="monai-unet", config=SMALL)
    rows = model_status.model_rows("liver")
    row = next(r for r in rows if r.id == MODEL_ID)
    assert row.status == INSTALLED and row.installed and row.folder == folder
    assert row.size_bytes == sum(p.stat().st_size for p in folder.iterdir()) and row.size_text.endswith("KiB")
    assert row.user_entry and row.licence == "unknown" and row.architecture == "monai-unet"
    assert row.as_json()["path"] == str(folder) and row.as_json()["status"] == INSTALLED
    assert rows[model_status.default_row(rows)] == row  # the installed model is selected when the table opens

    actions = model_status.row_actions(row)
    assert not actions.can_install and actions.can_remove
    assert actions.import_target == "liver-segmentation"  # another file becomes a new model of the user's own
    assert str(folder) in actions.remove_tip and "your catalogue" in actions.remove_tip

    assert model_status.remove_model(MODEL_ID) == [folder]
    assert not folder.exists() and not (cache / "models" / MODEL_ID).exists()
    assert MODEL_ID not in rows_by_id()
    with pytest.raises(InputError, match=f"model {MODEL_ID} is not installed"):
        model_status.remove_model(MODEL_ID)
    with pytest.raises(InputError, match="is not a model id"):
        model_status.remove_model("../etc")


USER_IMPORT_ENTRY = {"id": "site-import", "status": "user-import",
                     "obtain": "Ask the site's imaging lab for weights.pt (licensed to the site only).",
                     "files": [{"name": "weights.pt", "format": "pytorch-state-dict"}]}


def test_a_file_put_in_place_by_hand_installs_a_needs_import_model(cache, tmp_path, monkeypatch):
    site_catalogue(tmp_path, monkeypatch, USER_IMPORT_ENTRY)
    row = rows_by_id()["site-import"]
    assert row.status == NEEDS_IMPORT
    actions = model_status.row_actions(row)
    assert not actions.can_install and actions.import_target == "site-import"
    assert not actions.can_remove and "nothing installed" in actions.remove_tip
    row.folder.mkdir(parents=True)
    (row.folder / "weights.pt").write_bytes(b"x" * 3000)
    row = rows_by_id()["site-import"]
    assert row.status == INSTALLED and row.size_bytes == 3000 and row.size_text == "2.9 KiB"
    assert model_status.row_actions(row).can_remove
    assert model_status.remove_model("site-import", row.version) == [row.folder]
    assert rows_by_id()["site-import"].status == NEEDS_IMPORT


def test_a_gmic_checkpoint_is_downloaded_after_consent_or_put_in_place_by_hand(cache):
    row = rows_by_id()["gmic-3"]
    actions = model_status.row_actions(row)
    assert actions.can_install and actions.install_tip.startswith("Show its licence (AGPL-3.0-only) and ask you")
    assert actions.import_target == "gmic-3"
    row.folder.mkdir(parents=True)
    (row.folder / "sample_model_3.p").write_bytes(b"x" * 3000)
    assert rows_by_id()["gmic-3"].status == INSTALLED  # size is all a listing checks; loading checks the blob id
    with pytest.raises(InputError, match="gmic-ensemble has no files of its own"):
        model_status.remove_model("gmic-ensemble")


def test_an_available_model_downloads_and_an_offline_one_says_what_to_do(cache, tmp_path, monkeypatch, unet_file):
    data = unet_file.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    offline_url = f"http://127.0.0.1:{unused_port()}/weights.pt"
    site_catalogue(tmp_path, monkeypatch,
                   {"id": "site-liver", "status": "available", "files": [
                       {"name": "weights.pt", "format": "pytorch-state-dict", "url": str(unet_file),
                        "sha256": sha, "size": len(data)}]},
                   {"id": "site-offline", "status": "available", "files": [
                       {"name": "weights.pt", "format": "pytorch-state-dict", "url": offline_url,
                        "sha256": sha, "size": len(data)}]})
    rows = rows_by_id("liver")
    row = rows["site-liver"]
    assert row.status == NOT_INSTALLED and row.size_bytes == len(data)
    actions = model_status.row_actions(row)
    assert actions.can_install and row.size_text in actions.install_tip and actions.import_target == "site-liver"

    install_model(model_status.find_entry("site-liver"))
    row = rows_by_id("liver")["site-liver"]
    assert row.status == INSTALLED and (row.folder / "weights.pt").read_bytes() == data

    entry = model_status.find_entry("site-offline")
    with pytest.raises(DownloadError) as caught:
        install_model(entry, retries=0)
    panel = model_status.install_failure_text(entry, caught.value, Frontend.PANEL)
    assert str(installed_path_of(entry) / "weights.pt") in panel and sha in panel
    assert "click Import" in panel and panel.startswith(str(caught.value))
    assert model_status.install_failure_text(entry, caught.value, Frontend.CLI) == str(caught.value)
    assert not (installed_path_of(entry) / "weights.pt").exists()


def installed_path_of(entry):
    from radassist.runtime.catalog import installed_path

    return installed_path(entry)


def test_an_unreadable_catalogue_says_what_to_do(cache, tmp_path, monkeypatch):
    broken = tmp_path / "broken.json"
    broken.write_text("{\"models\": [")
    monkeypatch.setenv(paths.CATALOG_ENV, str(broken))
    with pytest.raises(InputError) as caught:
        model_status.model_rows("liver")
    text = model_status.listing_failure_text(caught.value)
    assert text.startswith(f"{broken}: model catalogue is not valid JSON") and "Fix or remove that file" in text
    missing = RadAssistError("reading the model catalogue needs the 'jsonschema' package")
    assert "install RadAssist's packages" in model_status.listing_failure_text(missing)


def test_find_entry_names_what_exists(cache):
    assert model_status.find_entry("gmic-3").version == "1.0.0"
    with pytest.raises(InputError, match="no model 'no-such-model'"):
        model_status.find_entry("no-such-model")
    with pytest.raises(InputError, match="known versions: 1.0.0"):
        model_status.find_entry("gmic-3", "9.9.9")


# --- advice ------------------------------------------------------------------------------------------------------

def test_planned_models_point_to_import_in_the_words_of_each_frontend(cache, tmp_path, monkeypatch):
    detr = model_status.find_entry("lung-detr")
    cli = model_status.planned_help(detr, Frontend.CLI)
    assert "not yet published" in cli and "'radassist models import lung-nodule-detection FILE" in cli
    # a planned model whose architecture is registered can take the user's weights directly
    site_catalogue(tmp_path, monkeypatch, {"id": "site-planned", "status": "planned",
                                           "architecture": {"name": "monai-unet", "config": SMALL}})
    planned = model_status.find_entry("site-planned")
    assert "'radassist models import site-planned FILE' (a monai-unet network)" in \
        model_status.planned_help(planned, Frontend.CLI)
    panel = model_status.planned_help(planned, Frontend.PANEL)
    assert "select site-planned and click Import" in panel and "radassist models import liver-segmentation" in panel
    row = rows_by_id("liver")["site-planned"]
    assert row.status == PLANNED_STATUS and model_status.row_actions(row).import_target == "site-planned"
    assert not model_status.row_actions(row).can_install


def test_models_the_user_must_fetch_explain_where_and_how_to_import(cache, tmp_path, monkeypatch):
    site_catalogue(tmp_path, monkeypatch, USER_IMPORT_ENTRY)
    entry = model_status.find_entry("site-import")
    with pytest.raises(ModelUnavailable) as caught:
        install_model(entry)
    cli = model_status.install_failure_text(entry, caught.value, Frontend.CLI)
    assert "Ask the site's imaging lab" in cli and cli.endswith("'radassist models import site-import FILE'")
    panel = model_status.install_failure_text(entry, caught.value, Frontend.PANEL)
    assert "Ask the site's imaging lab" in panel and panel.endswith("select site-import and click Import.")
    assert model_status.row_actions(None).import_target is None


def test_a_licence_not_yet_accepted_is_explained_to_each_frontend(cache):
    entry = model_status.find_entry("gmic-3")
    with pytest.raises(LicenceConsentRequired) as caught:
        install_model(entry)
    cli = model_status.install_failure_text(entry, caught.value, Frontend.CLI)
    assert "AGPL-3.0-only" in cli and "--accept-license" in cli
    panel = model_status.install_failure_text(entry, caught.value, Frontend.PANEL)
    assert panel == "gmic-3 1.0.0 is published under AGPL-3.0-only: click Install again and accept the licence to " \
                    "download it."


# --- devices -----------------------------------------------------------------------------------------------------

def accepted(value: str, devices) -> bool:
    """Whether choose_device's decision accepts a selector value on a machine with these devices."""
    gpus = [(d.name, 8 * 2**30, 16 * 2**30) for d in devices if d.name.startswith("cuda")]
    decision = decide_device(value, gpus, mps_available=any(d.name == "mps" for d in devices))
    return value == "auto" or decision.name == value


def test_device_choices_on_this_machine():
    from radassist.runtime.device import available_devices

    choices = model_status.device_choices()
    devices = available_devices()
    assert choices.values[0] == "auto" and choices.values[-1] == "cpu"
    assert choices.values[1:] == [d.name for d in devices]
    assert all(accepted(value, devices) for value in choices.values)
    if torch.cuda.is_available():
        assert choices.note == ""
    else:
        assert choices.note and ("CPU-only" in choices.note) == (torch.version.cuda is None)


def test_device_options_list_gpus_and_explain_their_absence():
    gpus = [DeviceInfo("cuda:0", "NVIDIA A100", 80.0), DeviceInfo("cuda:1", "NVIDIA T4", 15.6),
            DeviceInfo("cpu", "CPU, 8 threads")]
    choices = model_status.device_options(gpus, "12.4", "2.5.1+cu124")
    assert choices.values == ["auto", "cuda:0", "cuda:1", "cpu"] and choices.note == ""
    assert choices.options[1].label == "cuda:0: NVIDIA A100, 80 GB"
    assert all(accepted(value, gpus) for value in choices.values)
    assert choices.index_of("cuda:1") == 2 and choices.index_of("cuda:7") == 0 and choices.index_of(None) == 0

    cpu_only = model_status.device_options([DeviceInfo("cpu", "CPU, 2 threads")], None, "2.13.0+cpu")
    assert cpu_only.values == ["auto", "cpu"]
    assert "CPU-only build" in cpu_only.note and "2.13.0+cpu" in cpu_only.note and "CUDA build" in cpu_only.note
    no_gpu = model_status.device_options([DeviceInfo("cpu", "CPU")], "12.4")
    assert "CUDA 12.4" in no_gpu.note and "nvidia-smi" in no_gpu.note and "CUDA_VISIBLE_DEVICES" in no_gpu.note
    mac = model_status.device_options([DeviceInfo("mps", "Apple Metal (MPS)")], None)
    assert mac.values == ["auto", "mps", "cpu"] and mac.note == ""


# --- cache folder ------------------------------------------------------------------------------------------------

def test_cache_folder_reports_its_source_and_can_be_moved(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "a"))
    folder = model_status.cache_folder()
    assert folder.path == tmp_path / "a" and folder.models == tmp_path / "a" / "models" and folder.from_environment
    assert paths.CACHE_ENV in folder.how_to_change and str(folder.models) in folder.how_to_change

    moved = model_status.use_cache_folder(tmp_path / "b")
    assert os.environ[paths.CACHE_ENV] == str((tmp_path / "b").resolve()) and (tmp_path / "b").is_dir()
    assert moved.models == (tmp_path / "b" / "models").resolve()
    assert rows_by_id()["gmic-3"].folder == moved.models / "gmic-3" / "1.0.0"

    monkeypatch.delenv(paths.CACHE_ENV)
    default = model_status.cache_folder()
    assert not default.from_environment and default.path == paths.cache_dir()
    assert "default for this platform" in default.how_to_change


def test_an_unwritable_folder_is_refused_and_nothing_changes(tmp_path, monkeypatch, unwritable_folder):
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "a"))
    with pytest.raises(OutputError):
        model_status.use_cache_folder(unwritable_folder)
    assert os.environ[paths.CACHE_ENV] == str(tmp_path / "a")


def test_a_saved_folder_applies_unless_the_environment_chose_one(tmp_path, monkeypatch, unwritable_folder):
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "env"))
    folder, note = model_status.restore_cache_folder(str(tmp_path / "saved"))
    assert folder.path == tmp_path / "env" and note == ""  # the environment wins
    monkeypatch.delenv(paths.CACHE_ENV)
    folder, note = model_status.restore_cache_folder(str(unwritable_folder))
    assert note.startswith("The saved models folder cannot be used") and not folder.from_environment
    folder, note = model_status.restore_cache_folder(str(tmp_path / "saved"))
    assert folder.path == (tmp_path / "saved").resolve() and note == "" and folder.from_environment


def test_format_size():
    assert [model_status.format_size(n) for n in (0, 1023, 1536, 5 * 2**20, 3 * 2**30)] == \
        ["0 B", "1023 B", "1.5 KiB", "5.0 MiB", "3.0 GiB"]


# --- layering ----------------------------------------------------------------------------------------------------

def test_model_status_needs_neither_a_gui_nor_torch_to_import():
    """The Slicer section builds its table before first-use packages are installed: importing must not need them."""
    tree = ast.parse(MODULE.read_text(encoding="utf-8"))
    top_level = {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import)
                 for alias in node.names}
    top_level |= {node.module.split(".")[0] for node in tree.body if isinstance(node, ast.ImportFrom) and node.module}
    assert not top_level & {"qt", "ctk", "slicer", "vtk", "torch"}
    code = ("import sys, radassist.runtime.model_status; "
            "print(sorted({'torch', 'monai', 'jsonschema'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
