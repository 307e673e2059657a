"""`python -m benchmarks.load_server`: throughput and latency of the inference server under concurrent clients.

Starts a real server (`radassist.server.runner.serve`) in a separate process on 127.0.0.1, then for each client
count runs that many threads, each submitting jobs one after another with the shared client (upload, wait,
download, delete). Every job's result is checked against its own input, so a lost or mixed-up job is counted,
not missed. Loopback only, bounded in jobs and time. Writes benchmarks/SERVER_LOAD.md.

Tasks: ``convert`` (a 32x128x128 CT volume to NRRD: the server's own overhead plus reading and writing) and
``lung-detect`` with the classical detector (a small synthetic chest CT: a real pipeline, CPU-bound).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "SERVER_LOAD.md"
TOKEN = "benchmark-token-" + "0" * 16
SERVER_CODE = """
import sys
from pathlib import Path
from radassist.server.runner import serve
from radassist.server.settings import ServerSettings
serve(ServerSettings(token=sys.argv[1], queue_size=int(sys.argv[3]), storage_root=Path(sys.argv[4])),
      "127.0.0.1", int(sys.argv[2]))
"""


@dataclass
class Round:
    task: str
    clients: int
    jobs_per_client: int
    latencies_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    lost: int = 0
    wrong: int = 0
    refused: int = 0

    @property
    def done(self) -> int:
        return len(self.latencies_s)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q)) if self.latencies_s else float("nan")

    @property
    def per_minute(self) -> float:
        return 60.0 * self.done / self.wall_s if self.wall_s else 0.0


def _inputs(task: str, count: int, folder: Path) -> list[tuple[Path, str]]:
    """(input file, fingerprint its result must carry) for each job; every input differs."""
    from radassist.io import write_volume
    from radassist.volume import Geometry, Volume

    made = []
    if task == "lung-detect":
        from radassist.synthetic.chest import ChestPhantomConfig, make_chest_ct

        base = make_chest_ct(0, ChestPhantomConfig(shape=(32, 80, 96), spacing=(2.4, 2.4, 2.5))).volume
    for index in range(count):
        path = folder / task / f"case{index}.nrrd"
        if task == "convert":
            rng = np.random.default_rng(index)
            array = rng.integers(-1000, 1000, size=(32, 128, 128)).astype(np.int16)
            write_volume(Volume.from_geometry(array, Geometry(shape=array.shape, origin=(index, 0.0, 0.0))), path)
            made.append((path, hashlib.sha256(array.tobytes()).hexdigest()))
        else:
            write_volume(base, path)
            made.append((path, f"case{index}"))  # the LUNA16 seriesuid of its nodules.csv is the file's stem
    return made


def _check(task: str, out: Path, fingerprint: str) -> bool:
    from radassist.io import read_volume

    if task == "convert":
        return hashlib.sha256(read_volume(out / "volume.nrrd").array.tobytes()).hexdigest() == fingerprint
    import json

    record = json.loads((out / "result.json").read_text())
    return record["summary"]["seriesuid"] == fingerprint and (out / "nodules.mrk.json").is_file()


def run_round(url: str, task: str, clients: int, jobs_per_client: int, folder: Path, options: dict,
              deadline_s: float) -> Round:
    from radassist.client import RadAssistClient, ServerError

    result = Round(task, clients, jobs_per_client)
    inputs = _inputs(task, clients * jobs_per_client, folder)
    lock = threading.Lock()
    stop_at = time.monotonic() + deadline_s

    def client_thread(client: int) -> None:
        remote = RadAssistClient(url, token=TOKEN)
        for job in range(jobs_per_client):
            index = client * jobs_per_client + job
            if time.monotonic() > stop_at:
                with lock:
                    result.lost += 1
                continue
            path, fingerprint = inputs[index]
            out = folder / "out" / f"{task}-{clients}-{index}"
            start = time.perf_counter()
            try:
                remote.run(task, [path], options, out)
            except ServerError as error:
                with lock:
                    if "503" in str(error):
                        result.refused += 1
                    result.lost += 1
                continue
            elapsed = time.perf_counter() - start
            ok = _check(task, out, fingerprint)
            with lock:
                result.latencies_s.append(elapsed)
                result.wrong += 0 if ok else 1

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client_thread, range(clients)))
    result.wall_s = time.perf_counter() - start
    return result


def _wait_healthy(url: str, process: subprocess.Popen, timeout_s: float = 60.0) -> None:
    import requests

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server process ended before it answered")
        try:
            if requests.get(url + "/health", timeout=1).ok:
                return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"no server answered at {url}")


def write_report(rounds: list[Round], path: Path, note: str) -> None:
    from radassist.runtime.run_record import package_versions

    versions = package_versions()
    lines = [
        "# Inference server load",
        "",
        "Written by `python -m benchmarks.load_server`; re-run it to refresh. A real server (one process, one CPU "
        "worker: jobs run one at a time) on 127.0.0.1; each client is a thread that submits its jobs one after "
        "another through `radassist.client` (upload, poll progress every 0.25 s, download the result zip, "
        "delete the job). Latency is per job from the start of the upload to the end of the download. "
        "Jobs/min counts jobs whose result was downloaded and checked against its own input. *Lost* are jobs "
        "that got no result (refused or past the time bound), *wrong* results that did not belong to their input.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}; python "
        f"{versions.get('python')}, torch {versions.get('torch')}, radassist {versions.get('radassist')}. "
        f"Date (UTC): {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M')}. {note}",
        "",
        "| task | clients | jobs | done | lost | wrong | jobs/min | p50 s | p90 s | p99 s | max s | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rounds:
        lines.append(f"| {r.task} | {r.clients} | {r.clients * r.jobs_per_client} | {r.done} | {r.lost} | {r.wrong} "
                     f"| {r.per_minute:.1f} | {r.percentile(50):.2f} | {r.percentile(90):.2f} | "
                     f"{r.percentile(99):.2f} | {max(r.latencies_s, default=float('nan')):.2f} | {r.wall_s:.1f} |")
    lines += ["", "Reading it: one worker runs one job at a time, so for a task that takes a while (lung-detect) "
              "more clients add queueing time to each job's latency (about clients x job time), not throughput. "
              "For a short task (convert) uploads, downloads and polling overlap the worker's jobs, so a few "
              "clients raise throughput until the worker is busy all the time; a single client's latency is "
              "dominated by its 0.25 s polling. A GPU server runs one worker per GPU "
              "(`radassist serve --device auto`).", ""]
    path.write_text("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load_server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8], help="client counts to run")
    parser.add_argument("--jobs", type=int, default=6, help="jobs per client for 'convert'")
    parser.add_argument("--lung-jobs", type=int, default=2, help="jobs per client for 'lung-detect' (0: skip)")
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds a round may take at most")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    from radassist.server.runner import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    rounds: list[Round] = []
    with tempfile.TemporaryDirectory(prefix="radassist-load-") as scratch:
        folder = Path(scratch)
        queue = max(args.clients) * 2
        log = open(folder / "server.log", "wb")  # a file, not a pipe nobody reads: a full pipe would stall it
        process = subprocess.Popen([sys.executable, "-c", SERVER_CODE, TOKEN, str(port), str(queue),
                                    str(folder / "server")], stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_healthy(url, process)
            for task, jobs, options in (("convert", args.jobs, {}),
                                        ("lung-detect", args.lung_jobs, {"engine": "classic"})):
                if jobs < 1:
                    continue
                run_round(url, task, 1, 1, folder / "warmup", options, args.deadline)  # imports, first read
                for clients in args.clients:
                    result = run_round(url, task, clients, jobs, folder, options, args.deadline)
                    rounds.append(result)
                    print(f"{task:12s} {clients:2d} clients: {result.done} done, {result.lost} lost, "
                          f"{result.wrong} wrong, {result.per_minute:.1f} jobs/min, p50 {result.percentile(50):.2f}"
                          f" s, p90 {result.percentile(90):.2f} s", flush=True)
        finally:
            process.terminate()
            process.wait(30)
            log.close()
    write_report(rounds, args.results, f"Queue size {queue}.")
    print(f"wrote {args.results}")
    return 0 if all(r.lost == 0 and r.wrong == 0 for r in rounds) else 1


if __name__ == "__main__":
    sys.exit(main())
