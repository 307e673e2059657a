"""The one progress/cancel interface: sub-ranges map into the parent range, cancel stops the next report."""

from __future__ import annotations

import pytest

from radassist.runtime.progress import Cancelled, Progress


def test_sub_ranges_report_in_the_parent_scale() -> None:
    seen: list[tuple[float, str]] = []
    progress = Progress(lambda f, m: seen.append((round(f, 6), m)))
    first, second = progress.sub(0.0, 0.25), progress.sub(0.25, 1.0)
    first.update(1.0, "read")
    second.sub(0.5, 1.0).update(0.5, "infer")
    assert seen == [(0.25, "read"), (0.8125, "infer")]


def test_cancel_raises_at_the_next_report_everywhere() -> None:
    progress = Progress()
    child = progress.sub(0.5, 1.0)
    child.update(0.1)
    progress.cancel()
    assert child.cancelled
    with pytest.raises(Cancelled):
        child.update(0.2)


def test_steps_reports_after_each_item() -> None:
    seen: list[float] = []
    items = list(Progress(lambda f, m: seen.append(f)).steps(["a", "b", "c", "d"]))
    assert items == ["a", "b", "c", "d"]
    assert seen == [0.0, 0.25, 0.5, 0.75, 1.0]
