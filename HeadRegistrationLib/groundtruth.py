"""Ground truth by symmetry alignment and MI optimisation (paper: "Generation of ground truth data").

Both heads are put in their PCA symmetry frames (symmetry.py), the two frames are
registered with mutual information (registration.py), and the result is composed
back, ``T = F_moving @ T_reg @ inv(F_fixed)`` (``symmetry.compose_ground_truth``).
Because PCA leaves the axes' signs and near-equal axes' order open, the 24 frame
alignments are ranked by MI on a 4 mm grid, the best 8 get a short coarse (1+1)-EO run
(``screen_starts``), and the best one or two of those are optimised with the preset;
the result with the best full-resolution MI wins. Without symmetry,
the optimiser starts from the images as they lie (identity), as in the paper's
comparison.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from . import batch, geometry, qa, registration, symmetry, transform_io, volume_io
from .errors import HeadRegError

AMBIGUOUS_MARGIN = 0.02   # relative MI gap under which two different results count as a tie
SCREENED = 8              # frame alignments (of 24) screened by a short coarse optimisation
SCREENING_STAGE = registration.PRESETS["accurate"]["stages"][0]  # coarse (1+1)-EO on 6 mm copies


@dataclass
class GroundTruth:
    matrix: np.ndarray                      # fixed -> moving, LPS mm
    preset: str
    use_symmetry: bool
    metric: float                           # Mattes MI at the result, full resolution, head mask
    seconds: float
    fixed_frame: np.ndarray | None = None   # frame -> physical, 4x4
    moving_frame: np.ndarray | None = None
    registration_in_frame: np.ndarray | None = None  # fixed frame -> moving frame
    starts: list[dict] = field(default_factory=list)  # every optimised start: permutation, MI, moves
    warnings: list[str] = field(default_factory=list)

    def record(self) -> dict:
        """JSON-ready summary (matrices as nested lists)."""
        def listed(m):
            return None if m is None else np.asarray(m).tolist()
        return {"matrix_fixed_to_moving_lps": listed(self.matrix), "preset": self.preset,
                "symmetry_alignment": self.use_symmetry, "mattes_mi": self.metric, "seconds": self.seconds,
                "fixed_frame": listed(self.fixed_frame), "moving_frame": listed(self.moving_frame),
                "registration_in_frame": listed(self.registration_in_frame), "starts": self.starts,
                "warnings": self.warnings, "settings": registration.PRESETS[self.preset]}


def screen_starts(fixed: sitk.Image, moving: sitk.Image, candidates, center, head_mask: sitk.Image,
                  ranked: int = SCREENED, kept: int = 2) -> list[tuple[float, int, np.ndarray]]:
    """Resolve the PCA sign and order ambiguity: the ``ranked`` candidates with the best
    MI as they lie each get a short coarse (1+1)-evolutionary run (``SCREENING_STAGE``);
    of the ``kept`` best after it, those within 10 % of the best MI are returned as
    (MI, candidate index, matrix)."""
    order = registration.rank_candidates(fixed, moving, candidates, head_mask)[:ranked]
    fixed_coarse = registration.coarse_copy(fixed, SCREENING_STAGE["spacing_mm"])
    moving_coarse = registration.coarse_copy(moving, SCREENING_STAGE["spacing_mm"])
    stage = {**SCREENING_STAGE, "spacing_mm": None}
    screened = []
    for _, k in order:
        try:
            result = registration.run_stage(fixed_coarse, moving_coarse, candidates[k], center, stage, head_mask)
        except HeadRegError:  # the start leaves no overlap: not a candidate
            continue
        screened.append((result.metric, k, result.matrix))
    if not screened:
        raise HeadRegError("no symmetry-frame alignment overlaps the two heads")
    screened.sort(key=lambda s: s[0])
    best = screened[0][0]
    return [s for s in screened[:kept] if s[0] - best <= AMBIGUOUS_MARGIN * 5 * abs(best)]


def ground_truth(fixed: sitk.Image, moving: sitk.Image, preset: str = "paper", use_symmetry: bool = True,
                 starts: int = 2) -> GroundTruth:
    """Fixed -> moving rigid transform between two head volumes, with or without
    symmetry alignment first; with it, the ``starts`` best screened frame alignments
    are each optimised with ``preset`` and the best final MI wins."""
    began = time.perf_counter()
    fixed_mask, moving_mask = symmetry.head_mask(fixed), symmetry.head_mask(moving)
    fixed_frame = symmetry.symmetry_frame(fixed, fixed_mask)
    warnings = []
    if use_symmetry:
        moving_frame = symmetry.symmetry_frame(moving, moving_mask)
        for name, frame in (("fixed", fixed_frame), ("moving", moving_frame)):
            if not frame.distinct_axes():
                warnings.append(f"the {name} head's principal axes have near-equal spreads "
                                f"({np.sqrt(frame.variances).round(1).tolist()} mm)")
        candidates = symmetry.candidate_alignments(fixed_frame, moving_frame)
        chosen = [(k, m, mi) for mi, k, m in
                  screen_starts(fixed, moving, candidates, fixed_frame.center, fixed_mask, kept=starts)]
    else:
        chosen = [(None, np.eye(4), None)]

    results = []
    for k, start, screened_mi in chosen:
        result = registration.register(fixed, moving, start, fixed_frame.center, preset, fixed_mask)
        final_mi = registration.mutual_information(fixed, moving, result.matrix, fixed_mask)
        results.append((final_mi, result, {
            "permutation": None if k is None else symmetry.AXIS_PERMUTATIONS[k].tolist(),
            "screened_mi": screened_mi, "final_mi": final_mi, "iterations": result.iterations,
            "moved_mm": geometry.translation_error_mm(result.matrix, start, fixed_frame.center),
            "stop": result.stop_condition}))
    results.sort(key=lambda r: r[0])
    best_mi, best, _ = results[0]
    if len(results) > 1 and results[1][0] - best_mi < AMBIGUOUS_MARGIN * abs(best_mi) \
            and geometry.rotation_error_deg(results[1][1].matrix, best.matrix) > 5.0:
        warnings.append("two different symmetry-frame starts end at almost the same MI: "
                        "check this pair by eye")
    if best.metric > best.initial_metric:
        warnings.append("the optimiser ended at a worse MI than it started from")

    truth = GroundTruth(best.matrix, preset, use_symmetry, best_mi, time.perf_counter() - began,
                        starts=[r[2] for r in results], warnings=warnings)
    if use_symmetry:
        truth.fixed_frame, truth.moving_frame = fixed_frame.matrix, moving_frame.matrix
        truth.registration_in_frame = geometry.compose(geometry.invert(moving_frame.matrix), best.matrix,
                                                       fixed_frame.matrix)
    return truth


# ---------------------------------------------------------------- one pair as a task

def pair_outputs(task: dict) -> dict[str, Path]:
    """Where the task's transform, record and QA picture go."""
    folder = Path(task["out"])
    return {name: folder / f"{task['id']}{suffix}" for name, suffix in
            (("transform", ".tfm"), ("record", ".json"), ("qa", ".png"))}


