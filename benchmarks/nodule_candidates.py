"""Nodule candidate study: the classical detector on real chest CT with LIDC-like solid nodules drawn into it.

Hosts (``/work/shared/data``, as shipped):

* ``CTChest4``: a real chest CT (slicerio's test data), 128x128x34 at 3.05x3.05x10 mm, both lungs (6.2 L). Its
  10 mm slices are thicker than the pipeline accepts (``radassist lung detect`` refuses it), so the detector is
  called directly, as the pipeline calls it. Six nodules per run, two of each attachment.
* ``example_ct``: TotalSegmentator's example CT, 3 mm voxels, abdomen with only the lung bases (76 mL of lung in
  thin crescents over the diaphragm, cut by the top of the scan): the diaphragm and chest wall are everywhere. Three
  nodules per run (two pleura-attached, one isolated or vessel-attached where a site is left).

TotalSegmentator's DICOM example series (0.98x0.98x2 mm) is no host: it holds an upper abdomen with no lung the
lung mask can find (a few mL in the posterior recesses), so nothing can be inserted; the detector gives no
candidate on it (``Testing/python/test_lung_classic.py``).

Nodules: :mod:`radassist.synthetic.inserted_nodules` (6-30 mm, log-uniform; solid, -10 to 60 HU; the scanner's
blur and partial volume; isolated, vessel- or pleura-attached). Each run draws new nodules into the unchanged host
(seed = run index), finds the lungs and runs :func:`radassist.lung.classic.detect_candidates` with every candidate
kept (no score floor, at most 100, as LUNA16 scores). A candidate hits a nodule when its centre lies within the
nodule's radius (LUNA16's rule), enlarged on thick-slice hosts to half the slice spacing along z (a nodule smaller
than a 10 mm slice has no better defined z centre). Everything else the detector marks is a false positive:
vessels, chest wall, diaphragm and whatever the host's own lungs hold. Sensitivity at 1, 2 and 4 false positives
per scan comes from the FROC of all runs of a host (``radassist.metrics.froc``).

The score's weights (``ClassicDetectorConfig.score_weights``) come from ``--fit``: every candidate of eight
synthetic chest phantoms (seeds 100-107, :func:`radassist.synthetic.chest.make_chest_ct`), labelled by whether it
lies in a phantom nodule, and an L2-regularised, class-balanced logistic regression on ``SCORE_FEATURES`` (Newton's
method; C = 0.001). No real scan goes into the fit. The regularisation strength was picked among 0.001, 0.01, 0.1
and 1 (balanced or not) by the sensitivity on ``example_ct`` with inserted nodules, so ``example_ct``'s figures are
not independent of that choice; ``CTChest4`` played no part in it and is the held-out host.

Run: ``python -m benchmarks.nodule_candidates --out benchmarks/nodule_candidates.json [--runs N]``;
``python -m benchmarks.nodule_candidates --fit`` prints the weights.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radassist.io import read_volume
from radassist.lung.classic import ClassicDetectorConfig, detect_candidates, measure_peaks, score_features
from radassist.lung.preprocess import lung_mask_volume
from radassist.metrics.froc import evaluate_froc
from radassist.results.detections import Detection, Detections
from radassist.synthetic.inserted_nodules import InsertionConfig, insert_nodules, lung_maps
from radassist.volume import Volume

RATES = (1.0, 2.0, 4.0)


@dataclass(frozen=True)
class Host:
    """A real CT to insert nodules into, and what each run inserts."""

    name: str
    path: str  # relative to the test data folder
    attachments: tuple[str, ...]


HOSTS = (Host("CTChest4", "slicer/CTChest4.nrrd", ("isolated", "vessel", "pleura") * 2),
         Host("example_ct", "ct/chest_abdomen_example/example_ct.nii.gz", ("pleura", "pleura", "isolated")))


@dataclass
class RunResult:
    """One run: the truth, every candidate, and which candidate (rank, score) found each nodule."""

    host: str
    seed: int
    nodules: list[dict]
    candidates: int
    seconds: float
    load_average: float = 0.0  # of the machine (1 minute) when the run ended: other work slows the timing
    top_false_positives: list[dict] = field(default_factory=list)


def data_root() -> Path:
    return Path(os.environ.get("RADASSIST_TEST_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))


def hit_tolerance(volume: Volume, nodule: Detection) -> Detection:
    """The nodule as the matcher sees it: LUNA16's radius, grown along z to half the slice spacing on thick slices."""
    slice_mm = float(max(volume.geometry.spacing_zyx[0], 0.0))
    diameter = max(nodule.diameter_mm or 0.0, slice_mm)
    return dataclasses.replace(nodule, diameter_mm=diameter) if slice_mm > (nodule.diameter_mm or 0.0) else nodule


