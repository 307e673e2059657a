"""Phantom data sets on disk in the real layouts (LUNA16, LiTS, BraTS pairs, GMIC exam list), read back with the
real libraries and compared with the phantoms that made them."""

from __future__ import annotations

import csv
import json
import threading

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from radassist import __version__
from radassist.errors import InputError
from radassist.io.sitk_bridge import geometry_of
from radassist.runtime.progress import Cancelled, Progress
from radassist.synthetic.abdomen import AbdomenPhantomConfig, make_abdomen_ct
from radassist.synthetic.brain import BrainPhantomConfig, make_brain_pair
from radassist.synthetic.chest import ChestPhantomConfig, make_chest_ct
from radassist.synthetic.datasets import case_seeds, write_dataset
from radassist.synthetic.mammo import MammoPhantomConfig, make_mammogram_exam

CHEST = ChestPhantomConfig(shape=(40, 96, 128), spacing=(1.6, 1.6, 3.0), nodule_count=(2, 3),
                           nodule_diameter_mm=(5.0, 15.0))
ABDOMEN = AbdomenPhantomConfig(shape=(32, 96, 128), spacing=(2.4, 2.4, 5.0))
BRAIN = BrainPhantomConfig(shape=(40, 48, 44), spacing=(3.5, 3.5, 3.5))
MAMMO = MammoPhantomConfig(shape=(368, 240), pixel_spacing_mm=0.8)


def _read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _no_temp_files(folder):
    return not [p for p in folder.rglob("*") if p.name.startswith(".radassist-tmp-")]


@pytest.fixture(scope="module")
def lung(tmp_path_factory):
    return write_dataset("lung", tmp_path_factory.mktemp("luna"), cases=2, seed=7, config=CHEST)


def test_lung_dataset_is_luna16(lung):
    seeds = case_seeds(7, 2)
    phantoms = [make_chest_ct(s, CHEST) for s in seeds]
    rows = _read_csv(lung / "annotations.csv")
    assert list(rows[0]) == ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"]
    expected = [(p.series_uid, *n.center, n.diameter_mm) for p in phantoms for n in p.nodules.items]
    read = [(r["seriesuid"], float(r["coordX"]), float(r["coordY"]), float(r["coordZ"]), float(r["diameter_mm"]))
            for r in rows]
    assert read == expected  # exact: world mm written losslessly
    for phantom in phantoms:
        header = lung / "subset0" / f"{phantom.series_uid}.mhd"
        fields = dict(line.split(" = ", 1) for line in header.read_text().splitlines())
        assert fields["ElementDataFile"] == f"{phantom.series_uid}.raw"
        assert (lung / "subset0" / f"{phantom.series_uid}.raw").is_file()
        image = sitk.ReadImage(str(header))
        assert geometry_of(image).same_grid(phantom.volume.geometry)
        assert np.array_equal(sitk.GetArrayFromImage(image), phantom.volume.array)
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(lung / "seg-lungs-LUNA16" / f"{phantom.series_uid}.mhd")))
        assert set(np.unique(mask)) == {0, 3, 4, 5}
        assert np.array_equal(mask == 3, phantom.lungs.mask("Right lung"))
        assert np.array_equal(mask == 4, phantom.lungs.mask("Left lung"))
        # each annotated nodule lands in a lung of the written mask, found through the file's own geometry
        for nodule in phantom.nodules.items:
            index = image.TransformPhysicalPointToIndex(nodule.center)
            assert mask[index[2], index[1], index[0]] in (3, 4)
    info = json.loads((lung / "dataset.json").read_text())
    assert info["task"] == "lung" and info["layout"] == "LUNA16" and info["cases"] == 2 and info["seed"] == 7
    assert info["case_seeds"] == seeds and info["radassist_version"] == __version__
    assert info["mask_values"] == {"right lung": 3, "left lung": 4, "trachea": 5}
    assert _no_temp_files(lung)


def test_liver_dataset_is_lits(tmp_path):
    out = write_dataset("liver", tmp_path / "lits", cases=2, seed=3, config=ABDOMEN)
    assert sorted(p.name for p in out.glob("*.nii")) == ["segmentation-0.nii", "segmentation-1.nii",
                                                         "volume-0.nii", "volume-1.nii"]
    phantom = make_abdomen_ct(case_seeds(3, 2)[1], ABDOMEN)
    volume = sitk.ReadImage(str(out / "volume-1.nii"))
    labels = sitk.ReadImage(str(out / "segmentation-1.nii"))
    assert geometry_of(volume).same_grid(phantom.volume.geometry)
    assert geometry_of(labels).same_grid(phantom.volume.geometry)
    assert np.array_equal(sitk.GetArrayFromImage(volume), phantom.volume.array)
    label_array = sitk.GetArrayFromImage(labels)
    assert np.array_equal(label_array, phantom.labels.labels[0])
    assert set(np.unique(label_array)) <= {0, 1, 2} and 2 in label_array
    tumours = [r for r in _read_csv(out / "tumours.csv") if r["case"] == "1"]
    assert len(tumours) == len(phantom.tumours)
    assert json.loads((out / "dataset.json").read_text())["label_values"] == {"background": 0, "liver": 1,
                                                                              "tumour": 2}


