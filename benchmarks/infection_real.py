"""Train and score the infection networks on the real COVID-SemiSeg slices, one named run at a time, and keep a
record of each (the table of benchmarks/INFECTION_REAL.md is printed from these records).

A run is two ordinary commands, ``radassist train lung-infection`` (with the training options given after ``--``)
and ``radassist evaluate lung-infection`` on the 48 test slices, run as subprocesses. The record adds what the
commands do not know: the wall time of the training, the machine's load average while it ran (sampled every 30 s:
the 2-core machine is shared, so a busy machine makes a run slower), and the scores from evaluation.json.

    python -m benchmarks.infection_real run NAME --data DATA --runs RUNS [--threads 1] -- --arch unet --plain-ce ...
    python -m benchmarks.infection_real ensemble NAME --data DATA --runs RUNS --members RUN RUN ... [--mirror]
    python -m benchmarks.infection_real table --runs RUNS

An ensemble scores recorded runs' checkpoints together (``evaluate lung-infection`` with one ``--model`` per run:
softmax probabilities averaged; ``--mirror`` adds each slice flipped left-right); it trains nothing.

The checkpoints stay in RUNS/NAME (keep RUNS outside the repository: weights trained on this data are for research
only and are never committed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RECORDS = "runs.json"
LOAD_SAMPLE_SECONDS = 30.0


class LoadSampler:
    """The 1-minute load average every ``interval`` seconds while a command runs (a daemon thread)."""

    def __init__(self, interval: float = LOAD_SAMPLE_SECONDS) -> None:
        self.interval = interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> "LoadSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, float]:
        values = self.samples or [os.getloadavg()[0]]
        return {"mean": round(sum(values) / len(values), 2), "min": round(min(values), 2),
                "max": round(max(values), 2)}


def _radassist(arguments: list[str], log: Path) -> float:
    """Run ``radassist ARGUMENTS`` with its output in ``log``; the wall seconds (raises if it fails)."""
    started = time.perf_counter()
    with open(log, "a", encoding="utf-8") as stream:
        done = subprocess.run([sys.executable, "-m", "radassist.cli", *arguments], stdout=stream,
                              stderr=subprocess.STDOUT, env={**os.environ, "RADASSIST_PROGRESS_INTERVAL": "60"})
    if done.returncode != 0:
        raise SystemExit(f"radassist {' '.join(arguments[:2])} failed (exit {done.returncode}); see {log}")
    return time.perf_counter() - started


def _scores(evaluation: dict[str, Any]) -> dict[str, Any]:
    findings = evaluation["per_image"]["findings"]
    return {name: {"infnet_dice_label_map": f["infnet_protocol"]["label_map"]["dice"],
                   "infnet_dice_probability_map": (f["infnet_protocol"]["probability_map"] or {}).get("dice"),
                   "mean_dice": f["mean_dice"], "mean_sensitivity": f["mean_sensitivity"],
                   "mean_specificity": f["mean_specificity"],
                   "images_with_empty_reference": f["images_with_empty_reference"]}
            for name, f in findings.items()}


def run(name: str, data: Path, runs: Path, threads: int, train_arguments: list[str]) -> dict[str, Any]:
    folder = runs / name
    if folder.exists():
        raise SystemExit(f"{folder} exists already: choose another run name")
    runs.mkdir(parents=True, exist_ok=True)
    log = runs / f"{name}.log"
    model = folder / "model"
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with LoadSampler() as load:
        seconds = _radassist(["train", "lung-infection", "--data", str(data), "--out", str(model), "--device", "cpu",
                              "--threads", str(threads), *train_arguments], log)
    evaluate_seconds = _radassist(["evaluate", "lung-infection", "--data", str(data), "--model", str(model),
                                   "--out", str(folder / "evaluation"), "--device", "cpu", "--threads",
                                   str(threads)], log)
    train_record = json.loads((model / "result.json").read_text())["summary"]
    evaluation = json.loads((folder / "evaluation" / "evaluation.json").read_text())
    record = {"name": name, "started": started, "train_arguments": train_arguments, "threads": threads,
              "train_seconds": round(seconds, 1), "evaluate_seconds": round(evaluate_seconds, 1),
              "load_average_1min": load.summary(), "kept_epoch": train_record["kept_epoch"],
              "validation_mean_dice": train_record["validation_mean_dice"],
              "validation_slices": train_record["validation_slice_names"], "test": _scores(evaluation),
              "machine": _machine()}
    records = _read(runs)
    records.append(record)
    (runs / RECORDS).write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")
    return record


def ensemble(name: str, data: Path, runs: Path, threads: int, members: list[str], mirror: bool) -> dict[str, Any]:
    folder = runs / name
    if folder.exists():
        raise SystemExit(f"{folder} exists already: choose another run name")
    missing = [member for member in members if not (runs / member / "model").is_dir()]
    if missing:
        raise SystemExit(f"no trained model in {', '.join(str(runs / m / 'model') for m in missing)}")
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    models = [argument for member in members for argument in ("--model", str(runs / member / "model"))]
    with LoadSampler() as load:
        seconds = _radassist(["evaluate", "lung-infection", "--data", str(data), *models, *(["--mirror"] * mirror),
                              "--out", str(folder / "evaluation"), "--device", "cpu", "--threads", str(threads)],
                             runs / f"{name}.log")
    evaluation = json.loads((folder / "evaluation" / "evaluation.json").read_text())
    record = {"name": name, "started": started, "members": members, "mirror": mirror, "threads": threads,
              "evaluate_seconds": round(seconds, 1), "load_average_1min": load.summary(),
              "test": _scores(evaluation), "machine": _machine()}
    records = _read(runs)
    records.append(record)
    (runs / RECORDS).write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")
    return record


def _machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}")


def _read(runs: Path) -> list[dict[str, Any]]:
    path = runs / RECORDS
    return json.loads(path.read_text()) if path.is_file() else []


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _protocol(test: dict[str, Any], finding: str) -> str:
    """A finding's Inf-Net-protocol Dice (label map), empty when the run did not score it (binary runs)."""
    return _cell(test[finding]["infnet_dice_label_map"]) if finding in test else ""


