"""Evaluation cases with known truth (``headreg evaluate``): phantom pairs spread over the
rotation bins, one case registered and measured (the paper's metrics, TRE, RIRE corners),
a resumable run over a cases list, and its results files."""

from __future__ import annotations

import time
import traceback
from pathlib import Path

import numpy as np

from ..core import batch, geometry, transform_io, volume_io
from ..core.errors import HeadRegError, one_line
from ..core.files import write_atomically, write_csv
from ..data import phantom
from ..register import autoregister, symmetry
from . import metrics, rire

RESULT_COLUMNS = ["id", "status", "error", "a", "b", "fixed", "bin", "initial_rotation_deg", "tre_mean_mm",
                  "tre_max_mm", "rotation_error_deg", "translation_error_mm", "dsc", "jsc", "rp", "rs", "cms", "ssim",
                  "seconds", "confident"]


def phantom_cases(count: int, out: Path) -> Path:
    """``count`` phantom pairs on whole-head grids, spread over the rotation bins (10-40 mm
    apart), written under OUT/phantoms/, and their cases CSV."""
    folder = out / "phantoms"
    rows = []
    for k in range(count):
        lo, hi = metrics.BINS[k % len(metrics.BINS)]
        rng = np.random.default_rng([k, 99])
        case = folder / f"phantom-{k:03d}"
        if not (case / "truth.tfm").exists():
            case.mkdir(parents=True, exist_ok=True)
            phantom.write_phantom(case, k, rng.uniform(lo, hi), rng.uniform(10, 40),
                                  phantom.WHOLE_HEAD_GRIDS["ct_grid"], phantom.WHOLE_HEAD_GRIDS["mr_grid"], False, True)
        rows.append(f"{case.name}/ct.nii.gz,{case.name}/mr.nii.gz,{case.name}/truth.tfm,{case.name}")
    write_atomically(folder / "cases.csv", lambda p: Path(p).write_text("a,b,truth,id\n" + "\n".join(rows) + "\n"))
    return folder / "cases.csv"


def evaluate_case(case: dict, models, refine: bool) -> dict:
    """Register one case (paths a, b, truth: an ITK transform or a RIRE .standard) and measure it."""
    images = [volume_io.read_volume(case[key]) for key in ("a", "b")]
    for key, image in zip(("a", "b"), images):
        volume_io.check_volume_content(image, str(case[key]))
    standard = None
    if str(case["truth"]).lower().endswith(".standard"):
        standard = rire.read_standard(case["truth"])
        truth = standard.matrix
    else:
        truth = transform_io.read_transform(case["truth"])
    began = time.perf_counter()
    result = autoregister.register_volumes(*images, refine=refine, models=models,
                                           names=(str(case["a"]), str(case["b"])))
    seconds = time.perf_counter() - began
    fixed, moving = images[result.fixed_index], images[1 - result.fixed_index]
    head = symmetry.head_mask(fixed)
    inputs = (case["a"], case["b"])
    record = {"status": "ok", "fixed": str(inputs[result.fixed_index]),
              "moving": str(inputs[1 - result.fixed_index]), "seconds": seconds,
              "initial_rotation_deg": geometry.rotation_error_deg(truth, np.eye(4)),
              "bin": metrics.rotation_bin(truth),
              **metrics.errors(head, truth, result.matrix, symmetry.symmetry_frame(fixed, head).center),
              **metrics.paper_metrics(fixed, moving, truth, result.matrix),
              "confident": result.confident, "warnings": result.warnings,
              "matrix_fixed_to_moving_lps": result.matrix.tolist()}
    if standard is not None:
        record["tre_rire_corners_mm"] = float(standard.target_registration_errors(result.matrix).mean())
    return record


def case_record_path(task: dict) -> Path:
    return Path(task["out"]) / "cases" / f"{task['id']}.json"


def case_done(task: dict) -> bool:
    """Recorded before (a failure only counts as done without ``retry_failed``)."""
    return batch.done_by_record(case_record_path(task), task.get("retry_failed"))


def run_case(task: dict) -> dict:
    """One case as an independent task (``core.batch.run_tasks``): registered with the models
    its worker loaded once, measured, and recorded in OUT/cases/<id>.json with the
    transform found in <id>.tfm; a failure is recorded (a bug with its traceback)."""
    path = case_record_path(task)
    try:
        record = evaluate_case(task, autoregister.shared_models(), task["refine"])
    except Exception as error:   # recorded (a bug with its traceback); the other cases go on
        record = {"status": "failed", "error": one_line(error)}
        if not isinstance(error, (HeadRegError, OSError)):
            record["traceback"] = traceback.format_exc()
    record = {"id": task["id"], "a": str(task["a"]), "b": str(task["b"]), "truth": str(task["truth"]), **record}
    if record["status"] == "ok":  # the transform found, e.g. for a blind review against the truth
        transform_io.write_transform(record["matrix_fixed_to_moving_lps"], path.with_suffix(".tfm"))
    batch.write_json(record, path)
    return record


def evaluate_cases(cases: list[dict], out: Path, refine: bool = True, retry_failed: bool = False, workers: int = 1,
                   scheduler: str | None = None) -> list[dict]:
    """Every case's record (``run_case``; where and how many at a time as
    ``core.batch.run_tasks``): a case recorded before is not run again, a failed one only
    with ``retry_failed``."""
    (Path(out) / "cases").mkdir(parents=True, exist_ok=True)
    tasks = [{**case, "out": str(Path(out).resolve()), "refine": refine, "retry_failed": retry_failed}
             for case in cases]
    batch.run_tasks(tasks, run_case, case_done, workers, "evaluate", "case", scheduler)
    return batch.read_records(tasks, case_record_path)


def write_results(records: list[dict], out: Path) -> str:
    """results.csv (every case), and summary.csv, summary.md and tre.png of the cases that
    ran; returns the summary as Markdown ("" when no case ran)."""
    write_csv(out / "results.csv", RESULT_COLUMNS, records)
    succeeded = [r for r in records if r["status"] == "ok"]
    table = metrics.summary_table(succeeded)
    if not table:
        return ""
    write_csv(out / "summary.csv", list(table[0]), table)
    text = metrics.markdown(table)
    write_atomically(out / "summary.md", lambda p: Path(p).write_text(text + "\n"))
    metrics.plot(succeeded, out / "tre.png")
    return text
