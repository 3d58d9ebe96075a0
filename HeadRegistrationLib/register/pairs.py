"""One pair of ``headreg batch register`` as an independent task (``core.batch.run_tasks``):
it reads its two volumes, registers them with the models its worker loaded once, writes
its outputs atomically, and records what happened, so a batch resumes and one bad pair
never stops the others."""

from __future__ import annotations

import json
import time
from pathlib import Path

import SimpleITK as sitk

from ..core import batch, geometry, qa, transform_io, volume_io
from ..core.errors import LOW_CONFIDENCE, HeadRegError, one_line
from ..core.files import write_all, write_image
from . import autoregister

SUMMARY_COLUMNS = ["id", "status", "exit_status", "a", "b", "fixed", "fixed_modality", "fixed_probability", "moving",
                   "moving_modality", "moving_probability", "confident", "head_dice", "seconds", "warnings", "error"]


def pair_outputs(task: dict) -> dict[str, Path]:
    """Where the task's transform, report, record and optional QA picture and resampled
    volume go (``out/<id>.*``)."""
    folder = Path(task["out"])
    return {name: folder / f"{task['id']}{suffix}" for name, suffix in
            (("transform", ".tfm"), ("report", ".report.json"), ("record", ".json"), ("qa", ".png"),
             ("resampled", ".resampled.nii.gz"))}


def pair_done(task: dict) -> bool:
    """Whether the pair has its transform and a record of success (written last), or a
    record of failure and ``task["retry_failed"]`` is not set."""
    outputs = pair_outputs(task)
    return batch.done_by_record(outputs["record"], task.get("retry_failed"), [outputs["transform"]])


def run_pair(task: dict) -> dict:
    """Register one pair: ``task`` holds ``id``, ``a``, ``b`` (paths, any order of CT and
    MR), ``out``, and ``refine``, ``device``, ``model`` (a folder or None), ``qa`` and
    ``resampled`` (bools). Writes ``<id>.tfm`` and ``<id>.report.json`` (as ``register``
    does), the asked-for extras, and last ``<id>.json``, the record; a failure writes only
    a record with ``status: failed`` and the reason (a bug is raised after it is written)."""
    outputs = pair_outputs(task)
    began = time.perf_counter()
    try:
        images = [volume_io.read_volume(task[key]) for key in ("a", "b")]
        result = autoregister.register_volumes(*images, refine=task["refine"], device=task["device"],
                                               models=autoregister.shared_models(task["model"], task["device"]),
                                               names=(task["a"], task["b"]))
        fixed, moving = images[result.fixed_index], images[1 - result.fixed_index]
        settings = {key: task[key] for key in ("refine", "device", "model")}
        report = autoregister.report(result, (task["a"], task["b"]), settings)
        writes = [(outputs["transform"], lambda p: transform_io.write_transform(result.matrix, p)),
                  (outputs["report"], lambda p: Path(p).write_text(json.dumps(report, indent=2)))]
        if task.get("qa"):
            writes.append((outputs["qa"], lambda p: qa.overlay_figure(
                fixed, moving, result.matrix, p, f"{task['id']}: MR (grey) + CT (colour)")))
        if task.get("resampled"):
            writes.append((outputs["resampled"], lambda p: write_image(sitk.Resample(
                moving, fixed, geometry.sitk_from_matrix(result.matrix), sitk.sitkLinear,
                float(sitk.GetArrayViewFromImage(moving).min()), moving.GetPixelID()), p)))
        write_all(writes)
    except Exception as error:
        record = {**task, "status": "failed", "exit_status": 1, "error": one_line(error),
                  "seconds": time.perf_counter() - began}
        batch.write_json(record, outputs["record"])
        if not isinstance(error, (HeadRegError, OSError, RuntimeError)):
            raise
        return record
    roles = {"fixed": report["fixed"], "moving": report["moving"]}
    record = {**task, "status": "ok", "exit_status": 0 if result.confident else LOW_CONFIDENCE,
              **{role: value["path"] for role, value in roles.items()},
              **{f"{role}_modality": value["modality"] for role, value in roles.items()},
              **{f"{role}_probability": round(value["probability"], 4) for role, value in roles.items()},
              "confident": result.confident, "head_dice": round(result.quality["head_dice"], 4),
              "seconds": time.perf_counter() - began, "warnings": result.warnings,
              "matrix_fixed_to_moving_lps": result.matrix.tolist(),
              "files": {name: path.name for name, path in outputs.items() if path.exists()}}
    batch.write_json(record, outputs["record"])
    return record


def summary_rows(records: list[dict]) -> list[dict]:
    """The rows of summary.csv (``SUMMARY_COLUMNS``)."""
    return [{**r, "warnings": "; ".join(r.get("warnings", [])), "error": r.get("error", "")} for r in records]
