"""Review state: the words people use map onto Slicer's status values, stepping to the next result that is not
approved, and approved items being locked. Statuses survive a .seg.nrrd and a .mrk.json round trip."""

from __future__ import annotations

import numpy as np
import pytest

from radassist.annotation.review import (ReviewItem, all_approved, is_approved, may_edit, next_not_approved,
                                         parse_status, review_items, review_summary, set_status, unapproved_names)
from radassist.results import (Detection, Detections, LabelMap, ReviewStatus, Segment, read_roi_markups,
                               read_seg_nrrd, write_roi_markups, write_seg_nrrd)
from radassist.volume import Geometry


def _labelmap() -> LabelMap:
    labels = np.zeros((4, 8, 8), dtype=np.uint8)
    labels[1, 1:3, 1:3], labels[2, 4:6, 4:6], labels[3, 6:8, 0:2] = 1, 2, 3
    segments = [Segment("liver", 1), Segment("liver tumour", 2, status=ReviewStatus.COMPLETED),
                Segment("vessel", 3, status=ReviewStatus.FLAGGED)]
    return LabelMap(labels, Geometry(shape=(4, 8, 8)), segments)


@pytest.mark.parametrize("text, status", [
    ("approved", ReviewStatus.COMPLETED), ("completed", ReviewStatus.COMPLETED), ("Approved", ReviewStatus.COMPLETED),
    ("not reviewed", ReviewStatus.NOT_STARTED), ("notstarted", ReviewStatus.NOT_STARTED),
    ("in-progress", ReviewStatus.IN_PROGRESS), ("inprogress", ReviewStatus.IN_PROGRESS),
    ("flagged", ReviewStatus.FLAGGED), (ReviewStatus.FLAGGED, ReviewStatus.FLAGGED)])
def test_status_words(text, status) -> None:
    assert parse_status(text) is status


def test_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown review status"):
        parse_status("maybe")


def test_approved_items_are_locked() -> None:
    assert is_approved("approved") and not may_edit("completed")
    assert may_edit(ReviewStatus.FLAGGED) and may_edit("not reviewed")


def test_next_not_approved_steps_and_wraps() -> None:
    items = [ReviewItem("box", str(i), f"n{i}", s) for i, s in enumerate(
        [ReviewStatus.COMPLETED, ReviewStatus.NOT_STARTED, ReviewStatus.COMPLETED, ReviewStatus.FLAGGED])]
    assert next_not_approved(items).key == "1"
    assert next_not_approved(items, current="1").key == "3"
    assert next_not_approved(items, current="3").key == "1"  # wraps to the top
    assert next_not_approved(items, current="3", wrap=False) is None
    assert next_not_approved(items, current="unknown").key == "1"
    done = [ReviewItem("box", "0", "a", ReviewStatus.COMPLETED)]
    assert next_not_approved(done) is None and next_not_approved([]) is None


def test_segments_are_reviewed_by_id_and_name() -> None:
    labelmap = _labelmap()
    items = review_items(labelmap)
    assert [i.key for i in items] == ["Segment_1", "Segment_2", "Segment_3"]
    assert next_not_approved(items, current="Segment_1").name == "vessel"
    assert review_summary(items) == {"not reviewed": 1, "in progress": 0, "approved": 1, "flagged": 1, "total": 3}
    set_status(labelmap, "liver", "approved")
    set_status(labelmap, "Segment_3", "approved")
    assert all_approved(labelmap) and unapproved_names(labelmap) == []
    with pytest.raises(KeyError):
        set_status(labelmap, "spleen", "approved")


def test_boxes_are_reviewed_by_index() -> None:
    boxes = Detections([Detection((0, 0, 0), (5, 5, 5), 0.9), Detection((20, 0, 0), (5, 5, 5), 0.4)])
    set_status(boxes, "0", "approved")
    assert next_not_approved(review_items(boxes)).key == "1"
    assert unapproved_names(boxes) == ["nodule 2"]
    with pytest.raises(KeyError):
        set_status(boxes, "7", "flagged")


def test_statuses_survive_slicer_files(tmp_path) -> None:
    labelmap = _labelmap()
    write_seg_nrrd(labelmap, tmp_path / "s.seg.nrrd")
    assert [s.status for s in read_seg_nrrd(tmp_path / "s.seg.nrrd").segments] == [s.status for s in labelmap.segments]
    boxes = Detections([Detection((0, 0, 0), (5, 5, 5), 0.9, status=ReviewStatus.FLAGGED),
                        Detection((20, 0, 0), (5, 5, 5), 0.4, status=ReviewStatus.COMPLETED)])
    write_roi_markups(boxes, tmp_path / "b.mrk.json")
    back = read_roi_markups(tmp_path / "b.mrk.json")
    assert next_not_approved(review_items(back)).key == "0"
    assert [d.status for d in back.items] == [ReviewStatus.FLAGGED, ReviewStatus.COMPLETED]


def test_roi_status_attribute_is_the_bridges() -> None:
    from radassist.annotation.review import ROI_STATUS_ATTRIBUTE
    from radassist.slicer.conversions import STATUS_ATTRIBUTE, status_from_slicer, status_to_slicer

    assert ROI_STATUS_ATTRIBUTE == STATUS_ATTRIBUTE
    for status in ReviewStatus:  # the panel reads Slicer's enum and shows the engine's words
        assert parse_status(status_from_slicer(status_to_slicer(status)).value) is status
