"""Write phantoms in the layouts of the real data sets, so training code reads phantoms and real data the same way.

* lung  -> LUNA16: ``subset0/<seriesuid>.mhd`` + ``.raw``, ``annotations.csv`` (seriesuid, coordX, coordY, coordZ,
  diameter_mm in world mm) and ``seg-lungs-LUNA16/<seriesuid>.mhd`` lung masks.
* liver -> LiTS: ``volume-N.nii`` and ``segmentation-N.nii`` (0 background, 1 liver, 2 tumour), N from 0.
* brain -> BraTS-style case folders ``<case>/<case>_{flair,t1,t1ce,t2,seg}.nii.gz``; pair i is ``pair_i_fixed`` and
  ``pair_i_moving`` plus the true ``pair_i_deformation.h5`` (ITK, fixed -> moving), listed in ``pairs.csv``.
* mammo -> an exam list: ``images/<exam>_<L|R>-<CC|MLO>.png`` (16-bit), ``masks/<exam>_<view>_<benign|malignant>.png``
  where lesions exist, ``exam_list.json`` and the same flattened in ``exam_list.csv``.

Every folder also gets ``dataset.json`` (task, layout, generator, seed, cases, per-case seeds, radassist version).
All files are staged and published together (:class:`RunOutput`), each written through ``atomic_path``: a failure
or a cancel leaves nothing half-written.

LUNA16 lung masks: the released ``seg-lungs-LUNA16`` masks mark the two lungs with values 3 and 4 and the trachea
and main bronchi with 5 (preprocessing code such as the DSB2017 winners' reads ``mask == 3`` and ``mask == 4`` as
the two lungs). Which of 3 and 4 is the patient's right is not stated in the challenge's documentation that we
could check; we write 3 = right lung, 4 = left lung, 5 = trachea and main bronchi, and record it in dataset.json.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from radassist import __version__
from radassist.errors import InputError
from radassist.io.atomic import RunOutput, atomic_path
from radassist.io.images import write_volume
from radassist.runtime.progress import Progress
from radassist.volume import Volume

TASKS = ("lung", "liver", "brain", "mammo")
LAYOUTS = {"lung": "LUNA16", "liver": "LiTS", "brain": "BraTS pairs", "mammo": "GMIC exam list"}
LUNA16_MASK_VALUES = {"right lung": 3, "left lung": 4, "trachea": 5}
LUNA16_ANNOTATION_COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm")
BRATS_SEQUENCES = ("flair", "t1", "t1ce", "t2")
EXAM_LIST_COLUMNS = ("path", "exam", "laterality", "view", "benign", "malignant", "benign_mask", "malignant_mask")
MAX_CASES = 10_000  # a data set is written case by case, but its list of case seeds and its index are in memory
# bytes one case takes on disk with the default phantom sizes (measured: 1 case of each with seed 0)
BYTES_PER_CASE = {"lung": 37_200_000, "liver": 26_000_000, "brain": 44_100_000, "mammo": 6_000_000}
DISK_HEADROOM = 1.1


def _existing_parent(path: Path) -> Path:
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_dataset_size(task: str, cases: int, out: str | Path, default_sizes: bool = True) -> None:
    """Refuse a data set that is too many cases to index, or (default phantom sizes) larger than the free space
    where ``out`` goes, before anything is written: ``synth --cases 1000000000`` must fail at once, not after
    filling the disk."""
    if int(cases) < 1:
        raise InputError(None, f"the number of cases must be at least 1, got {cases}")
    if int(cases) > MAX_CASES:
        raise InputError(None, f"{cases} cases is more than the {MAX_CASES} one synthetic data set holds; write "
                               f"several data sets with different seeds instead")
    if not default_sizes or task not in BYTES_PER_CASE:
        return
    need = int(cases) * BYTES_PER_CASE[task] * DISK_HEADROOM
    where = _existing_parent(Path(out))
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        return
    if need > free:
        raise InputError(out, f"{cases} synthetic {task} cases need about {need / 1e9:.1f} GB, but only "
                              f"{free / 1e9:.1f} GB are free on {where}; write fewer cases or choose another folder")


def case_seeds(seed: int, cases: int) -> list[int]:
    """One generator seed per case, all fixed by the data set's seed (independent streams, no overlap between
    the data sets of neighbouring seeds)."""
    return [int(s) for s in np.random.SeedSequence(int(seed)).generate_state(cases, dtype=np.uint32)]


# -- small writers, all atomic ----------------------------------------------------------------------------------
def write_text(text: str, path: Path) -> Path:
    with atomic_path(path) as temp:
        temp.write_text(text, encoding="utf-8")
    return path


def write_csv(rows: Sequence[Sequence[Any]], header: Sequence[str], path: Path) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return write_text(buffer.getvalue(), path)


def write_json(data: Any, path: Path) -> Path:
    return write_text(json.dumps(data, indent=2) + "\n", path)


def _number(value: float) -> str:
    """Shortest text that reads back as exactly the same float."""
    return repr(float(value))


# -- one writer per task ----------------------------------------------------------------------------------------
def _write_lung(run: RunOutput, seeds: list[int], progress: Progress, config: Any) -> dict[str, Any]:
    from radassist.synthetic.chest import make_chest_ct

    rows = []
    for index, case_seed in enumerate(seeds):
        progress.update(index / len(seeds), f"chest CT {index + 1}/{len(seeds)}")
        phantom = make_chest_ct(case_seed, config)
        uid = phantom.series_uid
        write_volume(phantom.volume, run.path(f"subset0/{uid}.mhd"), compress=False)
        mask = np.zeros(phantom.volume.shape, dtype=np.uint8)
        mask[phantom.lungs.mask("Right lung")] = LUNA16_MASK_VALUES["right lung"]
        mask[phantom.lungs.mask("Left lung")] = LUNA16_MASK_VALUES["left lung"]
        mask[phantom.airway_mask] = LUNA16_MASK_VALUES["trachea"]
        write_volume(phantom.volume.with_array(mask), run.path(f"seg-lungs-LUNA16/{uid}.mhd"), compress=False)
        for nodule in phantom.nodules.items:
            rows.append((uid, *(_number(c) for c in nodule.center), _number(nodule.diameter_mm)))
    write_csv(rows, LUNA16_ANNOTATION_COLUMNS, run.path("annotations.csv"))
    return {"generator": "radassist.synthetic.chest.make_chest_ct", "coordinates": "LPS world mm",
            "mask_values": LUNA16_MASK_VALUES}


def _write_liver(run: RunOutput, seeds: list[int], progress: Progress, config: Any) -> dict[str, Any]:
    from radassist.synthetic.abdomen import make_abdomen_ct

    rows = []
    for index, case_seed in enumerate(seeds):
        progress.update(index / len(seeds), f"abdominal CT {index + 1}/{len(seeds)}")
        phantom = make_abdomen_ct(case_seed, config)
        write_volume(phantom.volume, run.path(f"volume-{index}.nii"), compress=False)
        write_volume(phantom.volume.with_array(phantom.labels.flattened().astype(np.uint8)),
                     run.path(f"segmentation-{index}.nii"), compress=False)
        for tumour in phantom.tumours:
            rows.append((index, *(_number(c) for c in tumour.center), _number(tumour.radius_mm),
                         _number(tumour.volume_ml)))
    write_csv(rows, ("case", "coordX", "coordY", "coordZ", "radius_mm", "volume_ml"), run.path("tumours.csv"))
    return {"generator": "radassist.synthetic.abdomen.make_abdomen_ct",
            "label_values": {"background": 0, "liver": 1, "tumour": 2}}


def _write_brats_case(run: RunOutput, case: str, images: dict[str, Volume], labels: np.ndarray) -> None:
    for sequence in BRATS_SEQUENCES:
        write_volume(images[sequence], run.path(f"{case}/{case}_{sequence}.nii.gz"))
    write_volume(images[BRATS_SEQUENCES[0]].with_array(labels.astype(np.uint8)), run.path(f"{case}/{case}_seg.nii.gz"))


def _write_brain(run: RunOutput, seeds: list[int], progress: Progress, config: Any) -> dict[str, Any]:
    from radassist.results.transforms import write_itk_displacement_h5
    from radassist.synthetic.brain import make_brain_pair

    rows = []
    for index, case_seed in enumerate(seeds):
        progress.update(index / len(seeds), f"brain MRI pair {index + 1}/{len(seeds)}")
        pair = make_brain_pair(case_seed, config)
        fixed, moving = f"pair_{index}_fixed", f"pair_{index}_moving"
        _write_brats_case(run, fixed, pair.fixed, pair.fixed_labels.flattened())
        _write_brats_case(run, moving, pair.moving, pair.moving_labels.flattened())
        deformation = f"pair_{index}_deformation.h5"
        write_itk_displacement_h5(pair.deformation, run.path(deformation))
        rows.append((fixed, moving, deformation))
    write_csv(rows, ("fixed", "moving", "deformation"), run.path("pairs.csv"))
    return {"generator": "radassist.synthetic.brain.make_brain_pair",
            "label_values": {"necrotic and non-enhancing core": 1, "oedema": 2, "enhancing tumour": 4},
            "deformation": "ITK displacement field, fixed -> moving: moving(p + u(p)) == fixed(p)"}


def _write_mammo(run: RunOutput, seeds: list[int], progress: Progress, config: Any) -> dict[str, Any]:
    from radassist.synthetic.mammo import VIEWS, make_mammogram_exam, write_png

    exams, rows = [], []
    for index, case_seed in enumerate(seeds):
        progress.update(index / len(seeds), f"mammography exam {index + 1}/{len(seeds)}")
        exam = make_mammogram_exam(case_seed, config)
        exam_id = str(index)
        entry: dict[str, Any] = {"id": exam_id, "horizontal_flip": "NO"}
        masks: dict[str, dict[str, str]] = {}
        for view in exam.views:
            image_path = f"images/{exam_id}_{view.name}.png"
            write_png(view.pixels, run.path(image_path))
            entry[view.name] = [image_path]
            mask_paths = {}
            for kind, mask in (("benign", view.benign_mask), ("malignant", view.malignant_mask)):
                if mask.any():
                    mask_paths[kind] = f"masks/{exam_id}_{view.name}_{kind}.png"
                    write_png(mask, run.path(mask_paths[kind]))
            if mask_paths:
                masks[view.name] = mask_paths
            rows.append((image_path, exam_id, view.laterality, view.view, view.labels["benign"],
                         view.labels["malignant"], mask_paths.get("benign", ""), mask_paths.get("malignant", "")))
        entry["breasts"] = exam.labels
        entry["cancer_label"] = {
            "left_benign": exam.labels["L"]["benign"], "left_malignant": exam.labels["L"]["malignant"],
            "right_benign": exam.labels["R"]["benign"], "right_malignant": exam.labels["R"]["malignant"],
            "benign": max(exam.labels["L"]["benign"], exam.labels["R"]["benign"]),
            "malignant": max(exam.labels["L"]["malignant"], exam.labels["R"]["malignant"])}
        entry["masks"] = masks
        entry["seed"] = case_seed
        exams.append(entry)
    write_json(exams, run.path("exam_list.json"))
    write_csv(rows, EXAM_LIST_COLUMNS, run.path("exam_list.csv"))
    return {"generator": "radassist.synthetic.mammo.make_mammogram_exam", "views": list(VIEWS),
            "pixel_values": "12-bit (0-4095) in 16-bit PNG, unflipped", "mask_values": "8-bit PNG, 0 or 255"}


_WRITERS: dict[str, Callable[[RunOutput, list[int], Progress, Any], dict[str, Any]]] = {
    "lung": _write_lung, "liver": _write_liver, "brain": _write_brain, "mammo": _write_mammo}


def write_dataset(task: str, out: Path, cases: int, seed: int, progress: Progress | None = None, *,
                  config: Any = None) -> Path:
    """Write ``cases`` phantoms of ``task`` ("lung", "liver", "brain", "mammo") into ``out``; returns ``out``.

    ``config`` is the task's phantom config (ChestPhantomConfig, AbdomenPhantomConfig, BrainPhantomConfig,
    MammoPhantomConfig), default sizes when None. Nothing appears in ``out`` unless every file was written.
    """
    if task not in _WRITERS:
        raise InputError(None, f"unknown synthetic task {task!r}; choose one of {', '.join(TASKS)}")
    check_dataset_size(task, cases, out, default_sizes=config is None)
    if int(seed) < 0:
        raise InputError(None, f"the seed must be a non-negative integer, got {seed}")
    progress = progress or Progress()
    seeds = case_seeds(seed, int(cases))
    out = Path(out)
    with RunOutput(out) as run:
        details = _WRITERS[task](run, seeds, progress.sub(0.0, 0.98), config)
        write_json({"task": task, "layout": LAYOUTS[task], "seed": int(seed), "cases": int(cases),
                    "case_seeds": seeds, "radassist_version": __version__,
                    "config": repr(config) if config is not None else "default", **details},
                   run.path("dataset.json"))
        progress.update(1.0, "done")
    return out
