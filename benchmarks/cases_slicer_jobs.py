"""What running a panel's task in its own process costs, against running it inside the caller (what the panels did
before, in a thread inside Slicer).

Three cases on the panel's own synthetic chest CT (the sample "Load synthetic sample" builds, 384x288x112):

* the job process alone: start Python, import RadAssist, run a trivial task (convert a 16x16x16 volume), exit;
* the classical nodule detection in the caller's process (the volume in memory, the result in memory);
* the same detection as a panel runs it: the CT written into a job folder, the job process, the result files
  read back into the same Detections.

The difference of the last two is the overhead a panel pays for never running a model inside Slicer. Run with
``python -m benchmarks.run --module benchmarks.cases_slicer_jobs``.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.harness import BenchmarkCase, CaseEnv

SIZE = "384x288x112 int16 chest CT (the panel's sample), classical engine"


@dataclass
class _Job:
    request: Any
    folder: Path
    expected: int = -1


def _sample_volume(env: CaseEnv) -> Any:
    import dataclasses

    from radassist.synthetic.chest import make_chest_ct

    volume = make_chest_ct(0).volume
    return dataclasses.replace(volume, source=dataclasses.replace(volume.source, path="Synthetic chest CT 0"))


def _setup_bare(env: CaseEnv) -> _Job:
    import numpy as np

    from radassist.slicer.task_requests import TaskRequest
    from radassist.volume import Volume

    volume = Volume(array=np.zeros((16, 16, 16), np.int16))
    return _Job(TaskRequest([volume], {}, lambda folder: None, "convert"), env.scratch / "job")


def _setup_detect_job(env: CaseEnv) -> _Job:
    from radassist.slicer.result_files import read_lung_detect
    from radassist.slicer.task_requests import LUNG_DETECT, TaskRequest, lung_detect_options

    request = TaskRequest([_sample_volume(env)], lung_detect_options("classic", 0.5), read_lung_detect, LUNG_DETECT)
    return _Job(request, env.scratch / "job")


def _run_job(state: _Job) -> None:
    from radassist.slicer.task_requests import run_request

    shutil.rmtree(state.folder, ignore_errors=True)
    run_request(state.request, state.folder, sys.executable, "cpu")


def _setup_in_process(env: CaseEnv) -> Any:
    return _sample_volume(env)


def _run_in_process(volume: Any) -> None:
    from radassist.lung.pipeline import LungDetectionConfig, detect_nodules

    detect_nodules(volume, LungDetectionConfig(score_threshold=0.5), engine="classic")


CASES: list[BenchmarkCase] = [
    BenchmarkCase("job process alone (start, import, trivial task, exit)", "slicer jobs", "16x16x16 convert",
                  _setup_bare, _run_job, repeats=5, warmup=1),
    BenchmarkCase("lung detect in the caller's process", "slicer jobs", SIZE, _setup_in_process, _run_in_process,
                  repeats=3, warmup=1),
    BenchmarkCase("lung detect as a panel job (write CT, job process, read result files)", "slicer jobs", SIZE,
                  _setup_detect_job, _run_job, repeats=3, warmup=1),
]
