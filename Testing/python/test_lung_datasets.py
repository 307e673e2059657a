"""LUNA16 reading, the patient-level split, the slab cache and the slab dataset, on a synthetic LUNA16 folder."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from radassist.errors import InputError
from radassist.lung.augment import AugmentConfig
from radassist.lung.datasets import (Luna16Data, Luna16Scan, SlabCache, SlabDataset, allocate, collate_slabs,
                                     read_luna16, select_slabs, split_by_patient)
from radassist.lung.preprocess import SlabConfig
from radassist.results.detections import Detection
from radassist.synthetic.chest import ChestPhantomConfig
from radassist.synthetic.datasets import write_dataset

CHEST = ChestPhantomConfig(shape=(40, 96, 128), spacing=(1.6, 1.6, 3.0), nodule_count=(1, 2),
                           nodule_diameter_mm=(8.0, 20.0))


@pytest.fixture(scope="module")
def luna(tmp_path_factory) -> Path:
    return write_dataset("lung", tmp_path_factory.mktemp("luna") / "luna", cases=3, seed=5, config=CHEST)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> SlabCache:
    return SlabCache(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def prepared(luna, cache):
    data = read_luna16(luna)
    return data, cache.prepare(data, [s.uid for s in data.scans])


def test_read_luna16_finds_every_scan_and_annotation(luna):
    data = read_luna16(luna)
    with open(luna / "annotations.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(s.uid for s in data.scans) == sorted(p.stem for p in (luna / "subset0").glob("*.mhd"))
    assert sum(len(v) for v in data.nodules.values()) == len(rows)
    first = rows[0]
    nodule = data.nodules[first["seriesuid"]][0]
    assert nodule.center == pytest.approx((float(first["coordX"]), float(first["coordY"]), float(first["coordZ"])))
    assert nodule.size == pytest.approx((float(first["diameter_mm"]),) * 3)
    assert data.patients == {s.uid: s.uid for s in data.scans}
    assert data.excluded == {} and data.annotations_without_scan == 0


def test_bad_folders_are_refused_with_the_file_named(luna, tmp_path):
    with pytest.raises(InputError, match="data folder not found"):
        read_luna16(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="subset"):
        read_luna16(tmp_path / "empty")
    copy = tmp_path / "copy"
    shutil.copytree(luna, copy)
    (copy / "annotations.csv").unlink()
    with pytest.raises(InputError, match="annotations.csv") as error:
        read_luna16(copy)
    assert error.value.path == str(copy / "annotations.csv")
    (copy / "annotations.csv").write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\nx,1,2,oops,5\n")
    with pytest.raises(InputError, match="coordZ is not a number"):
        read_luna16(copy)


def test_annotations_of_absent_scans_are_counted_not_used(luna, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(luna, copy)
    with open(copy / "annotations.csv", "a") as handle:
        handle.write("1.2.3.not.downloaded,10,20,30,6\n")
    data = read_luna16(copy)
    assert data.annotations_without_scan == 1 and "1.2.3.not.downloaded" not in data.nodules


def fake_data(positive: int, negative: int, patients: dict[str, str] | None = None) -> Luna16Data:
    """A data set description without files (the split needs only scans, nodules and patients)."""
    uids = [f"pos{i}" for i in range(positive)] + [f"neg{i}" for i in range(negative)]
    nodule = Detection(center=(0, 0, 0), size=(5, 5, 5), probability=1.0, diameter_mm=5.0)
    return Luna16Data(root=Path("data"), scans=[Luna16Scan(u, Path(f"{u}.mhd"), "subset0") for u in uids],
                      nodules={u: [nodule] for u in uids if u.startswith("pos")}, excluded={},
                      patients=patients or {u: u for u in uids})


def test_allocate_rounds_by_largest_remainder():
    assert allocate(10, (0.7, 0.2, 0.1)) == [7, 2, 1]
    assert allocate(3, (0.7, 0.2, 0.1)) == [2, 1, 0]
    assert allocate(2, (0.7, 0.2, 0.1)) == [1, 1, 0]
    assert sum(allocate(888, (0.7, 0.2, 0.1))) == 888


def test_split_is_70_20_10_seeded_and_spreads_scans_with_nodules():
    data = fake_data(positive=10, negative=10)
    split = split_by_patient(data, (0.7, 0.2, 0.1), seed=3)
    assert (len(split.train), len(split.validation), len(split.test)) == (14, 4, 2)
    for part, count in ((split.train, 7), (split.validation, 2), (split.test, 1)):
        assert sum(u.startswith("pos") for u in part) == count
    assert set(split.train) | set(split.validation) | set(split.test) == {s.uid for s in data.scans}
    assert split_by_patient(data, (0.7, 0.2, 0.1), seed=3) == split
    assert split_by_patient(data, (0.7, 0.2, 0.1), seed=4) != split


def test_a_patients_scans_stay_in_one_split():
    patients = {f"pos{i}": f"patient{i // 2}" for i in range(8)} | {f"neg{i}": f"patient{4 + i // 2}"
                                                                     for i in range(8)}
    data = fake_data(positive=8, negative=8, patients=patients)
    for seed in range(5):
        split = split_by_patient(data, seed=seed)
        where = {}
        for name in ("train", "validation", "test"):
            for uid in split.of(name):
                where.setdefault(patients[uid], set()).add(name)
        assert all(len(names) == 1 for names in where.values())


def test_validation_gets_a_scan_with_nodules_and_one_patient_is_refused():
    split = split_by_patient(fake_data(positive=2, negative=6), seed=0)
    assert any(u.startswith("pos") for u in split.validation) and any(u.startswith("pos") for u in split.train)
    with pytest.raises(InputError, match="at least two"):
        split_by_patient(fake_data(positive=1, negative=0))


def test_slab_boxes_sit_where_the_annotated_nodules_are(prepared):
    data, scans = prepared
    for scan in scans:
        stack = scan.stack()
        for nodule in data.nodules.get(scan.uid, []):
            on = [i for i in range(len(scan)) if len(scan.boxes[i]) and
                  stack.z_extent_mm(i)[0] <= nodule.center[2] <= stack.z_extent_mm(i)[1]]
            assert on, f"nodule at {nodule.center} is on no slab"
            boxes = scan.boxes[on[0]]
            centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=-1)
            world = stack.pixel_to_world(on[0], centres[:, 0], centres[:, 1])
            distance = np.linalg.norm(world[:, :2] - np.asarray(nodule.center[:2]), axis=1)
            assert distance.min() < 1.0  # mm: world -> voxel -> slab pixel and back
            widths = boxes[np.argmin(distance), 2] - boxes[np.argmin(distance), 0]
            assert widths * stack.geometry.spacing[0] == pytest.approx(nodule.diameter_mm, abs=2.0)


def test_the_cache_is_reused_and_rebuilt_when_settings_change(luna, prepared, cache, tmp_path):
    data, scans = prepared
    again = SlabCache(cache.folder)
    reread = again.prepare(data, [s.uid for s in data.scans])
    assert (again.computed, again.reused) == (0, len(scans))
    for first, second in zip(scans, reread):
        np.testing.assert_array_equal(first.images, second.images)
        assert first.images.dtype == np.float16
        assert all(np.array_equal(a, b) for a, b in zip(first.boxes, second.boxes))
        assert first.geometry == second.geometry
        np.testing.assert_array_equal(first.windows, second.windows)
    changed = SlabCache(cache.folder, slab_config=SlabConfig(thickness_mm=6.0))
    changed.get(data.scans[0], data.nodules.get(data.scans[0].uid, []))
    assert (changed.computed, changed.reused) == (1, 0)


def test_excluded_findings_keep_their_slabs_out_of_the_negatives(luna, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(luna, copy)
    data = read_luna16(copy)
    scan = next(s for s in data.scans if s.uid in data.nodules)
    nodule = data.nodules[scan.uid][0]
    # a non-nodule of unknown size (-1) on the other lung, at the nodule's height
    with open(copy / "annotations_excluded.csv", "w") as handle:
        handle.write("seriesuid,coordX,coordY,coordZ,diameter_mm\n")
        handle.write(f"{scan.uid},{-nodule.center[0]},{nodule.center[1]},{nodule.center[2] + 30},-1\n")
    data = read_luna16(copy)
    assert "annotations_excluded" in data.files
    prepared = SlabCache(tmp_path / "cache").prepare(data, [scan.uid])[0]
    assert prepared.ignored.any() and not (prepared.ignored & prepared.positive).any()
    chosen = select_slabs([prepared], None)
    assert not any(prepared.ignored[i] for _, i in chosen)


def test_select_slabs_keeps_every_positive_and_reaches_the_ratio(prepared):
    _, scans = prepared
    positives = sum(int(s.positive.sum()) for s in scans)
    total = sum(len(s) for s in scans)
    assert 0 < positives < total
    everything = select_slabs(scans, None)
    assert len(everything) == total
    ratio = positives / (total - 4) + 0.05
    chosen = select_slabs(scans, ratio, seed=1)
    assert sum(len(scans[s].boxes[i]) > 0 for s, i in chosen) == positives
    assert positives / len(chosen) == pytest.approx(ratio, abs=0.03)
    assert chosen == select_slabs(scans, ratio, seed=1)
    assert chosen != select_slabs(scans, ratio, seed=2)


def test_slab_dataset_serves_padded_batches_with_normalised_targets(prepared):
    _, scans = prepared
    items = select_slabs(scans, None)
    dataset = SlabDataset(scans, items, AugmentConfig(), seed=0, channels=1)
    positive = next(i for i, (s, k) in enumerate(items) if len(scans[s].boxes[k]))
    samples = [dataset[positive], dataset[0]]
    for sample, (scan, slab) in zip(samples, [items[positive], items[0]]):  # each slab's lung window
        y0, x0, y1, x1 = scans[scan].windows[slab]
        assert sample.image.shape[1:] == (y1 - y0, x1 - x0)
    batch = collate_slabs(samples)
    height = max(s.image.shape[1] for s in samples)
    width = max(s.image.shape[2] for s in samples)
    assert batch.size == (-(-height // 32) * 32, -(-width // 32) * 32)
    assert batch.images.shape == (2, 1) + batch.size and batch.images.dtype == torch.float32
    boxes = batch.targets[0]["boxes"]
    assert len(boxes) >= 1 and ((boxes >= 0) & (boxes <= 1)).all()
    assert batch.targets[0]["labels"].dtype == torch.int64 and (batch.targets[0]["labels"] == 0).all()
    # the padding stays zero, the image is the (augmented) slab
    assert float(batch.images[:, :, samples[0].image.shape[1]:].abs().sum()) == 0.0
    # an epoch is repeatable and a new epoch draws new augmentations
    dataset.set_epoch(3)
    first = dataset[positive]
    assert torch.equal(first.image, dataset[positive].image)
    dataset.set_epoch(4)
    assert not torch.equal(first.image, dataset[positive].image)
    plain = SlabDataset(scans, items, None, channels=3)[positive]
    assert plain.image.shape[0] == 3
    np.testing.assert_array_equal(plain.image[1].numpy(), scans[items[positive][0]].images[items[positive][1]]
                                  .astype(np.float32))


def test_a_slab_is_served_as_its_window_with_the_boxes_moved_into_it():
    from radassist.lung.datasets import PreparedScan
    from radassist.volume import Geometry

    images = np.arange(2 * 64 * 96, dtype=np.float32).reshape(2, 64, 96) / (2 * 64 * 96)
    boxes = [np.array([[40, 20, 50, 30],  # inside the window
                       [5, 10, 20, 24],  # partly left of it: clipped at its left edge
                       [80, 50, 90, 60]], np.float32),  # outside: dropped
             np.zeros((0, 4), np.float32)]
    scan = PreparedScan(uid="a", images=images.astype(np.float16), boxes=boxes, ignored=np.zeros(2, bool),
                        z_ranges=np.array([[0, 6], [6, 12]]), geometry=Geometry(shape=(12, 64, 96)),
                        lung_fraction=np.ones(2, np.float32), windows=np.array([[8, 16, 40, 64], [0, 0, 64, 96]]))
    image, moved = scan.window_sample(0)
    np.testing.assert_array_equal(image, images[0, 8:40, 16:64].astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(moved, [[24, 12, 34, 22], [0, 2, 4, 16]])
    image, moved = scan.window_sample(1)
    assert image.shape == (64, 96) and moved.shape == (0, 4)
    served = SlabDataset([scan], [(0, 0)])[0]
    assert served.image.shape == (1, 32, 48) and served.boxes.shape == (2, 4)
