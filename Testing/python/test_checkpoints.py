"""Checkpoints: safetensors + config.json round trip, sha256 before loading, safe import of foreign state dicts."""

from __future__ import annotations

import json
from collections import OrderedDict

import pytest
import torch

from radassist.errors import InputError
from radassist.runtime.checkpoints import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    import_state_dict,
    load_checkpoint,
    read_weights_file,
    save_checkpoint,
    sha256_file,
)
from radassist.runtime.registry import MonaiUNetConfig, build_model

SMALL = {"spatial_dims": 2, "in_channels": 1, "out_channels": 3, "channels": [4, 8], "strides": [2],
         "num_res_units": 1}


class NotATensor:
    """A custom class: a pickle holding it must never be unpickled."""

    def __init__(self) -> None:
        self.value = 1


def small_unet(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("monai-unet", SMALL)


def test_save_then_load_gives_the_same_outputs(tmp_path):
    model = small_unet().eval()
    config = MonaiUNetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in SMALL.items()})
    folder = save_checkpoint(model, "monai-unet", config, tmp_path / "ckpt", metadata={"epochs": 3},
                             labels={1: "liver", 2: "tumour"})
    assert sorted(p.name for p in folder.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]

    record = json.loads((folder / CONFIG_NAME).read_text())
    assert record["architecture"] == "monai-unet"
    assert record["config"]["channels"] == [4, 8] and record["config"]["out_channels"] == 3
    assert record["labels"] == [{"value": 1, "name": "liver"}, {"value": 2, "name": "tumour"}]
    assert record["sha256"] == sha256_file(folder / WEIGHTS_NAME)
    assert record["radassistVersion"]

    loaded = load_checkpoint(folder)
    assert loaded.architecture == "monai-unet" and loaded.config == config
    assert loaded.metadata == {"epochs": 3} and loaded.labels[1]["name"] == "tumour"
    assert not loaded.model.training
    image = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(image), loaded.model(image))
    # the weights file alone also finds its config.json
    assert load_checkpoint(folder / WEIGHTS_NAME, expected_sha256=record["sha256"].upper()).sha256 == record["sha256"]


def test_a_changed_weights_file_is_refused_before_loading(tmp_path):
    folder = save_checkpoint(small_unet(), "monai-unet", MonaiUNetConfig(spatial_dims=2, channels=(4, 8),
                                                                         strides=(2,)), tmp_path / "ckpt")
    with pytest.raises(InputError, match="sha256 .* does not match 0{64} recorded in the catalogue"):
        load_checkpoint(folder, expected_sha256="0" * 64)
    weights = folder / WEIGHTS_NAME
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(InputError, match=f"does not match .* recorded in {CONFIG_NAME}"):
        load_checkpoint(folder)


def test_a_folder_without_config_is_not_a_checkpoint(tmp_path):
    (tmp_path / WEIGHTS_NAME).write_bytes(b"")
    with pytest.raises(InputError, match="has no config.json"):
        load_checkpoint(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere")


def test_wrong_config_type_is_refused(tmp_path):
    with pytest.raises(TypeError, match="MonaiUNetConfig"):
        save_checkpoint(small_unet(), "monai-unet", {"spatial_dims": 2}, tmp_path)
    assert not (tmp_path / WEIGHTS_NAME).exists()


def test_tied_weights_are_saved(tmp_path):
    model = small_unet()
    model.register_buffer("alias", model.state_dict()["model.0.conv.unit0.conv.weight"])
    # safetensors refuses tensors sharing storage; the checkpoint copies them instead
    from radassist.runtime.checkpoints import plain_tensors

    plain = plain_tensors(model.state_dict())
    assert plain["alias"].data_ptr() != plain["model.0.conv.unit0.conv.weight"].data_ptr()
    assert torch.equal(plain["alias"], plain["model.0.conv.unit0.conv.weight"])


# --- importing foreign state dicts -------------------------------------------------------------------------------

def test_plain_state_dict_is_imported(tmp_path):
    model = small_unet(seed=1)
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    state = import_state_dict(path, "monai-unet", config=SMALL)
    assert set(state) == set(model.state_dict())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_nested_and_dataparallel_checkpoints_are_unwrapped(tmp_path):
    model = small_unet(seed=2)
    prefixed = OrderedDict((f"module.{k}", v) for k, v in model.state_dict().items())
    path = tmp_path / "lightning.ckpt"
    torch.save({"epoch": 12, "state_dict": prefixed, "optimizer": {"lr": 0.01}}, path)
    state = import_state_dict(path, "monai-unet", config=SMALL)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())

    path2 = tmp_path / "model_key.pth"
    torch.save({"model": model.state_dict(), "best_dice": 0.9}, path2)
    assert set(import_state_dict(path2, "monai-unet", config=SMALL)) == set(model.state_dict())