def test_brain_dataset_is_brats_pairs_with_the_true_field(tmp_path):
    out = write_dataset("brain", tmp_path / "brats", cases=1, seed=2, config=BRAIN)
    assert _read_csv(out / "pairs.csv") == [{"fixed": "pair_0_fixed", "moving": "pair_0_moving",
                                            "deformation": "pair_0_deformation.h5"}]
    pair = make_brain_pair(case_seeds(2, 1)[0], BRAIN)
    for role, images, labels in (("fixed", pair.fixed, pair.fixed_labels), ("moving", pair.moving,
                                                                            pair.moving_labels)):
        case = out / f"pair_0_{role}"
        for sequence in ("flair", "t1", "t1ce", "t2"):
            image = sitk.ReadImage(str(case / f"pair_0_{role}_{sequence}.nii.gz"))
            assert geometry_of(image).same_grid(images[sequence].geometry)
            assert np.allclose(sitk.GetArrayFromImage(image), images[sequence].array)
        seg = sitk.GetArrayFromImage(sitk.ReadImage(str(case / f"pair_0_{role}_seg.nii.gz")))
        assert set(np.unique(seg)) == {0, 1, 2, 4}
        assert np.array_equal(seg, labels.labels[0])
    transform = sitk.DisplacementFieldTransform(sitk.ReadTransform(str(out / "pair_0_deformation.h5")))
    field = transform.GetDisplacementField()
    assert geometry_of(field).same_grid(pair.deformation.geometry)
    assert np.allclose(sitk.GetArrayFromImage(field), pair.deformation.vectors, atol=0.5 / 1024)  # stored to 1/1024 mm


def test_mammo_dataset_is_an_exam_list(tmp_path):
    out = write_dataset("mammo", tmp_path / "gmic", cases=2, seed=4, config=MAMMO)
    exams = json.loads((out / "exam_list.json").read_text())
    rows = _read_csv(out / "exam_list.csv")
    assert [e["id"] for e in exams] == ["0", "1"] and len(rows) == 8
    assert list(rows[0]) == ["path", "exam", "laterality", "view", "benign", "malignant", "benign_mask",
                             "malignant_mask"]
    for index, (entry, case_seed) in enumerate(zip(exams, case_seeds(4, 2))):
        exam = make_mammogram_exam(case_seed, MAMMO)
        assert entry["horizontal_flip"] == "NO"
        assert entry["breasts"] == exam.labels
        assert entry["cancer_label"]["left_malignant"] == exam.labels["L"]["malignant"]
        for view in exam.views:
            assert entry[view.name] == [f"images/{index}_{view.name}.png"]
            image = Image.open(out / entry[view.name][0])
            assert image.mode == "I;16" and np.array_equal(np.array(image), view.pixels)
            row = next(r for r in rows if r["path"] == entry[view.name][0])
            assert (row["exam"], row["laterality"], row["view"]) == (str(index), view.laterality, view.view)
            for kind in ("benign", "malignant"):
                assert int(row[kind]) == view.labels[kind]
                mask = getattr(view, f"{kind}_mask")
                if mask.any():
                    assert row[f"{kind}_mask"] == f"masks/{index}_{view.name}_{kind}.png"
                    written = np.array(Image.open(out / row[f"{kind}_mask"]))
                    assert np.array_equal(written > 0, mask) and set(np.unique(written)) == {0, 255}
                else:
                    assert row[f"{kind}_mask"] == ""
                    assert not (out / f"masks/{index}_{view.name}_{kind}.png").exists()


def test_same_seed_writes_the_same_data(tmp_path):
    first = write_dataset("lung", tmp_path / "a", cases=1, seed=5, config=CHEST)
    second = write_dataset("lung", tmp_path / "b", cases=1, seed=5, config=CHEST)
    third = write_dataset("lung", tmp_path / "c", cases=1, seed=6, config=CHEST)
    assert (first / "annotations.csv").read_text() == (second / "annotations.csv").read_text()
    assert (first / "annotations.csv").read_text() != (third / "annotations.csv").read_text()
    raws = [sorted((f / "subset0").glob("*.raw"))[0].read_bytes() for f in (first, second)]
    assert raws[0] == raws[1]


def test_bad_requests_are_refused(tmp_path):
    with pytest.raises(InputError, match="unknown synthetic task"):
        write_dataset("heart", tmp_path / "x", cases=1, seed=0)
    with pytest.raises(InputError, match="at least 1"):
        write_dataset("lung", tmp_path / "x", cases=0, seed=0)
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def test_cancel_leaves_nothing_behind(tmp_path):
    cancel = threading.Event()
    seen = []

    def on_progress(fraction: float, message: str) -> None:
        seen.append(message)
        if fraction > 0.3:  # after the first of two cases was written
            cancel.set()

    out = tmp_path / "cancelled"
    with pytest.raises(Cancelled):
        write_dataset("lung", out, cases=2, seed=1, progress=Progress(on_progress, cancel), config=CHEST)
    assert len(seen) >= 2
    assert not [p for p in out.rglob("*") if p.is_file()]
