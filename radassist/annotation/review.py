"""Review state of a result: which segments and boxes a person has looked at, approved or flagged.

The states are Slicer's own (``Segmentation.Status`` tag values, :class:`ReviewStatus`); people say "approved"
where Slicer says "completed", so :func:`parse_status` accepts both words. A box (ROI markup) keeps its status in
the markup attribute :data:`ROI_STATUS_ATTRIBUTE` in Slicer and in the control point description in a
``.mrk.json`` (see :mod:`radassist.results.markups`).

The decisions the panels need live here so they are the same headless and in Slicer: what is left to review,
which item comes next, and which items may no longer be edited (approved ones, until someone reopens them; the
complaint this answers is approved labels being changed again by accident).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from radassist.results.detections import Detections
from radassist.results.labelmap import LabelMap
from radassist.results.segments import ReviewStatus

ROI_STATUS_ATTRIBUTE = "RadAssist.Status"
"""MRML node attribute that holds an ROI markup's review status (a ReviewStatus value); the same attribute the
Slicer bridge writes (radassist.slicer.conversions.STATUS_ATTRIBUTE)."""

_ALIASES = {  # keyed without spaces, '-' or '_': "not reviewed", "Not-Started" and "InProgress" all match
    "approved": ReviewStatus.COMPLETED, "completed": ReviewStatus.COMPLETED, "done": ReviewStatus.COMPLETED,
    "notreviewed": ReviewStatus.NOT_STARTED, "notstarted": ReviewStatus.NOT_STARTED, "": ReviewStatus.NOT_STARTED,
    "inprogress": ReviewStatus.IN_PROGRESS, "flagged": ReviewStatus.FLAGGED,
}

STATUS_LABELS = {ReviewStatus.NOT_STARTED: "not reviewed", ReviewStatus.IN_PROGRESS: "in progress",
                 ReviewStatus.COMPLETED: "approved", ReviewStatus.FLAGGED: "flagged"}
"""The words the panels show for each state."""


def parse_status(text: str | ReviewStatus) -> ReviewStatus:
    """A status from Slicer's value or a person's word ("approved", "not reviewed", ...); ValueError otherwise."""
    if isinstance(text, ReviewStatus):
        return text
    key = "".join(str(text).lower().replace("-", " ").replace("_", " ").split())
    if key in _ALIASES:
        return _ALIASES[key]
    raise ValueError(f"unknown review status {text!r}; use one of: {', '.join(STATUS_LABELS.values())}")


def is_approved(status: ReviewStatus | str) -> bool:
    return parse_status(status) is ReviewStatus.COMPLETED


def may_edit(status: ReviewStatus | str) -> bool:
    """Approved items are locked: reopen them (set them back to in progress) before editing."""
    return not is_approved(status)


@dataclass(frozen=True)
class ReviewItem:
    """One thing to review: a segment (by its id) or a box (by its index in the Detections)."""

    kind: str  # "segment" or "box"
    key: str   # segment id, or the box index as text
    name: str
    status: ReviewStatus


def review_items(result: LabelMap | Detections) -> list[ReviewItem]:
    """The reviewable items of a result, in display order (segments as listed, boxes as listed)."""
    if isinstance(result, LabelMap):
        return [ReviewItem("segment", str(s.segment_id), s.name, s.status) for s in result.segments]
    if isinstance(result, Detections):
        return [ReviewItem("box", str(index), f"{d.label} {index + 1}", d.status)
                for index, d in enumerate(result.items)]
    raise TypeError(f"review works on a LabelMap or Detections, not {type(result).__name__}")


def next_not_approved(items: Sequence[ReviewItem], current: str | None = None,
                      wrap: bool = True) -> ReviewItem | None:
    """The first item after ``current`` (a key) that is not approved; from the start when ``current`` is None or
    unknown. With ``wrap`` the search continues from the top; None when everything is approved."""
    keys = [item.key for item in items]
    start = keys.index(current) + 1 if current in keys else 0
    order = [*items[start:], *(items[:start] if wrap else ())]
    return next((item for item in order if not is_approved(item.status)), None)


def set_status(result: LabelMap | Detections, key: str, status: ReviewStatus | str) -> None:
    """Set the status of one segment (by id or name) or box (by index) in place; KeyError for an unknown key."""
    status = parse_status(status)
    if isinstance(result, LabelMap):
        for segment in result.segments:
            if key in (segment.segment_id, segment.name):
                segment.status = status
                return
        raise KeyError(f"no segment {key!r}; have {[s.segment_id for s in result.segments]}")
    if isinstance(result, Detections):
        try:
            index = int(key)
            result.items[index].status = status
        except (ValueError, IndexError):
            raise KeyError(f"no box {key!r}; boxes are numbered 0..{len(result.items) - 1}") from None
        return
    raise TypeError(f"review works on a LabelMap or Detections, not {type(result).__name__}")


def review_summary(items: Sequence[ReviewItem]) -> dict[str, int]:
    """How many items are in each state, keyed by the panel's words, plus the total."""
    counts = Counter(STATUS_LABELS[item.status] for item in items)
    return {label: counts.get(label, 0) for label in STATUS_LABELS.values()} | {"total": len(items)}


def all_approved(result: LabelMap | Detections) -> bool:
    """True when there is something and every item is approved (an empty result needs no review)."""
    return all(is_approved(item.status) for item in review_items(result))


def unapproved_names(result: LabelMap | Detections) -> list[str]:
    """Names of the items still to review (for the export warning: exporting unreviewed labels is allowed, but
    the provenance records which ones they were)."""
    return [item.name for item in review_items(result) if not is_approved(item.status)]