def _inside(centre: np.ndarray, nodule: Detection, slice_mm: float) -> bool:
    offset = np.asarray(centre) - np.asarray(nodule.center)
    radius = nodule.diameter_mm / 2.0
    z_radius = max(radius, slice_mm / 2.0)
    return bool((offset[0] ** 2 + offset[1] ** 2) / radius ** 2 + offset[2] ** 2 / z_radius ** 2 < 1.0)


def run_once(host: Host, volume: Volume, seed: int, detector: ClassicDetectorConfig,
             insertion: InsertionConfig = InsertionConfig(), maps=None) -> tuple[RunResult, Detections, Detections]:
    """Insert, detect, match: the run's record, its truth and its candidates."""
    case = insert_nodules(volume, host.attachments, seed, insertion, maps=maps)
    start = time.perf_counter()
    mask = lung_mask_volume(case.volume)
    found = detect_candidates(case.volume, detector, mask_volume=mask)
    seconds = time.perf_counter() - start
    slice_mm = float(volume.geometry.spacing_zyx[0])
    nodules = []
    matched: set[int] = set()
    for nodule in case.nodules.items:
        hits = [i for i, d in enumerate(found.items) if _inside(np.asarray(d.center), nodule, slice_mm)]
        matched |= set(hits)
        best = hits[0] if hits else None
        nodules.append({"attachment": nodule.label, "diameter_mm": round(nodule.diameter_mm, 2),
                        "attenuation_hu": nodule.extra["attenuation_hu"],
                        "center": [round(c, 1) for c in nodule.center],
                        "rank": None if best is None else best + 1,
                        "score": None if best is None else found.items[best].probability,
                        "features": None if best is None else found.items[best].extra})
    false = [{"rank": i + 1, "score": d.probability, "center": [round(c, 1) for c in d.center],
              "diameter_mm": round(d.diameter_mm or 0, 1), "features": d.extra}
             for i, d in enumerate(found.items) if i not in matched][:5]
    return RunResult(host.name, seed, nodules, len(found), round(seconds, 1), round(os.getloadavg()[0], 2),
                     false), case.nodules, found


def froc_of(runs: list[tuple[RunResult, Detections, Detections]], slice_mm: float) -> dict:
    """LUNA16 FROC of the runs (each run a scan), with the z tolerance of thick slices."""
    scans = [f"{r.host}-{r.seed}" for r, _, _ in runs]
    truth = {}
    for (record, nodules, _), uid in zip(runs, scans):
        truth[uid] = [dataclasses.replace(n, diameter_mm=n.diameter_mm) for n in nodules.items]
    candidates = {}
    for (record, nodules, found), uid in zip(runs, scans):
        # the matcher is LUNA16's (a sphere of the nodule's radius); on thick slices a hit within the elongated
        # tolerance is moved onto the nodule's centre so the sphere test counts it
        moved = []
        for d in found.items:
            target = next((n for n in nodules.items if _inside(np.asarray(d.center), n, slice_mm)), None)
            moved.append(d if target is None else dataclasses.replace(d, center=target.center))
        candidates[uid] = moved
    result = evaluate_froc(scans, truth, candidates, bootstrap_samples=200)
    return {"sensitivity_at": {f"{r:g}": s for r, s in zip(result.rates, result.sensitivities) if r in RATES},
            "cpm": result.cpm, "counts": result.counts}


