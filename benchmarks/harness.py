"""Measure a benchmark case in a fresh process and keep the results in benchmarks/RESULTS.md.

Each (case, backend) runs in its own Python process, so the peak resident memory it reports (the kernel's
high-water mark, VmHWM) belongs to that case alone and not to whatever ran before it. Inside that process the
case is set up once, run ``warmup`` times untimed and ``repeats`` times timed. The parent collects the numbers,
the machine facts and the package versions, and rewrites RESULTS.md: a Markdown table per case group for people,
and a JSON block at the end that the next run reads back to keep the rows it did not re-run.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from radassist.io.atomic import atomic_path
from radassist.runtime.run_record import package_versions

NO_BACKEND = "-"
_DATA_START = "<!-- benchmark-data"
_OPTIONAL_COLUMNS = ("runs_peak_rss_mib", "peak_gpu_mib", "load_average")
_DATA_PATTERN = re.compile(re.escape(_DATA_START) + r"\n(.*?)\n-->", re.DOTALL)


@dataclass
class CaseEnv:
    """What a case's setup is given: the backend and device to use, a scratch folder, and a place for notes."""

    backend: str
    device: str
    scratch: Path
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BenchmarkCase:
    """One thing to time: ``setup(env) -> state`` once (untimed), then ``run(state)`` repeatedly (timed).

    ``backends`` lists the inference engines the case is measured with (each one a separate row); cases that
    run no network keep the single "-". ``uses_device`` is False for CPU-only work, which then always reports
    "cpu". ``unavailable()`` returns why the case cannot run here (missing data), or None.
    """

    name: str
    group: str
    size: str
    setup: Callable[[CaseEnv], Any]
    run: Callable[[Any], None]
    backends: tuple[str, ...] = (NO_BACKEND,)
    uses_device: bool = False
    repeats: int = 5
    warmup: int = 1
    unavailable: Callable[[], str | None] | None = None
    timeout_s: float = 900.0  # for the whole case process (setup, warm-up and repeats); then it counts as failed

    def device_for(self, requested: str) -> str:
        return requested if self.uses_device else "cpu"


@dataclass(frozen=True)
class TimingStats:
    """Wall-time statistics of the timed repeats, in seconds."""

    n: int
    median_s: float
    q1_s: float
    q3_s: float
    min_s: float
    max_s: float

    @property
    def iqr_s(self) -> float:
        return self.q3_s - self.q1_s

    @classmethod
    def from_samples(cls, samples: Sequence[float]) -> "TimingStats":
        """Median, quartiles (inclusive method: they stay within the samples) and range; needs one sample."""
        if not samples:
            raise ValueError("no timed repeats to summarise")
        values = sorted(float(s) for s in samples)
        if len(values) == 1:
            q1 = q3 = values[0]
        else:
            q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
        return cls(len(values), statistics.median(values), q1, q3, values[0], values[-1])


@dataclass(frozen=True)
class MachineFacts:
    """The machine a measurement was made on."""

    cpu_model: str
    logical_cores: int
    usable_cores: int
    ram_gib: float
    gpu: str | None
    os: str

    @property
    def key(self) -> str:
        """A short stable id: the same hardware gives the same key, so its rows replace each other."""
        text = f"{self.cpu_model}|{self.logical_cores}|{self.usable_cores}|{self.ram_gib:.0f}|{self.gpu}"
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    def describe(self) -> str:
        gpu = f", {self.gpu}" if self.gpu else ""
        return f"{self.cpu_model}, {self.usable_cores}/{self.logical_cores} cores, {self.ram_gib:.0f} GiB RAM{gpu}"

    @classmethod
    def current(cls) -> "MachineFacts":
        return cls(_cpu_model(), os.cpu_count() or 1, _usable_cores(), _ram_gib(), _gpu_name(), platform.platform())


@dataclass(frozen=True)
class Measurement:
    """One row of RESULTS.md: a case on one backend and device, on one machine, at one time."""

    case: str
    group: str
    size: str
    backend: str
    device: str
    warmup: int
    timing: TimingStats
    peak_rss_mib: float
    baseline_rss_mib: float
    runs_peak_rss_mib: float | None
    peak_gpu_mib: float | None
    load_average: float | None  # 1-minute load of the machine before setup: other work makes timings noisy
    notes: str
    machine: MachineFacts
    versions: dict[str, str]
    date_utc: str

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Rows with the same key replace each other: same case, backend, device and hardware."""
        return self.case, self.backend, self.device, self.machine.key

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Measurement":
        """Read a recorded row; columns added since it was written read as None, unknown ones are dropped."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values.update({name: None for name in _OPTIONAL_COLUMNS if name not in values})
        values["timing"] = TimingStats(**values["timing"])
        values["machine"] = MachineFacts(**values["machine"])
        return cls(**values)


