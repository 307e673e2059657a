"""The infection pipeline on phantom and real chest CTs: label map, .seg.nrrd, report per lung, clear refusals.

The network here is a fixed-weight intensity rule (a real torch module, exportable to ONNX): it marks ground
glass, consolidation-like and fluid-like intensities inside the lung window. What it finds is computed again with
NumPy, so every number the pipeline reports is checked against an independent answer.
"""

from __future__ import annotations

import numpy as np
import pytest
import slicerio
import torch
from torch import nn

from radassist.errors import InputError, RadAssistError
from radassist.io import read_volume
from radassist.lung.infection.model import default_label_table
from radassist.lung.infection.pipeline import (InfectionInput, InfectionModel, load_infection_model,
                                               segment_infection)
from radassist.lung.infection.preprocess import LUNG_WINDOW, LungMasks, window_to_unit
from radassist.lung.infection.synthetic import make_infection_ct
from radassist.results import LabelMap, read_seg_nrrd, write_seg_nrrd
from radassist.runtime.progress import Progress
from radassist.volume import SourceInfo, Volume

BANDS_HU = ((-720.0, -480.0), (-120.0, 0.0), (0.0, 25.0))  # class 1, 2, 3: upper bound excluded


class IntensityRuleNet(nn.Module):
    """Logit of class c rises steeply (and saturates) with the distance inside band c of the window-scaled value;
    the background logit is 0."""

    def __init__(self) -> None:
        super().__init__()
        low, high = LUNG_WINDOW
        bands = [((a - low) / (high - low), (b - low) / (high - low)) for a, b in BANDS_HU]
        self.register_buffer("lower", torch.tensor([lo for lo, _ in bands]).view(1, 3, 1, 1))
        self.register_buffer("upper", torch.tensor([hi for _, hi in bands]).view(1, 3, 1, 1))
        self.out_channels = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inside = torch.minimum(x - self.lower, self.upper - x)
        return torch.cat([torch.zeros_like(x), 10.0 * torch.tanh(200.0 * inside)], dim=1)  # bounded, like a net's


def rule_labels(hu: np.ndarray) -> np.ndarray:
    """What IntensityRuleNet gives, computed directly (window first, then bands)."""
    x = window_to_unit(hu)
    low, high = LUNG_WINDOW
    labels = np.zeros(hu.shape, dtype=np.uint8)
    for value, (a, b) in enumerate(BANDS_HU, start=1):
        lo, hi = (a - low) / (high - low), (b - low) / (high - low)
        labels[(x > lo + 1e-6) & (x < hi - 1e-6)] = value
    return labels


@pytest.fixture(scope="module")
def phantom():
    return make_infection_ct(seed=3)


@pytest.fixture
def rule_model() -> InfectionModel:
    return InfectionModel(IntensityRuleNet().eval(), default_label_table(), InfectionInput(image_size=None),
                          name="intensity rule")


def test_labels_segments_and_report_match_an_independent_computation(phantom, rule_model, tmp_path):
    reports = []
    result = segment_infection(phantom.volume, rule_model, phantom.lungs,
                               progress=Progress(lambda f, m: reports.append(f)))
    expected = rule_labels(phantom.volume.array.astype(np.float32))
    agreement = (result.labelmap.labels[0] == expected).mean()
    assert agreement > 0.999  # only voxels exactly on a band edge may differ
    assert [s.name for s in result.labelmap.segments] == ["ground-glass opacity", "consolidation",
                                                          "pleural effusion"]
    assert result.labelmap.segments[0].terminology.type.value == "112120"
    assert result.labelmap.geometry == phantom.volume.geometry
    assert reports[-1] == pytest.approx(1.0)

    voxel_ml = phantom.volume.geometry.voxel_volume_mm3 / 1000
    rows = {row["structure"]: row for row in result.report.rows}
    for value, name in enumerate(("ground-glass opacity", "consolidation", "pleural effusion"), start=1):
        assert rows[name]["voxels"] == int((result.labelmap.labels[0] == value).sum())
        assert rows[name]["volume_ml"] == pytest.approx(rows[name]["voxels"] * voxel_ml, abs=1e-3)

    # infected share: ground glass + consolidation (not effusion) per lung, counted inside the lung masks plus
    # findings outside them given to the nearer lung; check the inside part, which dominates here
    labels = result.labelmap.labels[0]
    infected = (labels == 1) | (labels == 2)
    right, left = phantom.lungs.mask("Right lung"), phantom.lungs.mask("Left lung")
    for side, lung in (("right", right), ("left", left)):
        row = rows[f"{side} lung"]
        inside = int((infected & lung).sum())
        assert row["infected_ml"] >= inside * voxel_ml - 1e-6
        assert row["voxels"] >= int(lung.sum())
        assert row["infected_percent"] == pytest.approx(100 * row["infected_ml"] / row["volume_ml"], abs=0.01)
    assert "right lung" in result.status_line() and "% infected" in result.status_line()
    columns, table = result.table()
    assert columns[0] == "Structure" and len(table) == 5

    path = write_seg_nrrd(result.labelmap, tmp_path / "infection.seg.nrrd")
    segmentation = slicerio.read_segmentation(str(path))
    names = [s["name"] for s in segmentation["segments"]]
    assert names == ["ground-glass opacity", "consolidation", "pleural effusion"]
    back = read_seg_nrrd(path)
    np.testing.assert_array_equal(back.flattened(), result.labelmap.flattened())


