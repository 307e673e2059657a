"""The benchmark harness: warm-up and repeat counts, statistics, per-process memory, and the RESULTS.md merge.

Trivial cases defined here are measured in real child processes (the child imports this module by name);
nothing asserts how fast anything is.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest


from benchmarks import run as bench_run  # noqa: E402  (importable through pytest's pythonpath setting)
from benchmarks.harness import (BenchmarkCase, CaseEnv, MachineFacts, Measurement, TimingStats,  # noqa: E402
                                load_cases, measure_here, measure_in_subprocess, merge_results, read_results,
                                render_results, write_results)

THIS_MODULE = __name__
COUNTER_ENV = "RADASSIST_BENCH_TEST_COUNTER"
MIB = 2**20


def _count(event: str) -> None:
    with open(os.environ[COUNTER_ENV], "a") as log:
        log.write(event + "\n")


def _setup_counting(env: CaseEnv) -> str:
    _count(f"setup {env.backend} {env.device}")
    env.notes.append("counted")
    return "state"


def _run_counting(state: str) -> None:
    assert state == "state"
    _count("run")


def _setup_big(env: CaseEnv) -> np.ndarray:
    scratch = np.ones(200 * MIB // 8)  # 200 MiB touched during setup, then freed
    del scratch
    return np.ones(8 * MIB // 8)


def _run_small(state: np.ndarray) -> None:
    float(state.sum())


def _setup_fails(env: CaseEnv) -> None:
    raise RuntimeError("the input generator broke")


def _run_slowly(state: None) -> None:
    import time

    time.sleep(60)


CASES = [
    BenchmarkCase("counting", "test", "nothing", _setup_counting, _run_counting, backends=("torch", "onnx"),
                  uses_device=True, repeats=2, warmup=1),
    BenchmarkCase("big setup", "test", "200 MiB in setup", _setup_big, _run_small, repeats=2, warmup=0),
    BenchmarkCase("small", "test", "8 MiB", lambda env: np.ones(8 * MIB // 8), _run_small, repeats=2, warmup=0),
    BenchmarkCase("too slow", "test", "a minute", lambda env: None, _run_slowly, repeats=1, warmup=0, timeout_s=3.0),
    BenchmarkCase("fails", "test", "-", _setup_fails, _run_small, repeats=1, warmup=0),
]


@pytest.fixture
def counter(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "events.txt"
    monkeypatch.setenv(COUNTER_ENV, str(path))
    return path


# ------------------------------------------------------------------------------------------------ statistics


def test_timing_statistics_are_median_quartiles_and_range():
    stats = TimingStats.from_samples([3.0, 1.0, 5.0, 2.0, 4.0])
    assert (stats.n, stats.median_s, stats.q1_s, stats.q3_s, stats.min_s, stats.max_s) == (5, 3, 2, 4, 1, 5)
    assert stats.iqr_s == 2.0
    even = TimingStats.from_samples([1.0, 2.0, 3.0, 10.0])
    assert even.median_s == 2.5 and even.q1_s == 1.75 and even.q3_s == 4.75


def test_one_sample_has_no_spread_and_none_is_refused():
    single = TimingStats.from_samples([0.5])
    assert single.median_s == single.q1_s == single.q3_s == single.min_s == single.max_s == 0.5
    with pytest.raises(ValueError, match="no timed repeats"):
        TimingStats.from_samples([])


# ------------------------------------------------------------------------------------------------ measuring


def test_setup_runs_once_then_warmup_plus_repeats_in_a_child_process(counter):
    case = load_cases(THIS_MODULE)["counting"]
    m = measure_in_subprocess(THIS_MODULE, case, "onnx", "cpu", repeats=3, warmup=2)

    assert counter.read_text().splitlines() == ["setup onnx cpu"] + ["run"] * 5
    assert m.timing.n == 3 and m.warmup == 2
    assert m.timing.min_s <= m.timing.q1_s <= m.timing.median_s <= m.timing.q3_s <= m.timing.max_s
    assert (m.case, m.group, m.backend, m.device, m.notes) == ("counting", "test", "onnx", "cpu", "counted")
    assert m.machine == MachineFacts.current() and "torch" in m.versions
    assert m.peak_gpu_mib is None and m.load_average is not None and m.load_average >= 0


def test_case_defaults_apply_and_cpu_only_cases_report_the_cpu(counter):
    small = load_cases(THIS_MODULE)["small"]
    m = measure_in_subprocess(THIS_MODULE, small, "-", "cuda")  # a CPU-only case ignores the GPU request
    assert m.device == "cpu" and m.timing.n == 2 and m.warmup == 0


def test_peak_memory_belongs_to_each_case_alone(counter):
    cases = load_cases(THIS_MODULE)
    big = measure_in_subprocess(THIS_MODULE, cases["big setup"], "-")
    small = measure_in_subprocess(THIS_MODULE, cases["small"], "-")  # measured after the big one

    assert big.peak_rss_mib - big.baseline_rss_mib >= 190
    assert small.peak_rss_mib < big.peak_rss_mib - 150  # a fresh process: the big case did not pollute it
    if big.runs_peak_rss_mib is not None:  # Linux resets the high-water mark after setup
        assert big.runs_peak_rss_mib < big.peak_rss_mib - 150
        assert big.runs_peak_rss_mib >= big.baseline_rss_mib + 7  # the 8 MiB kept for the runs


def test_a_failing_case_reports_the_childs_error(counter):
    with pytest.raises(RuntimeError, match="(?s)benchmark fails.*the input generator broke"):
        measure_in_subprocess(THIS_MODULE, load_cases(THIS_MODULE)["fails"], "-")


def test_a_case_past_its_time_limit_is_a_failure_not_a_crash():
    with pytest.raises(RuntimeError, match="too slow.*past its 3 s limit"):
        measure_in_subprocess(THIS_MODULE, load_cases(THIS_MODULE)["too slow"], "-")


def test_repeats_must_be_positive():
    with pytest.raises(ValueError, match="repeats >= 1"):
        measure_in_subprocess(THIS_MODULE, load_cases(THIS_MODULE)["small"], "-", repeats=0)


# ------------------------------------------------------------------------------------------------ RESULTS.md


def measurement(case: str, backend: str = "-", device: str = "cpu", group: str = "io", gpu: str | None = None,
                median: float = 1.0, date: str = "2025-01-01T00:00:00+00:00") -> Measurement:
    machine = MachineFacts("Test CPU", 4, 4, 16.0, gpu, "Linux")
    return Measurement(case=case, group=group, size="64^3", backend=backend, device=device, warmup=1,
                       timing=TimingStats.from_samples([median * 0.9, median, median * 1.2]), peak_rss_mib=500.0,
                       baseline_rss_mib=100.0, runs_peak_rss_mib=300.0,
                       peak_gpu_mib=None if device == "cpu" else 1234.0, load_average=0.5, notes="", machine=machine,
                       versions={"python": "3.11", "torch": "2.13"}, date_utc=date)


def test_merge_replaces_only_rows_measured_again():
    old = [measurement("read"), measurement("write"), measurement("write", gpu="H200"),
           measurement("unet", "torch", "cuda", "inference", gpu="H200")]
    new = [measurement("write", median=2.0, date="2025-02-01T00:00:00+00:00")]

    merged = merge_results(old, new)
    assert len(merged) == 4
    writes = [m for m in merged if m.case == "write"]
    assert sorted(m.timing.median_s for m in writes) == [1.0, 2.0]  # the other machine's row is kept
    assert {m.case for m in merged} == {"read", "write", "unet"}


def test_results_file_round_trips_and_keeps_rows_not_rerun(tmp_path):
    path = tmp_path / "RESULTS.md"
    write_results(path, [measurement("read"), measurement("unet", "torch", group="inference"),
                         measurement("unet", "onnx", group="inference")])
    first = read_results(path)
    assert len(first) == 3 and measurement("read") in first  # every field survives the round trip

    rows = write_results(path, [measurement("unet", "onnx", group="inference", median=0.5)])
    assert len(rows) == 3
    again = {(m.case, m.backend): m.timing.median_s for m in read_results(path)}
    assert again == {("read", "-"): 1.0, ("unet", "torch"): 1.0, ("unet", "onnx"): 0.5}
    assert list(tmp_path.iterdir()) == [path]  # written atomically, no temporary left


def test_rendered_markdown_has_a_table_per_group_and_the_machine(tmp_path):
    text = render_results([measurement("read"), measurement("unet", "torch", "cuda", "inference", gpu="H200")])
    assert "## io\n" in text and "## inference\n" in text
    read_row = next(line for line in text.splitlines() if line.startswith("| read |"))
    cells = [c.strip() for c in read_row.strip("|").split("|")]
    assert cells[:13] == ["read", "64^3", "-", "cpu", "3 (+1)", "1", "0.15", "0.9 - 1.2", "500", "300", "100",
                          "-", "0.5"]
    assert "| 1,234 |" in next(line for line in text.splitlines() if line.startswith("| unet |"))
    assert "Test CPU, 4/4 cores, 16 GiB RAM, H200" in text
    assert "torch 2.13" in text


def test_an_unreadable_results_file_is_refused(tmp_path):
    hand_written = tmp_path / "RESULTS.md"
    hand_written.write_text("# results\n| a | b |\n")
    with pytest.raises(ValueError, match="no '<!-- benchmark-data' block"):
        read_results(hand_written)
    hand_written.write_text("<!-- benchmark-data\n[{\"case\": 1}]\n-->\n")
    with pytest.raises(ValueError, match="cannot be read"):
        read_results(hand_written)


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_runs_the_chosen_cases_and_keeps_the_others(tmp_path, counter, capsys):
    results = tmp_path / "RESULTS.md"
    write_results(results, [measurement("from an earlier run")])

    code = bench_run.main(["--module", THIS_MODULE, "--only", "COUNT", "--backend", "torch", "--repeats", "1",
                           "--warmup", "0", "--results", str(results)])
    assert code == 0
    assert counter.read_text().splitlines() == ["setup torch cpu", "run"]  # the onnx backend was not asked for
    rows = {(m.case, m.backend) for m in read_results(results)}
    assert rows == {("from an earlier run", "-"), ("counting", "torch")}
    assert "1 rows measured, 1 kept" in capsys.readouterr().out


def test_cli_explains_when_no_case_matches(tmp_path, capsys):
    code = bench_run.main(["--module", THIS_MODULE, "--only", "nothing like it", "--results",
                           str(tmp_path / "R.md")])
    assert code == 2 and "no case matches" in capsys.readouterr().err
    assert not (tmp_path / "R.md").exists()


# ------------------------------------------------------------------------------------------------ real cases


def test_the_registered_cases_cover_io_phantoms_and_both_inference_backends():
    cases = load_cases("benchmarks.cases")
    groups = {case.group for case in cases.values()}
    assert {"io", "synthetic", "inference"} <= groups
    unet = cases["MONAI 2-D UNet inference"]
    assert unet.backends == ("torch", "onnx") and unet.uses_device


def test_the_dicom_case_reads_the_real_series(test_data, monkeypatch):
    monkeypatch.setenv("RADASSIST_TEST_DATA", str(test_data))
    case = load_cases("benchmarks.cases")["read DICOM series (real CT)"]
    assert case.unavailable() is None
    raw = measure_here(case, "-", "cpu", repeats=1, warmup=0)  # the case asserts the 20x512x512 shape itself
    assert len(raw["samples"]) == 1 and raw["device"] == "cpu"


def test_cli_keeps_the_rows_of_cases_that_worked_when_one_fails(tmp_path, counter, capsys):
    results = tmp_path / "RESULTS.md"
    code = bench_run.main(["--module", THIS_MODULE, "--only", "fails", "--only", "small", "--repeats", "1",
                           "--results", str(results)])
    assert code == 1
    assert [m.case for m in read_results(results)] == ["small"]
    err = capsys.readouterr().err
    assert "the input generator broke" in err and "failed: fails [-]" in err


def test_cli_refuses_a_device_this_machine_lacks(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    code = bench_run.main(["--module", THIS_MODULE, "--device", "cuda", "--results", str(tmp_path / "R.md")])
    assert code == 2 and "no CUDA GPU" in capsys.readouterr().err


def test_rows_written_before_a_column_existed_still_read(tmp_path):
    import json

    row = measurement("old").to_json()
    del row["load_average"], row["runs_peak_rss_mib"]
    row["column_since_removed"] = 1
    path = tmp_path / "RESULTS.md"
    path.write_text(f"# old\n\n<!-- benchmark-data\n{json.dumps([row])}\n-->\n")
    (old,) = read_results(path)
    assert old.case == "old" and old.load_average is None and old.runs_peak_rss_mib is None