def table(runs: Path) -> str:
    """Markdown rows: run, minutes, load, kept epoch, validation Dice, test Dice (Inf-Net protocol, label map) per
    finding, and our standard per-image infection Dice / sensitivity / specificity."""
    lines = ["| run | train min | load (mean) | kept epoch | val. Dice | infection | ground glass | consolidation | "
             "infection Dice / sens. / spec. (standard) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in _read(runs):
        test = r["test"]
        infection = test["infection"]
        if "members" in r:  # an ensemble trains nothing: its row names its members instead
            name = f"{r['name']} ({' + '.join(r['members'])}{', mirrored' * r['mirror']})"
            training = f"- | {r['load_average_1min']['mean']:.1f} | - | -"
        else:
            name = r["name"]
            training = (f"{r['train_seconds'] / 60:.1f} | {r['load_average_1min']['mean']:.1f} | {r['kept_epoch']} | "
                        f"{_cell(r['validation_mean_dice'])}")
        lines.append(f"| {name} | {training} | {_protocol(test, 'infection')} | "
                     f"{_protocol(test, 'ground-glass opacity')} | {_protocol(test, 'consolidation')} | "
                     f"{_cell(infection['mean_dice'])} / {_cell(infection['mean_sensitivity'])} / "
                     f"{_cell(infection['mean_specificity'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("run", help="train and evaluate one named run")
    one.add_argument("name")
    one.add_argument("--data", type=Path, required=True, help="the COVID-SemiSeg folder")
    one.add_argument("--runs", type=Path, required=True, help="folder of runs (outside the repository)")
    one.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    together = commands.add_parser("ensemble", help="score recorded runs' models together")
    together.add_argument("name")
    together.add_argument("--data", type=Path, required=True, help="the COVID-SemiSeg folder")
    together.add_argument("--runs", type=Path, required=True, help="folder of runs (outside the repository)")
    together.add_argument("--members", nargs="+", required=True, help="names of recorded runs")
    together.add_argument("--mirror", action="store_true", help="also each slice flipped left-right")
    together.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    show = commands.add_parser("table", help="print the Markdown table of the recorded runs")
    show.add_argument("--runs", type=Path, required=True)
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)  # after --: radassist train options
    args = parser.parse_args(argv[:split])
    if args.command == "table":
        print(table(args.runs))
        return 0
    if args.command == "ensemble":
        record = ensemble(args.name, args.data, args.runs, args.threads, args.members, args.mirror)
    else:
        record = run(args.name, args.data, args.runs, args.threads, argv[split + 1:])
    print(json.dumps({k: record.get(k) for k in ("name", "train_seconds", "load_average_1min", "kept_epoch", "test")},
                     indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