# ------------------------------------------------------------------------------------------------ machine facts


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _ram_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (AttributeError, ValueError, OSError):
        return 0.0


def _gpu_name() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))


# ------------------------------------------------------------------------------------------------ memory


def _status_kib(field_name: str) -> float | None:
    """A memory line of /proc/self/status (Linux), in KiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return float(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_mib() -> float:
    """This process's resident-memory high-water mark: VmHWM on Linux, else getrusage's ru_maxrss."""
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib / 1024
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


def reset_peak_rss() -> bool:
    """Restart the high-water mark at the current RSS (Linux: clear_refs 5); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def current_rss_mib() -> float:
    kib = _status_kib("VmRSS")
    return kib / 1024 if kib is not None else peak_rss_mib()


# ------------------------------------------------------------------------------------------------ measuring


def load_cases(module: str) -> dict[str, BenchmarkCase]:
    """The cases a module registers in its ``CASES`` list, by name."""
    cases = importlib.import_module(module).CASES
    by_name = {case.name: case for case in cases}
    if len(by_name) != len(cases):
        raise ValueError(f"{module}.CASES has two cases with the same name")
    return by_name


def measure_here(case: BenchmarkCase, backend: str, device: str, repeats: int, warmup: int) -> dict[str, Any]:
    """Set up, warm up and time ``case`` in this process; returns the raw numbers (run in a fresh process)."""
    device = case.device_for(device)
    on_gpu = device.startswith("cuda")
    torch = importlib.import_module("torch") if on_gpu else None
    baseline = current_rss_mib()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    with tempfile.TemporaryDirectory(prefix="radassist-bench-") as scratch:
        env = CaseEnv(backend, device, Path(scratch))
        state = case.setup(env)
        if torch is not None:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        setup_peak = peak_rss_mib()
        runs_tracked = reset_peak_rss()
        for _ in range(warmup):
            case.run(state)
        if torch is not None:
            torch.cuda.synchronize()
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            case.run(state)
            if torch is not None:
                torch.cuda.synchronize()
            samples.append(time.perf_counter() - start)
        gpu_peak = torch.cuda.max_memory_allocated() / 2**20 if torch is not None else None
        runs_peak = peak_rss_mib()
        del state
    return {"samples": samples, "peak_rss_mib": max(setup_peak, runs_peak), "baseline_rss_mib": baseline,
            "runs_peak_rss_mib": runs_peak if runs_tracked else None, "peak_gpu_mib": gpu_peak, "load": load,
            "notes": "; ".join(env.notes), "device": device}


def _child_pythonpath() -> str:
    """The parent's import path, so the child imports the same case modules (a test's too)."""
    entries = [os.path.abspath(p) if p else os.getcwd() for p in sys.path]
    return os.pathsep.join(dict.fromkeys(entries))