def test_the_synthetic_findings_are_where_the_phantom_says(phantom, rule_model):
    """The rule recovers most of the painted ground glass: the phantom's masks and intensities agree."""
    result = segment_infection(phantom.volume, rule_model, phantom.lungs)
    found = result.labelmap.labels[0] == 1
    truth = phantom.labels == 1
    assert truth.sum() > 50
    assert (found & truth).sum() / truth.sum() > 0.6


def test_resized_slices_are_mapped_back_to_the_input_grid(phantom, rule_model):
    """Flat findings on flat lung: the rule finds exactly the phantom's masks at the native size, and nearly
    the same after the slices went to 96x96 and the answer came back to 64x64."""
    hu = np.full(phantom.labels.shape, -1000, dtype=np.int16)
    hu[phantom.lungs.labels[0] > 0] = -880
    for value, level in ((1, -600), (2, -60), (3, 12)):
        hu[phantom.labels == value] = level
    flat = phantom.volume.with_array(hu)
    native = segment_infection(flat, rule_model, phantom.lungs).labelmap.labels[0]
    np.testing.assert_array_equal(native, phantom.labels)
    rule_model.input = InfectionInput(image_size=(96, 96))
    resized = segment_infection(flat, rule_model, phantom.lungs).labelmap.labels[0]
    assert resized.shape == native.shape
    ggo, found = phantom.labels == 1, resized == 1
    assert 2 * (ggo & found).sum() / (ggo.sum() + found.sum()) > 0.8
    # a narrow intensity band loses the edges of thin structures when resampled, but what is found after the
    # round trip must lie where the finding is: a shifted or flipped mapping would put it elsewhere
    for value in (2, 3):
        truth, found = phantom.labels == value, resized == value
        assert found.sum() > 0.3 * truth.sum() and (truth & found).sum() > 0.9 * found.sum(), value


def test_onnx_engine_agrees_with_torch(phantom, rule_model, tmp_path):
    torch_result = segment_infection(phantom.volume, rule_model, phantom.lungs)
    rule_model.input = InfectionInput(image_size=(64, 64))
    onnx_result = segment_infection(phantom.volume, rule_model, phantom.lungs, engine="onnx", onnx_cache=tmp_path)
    assert "onnxruntime" in onnx_result.engine
    assert (onnx_result.labelmap.labels == torch_result.labelmap.labels).mean() > 0.999


def test_real_chest_ct_with_its_real_lung_segmentation(test_data, rule_model):
    volume = read_volume(test_data / "slicer" / "CTChest4.nrrd")
    lungs = read_seg_nrrd(test_data / "slicer" / "Segmentation.seg.nrrd")
    result = segment_infection(volume, rule_model, lungs)
    masks = LungMasks.from_labelmap(lungs)
    assert masks.right.sum() > 1000 and masks.left.sum() > 1000  # found by the terminology's laterality
    rows = {row["structure"]: row for row in result.report.rows}
    for side in ("right", "left"):
        assert 0 <= rows[f"{side} lung"]["infected_percent"] < 100
        assert rows[f"{side} lung"]["volume_ml"] > 500  # an adult lung, not a few voxels
    assert result.report.summary["lungs_infected_percent"] is not None


def test_lungs_on_another_grid_are_resampled(phantom, rule_model):
    coarse_geometry = phantom.volume.geometry
    lungs = phantom.lungs
    shifted = LabelMap(lungs.labels[:, :, ::2, ::2].copy(),
                       type(coarse_geometry)(shape=(coarse_geometry.shape[0], 32, 32),
                                             spacing=(coarse_geometry.spacing[0] * 2, coarse_geometry.spacing[1] * 2,
                                                      coarse_geometry.spacing[2]),
                                             origin=coarse_geometry.origin, direction=coarse_geometry.direction),
                       lungs.segments)
    result = segment_infection(phantom.volume, rule_model, shifted)
    assert result.lungs.right.shape == phantom.volume.shape
    overlap = (result.lungs.right & lungs.mask("Right lung")).sum() / lungs.mask("Right lung").sum()
    assert overlap > 0.8


