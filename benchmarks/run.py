"""`python -m benchmarks.run [--only NAME] [--repeats N] [--device cpu|cuda]`: measure the registered cases and
rewrite benchmarks/RESULTS.md, keeping the rows of cases that were not re-run."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from radassist.errors import RadAssistError
from radassist.runtime.device import choose_device

from benchmarks.harness import MachineFacts, Measurement, load_cases, measure_in_subprocess, write_results

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
CASES_MODULE = "benchmarks.cases"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only cases whose name contains NAME (case-insensitive; repeatable)")
    parser.add_argument("--repeats", type=int, help="timed runs per case (default: each case's own)")
    parser.add_argument("--warmup", type=int, help="untimed runs before timing (default: each case's own)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N for the cases that run a network")
    parser.add_argument("--backend", action="append", choices=("torch", "onnx", "onnx-int8"),
                        help="only these inference backends (default: every backend a case lists)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the results file to update")
    parser.add_argument("--module", default=CASES_MODULE, help="the module whose CASES list is run")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cases = list(load_cases(args.module).values())
    if args.only:
        wanted = [text.lower() for text in args.only]
        cases = [c for c in cases if any(text in c.name.lower() for text in wanted)]
        if not cases:
            print(f"no case matches {args.only}; registered: {sorted(load_cases(args.module))}", file=sys.stderr)
            return 2
    try:
        device = str(choose_device(args.device, mixed_precision=False).device)
    except RadAssistError as exc:
        print(f"--device {args.device}: {exc}", file=sys.stderr)
        return 2
    machine = MachineFacts.current()
    print(f"machine {machine.key}: {machine.describe()}")
    measured: list[Measurement] = []
    failed: list[str] = []
    for case in cases:
        reason = case.unavailable() if case.unavailable else None
        if reason:
            print(f"skip  {case.name}: {reason}")
            continue
        for backend in case.backends:
            if args.backend and backend not in args.backend and backend != "-":
                continue
            print(f"run   {case.name} [{backend}, {case.device_for(device)}] ...", flush=True)
            try:
                m = measure_in_subprocess(args.module, case, backend, device, args.repeats, args.warmup, machine)
            except RuntimeError as exc:  # one broken case must not cost the rows of the others
                print(f"FAIL  {exc}", file=sys.stderr)
                failed.append(f"{case.name} [{backend}]")
                continue
            print(f"      median {m.timing.median_s:.3f} s (IQR {m.timing.iqr_s:.3f} s, n={m.timing.n}), "
                  f"peak RSS {m.peak_rss_mib:,.0f} MiB" +
                  ("" if m.peak_gpu_mib is None else f", GPU peak {m.peak_gpu_mib:,.0f} MiB"), flush=True)
            measured.append(m)
    rows = write_results(args.results, measured)
    print(f"wrote {args.results} ({len(measured)} rows measured, {len(rows) - len(measured)} kept)")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
