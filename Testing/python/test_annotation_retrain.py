"""Fine-tuning helpers: `--model` (formerly `--init`) resolves a checkpoint folder, a bare weights file or an
installed catalogue model; a fine-tuned network is registered as a new model version with its metrics. End to end: a
poor model's result is corrected and exported, a tiny network fine-tuned from it on the export segments the case
better, and the new version is in the catalogue."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radassist.annotation.export_msd import export_segmentation
from radassist.annotation.msd import read_msd_dataset
from radassist.annotation.provenance import ModelInfo
from radassist.annotation.retrain import next_version, register_finetuned, resolve_init
from radassist.errors import InputError
from radassist.io import read_volume
from radassist.metrics.segmentation import dice
from radassist.results import LabelMap, Segment
from radassist.runtime.catalog import load_catalog
from radassist.runtime.checkpoints import save_checkpoint, sha256_file
from radassist.runtime.registry import MonaiUNetConfig, build_model
from radassist.volume import Geometry, Volume

CONFIG = MonaiUNetConfig(spatial_dims=2, in_channels=1, out_channels=3, channels=(8, 16), strides=(2,),
                         num_res_units=0, norm="BATCH")
GRID = Geometry(shape=(6, 32, 32), spacing=(1.0, 1.0, 2.0))


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _case() -> tuple[Volume, np.ndarray]:
    """A bright disc (liver) holding a dark spot (tumour), with noise; truth 1 liver, 2 tumour."""
    z, y, x = np.meshgrid(*[np.arange(n) for n in GRID.shape], indexing="ij")
    liver = (y - 16) ** 2 + (x - 15) ** 2 < 11 ** 2
    tumour = (y - 14) ** 2 + (x - 18) ** 2 < 4 ** 2
    truth = np.where(tumour, 2, np.where(liver, 1, 0)).astype(np.uint8)
    rng = np.random.default_rng(0)
    image = np.select([tumour, liver], [40.0, 120.0], 0.0) + rng.normal(0, 8, GRID.shape)
    return Volume.from_geometry(image.astype(np.float32), GRID), truth


def _predict(network: torch.nn.Module, image: np.ndarray) -> np.ndarray:
    network.eval()
    with torch.no_grad():
        return network(torch.from_numpy(image[:, None] / 100.0).float()).argmax(1).numpy().astype(np.uint8)


def _labelmap(classes: np.ndarray) -> LabelMap:
    return LabelMap(classes, GRID, [Segment("liver", 1), Segment("liver tumour", 2)])


def _mean_dice(truth: np.ndarray, prediction: np.ndarray) -> float:
    return float(np.nanmean([dice(truth == c, prediction == c) for c in (1, 2)]))


def test_init_from_a_checkpoint_folder_and_a_bare_file(tmp_path) -> None:
    torch.manual_seed(0)
    network = build_model("monai-unet", CONFIG)
    folder = save_checkpoint(network, "monai-unet", CONFIG, tmp_path / "base", metadata={"modelId": "base-model"})
    init = resolve_init(folder)
    assert init.architecture == "monai-unet" and init.config == CONFIG
    assert init.model.weights_sha256 == sha256_file(folder / "model.safetensors")
    assert init.model.model_id == "base-model"
    for key, value in network.state_dict().items():
        assert torch.equal(init.state_dict[key], value)
    torch.save(network.state_dict(), tmp_path / "weights.pt")
    bare = resolve_init(tmp_path / "weights.pt", architecture="monai-unet", config=CONFIG)
    assert bare.model.weights_sha256 == sha256_file(tmp_path / "weights.pt")
    assert torch.equal(bare.build().state_dict()["model.0.conv.weight"], network.state_dict()["model.0.conv.weight"])
    with pytest.raises(InputError, match="bare weights file"):
        resolve_init(tmp_path / "weights.pt")


def test_init_from_the_catalogue_needs_an_installed_model() -> None:
    with pytest.raises(InputError, match="not installed"):
        resolve_init("liver-unet")
    with pytest.raises(InputError, match="neither a file nor a model"):
        resolve_init("no-such-model")


def test_fine_tuning_on_exported_corrections_segments_the_case_better(tmp_path) -> None:
    volume, truth = _case()
    torch.manual_seed(1)
    base_folder = save_checkpoint(build_model("monai-unet", CONFIG), "monai-unet", CONFIG, tmp_path / "base",
                                  metadata={"modelId": "tiny-liver", "modelVersion": "1.0.0"})
    init = resolve_init(base_folder)
    ai_result = _predict(init.build(), volume.array)
    root = tmp_path / "export"
    export_segmentation(root, "liver", "case1", volume, _labelmap(ai_result), _labelmap(truth),
                        model=init.model, annotator="tester")

    case = read_msd_dataset(root).cases[0]  # what the training would read
    image = read_volume(case.images[0]).array.astype(np.float32)
    labels = read_volume(case.label).array.astype(np.int64)
    assert np.array_equal(labels, truth)

    network = init.build()
    network.train()
    optimiser = torch.optim.Adam(network.parameters(), lr=1e-2)
    inputs, targets = torch.from_numpy(image[:, None] / 100.0), torch.from_numpy(labels)
    losses = []
    for _ in range(60):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(network(inputs), targets)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    before, after = _mean_dice(truth, ai_result), _mean_dice(truth, _predict(network, image))
    assert losses[-1] < losses[0] / 2
    assert after > before + 0.3 and after > 0.8

    entry = register_finetuned(network, "monai-unet", CONFIG, model_id="tiny-liver", task="liver",
                               metrics={"dice": after, "loss": losses[-1]}, training_data=[root], base=init)
    assert (entry.id, entry.version, entry.task) == ("tiny-liver", "1.1.0", "liver-segmentation")
    assert [m.name for m in entry.reported_metrics] == ["dice"]
    assert entry.reported_metrics[0].value == pytest.approx(after)
    assert next_version("tiny-liver") == "1.2.0"
    reloaded = resolve_init("tiny-liver@1.1.0")
    assert reloaded.model.version == "1.1.0"
    assert _mean_dice(truth, _predict(reloaded.build(), image)) == pytest.approx(after)
    assert load_catalog().get("tiny-liver").version == "1.1.0"


def test_registering_twice_the_same_version_is_refused_and_leaves_nothing(tmp_path) -> None:
    network = build_model("monai-unet", CONFIG)
    register_finetuned(network, "monai-unet", CONFIG, model_id="my-model", task="liver", metrics={},
                       training_data=[tmp_path], version="2.0.0")
    with pytest.raises(InputError, match="already exists"):
        register_finetuned(network, "monai-unet", CONFIG, model_id="my-model", task="liver", metrics={},
                           training_data=[tmp_path], version="2.0.0")
    with pytest.raises(InputError, match="model id"):
        register_finetuned(network, "monai-unet", CONFIG, model_id="Bad_Id", task="liver", metrics={},
                           training_data=[tmp_path])
    assert load_catalog().versions("my-model") == ["2.0.0"]
    assert ModelInfo("my-model", "2.0.0").label == "my-model 2.0.0"
