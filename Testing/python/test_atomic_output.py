"""Outputs are all-or-nothing: a failing writer or command leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from radassist.errors import OutputError
from radassist.io.atomic import RunOutput, atomic_path, ensure_writable_dir, full_suffix


def test_atomic_path_keeps_the_compound_suffix_for_format_detection(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "lungs.seg.nrrd") as temp:
        assert temp.name.endswith(".seg.nrrd") and temp.parent == tmp_path
        temp.write_text("x")
    assert (tmp_path / "lungs.seg.nrrd").read_text() == "x"
    assert full_suffix(Path("a/b.nii.gz")) == ".nii.gz" and full_suffix(Path("n.mrk.json")) == ".mrk.json"


def test_atomic_path_failure_leaves_no_file(tmp_path: Path) -> None:
    (tmp_path / "old.csv").write_text("previous")
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "old.csv") as temp:
            temp.write_text("half")
            raise RuntimeError("writer crashed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.csv"]
    assert (tmp_path / "old.csv").read_text() == "previous"


def test_run_output_publishes_everything_or_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ValueError):
        with RunOutput(out) as run:
            run.path("a.txt").write_text("a")
            raise ValueError("bad input found half way")
    assert not out.exists()  # the run made the folder, and a failed run leaves nothing behind, not even that

    out.mkdir()
    (out / "mine.txt").write_text("kept")
    with pytest.raises(ValueError):
        with RunOutput(out, overwrite=True) as run:
            run.path("a.txt").write_text("a")
            raise ValueError("bad input found half way")
    assert [p.name for p in out.iterdir()] == ["mine.txt"]  # a folder that was there stays, with what it held
    (out / "mine.txt").unlink()

    with RunOutput(out) as run:
        run.path("a.txt").write_text("a")
        run.path("sub/b.txt").write_text("b")
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == ["a.txt", "sub/b.txt"]
    assert [p.name for p in out.iterdir() if p.name.startswith(".radassist-tmp")] == []


def test_unwritable_folder_is_reported(unwritable_folder: Path) -> None:
    with pytest.raises(OutputError, match="not writable|cannot create") as info:
        ensure_writable_dir(unwritable_folder)
    assert str(unwritable_folder) in str(info.value)


def test_output_path_that_is_a_file_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="file.txt"):
        ensure_writable_dir(blocker)
    with pytest.raises(OutputError, match="cannot create"):
        ensure_writable_dir(blocker / "sub")
