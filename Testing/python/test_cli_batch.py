"""`radassist batch` as a user runs it: the task command's own options, the task command's files per case, exit code
1 with failures.csv when a case fails, resuming on a second run, and clear refusals (exit 2, nothing written)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from radassist import cli
from radassist.commands import batch as batch_command
from radassist.commands import lung as lung_command

DETECT_FILES = ["nodules.csv", "nodules.mrk.json", "nodules.png", "result.json"]


@pytest.fixture(autouse=True)
def batch_and_lung_commands(monkeypatch, tmp_path_factory):
    """`batch` and `lung` on the real CLI (added here if the command list does not have them yet), and a model
    folder of our own so no installed weights are found."""
    missing = tuple(m for m in (lung_command, batch_command) if m not in cli.COMMAND_MODULES)
    monkeypatch.setattr(cli, "COMMAND_MODULES", cli.COMMAND_MODULES + missing)
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("RADASSIST_CATALOGS", raising=False)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """Two small chest CT phantoms, a file that is not an image, and a CSV list of the three."""
    from radassist.io import write_volume
    from radassist.synthetic.chest import ChestPhantomConfig, make_chest_ct

    folder = tmp_path_factory.mktemp("cohort")
    config = ChestPhantomConfig(shape=(32, 96, 128), spacing=(2.0, 2.0, 2.5), nodule_count=(1, 2),
                                nodule_diameter_mm=(8.0, 20.0))
    for seed in (5, 6):
        write_volume(make_chest_ct(seed, config).volume, folder / f"ct{seed}.nrrd")
    (folder / "broken.nrrd").write_text("not an image")
    (folder / "cases.csv").write_text("id,path\npatient-a,ct5.nrrd\npatient-b,broken.nrrd\npatient-c,ct6.nrrd\n")
    return folder


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_help_offers_the_task_commands_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["batch", "--help"])
    text = capsys.readouterr().out
    assert "lung" in text and "liver" in text and "torchrun" in text
    with pytest.raises(SystemExit):
        cli.main(["batch", "lung", "--help"])
    text = capsys.readouterr().out
    for option in ("--inputs", "--out", "--engine", "--threshold", "--max-nodules", "--device", "--threads"):
        assert option in text
    assert "--series" not in text and "--server" not in text and "radassist lung detect" in text


def test_batch_writes_what_detect_writes_records_failures_and_resumes(cohort, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, stderr = run(capsys, "batch", "lung", "--inputs", str(cohort / "cases.csv"), "--out", str(out),
                               "--engine", "classic", "--threshold", "0.3")
    assert code == 1, stderr  # one case failed
    assert "3 case(s): 2 done now, 0 already done (skipped), 1 failed" in stdout
    assert "failed: patient-b" in stdout and "broken.nrrd" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["batch_report.json", "failures.csv", "patient-a", "patient-c",
                                                     "predictions.csv"]
    with (out / "failures.csv").open() as handle:
        assert [row["id"] for row in csv.DictReader(handle)] == ["patient-b"]
    combined = (out / "predictions.csv").read_text().splitlines()  # every finished case's nodules, LUNA16 columns
    assert combined[0] == "seriesuid,coordX,coordY,coordZ,score,diameter_mm"  # LUNA16 columns; the classical
    # detector's number is a score
    assert combined[1:] == [line for case in ("patient-a", "patient-c")
                            for line in (out / case / "nodules.csv").read_text().splitlines()[1:]]
    assert len(combined) > 1

    single = tmp_path / "single"  # the same scan through `radassist lung detect`: the same files and findings
    code, _, stderr = run(capsys, "lung", "detect", str(cohort / "ct5.nrrd"), "--out", str(single), "--engine",
                          "classic", "--threshold", "0.3")
    assert code == 0, stderr
    assert sorted(p.name for p in (out / "patient-a").iterdir()) == DETECT_FILES == sorted(
        p.name for p in single.iterdir())
    assert (out / "patient-a" / "nodules.csv").read_text() == (single / "nodules.csv").read_text()
    record = json.loads((out / "patient-a" / "result.json").read_text())
    assert record["command"] == "lung detect" and record["arguments"]["threshold"] == 0.3
    assert record["summary"]["engine"] == "classic" and record["inputs"] == [str(cohort / "ct5.nrrd")]

    (cohort / "fixed.nrrd").write_bytes((cohort / "ct6.nrrd").read_bytes())  # the user fixes the broken case
    (cohort / "cases.csv").write_text("id,path\npatient-a,ct5.nrrd\npatient-b,fixed.nrrd\npatient-c,ct6.nrrd\n")
    code, stdout, stderr = run(capsys, "batch", "lung", "--inputs", str(cohort / "cases.csv"), "--out", str(out),
                               "--engine", "classic", "--threshold", "0.3")
    assert code == 0, stderr
    assert "3 case(s): 1 done now, 2 already done (skipped), 0 failed" in stdout
    assert sorted(p.name for p in (out / "patient-b").iterdir()) == DETECT_FILES
    assert (out / "failures.csv").read_text().strip() == "id,input,rank,error_type,message"
    summary = json.loads((out / "batch_report.json").read_text())
    assert summary["counts"] == {"total": 3, "done": 1, "skipped": 2, "failed": 0}
    combined = (out / "predictions.csv").read_text().splitlines()  # the resumed run combines all three, in order
    assert combined[1:] == [line for case in ("patient-a", "patient-b", "patient-c")
                            for line in (out / case / "nodules.csv").read_text().splitlines()[1:]]


@pytest.mark.parametrize("extra, message", [
    (["--threshold", "2"], "--threshold must be within 0..1"),
    (["--engine", "detr"], "lung-detr"),
])
def test_bad_options_exit_2_before_anything_is_written(cohort, tmp_path, capsys, extra, message):
    listing = tmp_path / "list.txt"
    listing.write_text(f"{cohort / 'ct5.nrrd'}\n")
    out = tmp_path / "out"
    code, _, stderr = run(capsys, "batch", "lung", "--inputs", str(listing), "--out", str(out), *extra)
    assert code == 2 and message in stderr and "radassist batch lung: error:" in stderr
    assert not out.exists()


def test_bad_lists_and_missing_liver_weights_exit_2(cohort, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, stderr = run(capsys, "batch", "lung", "--inputs", str(tmp_path / "nope.txt"), "--out", str(out))
    assert code == 2 and "nope.txt: case list not found" in stderr and not out.exists()
    twice = tmp_path / "twice.txt"
    twice.write_text("a/ct.nrrd\nb/ct.nrrd\n")
    code, _, stderr = run(capsys, "batch", "lung", "--inputs", str(twice), "--out", str(out))
    assert code == 2 and "both give case id 'ct'" in stderr and not out.exists()
    listing = tmp_path / "list.txt"
    listing.write_text(f"{cohort / 'ct5.nrrd'}\n")
    code, _, stderr = run(capsys, "batch", "liver", "--inputs", str(listing), "--out", str(out))
    assert code == 2 and "no trained liver-munet weights are installed" in stderr and not out.exists()