def pair_done(task: dict) -> bool:
    """Whether the pair already has a transform and a record of success (its record is
    written last), so a resumed batch skips it."""
    outputs = pair_outputs(task)
    record = batch.read_json(outputs["record"])
    return bool(record and record.get("status") == "ok" and outputs["transform"].exists())


def run_pair(task: dict) -> dict:
    """Ground truth of one pair, a self-contained task: ``task`` holds ``id``, ``fixed``,
    ``moving`` (paths), ``out`` (folder), ``preset`` and ``symmetry``. Writes
    ``<id>.tfm``, ``<id>.png`` and, last, ``<id>.json``; a failure writes a record with
    ``status: failed`` and the reason, and nothing else."""
    outputs = pair_outputs(task)
    try:
        fixed = volume_io.read_volume(task["fixed"])
        moving = volume_io.read_volume(task["moving"])
        truth = ground_truth(fixed, moving, task["preset"], task["symmetry"])
        transform_io.write_transform(truth.matrix, outputs["transform"])
        qa.overlay_figure(fixed, moving, truth.matrix, outputs["qa"],
                          f"{task['id']}: {Path(task['fixed']).name} (grey) + {Path(task['moving']).name} (colour)")
    except Exception as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        record = {**task, "status": "failed", "error": reason}
        batch.write_json(record, outputs["record"])
        if not isinstance(error, (HeadRegError, OSError, RuntimeError)):
            raise
        return record
    record = {**task, "status": "ok", **truth.record(),
              "files": {name: path.name for name, path in outputs.items()}}
    batch.write_json(record, outputs["record"])
    return record
