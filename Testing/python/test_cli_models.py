"""`radassist models` end to end through the real CLI, with the cache in a temporary folder."""

from __future__ import annotations

import json

import pytest
import torch

from radassist.cli import main
from radassist.runtime.paths import bundled_catalog
from radassist.runtime.registry import build_model

SMALL = {"spatial_dims": 2, "out_channels": 3, "channels": [4, 8], "strides": [2], "num_res_units": 1}
MODEL_ID = "my-liver-unet"


class Payload:
    """A custom class inside a pickle: loading it would run arbitrary code, so it must be refused."""


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RADASSIST_CATALOGS", raising=False)
    return tmp_path / "cache"


@pytest.fixture
def unet_file(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "unet_state.pt"
    torch.save(build_model("monai-unet", SMALL).state_dict(), path)
    return path


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def list_rows(capsys, *extra):
    code, out, _ = run(capsys, "models", "list", "--json", *extra)
    assert code == 0
    return {row["id"]: row for row in json.loads(out)}


def test_list_shows_the_catalogue_with_status(cache, capsys):
    rows = list_rows(capsys)
    assert rows["lung-detr"]["status"] == "planned"
    assert rows["gmic-3"]["status"] == "not installed" and rows["gmic-3"]["licence"] == "AGPL-3.0-only"
    code, out, _ = run(capsys, "models", "list", "--task", "liver")
    assert code == 0 and "liver-unet" in out and "gmic" not in out and "planned" in out
    code, _, err = run(capsys, "models", "list", "--task", "kidney")
    assert code == 2 and "no models for task 'kidney'" in err


def test_import_verify_list_path_remove(cache, capsys, unet_file):
    code, out, err = run(capsys, "models", "import", "liver-segmentation", str(unet_file), "--id", MODEL_ID,
                         "--architecture", "monai-unet", "--config", json.dumps(SMALL))
    assert code == 0, err
    folder = cache / "models" / MODEL_ID / "1.0.0"
    assert str(folder) in out and (folder / "model.safetensors").is_file()

    row = list_rows(capsys, "--task", "liver-segmentation")[MODEL_ID]
    assert row["status"] == "installed" and row["architecture"] == "monai-unet" and row["path"] == str(folder)

    code, out, _ = run(capsys, "models", "verify", MODEL_ID)
    assert code == 0 and "model.safetensors: ok, sha256 matches" in out and "config.json: ok" in out

    code, out, _ = run(capsys, "models", "path", MODEL_ID)
    assert code == 0 and out.strip() == str(folder)

    # a damaged weights file is found by verify
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    code, out, err = run(capsys, "models", "verify")
    assert code == 2 and "MISMATCH" in out and "failed verification" in err

    code, out, _ = run(capsys, "models", "remove", MODEL_ID)
    assert code == 0 and "removed" in out
    assert not (cache / "models" / MODEL_ID).exists()
    assert MODEL_ID not in list_rows(capsys)
    code, _, err = run(capsys, "models", "path", MODEL_ID)
    assert code == 2 and MODEL_ID in err
    code, _, err = run(capsys, "models", "remove", MODEL_ID)
    assert code == 2 and "not installed" in err


def test_config_from_a_json_file(cache, capsys, unet_file, tmp_path):
    config = tmp_path / "unet.json"
    config.write_text(json.dumps(SMALL))
    code, _, err = run(capsys, "models", "import", "liver-segmentation", str(unet_file), "--architecture",
                       "monai-unet", "--config", str(config))
    assert code == 0, err
    assert list_rows(capsys)["user-liver-segmentation-monai-unet"]["status"] == "installed"


def test_pickle_with_a_custom_class_is_refused(cache, capsys, tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": build_model("monai-unet", SMALL).state_dict(), "hook": Payload()}, evil)
    code, _, err = run(capsys, "models", "import", "liver-segmentation", str(evil), "--architecture", "monai-unet",
                       "--config", json.dumps(SMALL))
    assert code == 2
    assert "evil.pt: is a pickle holding Python objects" in err and "Payload" in err
    assert not (cache / "models").exists() or not any((cache / "models").iterdir())


def test_wrong_shape_lists_the_key(cache, capsys, unet_file):
    config = dict(SMALL, out_channels=5)
    code, _, err = run(capsys, "models", "import", "liver-segmentation", str(unet_file), "--architecture",
                       "monai-unet", "--config", json.dumps(config))
    assert code == 2
    assert "does not fit architecture monai-unet" in err
    assert "model.2.0.conv.bias (file [3], model [5])" in err and "--config" in err
    assert "user-liver-segmentation-monai-unet" not in list_rows(capsys)


def test_weights_for_a_catalogue_model_fetched_by_hand(cache, capsys, tmp_path, monkeypatch):
    """A file the user fetched for a catalogue model is checked to be plain weights of the right shapes and its hash
    (here: a site catalogue naming the blob id of the file this test makes) before it is installed as that model."""
    import subprocess

    from test_mammo_mapping import published_state  # a state dict with the published GMIC names and shapes

    wrong = tmp_path / "not_gmic.p"
    torch.save({"fc.weight": torch.ones(2, 4)}, wrong)
    code, _, err = run(capsys, "models", "import", "gmic-3", str(wrong))
    assert code == 2 and "not_gmic.p" in err and "missing" in err
    published = tmp_path / "sample_model_3.p"
    torch.save(published_state(), published)
    blob = subprocess.run(["git", "hash-object", str(published)], capture_output=True, text=True).stdout.strip()
    site = json.loads(bundled_catalog().read_text())
    entry = next(m for m in site["models"] if m["id"] == "gmic-3")
    entry["files"][0]["gitBlobSha1"] = blob
    (tmp_path / "site.json").write_text(json.dumps({"catalogueVersion": 1, "models": [entry]}))
    monkeypatch.setenv("RADASSIST_CATALOGS", str(tmp_path / "site.json"))
    code, out, err = run(capsys, "models", "import", "gmic-3", str(published))
    assert code == 0, err
    folder = cache / "models" / "gmic-3" / "1.0.0"
    assert (folder / "sample_model_3.p").read_bytes() == published.read_bytes()
    assert list_rows(capsys)["gmic-3"]["status"] == "installed"
    code, out, _ = run(capsys, "models", "verify", "gmic-3")
    assert code == 0 and "sample_model_3.p: ok, git blob id matches" in out


def test_install_explains_planned_models_and_asks_for_licences(cache, capsys):
    code, _, err = run(capsys, "models", "install", "liver-unet")
    assert code == 2 and "not yet published" in err and "radassist models import liver-segmentation" in err
    code, _, err = run(capsys, "models", "install", "gmic-3")  # no terminal to ask on (see test_gmic_install)
    assert code == 2 and "GNU Affero General Public License" in err and "--accept-license" in err
    code, _, err = run(capsys, "models", "install", "no-such-model")
    assert code == 2 and "no model 'no-such-model'" in err


def test_install_copies_an_available_model_and_checks_its_sha256(cache, capsys, tmp_path, unet_file, monkeypatch):
    """An `available` entry of a site catalogue with a local url: install copies it, verify re-checks it."""
    import hashlib

    from radassist.runtime.catalog import load_catalog

    bundled = json.loads(load_catalog().get("liver-unet").catalogue.read_text())
    entry = next(m for m in bundled["models"] if m["id"] == "liver-unet")
    data = unet_file.read_bytes()
    entry.update(id="site-liver", status="available", files=[{
        "name": "weights.pt", "format": "pytorch-state-dict", "url": str(unet_file),
        "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}])
    site = tmp_path / "site.json"
    site.write_text(json.dumps({"catalogueVersion": 1, "models": [entry]}))
    monkeypatch.setenv("RADASSIST_CATALOGS", str(site))
    code, out, err = run(capsys, "models", "install", "site-liver")
    assert code == 0, err
    assert (cache / "models" / "site-liver" / "0.1.0" / "weights.pt").read_bytes() == data
    code, out, _ = run(capsys, "models", "verify", "site-liver")
    assert code == 0 and "weights.pt: ok, sha256 matches" in out


def test_load_installed_fits_bare_published_weights_and_checks_their_sha256(cache, capsys, tmp_path, monkeypatch):
    """A published .safetensors (no RadAssist config.json) installs, loads with the entry's architecture and config,
    gives the original network's outputs, and is refused once its bytes change."""
    import hashlib

    from safetensors.torch import save_file

    from radassist.errors import InputError
    from radassist.runtime.catalog import load_catalog
    from radassist.runtime.registry import load_installed

    torch.manual_seed(1)
    original = build_model("monai-unet", SMALL).eval()
    weights = tmp_path / "published.safetensors"
    save_file({k: v.contiguous() for k, v in original.state_dict().items()}, str(weights))
    data = weights.read_bytes()
    entry = json.loads(load_catalog().get("liver-unet").catalogue.read_text())["models"]
    entry = next(m for m in entry if m["id"] == "liver-unet")
    entry.update(id="site-unet", status="available",
                 architecture={"name": "monai-unet", "config": {"spatialDims": 2, "outChannels": 3,
                                                               "channels": [4, 8], "strides": [2], "numResUnits": 1}},
                 files=[{"name": "published.safetensors", "format": "safetensors", "url": str(weights),
                         "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}])
    site = tmp_path / "site.json"
    site.write_text(json.dumps({"catalogueVersion": 1, "models": [entry]}))
    monkeypatch.setenv("RADASSIST_CATALOGS", str(site))
    assert run(capsys, "models", "install", "site-unet")[0] == 0

    loaded = load_installed(load_catalog().get("site-unet"))
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.allclose(loaded.model(x), original(x))
    assert loaded.sha256 == hashlib.sha256(data).hexdigest() and not loaded.model.training

    installed = cache / "models" / "site-unet" / "0.1.0" / "published.safetensors"
    installed.write_bytes(data[:-8] + b"\0" * 8)
    with pytest.raises(InputError, match="sha256"):
        load_installed(load_catalog().get("site-unet"))