def measure_in_subprocess(module: str, case: BenchmarkCase, backend: str, device: str = "cpu",
                          repeats: int | None = None, warmup: int | None = None,
                          machine: MachineFacts | None = None, timeout_s: float | None = None) -> Measurement:
    """Measure one (case, backend) in a fresh Python process and describe it as a :class:`Measurement`.

    The process gets ``timeout_s`` (default: the case's own); past it, it is stopped and RuntimeError says so."""
    repeats = case.repeats if repeats is None else repeats
    warmup = case.warmup if warmup is None else warmup
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    with tempfile.TemporaryDirectory(prefix="radassist-bench-") as folder:
        out = Path(folder) / "result.json"
        command = [sys.executable, "-m", "benchmarks.harness", "--module", module, "--case", case.name,
                   "--backend", backend, "--device", device, "--repeats", str(repeats), "--warmup", str(warmup),
                   "--out", str(out)]
        env = {**os.environ, "PYTHONPATH": _child_pythonpath()}
        limit = case.timeout_s if timeout_s is None else timeout_s
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=limit)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"benchmark {case.name} [{backend}] ran past its {limit:g} s limit") from None
        if done.returncode != 0 or not out.is_file():
            raise RuntimeError(f"benchmark {case.name} [{backend}] failed (exit {done.returncode}):\n"
                               f"{done.stderr[-4000:]}")
        raw = json.loads(out.read_text())
    return Measurement(case=case.name, group=case.group, size=case.size, backend=backend, device=raw["device"],
                       warmup=warmup, timing=TimingStats.from_samples(raw["samples"]),
                       peak_rss_mib=raw["peak_rss_mib"], baseline_rss_mib=raw["baseline_rss_mib"],
                       runs_peak_rss_mib=raw["runs_peak_rss_mib"], load_average=raw["load"],
                       peak_gpu_mib=raw["peak_gpu_mib"], notes=raw["notes"],
                       machine=machine or MachineFacts.current(), versions=package_versions(),
                       date_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"))


# ------------------------------------------------------------------------------------------------ RESULTS.md


def read_results(path: Path) -> list[Measurement]:
    """The measurements recorded in RESULTS.md's data block; none when the file does not exist yet."""
    if not path.is_file():
        return []
    match = _DATA_PATTERN.search(path.read_text(encoding="utf-8"))
    if match is None:
        raise ValueError(f"{path}: no '{_DATA_START}' block; it was not written by benchmarks.run")
    try:
        return [Measurement.from_json(row) for row in json.loads(match.group(1))]
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{path}: the benchmark data block cannot be read ({exc})") from None


def merge_results(old: Iterable[Measurement], new: Iterable[Measurement]) -> list[Measurement]:
    """The new rows, plus every old row whose (case, backend, device, machine) was not measured again."""
    new = list(new)
    replaced = {m.key for m in new}
    return [m for m in old if m.key not in replaced] + new


def _seconds(value: float) -> str:
    return f"{value:.3g}" if value >= 0.1 else f"{value * 1000:.3g} ms"


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _row(m: Measurement) -> str:
    t = m.timing
    return (f"| {m.case} | {m.size} | {m.backend} | {m.device} | {t.n} (+{m.warmup}) | {_seconds(t.median_s)} | "
            f"{_seconds(t.iqr_s)} | {_seconds(t.min_s)} - {_seconds(t.max_s)} | {_mib(m.peak_rss_mib)} | "
            f"{_mib(m.runs_peak_rss_mib)} | {_mib(m.baseline_rss_mib)} | {_mib(m.peak_gpu_mib)} | "
            f"{'-' if m.load_average is None else f'{m.load_average:.1f}'} | {m.machine.key} | {m.date_utc[:10]} | "
            f"{m.notes or '-'} |")


def render_results(measurements: Sequence[Measurement]) -> str:
    """RESULTS.md: what was measured and how, the machines and versions, one table per group, the data block."""
    ordered = sorted(measurements, key=lambda m: (m.group, m.case, m.machine.key, m.device, m.backend))
    lines = [
        "# RadAssist benchmarks",
        "",
        "Written by `python -m benchmarks.run`; do not edit by hand (the data block at the end is what the next",
        "run reads). A run replaces the rows it re-measures (same case, backend, device and machine) and keeps",
        "all others.",
        "",
        "How: each case and backend runs in a fresh Python process; setup is untimed, then the warm-up runs",
        "(untimed) and `n` timed runs. Times in seconds unless marked ms: median, interquartile range (IQR) and",
        "min - max.",
        "Memory, in MiB, of that process: peak RSS is its resident-memory high-water mark over everything (imports,",
        "setup, runs); runs RSS is the high-water mark during the warm-up and timed runs alone (the mark is reset",
        "after setup; it includes what setup left resident, e.g. the model and the input); base RSS is its resident",
        "memory before setup (interpreter and imports). GPU peak is torch.cuda.max_memory_allocated during the",
        "runs (ONNX Runtime's own CUDA memory is not counted there). Load is the machine's 1-minute load average",
        "when the case started: above the core count, other work was competing and the times are inflated.",
        "",
        "## Machines and versions",
        "",
        "| machine | hardware | OS | versions (latest run on it) |",
        "|---|---|---|---|",
    ]
    machines: dict[str, Measurement] = {}
    for m in sorted(measurements, key=lambda m: m.date_utc):
        machines[m.machine.key] = m
    for key, m in sorted(machines.items()):
        versions = ", ".join(f"{k} {v}" for k, v in m.versions.items() if k != "platform")
        lines.append(f"| {key} | {m.machine.describe()} | {m.machine.os} | {versions} |")
    for group in sorted({m.group for m in ordered}):
        lines += ["", f"## {group}", "",
                  "| case | size | backend | device | n (+warm-up) | median | IQR | min - max | peak RSS | runs RSS "
                  "| base RSS | GPU peak | load | machine | date (UTC) | notes |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        lines += [_row(m) for m in ordered if m.group == group]
    rows = ",\n".join(json.dumps(m.to_json(), sort_keys=True) for m in ordered)  # one line per row: clean diffs
    lines += ["", _DATA_START, f"[\n{rows}\n]", "-->", ""]
    return "\n".join(lines)


def write_results(path: Path, new: Sequence[Measurement]) -> list[Measurement]:
    """Merge ``new`` into the results at ``path`` and rewrite it atomically; returns every row now recorded."""
    merged = merge_results(read_results(path), new)
    with atomic_path(path) as temp:
        temp.write_text(render_results(merged), encoding="utf-8")
    return merged


# ------------------------------------------------------------------------------------------------ child entry


def _child_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure one benchmark case in this process (used by run.py).")
    parser.add_argument("--module", required=True)
    parser.add_argument("--case", required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    case = load_cases(args.module)[args.case]
    raw = measure_here(case, args.backend, args.device, args.repeats, args.warmup)
    with atomic_path(args.out) as temp:
        temp.write_text(json.dumps(raw))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())
