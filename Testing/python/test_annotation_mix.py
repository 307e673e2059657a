"""An export mixed with the original training set reads with the original set's reader: corrected cases replace
their originals, new ones are added, nothing in either source changes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from radassist.annotation.export import dataset_files
from radassist.annotation.export_brats import export_registration
from radassist.annotation.export_exam_list import export_mammography
from radassist.annotation.export_luna16 import export_detections
from radassist.annotation.export_msd import export_segmentation
from radassist.annotation.mix import mix_datasets
from radassist.errors import InputError
from radassist.io import read_volume, write_volume
from radassist.results import Detection, Detections, LabelMap, Segment
from radassist.volume import Geometry, Volume

GRID = Geometry(shape=(8, 16, 16), spacing=(2.0, 2.0, 2.0))


def _volume(seed: int) -> Volume:
    return Volume.from_geometry(np.random.default_rng(seed).integers(0, 100, GRID.shape).astype(np.int16), GRID)


def _labels(size: int) -> LabelMap:
    labels = np.zeros(GRID.shape, dtype=np.uint8)
    labels[2:6, 2:2 + size, 2:10] = 1
    return LabelMap(labels, GRID, [Segment("liver", 1)])


def test_lung(tmp_path) -> None:
    from radassist.lung.datasets import read_luna16

    original = tmp_path / "luna"
    for uid in ("1.1", "1.2"):
        write_volume(_volume(1), original / f"subset3/{uid}.mhd", compress=False)
    (original / "annotations.csv").write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n1.1,1,2,3,6\n"
                                              "1.2,4,5,6,7\n")
    export = tmp_path / "export"
    export_detections(export, "1.2", _volume(1), Detections([]), Detections([Detection((0, 0, 4), (9, 9, 9), 1.0)]))
    export_detections(export, "2.1", _volume(2), Detections([]), Detections([Detection((1, 1, 1), (5, 5, 5), 1.0)]))
    before = dataset_files(original), dataset_files(export)
    mixed = mix_datasets("lung", original, export, tmp_path / "mixed")
    data = read_luna16(mixed)
    assert sorted(s.uid for s in data.scans) == ["1.1", "1.2", "2.1"]
    assert [n.center for n in data.nodules["1.2"]] == [(0.0, 0.0, 4.0)]  # the correction, not the original
    assert [n.center for n in data.nodules["1.1"]] == [(1.0, 2.0, 3.0)]
    assert (dataset_files(original), dataset_files(export)) == before
    assert json.loads((mixed / "mix.json").read_text())["corrected_scans"] == ["1.2", "2.1"]
    with pytest.raises(InputError, match="already has files"):
        mix_datasets("lung", original, export, mixed)


def test_liver(tmp_path) -> None:
    from radassist.liver.datasets import find_lits_cases, read_lits_case

    original = tmp_path / "lits"
    for number in (0, 1):
        write_volume(_volume(number), original / f"volume-{number}.nii", compress=False)
        write_volume(_volume(number).with_array(_labels(4).labels[0]), original / f"segmentation-{number}.nii",
                     compress=False)
    export = tmp_path / "export"
    export_segmentation(export, "liver", "volume-1", _volume(1), _labels(4), _labels(9))
    export_segmentation(export, "liver", "new", _volume(5), _labels(4), _labels(6))
    mixed = mix_datasets("liver", original, export, tmp_path / "mixed")
    from radassist.annotation.msd import find_liver_cases

    cases = find_lits_cases(mixed)
    assert [c.number for c in cases] == [0, 1, 2] and find_liver_cases(mixed) == cases
    assert np.array_equal(read_lits_case(cases[1]).labels, _labels(9).labels[0])  # volume-1 replaced
    assert np.array_equal(read_lits_case(cases[2]).image.array, _volume(5).array)  # "new" added as volume-2
    assert np.array_equal(read_volume(cases[0].segmentation).array, _labels(4).labels[0])


def test_brain(tmp_path) -> None:
    from radassist.brain.datasets import read_brats_layout

    original = tmp_path / "brats"
    for case in ("s1", "s2"):
        write_volume(_volume(3), original / case / f"{case}_flair.nii.gz")
        write_volume(_volume(3).with_array(np.zeros(GRID.shape, np.uint8)), original / case / f"{case}_seg.nii.gz")
    export = tmp_path / "export"
    tumour = np.zeros(GRID.shape, dtype=np.uint8)
    tumour[3:5, 4:8, 4:8] = 1
    labels = LabelMap(tumour, GRID, [Segment("oedema", 1)])
    export_registration(export, "s2", {"flair": _volume(3)}, labels, labels)
    mixed = mix_datasets("brain", original, export, tmp_path / "mixed")
    subjects = {s.name: s for s in read_brats_layout(mixed)}
    assert sorted(subjects) == ["s1", "s2"]
    assert read_volume(subjects["s2"].tumour).array.max() == 2  # the exported oedema (BraTS value 2)
    assert read_volume(subjects["s1"].tumour).array.max() == 0


def test_mammo(tmp_path) -> None:
    from radassist.mammo.datasets import read_exam_list
    from radassist.synthetic.datasets import write_dataset
    from radassist.synthetic.mammo import MammoPhantomConfig

    original = write_dataset("mammo", tmp_path / "exams", 2, 3,
                             config=MammoPhantomConfig(shape=(256, 160), pixel_spacing_mm=1.0))
    export = tmp_path / "export"
    export_mammography(export, "1", {"L-CC": original / "images/1_L-CC.png"},
                       {"L": {"benign": 1, "malignant": 1}})
    mixed = mix_datasets("mammo", original, export, tmp_path / "mixed")
    exams = {e.exam: e for e in read_exam_list(mixed)}
    assert sorted(exams) == ["0", "1"]
    assert [v.name for v in exams["1"].views] == ["L-CC"] and exams["1"].views[0].labels == (1, 1)
    assert len(exams["0"].views) == 4


def test_training_data_mixes_several_folders_in_order_and_cleans_up(tmp_path) -> None:
    """What `radassist train TASK --data BASE --data EXPORT1 --data EXPORT2` reads: each later folder's cases
    replace or join the mix so far (an export as the base works too), in a temporary folder gone afterwards."""
    from radassist.annotation.mix import training_data
    from radassist.annotation.msd import find_liver_cases
    from radassist.liver.datasets import read_lits_case

    base = tmp_path / "export0"
    export_segmentation(base, "liver", "volume-0", _volume(0), _labels(4), _labels(4))
    export_segmentation(base, "liver", "volume-1", _volume(1), _labels(4), _labels(4))
    first, second = tmp_path / "export1", tmp_path / "export2"
    export_segmentation(first, "liver", "volume-1", _volume(1), _labels(4), _labels(9))
    export_segmentation(second, "liver", "other", _volume(5), _labels(4), _labels(6))
    before = [dataset_files(folder) for folder in (base, first, second)]
    with training_data("liver", [base, first, second]) as mixed:
        cases = find_liver_cases(mixed)
        assert [c.number for c in cases] == [0, 1, 2]
        assert np.array_equal(read_lits_case(cases[1]).labels, _labels(9).labels[0])  # export1's correction
        assert np.array_equal(read_lits_case(cases[2]).image.array, _volume(5).array)  # export2's new case
        assert np.array_equal(read_lits_case(cases[0]).labels, _labels(4).labels[0])
    assert not mixed.exists()
    assert [dataset_files(folder) for folder in (base, first, second)] == before
    with training_data("liver", [base]) as alone:
        assert alone == base
    with pytest.raises(InputError, match="at least one --data"):
        with training_data("liver", []):
            pass
    with pytest.raises(InputError, match="cannot mix 'lung-infection'"):
        with training_data("lung-infection", [base, first]):
            pass
