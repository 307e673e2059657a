"""BraTS label conventions on real files: the shared BraTS 2015 cases keep their four labels as four named, coded
segments (label 3, non-enhancing tumour, is not merged into necrosis), and the same anatomy written in the 2017-2020
and 2021+ conventions reads back with each edition's names and the same network classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radassist.brain.datasets import read_tumour_labels
from radassist.brain.labels import brats_classes, brats_labelmap, detect_convention
from radassist.io import read_volume, write_volume

CASES = ("brats_2013_pat0001_1", "brats_2013_pat0002_1", "brats_2013_pat0003_1", "brats_2013_pat0004_1")


@pytest.mark.parametrize("case", CASES)
def test_brats_2015_labels_become_four_segments_with_the_files_counts(test_data: Path, case):
    path = test_data / "brain" / "brats2015" / case / "OTMultiClass.nii.gz"
    values = np.rint(read_volume(path).array).astype(int)
    labelmap = read_tumour_labels(path)
    assert labelmap.metadata["convention"] == "brats2015"
    names = {s.label_value: s.name for s in labelmap.segments}
    assert names == {1: "tumour necrosis", 2: "oedema", 3: "non-enhancing tumour", 4: "enhancing tumour"}
    for segment in labelmap.segments:
        assert np.count_nonzero(labelmap.mask(segment)) == np.count_nonzero(values == segment.label_value)
    codes = {s.name: s.terminology.type.value for s in labelmap.segments}
    assert codes == {"tumour necrosis": "6574001", "oedema": "79654002", "non-enhancing tumour": "108369006",
                     "enhancing tumour": "C113842"}
    assert all(s.terminology.anatomic_region.value == "12738006" for s in labelmap.segments)  # brain


def test_the_same_anatomy_in_the_2017_and_2021_conventions(test_data: Path, tmp_path):
    path = test_data / "brain" / "brats2015" / CASES[0] / "OTMultiClass.nii.gz"
    volume = read_volume(path)
    labels_2015 = np.rint(volume.array).astype(np.uint8)
    labels_2017 = np.choose(labels_2015, [0, 1, 2, 1, 4]).astype(np.uint8)   # NCR/NET = necrosis + non-enhancing
    labels_2021 = np.choose(labels_2015, [0, 1, 2, 1, 3]).astype(np.uint8)   # ET becomes 3
    classes = brats_classes(labels_2015)
    for labels, edition, names in ((labels_2017, "brats2017", {1: "necrotic and non-enhancing tumour core",
                                                                 2: "oedema", 4: "enhancing tumour"}),
                                   (labels_2021, "brats2021", {1: "necrotic tumour core", 2: "oedema",
                                                               3: "enhancing tumour"})):
        file = write_volume(volume.with_array(labels), tmp_path / f"{edition}.nii.gz")
        assert detect_convention(labels) == edition
        labelmap = read_tumour_labels(file)
        assert {s.label_value: s.name for s in labelmap.segments} == names
        assert np.count_nonzero(labelmap.mask("enhancing tumour")) == np.count_nonzero(labels_2015 == 4)
        assert np.array_equal(brats_classes(labels), classes)
    # a 2021 file read as 2015 would call its enhancing tumour non-enhancing: the convention can be named
    assert brats_labelmap(labels_2021, volume.geometry, "brats2021").segments[-1].name == "enhancing tumour"
    with pytest.raises(ValueError, match="no meaning in the brats2017"):
        brats_labelmap(labels_2021, volume.geometry, "brats2017")
    with pytest.raises(ValueError, match="not BraTS labels"):
        detect_convention(np.array([0, 5]))
