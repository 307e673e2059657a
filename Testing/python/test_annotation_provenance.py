"""Change metrics against hand-computed cases (Dice, volume, surface distance, boxes, landmarks, labels), and the
provenance record's round trip and model resolution."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from radassist.annotation.changes import (label_changes, match_boxes, pair_segments, resample_labels,
                                          segment_change, segment_changes, target_registration_error)
from radassist.annotation.provenance import (ModelInfo, ProvenanceRecord, model_info_for, read_provenance,
                                             write_provenance)
from radassist.errors import InputError
from radassist.results import Detection, Detections, DisplacementField, LabelMap, Segment
from radassist.results.terminology import terminology_for
from radassist.volume import Geometry

GRID = Geometry(shape=(10, 20, 20), spacing=(1.0, 1.0, 2.0))  # voxel = 2 mm^3


def _cube(z0: int, z1: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros(GRID.shape, dtype=bool)
    mask[z0:z1, y0:y1, x0:x1] = True
    return mask


def test_segment_change_by_hand() -> None:
    ai = _cube(2, 6, 5, 10, 5, 10)          # 4 x 5 x 5 = 100 voxels
    corrected = _cube(2, 6, 5, 10, 5, 12)   # 4 x 5 x 7 = 140 voxels, 100 shared
    change = segment_change("liver", ai, corrected, GRID)
    assert change.change == "edited"
    assert change.dice == pytest.approx(2 * 100 / 240)
    assert change.ai_volume_ml == pytest.approx(100 * 2 / 1000)
    assert change.corrected_volume_ml == pytest.approx(140 * 2 / 1000)
    assert change.volume_change_ml == pytest.approx(0.08)
    assert change.volume_change_percent == pytest.approx(40.0)
    assert change.changed_voxels == 40
    # The x = 9 face of the AI box is 2 voxels (2 mm along x) from the corrected x = 11 face; every other surface
    # voxel of either box lies on the other's surface or within it: the largest distance is 2 mm.
    assert change.hausdorff_mm == pytest.approx(2.0)
    assert 0 < change.assd_mm < 2.0


def test_identical_and_empty_masks() -> None:
    mask = _cube(1, 3, 1, 3, 1, 3)
    same = segment_change("x", mask, mask, GRID)
    assert (same.change, same.dice, same.hausdorff_mm, same.changed_voxels) == ("unchanged", 1.0, 0.0, 0)
    empty = np.zeros(GRID.shape, dtype=bool)
    added = segment_change("x", empty, mask, GRID, change="added")
    assert added.dice == 0.0 and added.assd_mm is None and added.volume_change_percent is None
    nothing = segment_change("x", empty, empty, GRID)
    assert nothing.dice is None and nothing.volume_change_ml == 0.0


def test_segments_pair_by_name_then_terminology() -> None:
    ai = LabelMap.from_masks([_cube(0, 2, 0, 2, 0, 2), _cube(4, 6, 4, 6, 4, 6), _cube(8, 9, 8, 9, 8, 9)],
                             [Segment("Liver", 1), Segment("Segment_2", 2, terminology=terminology_for("liver tumour")),
                              Segment("vessel", 3)], GRID)
    tumour = Segment("tumour", 2, terminology=terminology_for("liver tumour"))
    corrected = LabelMap.from_masks([_cube(0, 2, 0, 2, 0, 2), _cube(4, 6, 4, 6, 4, 7), _cube(9, 10, 0, 1, 0, 1)],
                                    [Segment("liver", 1), tumour, Segment("cyst", 3)], GRID)
    pairs = [(a.name if a else None, c.name if c else None) for a, c in pair_segments(ai, corrected)]
    assert pairs == [("Liver", "liver"), ("Segment_2", "tumour"), ("vessel", None), (None, "cyst")]
    changes = {c.name: c for c in segment_changes(ai, corrected)}
    assert changes["liver"].change == "unchanged"
    assert changes["tumour"].dice == pytest.approx(2 * 8 / (8 + 12))
    assert changes["vessel"].change == "removed" and changes["cyst"].change == "added"


def test_cropped_correction_is_compared_on_the_ai_grid() -> None:
    """Slicer may save a segmentation cropped to its content: same voxels, smaller grid, shifted origin."""
    mask = _cube(3, 5, 6, 9, 7, 11)
    ai = LabelMap.from_masks([mask], [Segment("liver", 1)], GRID)
    crop = Geometry(shape=(2, 3, 4), spacing=GRID.spacing, origin=tuple(GRID.zyx_to_world(np.array([3, 6, 7]))))
    corrected = LabelMap(np.ones((2, 3, 4), dtype=np.uint8), crop, [Segment("liver", 1)])
    assert np.array_equal(resample_labels(corrected, GRID).mask("liver"), mask)
    assert segment_changes(ai, corrected)[0].change == "unchanged"


def _box(x: float, size: float = 10.0) -> Detection:
    return Detection(center=(x, 0.0, 0.0), size=(size, size, size), probability=0.5)


def test_box_matching_by_hand() -> None:
    ai = Detections([_box(0), _box(100), _box(200), _box(300)])
    corrected = Detections([_box(0.5), _box(103), _box(300, size=14), _box(500)])
    changes = match_boxes(ai, corrected, tolerance_mm=1.0)
    assert changes.counts() == {"unchanged": 1, "moved": 2, "deleted": 1, "added": 1}
    assert [(p.ai_index, p.corrected_index) for p in changes.unchanged] == [(0, 0)]
    assert [(p.ai_index, p.corrected_index, p.shift_mm, p.size_change_mm) for p in changes.moved] == \
        [(1, 1, 3.0, 0.0), (3, 2, 0.0, 4.0)]
    assert changes.deleted == [2] and changes.added == [3]
    json.dumps(changes.to_dict())


def test_boxes_too_far_apart_do_not_pair_and_pairing_is_one_to_one() -> None:
    # 6 mm apart with 10 mm boxes (radius 5): a different finding.
    assert match_boxes(Detections([_box(0)]), Detections([_box(6)])).counts() == \
        {"unchanged": 0, "moved": 0, "deleted": 1, "added": 1}
    # Two corrected boxes near one AI box: the closer one pairs, the other was added.
    changes = match_boxes(Detections([_box(0)]), Detections([_box(4), _box(2)]))
    assert [(p.ai_index, p.corrected_index) for p in changes.moved] == [(0, 1)] and changes.added == [0]
    assert match_boxes(Detections([]), Detections([])).counts() == \
        {"unchanged": 0, "moved": 0, "deleted": 0, "added": 0}


def test_target_registration_error_by_hand() -> None:
    grid = Geometry(shape=(5, 5, 5), spacing=(2.0, 2.0, 2.0), origin=(-4.0, -4.0, -4.0))
    vectors = np.zeros((*grid.shape, 3))
    vectors[..., 0] = 3.0  # fixed -> moving: every point moves +3 mm in x
    field = DisplacementField(vectors, grid)
    fixed = np.array([[0.0, 0.0, 0.0], [2.0, 2.0, 0.0]])
    moving = np.array([[3.0, 4.0, 0.0], [5.0, 2.0, 0.0]])
    tre = target_registration_error(fixed, moving, field, ["a", "b"])
    assert tre.before_mm == pytest.approx([5.0, 3.0])
    assert tre.after_mm == pytest.approx([4.0, 0.0])
    assert tre.to_dict()["after"] == {"mean": 2.0, "max": 4.0}
    assert target_registration_error(fixed, moving).after_mm is None
    with pytest.raises(ValueError, match="pair up"):
        target_registration_error(fixed, moving[:1])


def test_label_changes() -> None:
    changes = label_changes({"L": {"benign": 0.2, "malignant": 0.7}},
                            {"L": {"benign": 1, "malignant": 1}, "R": {"benign": 0, "malignant": 0}})
    rows = {(c.item, c.name): c for c in changes}
    assert rows[("L", "benign")].changed and not rows[("L", "malignant")].changed
    assert rows[("R", "benign")].ai_call is None and not rows[("R", "benign")].changed


def test_provenance_round_trip(tmp_path) -> None:
    record = ProvenanceRecord(task="liver", case="c1", version="v1",
                              model=ModelInfo("liver-unet", "0.1.0", "ab" * 32, "liver-unet"), annotator="Jane",
                              changes={"segments": [segment_change("liver", _cube(0, 1, 0, 1, 0, 1),
                                                                   _cube(0, 1, 0, 1, 0, 1), GRID).to_dict()]})
    path = write_provenance(record, tmp_path / "p" / "provenance.json")
    back = read_provenance(path)
    assert back == record and back.model.label == "liver-unet 0.1.0"
    (tmp_path / "bad.json").write_text(json.dumps({"task": "x"}))
    with pytest.raises(InputError, match="not a RadAssist provenance record"):
        read_provenance(tmp_path / "bad.json")


def test_model_info_from_a_checkpoint_folder(tmp_path) -> None:
    from radassist.runtime.checkpoints import save_checkpoint, sha256_file
    from radassist.runtime.registry import MonaiUNetConfig, build_model

    config = MonaiUNetConfig(spatial_dims=2, channels=(4, 8), strides=(2,))
    torch.manual_seed(0)
    folder = save_checkpoint(build_model("monai-unet", config), "monai-unet", config, tmp_path / "ckpt",
                             metadata={"modelId": "my-liver", "modelVersion": "2.0.0"})
    info = model_info_for(str(folder))
    assert info == ModelInfo("my-liver", "2.0.0", sha256_file(folder / "model.safetensors"), "monai-unet")
    assert model_info_for(None, "1.0", "cd" * 32) == ModelInfo("", "1.0", "cd" * 32, "")
    (tmp_path / "weights.pt").write_bytes(b"not really weights")
    bare = model_info_for(str(tmp_path / "weights.pt"), "3.0")
    assert bare == ModelInfo("weights", "3.0", sha256_file(tmp_path / "weights.pt"), "")


def test_model_info_from_the_catalogue(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "cache"))
    info = model_info_for("liver-unet")
    assert info.model_id == "liver-unet" and info.version and info.architecture == "liver-unet"
    assert model_info_for(f"liver-unet@{info.version}").version == info.version
    with pytest.raises(InputError, match="no model"):
        model_info_for("no-such-model")


def test_model_info_of_an_installed_checkpoint_without_its_id(tmp_path, monkeypatch) -> None:
    """An installed model's folder is <models>/<id>/<version>: the folder name is the version, the parent the id."""
    from radassist.runtime.checkpoints import save_checkpoint
    from radassist.runtime.paths import models_dir
    from radassist.runtime.registry import MonaiUNetConfig, build_model

    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "cache"))
    config = MonaiUNetConfig(spatial_dims=2, channels=(4, 8), strides=(2,))
    installed = save_checkpoint(build_model("monai-unet", config), "monai-unet", config,
                                models_dir() / "site-liver" / "1.4.0")
    info = model_info_for(str(installed))
    assert (info.model_id, info.version) == ("site-liver", "1.4.0")
    elsewhere = save_checkpoint(build_model("monai-unet", config), "monai-unet", config, tmp_path / "run" / "best")
    assert (model_info_for(str(elsewhere)).model_id, model_info_for(str(elsewhere)).version) == ("best", "")