def test_key_mapping_renames_prefixes_and_callables_drop_keys(tmp_path):
    model = small_unet(seed=3)
    foreign = {k.replace("model.", "net.", 1): v for k, v in model.state_dict().items()}
    foreign["extra.head"] = torch.zeros(1)
    path = tmp_path / "foreign.pt"
    torch.save(foreign, path)
    with pytest.raises(InputError, match="unexpected keys"):
        import_state_dict(path, "monai-unet", config=SMALL, key_mapping={"net.": "model."})

    def rename(key: str) -> str | None:
        return None if key.startswith("extra.") else "model." + key[len("net."):]

    state = import_state_dict(path, "monai-unet", config=SMALL, key_mapping=rename)
    assert set(state) == set(model.state_dict())


def test_pickle_with_a_custom_class_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"weights": torch.zeros(2), "extra": NotATensor()}, path)
    with pytest.raises(InputError, match=r"pickle holding Python objects.*NotATensor.*state_dict"):
        import_state_dict(path, "monai-unet", config=SMALL)


def test_whole_pickled_module_is_refused(tmp_path):
    path = tmp_path / "whole_model.pt"
    torch.save(small_unet(), path)
    with pytest.raises(InputError, match="pickle holding Python objects"):
        read_weights_file(path)


def test_non_weights_files_are_refused(tmp_path):
    garbage = tmp_path / "notes.pt"
    garbage.write_text("these are not weights")
    with pytest.raises(InputError, match="notes.pt: cannot be read as PyTorch weights"):
        import_state_dict(garbage, "monai-unet")
    tensor_only = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor_only)
    with pytest.raises(InputError, match="holds a Tensor, not a state dict"):
        import_state_dict(tensor_only, "monai-unet")
    bad_safetensors = tmp_path / "broken.safetensors"
    bad_safetensors.write_bytes(b"\x00" * 16)
    with pytest.raises(InputError, match="not a readable safetensors file"):
        import_state_dict(bad_safetensors, "monai-unet")
    with pytest.raises(InputError, match="does not exist"):
        import_state_dict(tmp_path / "missing.pt", "monai-unet")


def test_mismatch_lists_missing_unexpected_and_wrong_shape_keys(tmp_path):
    state = small_unet().state_dict()
    bias_key = next(k for k in state if k.endswith("conv.bias"))
    state[bias_key] = torch.zeros(state[bias_key].shape[0] + 1)
    removed = sorted(state)[0]
    del state[removed]
    state["head.weight"] = torch.zeros(1)
    path = tmp_path / "mismatch.pt"
    torch.save(state, path)
    with pytest.raises(InputError) as caught:
        import_state_dict(path, "monai-unet", config=SMALL)
    message = str(caught.value)
    assert "mismatch.pt: does not fit architecture monai-unet" in message
    assert f"missing keys (1): {removed}" in message
    assert "unexpected keys (1): head.weight" in message
    assert f"wrong shapes (1): {bias_key} (file [5], model [4])" in message


def test_safetensors_file_is_imported(tmp_path):
    from safetensors.torch import save_file

    model = small_unet(seed=4)
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    state = import_state_dict(path, "monai-unet", config=SMALL)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_unknown_architecture_is_named(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"a": torch.zeros(1)}, path)
    with pytest.raises(InputError, match="unknown model architecture 'no-such-net'.*monai-unet"):
        import_state_dict(path, "no-such-net")
