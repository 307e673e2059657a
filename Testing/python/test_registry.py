"""Architecture registry: configs from JSON, MONAI UNet, building from catalogue entries, importing user weights."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from monai.networks.nets import UNet

from radassist.errors import InputError
from radassist.runtime.catalog import installed_path, load_catalog, read_catalogue_file
from radassist.runtime.checkpoints import load_checkpoint
from radassist.runtime.registry import (
    MonaiUNetConfig,
    build_from_entry,
    build_model,
    get_architecture,
    import_model,
    is_installed,
    make_config,
    register_architecture,
    remove_user_entry,
    user_catalogue_path,
)

SMALL = {"spatial_dims": 2, "out_channels": 3, "channels": [4, 8], "strides": [2]}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RADASSIST_CATALOGS", raising=False)
    return tmp_path / "cache"


def test_monai_unet_is_built_with_defaults_and_json_values():
    model = build_model("monai-unet", {"spatial_dims": 2, "channels": [4, 8, 16], "strides": [2, 2],
                                       "num_res_units": 1, "norm": ["instance", {"affine": True}]})
    assert isinstance(model, UNet)
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 16, 16)).shape == (1, 2, 16, 16)  # out_channels default 2
    default = build_model("monai-unet")
    assert isinstance(default, UNet) and default.dimensions == 3


def test_config_accepts_catalogue_camel_case_and_refuses_unknown_keys():
    config = make_config("monai-unet", {"spatialDims": 2, "inChannels": 1, "outChannels": 4,
                                        "channels": [8, 16], "strides": [2]})
    assert config == MonaiUNetConfig(spatial_dims=2, out_channels=4, channels=(8, 16), strides=(2,))
    with pytest.raises(InputError, match="unknown config field.*dropout_rate.*spatial_dims"):
        build_model("monai-unet", {"dropout_rate": 0.1})
    with pytest.raises(InputError, match="'out_channels' = '3' is not of type int"):
        build_model("monai-unet", {"out_channels": "3"})
    with pytest.raises(InputError, match="strides needs 1 values"):
        build_model("monai-unet", {"channels": [4, 8], "strides": [2, 2]})
    with pytest.raises(InputError, match="given twice"):
        make_config("monai-unet", {"out_channels": 2, "outChannels": 3})


def test_register_a_new_architecture_and_refuse_name_clashes(monkeypatch):
    from radassist.runtime import registry

    monkeypatch.setattr(registry, "_ARCHITECTURES", dict(registry._ARCHITECTURES))  # forget it after the test

    @dataclass(frozen=True)
    class TinyConfig:
        width: int = 4

    def build_tiny(config: TinyConfig) -> torch.nn.Module:
        return torch.nn.Linear(config.width, 1)

    register_architecture("test-tiny-linear", TinyConfig, build_tiny, description="test only")
    register_architecture("test-tiny-linear", TinyConfig, build_tiny, description="test only")  # a reload
    assert build_model("test-tiny-linear", {"width": 6}).in_features == 6
    assert get_architecture("test-tiny-linear").description == "test only"
    with pytest.raises(ValueError, match="already registered"):
        register_architecture("test-tiny-linear", TinyConfig, lambda c: torch.nn.Identity())
    with pytest.raises(TypeError, match="dataclass"):
        register_architecture("test-not-dataclass", dict, build_tiny)


def test_build_from_a_catalogue_entry(cache, tmp_path):
    catalogue = tmp_path / "site.json"
    entry = json.loads(_bundled_entry_json("liver-unet"))
    entry.update(id="site-liver-unet", architecture={"name": "monai-unet", "config": {
        "spatialDims": 2, "outChannels": 3, "channels": [4, 8], "strides": [2]}})
    catalogue.write_text(json.dumps({"catalogueVersion": 1, "models": [entry]}))
    site = read_catalogue_file(catalogue)[0]
    model = build_from_entry(site)
    assert isinstance(model, UNet) and model.out_channels == 3 and model.dimensions == 2


def _bundled_entry_json(model_id: str) -> str:
    catalog = load_catalog()
    source = json.loads(catalog.get(model_id).catalogue.read_text())
    return json.dumps(next(m for m in source["models"] if m["id"] == model_id))


def test_import_a_user_model_for_a_task(cache, tmp_path):
    torch.manual_seed(0)
    model = build_model("monai-unet", SMALL)
    weights = tmp_path / "mine.pth"
    torch.save({"state_dict": model.state_dict(), "epoch": 5}, weights)

    folder = import_model("liver-segmentation", weights, "my-liver", architecture="monai-unet", config=SMALL)
    assert folder == cache / "models" / "my-liver" / "1.0.0"

    entry = load_catalog().get("my-liver")
    assert entry.task == "liver-segmentation" and entry.architecture == "monai-unet" and entry.status == "user-import"
    assert [label.name for label in entry.labels] == ["liver", "liver tumour"]
    assert is_installed(entry) and installed_path(entry) == folder
    assert read_catalogue_file(user_catalogue_path())  # the user catalogue passes the schema

    loaded = load_checkpoint(folder, expected_sha256=entry.files[0].sha256)
    assert loaded.config == make_config("monai-unet", SMALL)
    assert [label["name"] for label in loaded.labels] == ["liver", "liver tumour"]
    image = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(model.eval()(image), loaded.model(image))

    with pytest.raises(InputError, match="already installed"):
        import_model("liver-segmentation", weights, "my-liver", architecture="monai-unet", config=SMALL)
    assert remove_user_entry("my-liver") == 1
    with pytest.raises(KeyError):
        load_catalog().get("my-liver")


def test_a_failed_import_leaves_nothing(cache, tmp_path):
    weights = tmp_path / "wrong.pt"
    torch.save(build_model("monai-unet", SMALL).state_dict(), weights)
    with pytest.raises(InputError, match="wrong shapes"):
        import_model("liver-segmentation", weights, "wrong-one", architecture="monai-unet",
                     config=SMALL | {"out_channels": 4})
    assert not (cache / "models" / "wrong-one").exists()
    assert not user_catalogue_path().exists()


def test_import_names_what_it_cannot_resolve(cache, tmp_path):
    weights = tmp_path / "w.pt"
    torch.save(build_model("monai-unet", SMALL).state_dict(), weights)
    with pytest.raises(InputError, match="neither a task .*liver-segmentation.* nor an architecture"):
        import_model("kidney", weights)
    with pytest.raises(InputError, match="say which task the monai-unet model is for"):
        import_model("monai-unet", weights, config=SMALL)
    with pytest.raises(InputError, match="missing"):  # U-Net weights do not fit the lung-detr architecture
        import_model("lung-nodule-detection", weights)
    with pytest.raises(InputError, match="model id 'My Model'"):
        import_model("liver-segmentation", weights, "My Model", architecture="monai-unet", config=SMALL)
    folder = import_model("monai-unet", weights, config=SMALL, task="liver-segmentation")
    assert folder.parent.name == "user-liver-segmentation-monai-unet"