def test_non_ct_and_missing_lungs_are_refused_with_clear_messages(phantom, rule_model):
    mr = Volume(phantom.volume.array, phantom.volume.spacing, source=SourceInfo(path="brain.nii.gz", modality="MR"))
    with pytest.raises(InputError, match="brain.nii.gz: is a MR image; lung infection segmentation needs a chest CT"):
        segment_infection(mr, rule_model, phantom.lungs)
    no_air = Volume(np.full((4, 32, 32), 40, dtype=np.int16), source=SourceInfo(path="scan.nrrd"))
    with pytest.raises(InputError, match="scan.nrrd: does not look like a CT in Hounsfield units"):
        segment_infection(no_air, rule_model, phantom.lungs)
    empty = LabelMap(np.zeros_like(phantom.lungs.labels), phantom.lungs.geometry, phantom.lungs.segments)
    with pytest.raises(InputError, match="no lung was found in the image"):
        segment_infection(phantom.volume, rule_model, empty)
    no_lung_segments = LabelMap(phantom.lungs.labels, phantom.lungs.geometry,
                                [type(s)(f"organ {s.label_value}", s.label_value) for s in phantom.lungs.segments])
    with pytest.raises(InputError, match="has no right or left lung segment"):
        segment_infection(phantom.volume, rule_model, no_lung_segments)


def test_one_missing_lung_is_said_in_the_report(phantom, rule_model):
    only_right = LabelMap(np.where(phantom.lungs.labels == 1, 1, 0), phantom.lungs.geometry,
                          phantom.lungs.segments[:1])
    result = segment_infection(phantom.volume, rule_model, only_right)
    assert "no left lung was found" in " ".join(result.report.summary["notes"])
    assert result.report.summary["right_lung_infected_percent"] is not None


def test_without_weights_the_user_is_told_how_to_get_a_model(monkeypatch, tmp_path):
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path))  # an empty models folder: nothing installed
    monkeypatch.delenv("RADASSIST_CATALOGS", raising=False)
    with pytest.raises(RadAssistError, match="radassist train lung-infection"):
        load_infection_model("segnet")
    with pytest.raises(InputError, match="unknown architecture"):
        load_infection_model("fcn")


def test_installed_catalogue_weights_are_found_by_architecture(monkeypatch, tmp_path, phantom):
    """A site catalogue entry for lung-infection-unet with its safetensors installed: --arch unet finds it, with the
    catalogue's label table and input size."""
    import json

    from safetensors.torch import save_file

    from radassist.runtime import paths as runtime_paths
    from radassist.runtime.catalog import installed_path, read_catalogue_file
    from radassist.runtime.checkpoints import sha256_file
    from radassist.runtime.registry import build_model

    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "cache"))
    bundled = json.loads(runtime_paths.bundled_catalog().read_text())
    entry = next(m for m in bundled["models"] if m["id"] == "lung-infection-unet")
    entry["architecture"] = {"name": "lung-infection-unet", "config": {"channels": [4, 8]}}
    entry["input"]["imageSize"] = [32, 32]
    torch.manual_seed(0)
    network = build_model("lung-infection-unet", {"channels": [4, 8]})
    weights = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(weights))
    entry["files"] = [{"name": "lung-infection-unet.safetensors", "format": "safetensors",
                       "sha256": sha256_file(weights)}]
    site = tmp_path / "site.json"
    site.write_text(json.dumps({**bundled, "models": [entry]}))
    monkeypatch.setenv("RADASSIST_CATALOGS", str(site))
    target = installed_path(read_catalogue_file(site)[0]) / "lung-infection-unet.safetensors"
    target.parent.mkdir(parents=True)
    target.write_bytes(weights.read_bytes())

    model = load_infection_model("unet")
    assert model.input.image_size == (32, 32) and model.name.startswith("lung-infection-unet")
    assert [s.name for s in model.segments] == ["ground-glass opacity", "consolidation", "pleural effusion"]
    batch = torch.zeros((1, 1, 32, 32))
    with torch.inference_mode():
        torch.testing.assert_close(model.network(batch), network.eval()(batch))
    target.write_bytes(weights.read_bytes()[:-4] + b"XXXX")
    with pytest.raises(InputError, match="sha256 does not match the catalogue"):
        load_infection_model("unet")
