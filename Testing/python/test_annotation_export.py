"""Exports land in the layouts the training readers read (MSD -> the liver reader, LUNA16 -> read_luna16, BraTS ->
the brain reader, exam list -> read_exam_list), keep overlapping segments, keep the AI result unchanged with its
sha256, never overwrite an earlier version, and `dataset stats` adds the changes up."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest
import SimpleITK as sitk

from radassist.annotation.export import INDEX_NAME, dataset_files, read_index
from radassist.annotation.export_brats import export_registration
from radassist.annotation.export_exam_list import export_mammography
from radassist.annotation.export_luna16 import export_detections
from radassist.annotation.export_msd import export_segmentation
from radassist.annotation.msd import as_lits_cases, find_liver_cases, read_msd_dataset
from radassist.annotation.provenance import ModelInfo, read_provenance
from radassist.annotation.stats import dataset_stats, format_stats
from radassist.errors import InputError
from radassist.results import Detection, Detections, LabelMap, ReviewStatus, Segment, write_seg_nrrd
from radassist.results.terminology import terminology_for
from radassist.runtime.checkpoints import sha256_file
from radassist.volume import Geometry, SourceInfo, Volume

GRID = Geometry(shape=(12, 24, 20), spacing=(1.5, 1.5, 3.0), origin=(-15.0, -18.0, -30.0))
MODEL = ModelInfo("liver-unet", "0.1.0", "ab" * 32, "liver-unet")


def _image(value: int = 40) -> Volume:
    rng = np.random.default_rng(value)
    return Volume.from_geometry(rng.integers(-100, 200, GRID.shape).astype(np.int16), GRID,
                                SourceInfo(path="ct.nii.gz", modality="CT"))


def _mask(z: slice, y: slice, x: slice) -> np.ndarray:
    mask = np.zeros(GRID.shape, dtype=bool)
    mask[z, y, x] = True
    return mask


def _liver(grow: int = 0, tumour_inside: bool = True) -> LabelMap:
    liver = _mask(slice(2, 10), slice(4, 18 + grow), slice(3, 16))
    tumour = _mask(slice(4, 7), slice(8, 12), slice(6, 10)) if tumour_inside else \
        _mask(slice(0, 2), slice(0, 3), slice(0, 3))
    segments = [Segment("liver", 1, terminology=terminology_for("liver"), status=ReviewStatus.COMPLETED),
                Segment("liver tumour", 2, terminology=terminology_for("liver tumour"))]
    return LabelMap.from_masks([liver, tumour], segments, GRID)


@pytest.fixture
def seg_files(tmp_path):
    ai, corrected = _liver(), _liver(grow=3)
    write_seg_nrrd(ai, tmp_path / "ai.seg.nrrd")
    write_seg_nrrd(corrected, tmp_path / "corrected.seg.nrrd")
    return ai, corrected, tmp_path / "ai.seg.nrrd", tmp_path / "corrected.seg.nrrd"


def test_msd_layout_with_overlap_is_readable_by_the_liver_training(tmp_path, seg_files) -> None:
    from radassist.liver.datasets import read_lits_case

    ai, corrected, ai_file, corrected_file = seg_files
    assert corrected.layer_count == 2  # the tumour lies inside the liver: overlapping segments
    root = tmp_path / "data"
    result = export_segmentation(root, "liver", "case1", _image(), ai, corrected, model=MODEL, annotator="Jane",
                                 ai_files=[ai_file], corrected_files=[corrected_file])
    assert result.version == "v1"
    document = json.loads((root / "dataset.json").read_text())
    assert document["channel_names"] == {"0": "CT"} and document["file_ending"] == ".nii.gz"
    assert document["labels"] == {"background": 0, "liver": 1, "liver tumour": 2}
    assert document["numTraining"] == 1
    assert document["training"] == [{"image": "./imagesTr/case1_0000.nii.gz", "label": "./labelsTr/case1.nii.gz"}]
    assert document["overlap_layers"] == {"case1": ["./labelsTr_layers/case1_layer2.nii.gz"]}

    layer1 = sitk.GetArrayFromImage(sitk.ReadImage(str(root / "labelsTr/case1.nii.gz")))
    layer2 = sitk.GetArrayFromImage(sitk.ReadImage(str(root / "labelsTr_layers/case1_layer2.nii.gz")))
    assert np.array_equal(layer1 == 1, corrected.mask("liver")) and not np.any(layer1 == 2)
    assert np.array_equal(layer2 == 2, corrected.mask("liver tumour"))  # not flattened into the liver

    dataset = read_msd_dataset(root)
    assert [c.name for c in dataset.cases] == ["case1"] and len(dataset.cases[0].extra_layers) == 1
    assert find_liver_cases(root) == as_lits_cases(dataset)
    lits = read_lits_case(as_lits_cases(dataset)[0])
    assert lits.image.geometry.same_grid(GRID) and np.array_equal(lits.image.array, _image().array)
    assert np.array_equal(lits.labels == 1, corrected.mask("liver"))

    record = read_provenance(result.provenance)
    assert record.model == MODEL and record.annotator == "Jane" and record.version == "v1"
    assert record.ai_result[0]["sha256"] == sha256_file(ai_file)
    assert (root / record.ai_result[0]["path"]).read_bytes() == ai_file.read_bytes()
    liver = next(c for c in record.changes["segments"] if c["name"] == "liver")
    assert liver["change"] == "edited" and 0 < liver["dice"] < 1 and liver["volume_change_percent"] > 0
    assert record.review["not_approved"] == ["liver tumour"]
    training = {c["path"]: c["sha256"] for c in record.corrected if c.get("role") == "training"}
    assert training["labelsTr/case1.nii.gz"] == sha256_file(root / "labelsTr/case1.nii.gz")


def test_a_second_export_is_a_new_version_and_the_first_is_kept(tmp_path, seg_files) -> None:
    ai, corrected, ai_file, corrected_file = seg_files
    root = tmp_path / "data"
    export_segmentation(root, "liver", "case1", _image(), ai, corrected, ai_files=[ai_file])
    first = {name: data for name, data in dataset_files(root).items()}
    second = export_segmentation(root, "liver", "case1", _image(), ai, _liver(grow=5), ai_files=[ai_file],
                                 model=ModelInfo("liver-unet", "0.2.0"))
    assert second.version == "v2"
    after = dataset_files(root)
    for name in ("imagesTr/case1_0000.nii.gz", "labelsTr/case1.nii.gz", "labelsTr_layers/case1_layer2.nii.gz"):
        assert after[f"archive/case1/v1/{name}"] == first[name]  # moved, byte for byte
    for name, data in first.items():  # provenance of v1 untouched
        if name.startswith("provenance/"):
            assert after[name] == data
    index = read_index(root, "liver")
    assert [v["version"] for v in index["cases"]["case1"]["versions"]] == ["v1", "v2"]
    assert index["cases"]["case1"]["versions"][0]["archived"] is True
    assert json.loads((root / "dataset.json").read_text())["numTraining"] == 1
    assert len(read_msd_dataset(root).cases) == 1


def test_label_table_is_shared_by_the_cases(tmp_path) -> None:
    root = tmp_path / "data"
    export_segmentation(root, "liver", "a", _image(), _liver(), _liver())
    other = LabelMap.from_masks(
        [_mask(slice(2, 4), slice(2, 4), slice(2, 4)), _mask(slice(6, 8), slice(6, 8), slice(6, 8))],
        [Segment("Segment_1", 1, terminology=terminology_for("liver tumour")), Segment("cyst", 2)], GRID)
    export_segmentation(root, "liver", "b", _image(), other, other)
    labels = json.loads((root / "dataset.json").read_text())["labels"]
    assert labels == {"background": 0, "liver": 1, "liver tumour": 2, "cyst": 3}
    array = sitk.GetArrayFromImage(sitk.ReadImage(str(root / "labelsTr/b.nii.gz")))
    assert set(np.unique(array)) == {0, 2, 3}  # matched by terminology, new kind appended
    with pytest.raises(InputError, match="not the liver training's values"):
        as_lits_cases(read_msd_dataset(root))


def test_refuses_foreign_folders_tasks_and_names(tmp_path) -> None:
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a RadAssist export"):
        export_segmentation(tmp_path / "other", "liver", "a", _image(), _liver(), _liver())
    export_segmentation(tmp_path / "data", "liver", "a", _image(), _liver(), _liver())
    with pytest.raises(InputError, match="holds a liver export"):
        export_segmentation(tmp_path / "data", "lung-infection", "a", _image(), _liver(), _liver())
    with pytest.raises(InputError, match="case name"):
        export_segmentation(tmp_path / "data", "liver", "../up", _image(), _liver(), _liver())


def test_luna16_layout_is_readable_by_the_lung_training(tmp_path, markups_schema) -> None:
    from radassist.lung.datasets import read_luna16

    ai = Detections([Detection((0.0, 0.0, -10.0), (8, 8, 8), 0.9), Detection((10.0, 5.0, -15.0), (6, 6, 6), 0.3)])
    corrected = Detections([Detection((0.5, 0.0, -10.0), (8, 8, 8), 0.9, status=ReviewStatus.COMPLETED),
                            Detection((-8.0, -8.0, -20.0), (5, 7, 6), 1.0, status=ReviewStatus.COMPLETED)])
    root = tmp_path / "luna"
    export_detections(root, "1.2.3.4", _image(), ai, corrected, model=MODEL)
    export_detections(root, "1.2.3.5", _image(7), Detections([]), Detections([]))
    data = read_luna16(root)
    assert sorted(s.uid for s in data.scans) == ["1.2.3.4", "1.2.3.5"]
    nodules = data.nodules["1.2.3.4"]
    assert [n.center for n in nodules] == [(0.5, 0.0, -10.0), (-8.0, -8.0, -20.0)]
    assert [n.diameter_mm for n in nodules] == [8.0, 6.0]
    assert not data.nodules.get("1.2.3.5")
    markups = json.loads((root / "markups/1.2.3.4.mrk.json").read_text())
    jsonschema.validate(markups, markups_schema)
    changes = read_provenance(root / "provenance/1.2.3.4/v1/provenance.json").changes["boxes"]
    assert (changes["unchanged"], changes["moved"], changes["deleted"], changes["added"]) == (1, 0, 1, 1)


def _tumour(shift: int = 0, overlap: bool = False) -> LabelMap:
    necrosis = _mask(slice(4, 6), slice(8, 10), slice(8, 10 + shift))
    oedema = _mask(slice(3, 8), slice(6, 14), slice(6, 14))
    oedema &= ~necrosis if not overlap else oedema
    segments = [Segment("tumour necrosis", 1, terminology=terminology_for("tumour necrosis")),
                Segment("oedema", 2, terminology=terminology_for("oedema"))]
    return LabelMap.from_masks([necrosis, oedema], segments, GRID)


def test_brats_layout_with_landmarks_is_readable_by_the_brain_training(tmp_path) -> None:
    from radassist.brain.datasets import load_subject, read_brats_layout
    from radassist.results import DisplacementField, read_point_markups

    images = {"flair": _image(1), "t1": _image(2)}
    vectors = np.zeros((*GRID.shape, 3))
    vectors[..., 1] = 2.0
    field = DisplacementField(vectors, GRID)
    fixed = np.array([[0.0, 0.0, -15.0], [3.0, 3.0, -12.0]])
    moving = fixed + np.array([0.0, 2.0, 0.0]) + np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    root = tmp_path / "brain"
    export_registration(root, "subj1", images, _tumour(), _tumour(shift=2), fixed_landmarks=fixed,
                        moving_landmarks=moving, field=field, model=MODEL)
    subjects = read_brats_layout(root / "subjects")
    assert [s.name for s in subjects] == ["subj1"]
    loaded = load_subject(subjects[0])
    assert loaded.tumour is not None and set(loaded.images) == {"flair", "t1"}
    corrected = _tumour(shift=2)
    assert np.array_equal(loaded.tumour.labels[0] == 1, corrected.mask("tumour necrosis"))
    assert np.array_equal(loaded.tumour.labels[0] == 2, corrected.mask("oedema"))
    points, labels = read_point_markups(root / "subjects/subj1/subj1_landmarks_moving.mrk.json")
    assert np.allclose(points, moving) and len(labels) == 2
    tre = read_provenance(root / "provenance/subj1/v1/provenance.json").changes["landmarks"]
    assert tre["before_mm"] == pytest.approx([np.sqrt(5.0), 2.0]) and tre["after_mm"] == pytest.approx([1.0, 0.0])
    assert "subj1,1,2.236068" in (root / "landmarks.csv").read_text()
    with pytest.raises(InputError, match="overlaps"):
        export_registration(root, "subj2", images, _tumour(), _tumour(overlap=True))


def test_exam_list_layout_is_readable_by_the_mammo_training(tmp_path) -> None:
    from radassist.mammo.datasets import read_exam_list
    from radassist.synthetic.mammo import write_png

    views = {}
    for index, name in enumerate(("L-CC", "R-CC")):
        views[name] = write_png(np.full((40, 30), 100 * (index + 1), dtype=np.uint16), tmp_path / f"{name}.png")
    mask = np.zeros((40, 30), dtype=bool)
    mask[10:20, 5:15] = True
    write_png(mask, tmp_path / "mask.png")
    root = tmp_path / "exams"
    confirmed = {"L": {"benign": 0, "malignant": 0}, "R": {"benign": 1, "malignant": 0}}
    ai = {"L": {"benign": 0.8, "malignant": 0.1}, "R": {"benign": 0.9, "malignant": 0.2}}
    export_mammography(root, "exam7", views, confirmed, ai_probabilities=ai,
                       masks={("R-CC", "benign"): tmp_path / "mask.png"})
    exams = read_exam_list(root)
    assert [e.exam for e in exams] == ["exam7"]
    right = next(v for v in exams[0].views if v.name == "R-CC")
    assert right.labels == (1, 0) and right.benign_mask is not None
    assert right.path.read_bytes() == views["R-CC"].read_bytes()
    assert read_exam_list(root / "exam_list.csv")[0].views[0].labels == (0, 0)
    changes = read_provenance(root / "provenance/exam7/v1/provenance.json").changes["labels"]
    assert [(c["item"], c["name"], c["changed"]) for c in changes if c["changed"]] == [("L", "benign", True)]
    with pytest.raises(InputError, match="must be 0 or 1"):
        export_mammography(root, "exam8", views, {"L": {"benign": 2, "malignant": 0},
                                                  "R": {"benign": 0, "malignant": 0}})


def test_stats_per_label_and_model_version(tmp_path) -> None:
    root = tmp_path / "data"
    export_segmentation(root, "liver", "a", _image(), _liver(), _liver(), model=MODEL, annotator="Ann")
    export_segmentation(root, "liver", "b", _image(), _liver(), _liver(grow=3), model=MODEL, annotator="Bob")
    export_segmentation(root, "liver", "c", _image(), _liver(), _liver(tumour_inside=False),
                        model=ModelInfo("liver-unet", "0.2.0"), annotator="Ann")
    export_segmentation(root, "liver", "c", _image(), _liver(), _liver(), model=ModelInfo("liver-unet", "0.2.0"),
                        annotator="Ann")  # v2 of c: only the latest counts
    stats = dataset_stats(root)
    assert (stats.cases, stats.versions, stats.annotators) == (3, 4, {"Ann": 2, "Bob": 1})
    assert stats.labels["liver"].cases == 3 and stats.labels["liver"].unchanged == 2
    assert stats.labels["liver"].edited == 1
    assert 0 < stats.labels["liver"].mean_dice < 1
    assert set(stats.models) == {"liver-unet 0.1.0", "liver-unet 0.2.0"}
    assert stats.models["liver-unet 0.2.0"].mean_dice == 1.0 and stats.models["liver-unet 0.1.0"].mean_dice < 1
    text = format_stats(stats)
    assert "liver-unet 0.1.0" in text and "liver tumour" in text
    json.dumps(stats.to_dict())
    assert (root / INDEX_NAME).is_file()