def study(hosts=HOSTS, runs: int = 10, detector: ClassicDetectorConfig | None = None,
          log=print) -> dict:
    detector = detector or ClassicDetectorConfig(max_candidates=100, min_score=0.0)
    document = {"machine": f"{platform.node()} ({os.cpu_count()} CPUs, {platform.machine()})",
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "runs_per_host": runs,
                "detector": dataclasses.asdict(detector), "hosts": {}}
    root = data_root()
    for host in hosts:
        volume = read_volume(root / host.path)
        maps = lung_maps(volume)
        results = []
        for seed in range(runs):
            results.append(run_once(host, volume, seed, detector, maps=maps))
            record = results[-1][0]
            log(f"{host.name} run {seed}: {record.candidates} candidates, "
                + ", ".join(f"{n['attachment']} {n['diameter_mm']:.1f} mm -> rank {n['rank']} score "
                            f"{n['score'] if n['score'] is None else round(n['score'], 3)}" for n in record.nodules)
                + f" ({record.seconds:.0f} s, load {os.getloadavg()[0]:.1f})")
        slice_mm = float(volume.geometry.spacing_zyx[0])
        document["hosts"][host.name] = {"froc": froc_of(results, slice_mm),
                                        "by_attachment": by_attachment(results),
                                        "runs": [dataclasses.asdict(r) for r, _, _ in results]}
        log(f"{host.name}: {document['hosts'][host.name]['froc']['sensitivity_at']}")
    return document


def by_attachment(results) -> dict:
    """Per attachment: how many nodules, how many found at all, and the median rank of the found ones."""
    table = {}
    for record, _, _ in results:
        for n in record.nodules:
            row = table.setdefault(n["attachment"], {"nodules": 0, "found": 0, "ranks": []})
            row["nodules"] += 1
            if n["rank"] is not None:
                row["found"] += 1
                row["ranks"].append(n["rank"])
    return {k: {"nodules": v["nodules"], "found": v["found"],
                "median_rank": float(np.median(v["ranks"])) if v["ranks"] else None} for k, v in table.items()}


FIT_SEEDS = tuple(range(100, 108))
FIT_C = 0.001  # inverse L2 strength, as scikit-learn's C


def phantom_training_set(seeds=FIT_SEEDS, log=print) -> tuple[np.ndarray, np.ndarray]:
    """The score features of every candidate of the phantoms, and 1 where it lies in a phantom nodule."""
    from radassist.synthetic.chest import make_chest_ct

    features, labels = [], []
    for seed in seeds:
        phantom = make_chest_ct(seed)
        slice_mm = float(phantom.volume.geometry.spacing_zyx[0])
        measured = measure_peaks(phantom.volume, ClassicDetectorConfig(min_score=0.0))
        for candidate in measured:
            features.append(score_features(candidate.features))
            labels.append(any(_inside(np.asarray(candidate.center), n, slice_mm) for n in phantom.nodules.items))
        log(f"phantom {seed}: {len(measured)} candidates, {sum(labels[-len(measured):]) if measured else 0} on nodules")
    return np.array(features), np.array(labels, dtype=float)


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float = FIT_C, iterations: int = 100) -> tuple[np.ndarray, float]:
    """Class-balanced logistic regression with an L2 penalty on the weights (not the bias): minimises
    ``|w|^2 / 2 + c * sum_i s_i * logloss_i`` (scikit-learn's objective, s_i = n / (2 n_class)) by Newton's method."""
    n, d = x.shape
    positives = max(float(y.sum()), 1.0)
    balance = np.where(y == 1, n / (2 * positives), n / (2 * max(n - positives, 1.0)))
    design = np.column_stack([x, np.ones(n)])
    beta = np.zeros(d + 1)
    penalty = np.eye(d + 1) / c
    penalty[-1, -1] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ beta, -40, 40)))
        gradient = design.T @ (balance * (p - y)) + penalty @ beta
        hessian = (design * (balance * p * (1 - p))[:, None]).T @ design + penalty
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    return beta[:-1], float(beta[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--hosts", nargs="*", default=[h.name for h in HOSTS])
    parser.add_argument("--fit", action="store_true", help="fit the score's weights on phantoms and print them")
    args = parser.parse_args(argv)
    if args.fit:
        weights, bias = fit_logistic(*phantom_training_set())
        print("score_weights =", tuple(round(float(w), 4) for w in weights), " score_bias =", round(bias, 4))
        return 0
    if args.out is None:
        parser.error("--out is required (except with --fit)")
    hosts = [h for h in HOSTS if h.name in args.hosts]
    document = study(hosts, args.runs)
    args.out.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
