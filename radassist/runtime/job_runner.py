"""The job process: ``python -m radassist.runtime.job_runner JOB_FOLDER`` runs the task a job folder asks for.

This is what a Slicer panel starts (in Slicer's ``PythonSlicer``) instead of running a model inside Slicer: the same
task runners as the RadAssist server (:mod:`radassist.server.tasks`), so a local result is the very set of files a
server returns, read back by the same code. With a server URL in the request, the process runs the task there
instead: local and remote runs share everything from the input files to the result folder.

Exit codes: 0 done (``output/`` holds the result), 2 the input or the environment is wrong (``error.json`` says
what), 1 an unexpected failure (``error.json`` has the traceback), 143 terminated (cancelled by the parent).
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from pathlib import Path

from radassist.errors import RadAssistError
from radassist.runtime import job_folder
from radassist.runtime.progress import Progress

SERVER_CHECK = "server-check"
"""The one task that exists only against a server: its health and task list, for a panel's "Test connection"."""
SAMPLE = "sample"
"""A panel's synthetic sample, built here (seconds of numpy a panel should not wait for in Slicer's main thread)
and handed back pickled: both ends are this RadAssist, and the file lives in the job's private folder."""
SAMPLE_BUILDERS = {"lung": ("radassist.synthetic.chest", "make_chest_ct"),
                   "liver": ("radassist.synthetic.abdomen", "make_abdomen_ct"),
                   "brain": ("radassist.synthetic.brain", "make_brain_pair"),
                   "mammo": ("radassist.synthetic.mammo", "make_mammogram_exam")}
SAMPLE_FILE = "sample.pickle"


def build_sample(kind: str, seed: int):
    """The phantom of one panel (``kind`` of :data:`SAMPLE_BUILDERS`) for ``seed``."""
    import importlib

    if kind not in SAMPLE_BUILDERS:
        raise RadAssistError(f"no synthetic sample {kind!r}; there are {', '.join(SAMPLE_BUILDERS)}")
    module, function = SAMPLE_BUILDERS[kind]
    return getattr(importlib.import_module(module), function)(int(seed))


def run_sample(folder: Path, request: job_folder.TaskJobRequest, progress: Progress) -> None:
    import pickle

    progress.update(0.05, f"building the synthetic {request.options.get('kind')} sample")
    sample = build_sample(str(request.options.get("kind")), int(request.options.get("seed", 0)))
    output = folder / job_folder.OUTPUT
    output.mkdir(exist_ok=True)
    with open(output / SAMPLE_FILE, "wb") as handle:
        pickle.dump(sample, handle, protocol=pickle.HIGHEST_PROTOCOL)


def _redirect_output(folder: Path) -> None:
    """Everything the process prints (Python or native code) goes to log.txt, never to a pipe that could fill."""
    log = os.open(folder / job_folder.LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    sys.stdout = os.fdopen(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)


def _terminate_cleanly(signum, frame) -> None:  # noqa: ARG001 -- signal handler signature
    """SIGTERM from the parent's Cancel: unwind, so staged outputs are removed on the way out."""
    raise SystemExit(128 + signum)


def run_local(folder: Path, request: job_folder.TaskJobRequest, progress: Progress) -> None:
    from radassist.runtime.device import choose_device
    from radassist.server.tasks import TASKS
    from radassist.server.tasks_base import TaskInput, run_task

    task = TASKS.get(request.task)
    if task is None:
        raise RadAssistError(f"unknown task {request.task!r}; this RadAssist offers {', '.join(sorted(TASKS))}")
    options = task.parse_options(request.options)
    inputs = [TaskInput(folder / item.path, item.name) for item in request.inputs]
    run_task(task, inputs, options, choose_device(request.device), progress, folder / job_folder.OUTPUT)


def run_remote(folder: Path, request: job_folder.TaskJobRequest, progress: Progress) -> None:
    from radassist.client import RadAssistClient, read_token_file

    token_path = folder / job_folder.TOKEN
    token = read_token_file(token_path) if token_path.exists() else None
    client = RadAssistClient(request.server, token=token)
    if request.task == SERVER_CHECK:
        import json

        progress.update(0.3, "health")
        health = client.health()
        progress.update(0.6, "tasks")
        output = folder / job_folder.OUTPUT
        output.mkdir(exist_ok=True)
        (output / "server.json").write_text(json.dumps({"health": health, "info": client.info()}), encoding="utf-8")
        return
    client.run(request.task, [folder / item.path for item in request.inputs], request.options,
               folder / job_folder.OUTPUT, progress)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m radassist.runtime.job_runner JOB_FOLDER", file=sys.stderr)
        return 2
    folder = Path(argv[0]).resolve()
    _redirect_output(folder)
    signal.signal(signal.SIGTERM, _terminate_cleanly)
    progress = Progress(job_folder.ProgressFile(folder / job_folder.PROGRESS))
    try:
        request = job_folder.read_request(folder)
        progress.update(0.0, "starting")
        if request.task == SAMPLE:
            run_sample(folder, request, progress)
        else:
            (run_remote if request.server else run_local)(folder, request, progress)
        progress.update(1.0, "done")
    except RadAssistError as error:
        job_folder.write_error(folder, "input", str(error))
        print(f"radassist job: {error}", file=sys.stderr)
        return error.exit_code
    except SystemExit:
        raise
    except BaseException as error:  # noqa: BLE001 -- reported to the parent, which lives on
        job_folder.write_error(folder, "crash", f"{type(error).__name__}: {error}", traceback.format_exc())
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
