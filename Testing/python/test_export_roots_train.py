"""`radassist train TASK --data EXPORT_DIR` reads an export folder as it is: for every task, a folder that holds a
re-exported case (so its provenance/ and archive/ are full) lists exactly the latest version of every exported case
through the reader the task's train command uses."""

from __future__ import annotations

import numpy as np
import pytest

from radassist.annotation.export_brats import export_registration
from radassist.annotation.export_exam_list import export_mammography
from radassist.annotation.export_luna16 import export_detections
from radassist.annotation.export_msd import export_segmentation
from radassist.errors import InputError
from radassist.results import Detection, Detections, LabelMap, Segment
from radassist.results.terminology import terminology_for
from radassist.volume import Geometry, Volume

GRID = Geometry(shape=(8, 16, 16), spacing=(2.0, 2.0, 3.0))


def _image(seed: int) -> Volume:
    return Volume.from_geometry(np.random.default_rng(seed).integers(-200, 200, GRID.shape).astype(np.int16), GRID)


def _labels(names: list[str], size: int) -> LabelMap:
    masks = []
    for number, _ in enumerate(names):
        mask = np.zeros(GRID.shape, dtype=bool)
        mask[2:6, 2 + 6 * number:2 + 6 * number + size, 3:9] = True
        masks.append(mask)
    segments = [Segment(name, number + 1, terminology=terminology_for(name)) for number, name in enumerate(names)]
    return LabelMap.from_masks(masks, segments, GRID)


def test_lung_export_root_lists_the_latest_boxes_through_read_luna16(tmp_path) -> None:
    from radassist.lung.datasets import read_luna16

    root = tmp_path / "export"
    first, corrected = Detection((0.0, 0.0, 6.0), (6, 6, 6), 1.0), Detection((4.0, 2.0, 9.0), (8, 8, 8), 1.0)
    export_detections(root, "1.2.3", _image(1), Detections([]), Detections([first]))
    export_detections(root, "1.2.3", _image(1), Detections([first]), Detections([corrected]))
    export_detections(root, "1.2.4", _image(2), Detections([]), Detections([]))
    assert (root / "archive/1.2.3/v1/subset0/1.2.3.mhd").is_file()
    data = read_luna16(root)
    assert [(s.uid, s.subset) for s in data.scans] == [("1.2.3", "subset0"), ("1.2.4", "subset0")]
    assert [n.center for n in data.nodules["1.2.3"]] == [(4.0, 2.0, 9.0)]


def test_liver_export_root_lists_its_cases_through_the_liver_training_reader(tmp_path) -> None:
    from radassist.annotation.msd import find_liver_cases
    from radassist.liver.datasets import read_lits_case

    root = tmp_path / "export"
    names = ["liver", "liver tumour"]
    export_segmentation(root, "liver", "a", _image(1), _labels(names, 3), _labels(names, 4))
    export_segmentation(root, "liver", "a", _image(1), _labels(names, 4), _labels(names, 5))
    export_segmentation(root, "liver", "b", _image(2), _labels(names, 3), _labels(names, 3))
    assert (root / "archive/a/v1/labelsTr/a.nii.gz").is_file()
    cases = find_liver_cases(root)
    assert [c.volume.name for c in cases] == ["a_0000.nii.gz", "b_0000.nii.gz"]
    first = read_lits_case(cases[0])
    assert np.array_equal(first.labels, _labels(names, 5).labels[0])  # v2, the latest correction
    assert np.array_equal(first.image.array, _image(1).array)


def test_lung_infection_export_root_lists_its_cases_through_the_infection_training_reader(tmp_path) -> None:
    from radassist.lung.infection.dataset import find_pairs, read_dataset
    from radassist.lung.infection.model import DEFAULT_CLASSES

    root = tmp_path / "export"
    names = ["ground-glass opacity", "consolidation"]
    export_segmentation(root, "lung-infection", "p1", _image(3), _labels(names, 2), _labels(names, 3))
    export_segmentation(root, "lung-infection", "p1", _image(3), _labels(names, 3), _labels(names, 4))
    export_segmentation(root, "lung-infection", "p2", _image(4), _labels(names, 2), _labels(names, 2))
    pairs = find_pairs(root)
    assert [(image.name, label.name) for image, label in pairs] == [("p1_0000.nii.gz", "p1.nii.gz"),
                                                                   ("p2_0000.nii.gz", "p2.nii.gz")]
    dataset = read_dataset(root, len(DEFAULT_CLASSES) + 1)
    assert len(dataset) == 2 * GRID.shape[0] and dataset.names[0] == "p1_0000:0"
    per_class = np.bincount(np.concatenate([m.ravel() for m in dataset.masks[:GRID.shape[0]]]), minlength=3)
    assert per_class[1] == per_class[2] == 4 * 4 * 6  # v2 of p1: 4 slices x 4 rows x 6 columns per class


def test_brain_export_root_lists_its_subjects_through_the_brain_training_reader(tmp_path) -> None:
    from radassist.brain.datasets import load_subject, read_layout

    root = tmp_path / "export"
    names = ["tumour necrosis", "oedema"]
    images = {"flair": _image(5), "t1": _image(6)}
    export_registration(root, "s1", images, _labels(names, 2), _labels(names, 3))
    export_registration(root, "s1", images, _labels(names, 3), _labels(names, 4))
    export_registration(root, "s2", images, _labels(names, 2), _labels(names, 2))
    assert (root / "archive/s1/v1").is_dir() and (root / "provenance/s1/v2").is_dir()
    layout, subjects = read_layout(root)  # as 'radassist train brain --data EXPORT_DIR' reads it
    assert layout == "brats" and [s.name for s in subjects] == ["s1", "s2"]
    loaded = load_subject(subjects[0])
    assert set(loaded.images) == {"flair", "t1"}
    assert np.array_equal(loaded.tumour.labels[0] == 2, _labels(names, 4).mask("oedema"))


def test_an_export_folder_without_subjects_is_named(tmp_path) -> None:
    from radassist.brain.datasets import read_layout

    root = tmp_path / "liver-export"
    export_segmentation(root, "liver", "a", _image(1), _labels(["liver"], 3), _labels(["liver"], 3))
    with pytest.raises(InputError, match="subjects.*holds no brain subjects"):
        read_layout(root)


def test_mammo_export_root_lists_its_exams_through_read_exam_list(tmp_path) -> None:
    from radassist.mammo.datasets import read_exam_list
    from radassist.synthetic.mammo import write_png

    views = {name: write_png(np.full((40, 30), 300 * (n + 1), dtype=np.uint16), tmp_path / f"{name}.png")
             for n, name in enumerate(("L-CC", "R-CC"))}
    root = tmp_path / "export"
    export_mammography(root, "e1", views, {"L": {"benign": 0, "malignant": 0}, "R": {"benign": 0, "malignant": 0}})
    export_mammography(root, "e1", views, {"L": {"benign": 1, "malignant": 0}, "R": {"benign": 0, "malignant": 1}})
    export_mammography(root, "e2", {"L-CC": views["L-CC"]}, {"L": {"benign": 0, "malignant": 0}})
    assert (root / "archive/e1/v1").is_dir()
    exams = {exam.exam: exam for exam in read_exam_list(root)}
    assert sorted(exams) == ["e1", "e2"]
    assert {view.name: view.labels for view in exams["e1"].views} == {"L-CC": (1, 0), "R-CC": (0, 1)}
    assert all(view.path.is_file() and "archive" not in view.path.parts for view in exams["e1"].views)
