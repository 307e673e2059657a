"""`radassist.lung.pipeline.detect_nodules`: input checks on real and made-up scans, the classical engine, and
Lung-DETR end to end with a randomly initialised tiny network (torch and ONNX Runtime)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radassist.errors import InputError
from radassist.io import read_dicom_series, read_volume
from radassist.lung import pipeline
from radassist.lung.pipeline import LungDetectionConfig, WeightsMissing, detect_nodules
from radassist.results import Detections
from radassist.runtime.progress import Cancelled, Progress
from radassist.synthetic.chest import ChestPhantomConfig, make_chest_ct
from radassist.volume import SourceInfo, Volume


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """No installed models, no user catalogue, ONNX files in a temporary folder."""
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("RADASSIST_CATALOGS", raising=False)


@pytest.fixture(scope="module")
def phantom():
    return make_chest_ct(0, ChestPhantomConfig(shape=(75, 192, 256), spacing=(1.05, 1.05, 1.875)))


@pytest.fixture(scope="module")
def small_phantom():
    return make_chest_ct(1, ChestPhantomConfig(shape=(48, 128, 160), spacing=(1.6, 1.6, 2.5)))


def ct_like(shape=(20, 32, 32), spacing=(1.0, 1.0, 2.0), modality: str | None = "CT") -> Volume:
    array = np.full(shape, -1000, np.int16)
    array[:, 4:28, 4:28] = 40
    array[:, 8:24, 8:24] = -850
    return Volume(array=array, spacing=spacing, source=SourceInfo(path="scan.nrrd", modality=modality))


# -- bad input ----------------------------------------------------------------------------------------------------

def test_single_slice_is_refused():
    with pytest.raises(InputError, match="single slice") as error:
        pipeline.check_chest_ct(ct_like(shape=(1, 32, 32)))
    assert error.value.path == "scan.nrrd"


def test_other_modality_is_refused():
    with pytest.raises(InputError, match="MR series, not CT"):
        pipeline.check_chest_ct(ct_like(modality="MR"))


def test_values_that_are_not_hounsfield_units_are_refused():
    raw = ct_like()
    raw = raw.with_array(raw.array.astype(np.int32) + 1024)  # stored values without the DICOM rescale
    with pytest.raises(InputError, match="Hounsfield"):
        pipeline.check_chest_ct(raw)
    mri_like = raw.with_array(np.random.default_rng(0).uniform(0, 1, raw.shape).astype(np.float32))
    with pytest.raises(InputError, match="Hounsfield"):
        pipeline.check_chest_ct(mri_like)


def test_real_ct_with_slices_thicker_than_the_slab_is_refused(test_data: Path):
    volume = read_volume(test_data / "slicer" / "CTChest4.nrrd")  # 10 mm slices
    with pytest.raises(InputError, match=r"10 mm apart; the 7.5 mm MIP slabs") as error:
        detect_nodules(volume)
    assert error.value.path.endswith("CTChest4.nrrd")


def test_scan_shorter_than_one_slab_is_refused():
    with pytest.raises(InputError, match="covers only 6 mm"):
        pipeline.check_chest_ct(ct_like(shape=(3, 32, 32)))


def test_real_abdomen_scan_has_no_lung(test_data: Path):
    volume = read_dicom_series(test_data / "ct" / "chest_abdomen_example" / "dicom")
    with pytest.raises(InputError, match="no lung found"):
        detect_nodules(volume)


def test_unknown_engine_and_bad_threshold_are_refused(small_phantom):
    with pytest.raises(InputError, match="unknown engine"):
        detect_nodules(small_phantom.volume, engine="yolo")
    with pytest.raises(InputError, match="within 0..1"):
        LungDetectionConfig(score_threshold=1.5)


def test_lung_detr_without_weights_says_how_to_get_them(small_phantom):
    with pytest.raises(WeightsMissing) as error:
        detect_nodules(small_phantom.volume, engine="detr")
    message = str(error.value)
    assert "radassist models install lung-detr" in message
    assert "radassist models import lung-detr" in message and "--engine classic" in message


# -- the classical engine -----------------------------------------------------------------------------------------

def test_classic_engine_reports_nodules_labelled_as_candidates(phantom):
    seen = []
    found = detect_nodules(phantom.volume, progress=Progress(lambda f, m: seen.append(m)))
    assert isinstance(found, Detections) and found.engine == "classic"
    assert found.metadata["engine"] == "classic" and found.metadata["model"] is None
    assert "not a trained model" in found.metadata["engine_description"]
    assert found.metadata["lung_volume_ml"] > 500
    assert found.source.series_instance_uid == phantom.series_uid and found.geometry == phantom.volume.geometry
    # every candidate, whatever its score; the threshold (in the metadata) only picks those that get a box
    assert len(found) >= 1 and found.score_name == "score" and found.metadata["score_threshold"] == 0.5
    shown = pipeline.shown_findings(found)
    assert [d.probability for d in shown.items] == [d.probability for d in found.items if d.probability >= 0.5]
    assert len(pipeline.shown_findings(found, 0.8)) < len(found)
    biggest = max(phantom.nodules.items, key=lambda n: n.diameter_mm)
    assert any(np.linalg.norm(np.subtract(d.center, biggest.center)) < biggest.diameter_mm / 2
               for d in found.items)
    assert seen[-1] == f"{len(found)} candidate(s), {len(shown)} at score >= 0.5"
    rows = pipeline.detections_table(found)
    assert rows[0]["rank"] == 1 and rows[0]["score"] == round(found.items[0].probability, 4)
    assert "probability" not in rows[0]


def test_cancel_stops_the_pipeline(small_phantom):
    progress = Progress()
    progress.cancel()
    with pytest.raises(Cancelled):
        detect_nodules(small_phantom.volume, progress=progress)


# -- Lung-DETR end to end with a random tiny network ----------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    import torch

    from radassist.lung.model import LungDetrConfig, build_lung_detr
    from radassist.runtime.checkpoints import save_checkpoint

    torch.manual_seed(0)
    config = LungDetrConfig.tiny()
    return save_checkpoint(build_lung_detr(config), "lung-detr", config, tmp_path_factory.mktemp("tiny-detr"),
                           metadata={"modelId": "tiny-random-detr"})


def well_formed(found: Detections, volume: Volume) -> None:
    corners = volume.geometry.corners_world()
    low, high = corners.min(axis=0) - 5.0, corners.max(axis=0) + 5.0
    assert found.engine == "lung-detr" and len(found) > 0
    assert len(found) <= LungDetectionConfig().link.max_candidates
    for detection in found.items:
        assert 0.0 <= detection.probability <= 1.0 and detection.label == "nodule"
        assert np.all(np.isfinite(detection.center)) and np.all(np.asarray(detection.size) > 0)
        assert np.all(np.asarray(detection.center) >= low) and np.all(np.asarray(detection.center) <= high)
        assert detection.diameter_mm > 0 and len(detection.extra["slabs"]) >= 1


@pytest.fixture(scope="module")
def detr_torch(small_phantom, tiny_checkpoint) -> Detections:
    config = LungDetectionConfig(score_threshold=0.0, box_threshold=0.0)
    return detect_nodules(small_phantom.volume, config, engine="detr", model=tiny_checkpoint)


def test_lung_detr_runs_end_to_end_from_a_checkpoint_folder(small_phantom, tiny_checkpoint, detr_torch):
    from radassist.runtime.checkpoints import sha256_file

    well_formed(detr_torch, small_phantom.volume)
    model = detr_torch.metadata["model"]
    assert model["id"] == "tiny-random-detr" and model["backend"].startswith("torch")
    assert model["sha256"] == sha256_file(tiny_checkpoint / "model.safetensors")
    assert detr_torch.metadata["slabs"] >= 2
    # the default threshold keeps only confident findings: a random network has none
    assert max(d.probability for d in detr_torch.items) < 0.5


def test_lung_detr_onnx_runtime_gives_the_torch_result(small_phantom, tiny_checkpoint, detr_torch):
    config = LungDetectionConfig(score_threshold=0.0, box_threshold=0.0)
    onnx_model = pipeline.load_detr_model(tiny_checkpoint, backend="onnx", image_size=(128, 160))
    onnx_found = detect_nodules(small_phantom.volume, config, engine="detr", model=onnx_model)
    assert onnx_found.metadata["model"]["backend"].startswith("onnxruntime")
    assert len(onnx_found) == len(detr_torch)
    for a, b in zip(detr_torch.items, onnx_found.items):
        assert np.allclose(a.center, b.center, atol=0.05) and abs(a.probability - b.probability) < 1e-3
