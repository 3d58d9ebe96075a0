"""Ground truth by symmetry alignment and MI optimisation (paper: "Generation of ground truth data").

The paper puts both heads in their PCA symmetry frames (symmetry.py), registers the two
frames with mutual information and composes the result back, ``T = F_moving @ T_reg @
inv(F_fixed)`` (``symmetry.compose_ground_truth``). Here that is the registration search
(search.py) with its exhaustive setting, which may take all the time it wants:

* ``accurate`` (default): every kind of start (the 24 frame alignments among them), the
  search's screening, and its refinement on the images themselves.
* ``paper``: the frame alignments only, screened by the search (PCA leaves the axes'
  signs and near-equal axes' order open), then the paper's (1+1)-evolutionary optimiser
  with its settings (registration.py) from the best.

Without symmetry the search starts from the images as they lie (identity), as in the
paper's comparison.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..core import batch, geometry, qa, transform_io, volume_io
from ..register import preprocessing, quality, registration, search, symmetry
from ..core.errors import HeadRegError, one_line

PRESETS = ("accurate", "paper")
MASK_SPACING_MM = 4.0


@dataclass
class GroundTruth:
    matrix: np.ndarray                      # fixed -> moving, LPS mm
    preset: str
    use_symmetry: bool
    metric: float                           # the search's metric at the result (negative MI, lower is better)
    seconds: float
    fixed_frame: np.ndarray | None = None   # frame -> physical, 4x4
    moving_frame: np.ndarray | None = None
    registration_in_frame: np.ndarray | None = None  # fixed frame -> moving frame
    candidates: list[dict] = field(default_factory=list)  # the search's last candidates: kind, metric per stage
    quality: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def confident(self) -> bool:
        return bool(self.quality.get("confident"))

    def record(self) -> dict:
        """JSON-ready summary (matrices as nested lists)."""
        def listed(m):
            return None if m is None else np.asarray(m).tolist()
        return {"matrix_fixed_to_moving_lps": listed(self.matrix), "preset": self.preset,
                "symmetry_alignment": self.use_symmetry, "metric": self.metric, "seconds": self.seconds,
                "fixed_frame": listed(self.fixed_frame), "moving_frame": listed(self.moving_frame),
                "registration_in_frame": listed(self.registration_in_frame), "candidates": self.candidates,
                "quality": self.quality, "warnings": self.warnings,
                "settings": {"search": search.EFFORT["exhaustive"],
                             **({"paper": registration.PRESETS["paper"]} if self.preset == "paper" else {})}}


def ground_truth(fixed: sitk.Image, moving: sitk.Image, preset: str = "accurate",
                 use_symmetry: bool = True) -> GroundTruth:
    """Fixed -> moving rigid transform between two head volumes (module docstring)."""
    if preset not in PRESETS:
        raise HeadRegError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    began = time.perf_counter()
    (fixed, fixed_padded), (moving, moving_padded) = (preprocessing.without_padding(i) for i in (fixed, moving))
    fixed_mask, moving_mask = (symmetry.head_mask(image, MASK_SPACING_MM) for image in (fixed, moving))
    fixed_frame, moving_frame = (symmetry.symmetry_frame(image, mask)
                                 for image, mask in ((fixed, fixed_mask), (moving, moving_mask)))
    warnings = [f"the {name} head's principal axes have near-equal spreads "
                f"({np.sqrt(frame.variances).round(1).tolist()} mm)"
                for name, frame in (("fixed", fixed_frame), ("moving", moving_frame))
                if use_symmetry and not frame.distinct_axes()]
    warnings += [f"the {name} volume: {padded}" for name, padded in (("fixed", fixed_padded), ("moving", moving_padded))
                 if padded]
    from ..register import classifier   # the decision register makes, to say what a pair of one modality cannot prove
    model = classifier.load_model()
    kinds_of = [classifier.decide(image, model, frame.center, mask) for image, frame, mask in
                ((fixed, fixed_frame, fixed_mask), (moving, moving_frame, moving_mask))]
    if kinds_of[0].modality == kinds_of[1].modality and min(k.probability for k in kinds_of) >= 0.9:
        warnings.append(f"both volumes look like {kinds_of[0].modality}: registered as asked, but nothing here "
                        "can tell whether two scans of one modality are of the same head; check that they are")
    if preset == "paper" and not use_symmetry:   # the paper's comparison: the optimiser alone, as they lie
        result = registration.register(fixed, moving, np.eye(4), fixed_frame.center, "paper", fixed_mask)
        dice = quality.head_dice(fixed_mask, moving_mask, result.matrix)
        if dice < quality.MIN_HEAD_DICE:
            warnings.append(f"LOW CONFIDENCE: the two heads overlap poorly (head Dice {dice:.2f} < "
                            f"{quality.MIN_HEAD_DICE}): check the result by eye")
        return GroundTruth(result.matrix, preset, False, result.metric, time.perf_counter() - began,
                           quality={"head_dice": dice, "confident": dice >= quality.MIN_HEAD_DICE}, warnings=warnings)
    kinds = ("header",) if not use_symmetry else ("symmetry",) if preset == "paper" else search.START_KINDS
    found = search.search(fixed, moving, fixed_mask, moving_mask, fixed_frame, moving_frame, "cpu",
                          effort="exhaustive", refine=preset == "accurate", start_kinds=kinds)
    measures = quality.measure(found, fixed_mask, moving_mask)
    warnings += measures.pop("warnings")
    matrix, metric = found.chosen.matrix, -measures["mutual_information"]
    if preset == "paper":
        result = registration.register(fixed, moving, matrix, fixed_frame.center, "paper", fixed_mask)
        matrix, metric = result.matrix, result.metric
    truth = GroundTruth(matrix, preset, use_symmetry, metric, time.perf_counter() - began,
                        candidates=[c.record() for c in found.candidates], quality=measures, warnings=warnings)
    if use_symmetry:
        truth.fixed_frame, truth.moving_frame = fixed_frame.matrix, moving_frame.matrix
        truth.registration_in_frame = geometry.compose(geometry.invert(moving_frame.matrix), matrix,
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
    written last), or a record of failure and ``task["retry_failed"]`` is not set, so a
    resumed batch skips it."""
    outputs = pair_outputs(task)
    return batch.done_by_record(outputs["record"], task.get("retry_failed"), [outputs["transform"]])


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
        reason = one_line(error)
        record = {**task, "status": "failed", "error": reason}
        batch.write_json(record, outputs["record"])
        if not isinstance(error, (HeadRegError, OSError, RuntimeError)):
            raise
        return record
    record = {**task, "status": "ok", **truth.record(),
              "files": {name: path.name for name, path in outputs.items()}}
    batch.write_json(record, outputs["record"])
    return record
