"""Quality of a registration without ground truth (issue 6; the paper judges its results
against ground truth only).

* ``mattes_mi``: Mattes mutual information over the fixed head at the result, on the 3 mm
  copies (6 mm without refinement) (negative,
  lower is better): comparable between candidates of one pair, not between pairs.
* ``head_dice``: overlap of the two head masks (Otsu, symmetry.head_mask) once the moving
  one is carried onto the fixed one, counted only where both fields of view reach. Two
  views of one head overlap well whatever the modalities; a flipped or shifted result
  does not.
* ``runner_up_mi_gap``: how much worse (relative MI, on the 6 mm screening copies) the
  best start is that ended elsewhere (more than ``SAME_SOLUTION_MM`` away). Near zero,
  two different answers fit the images almost equally: a symmetric ambiguity.
* ``refinement_moved_mm``: how far the refinement moved the screened start over the
  head (agreement between the stages).

The result is ``confident`` when the head overlap and the MI gap both clear their
thresholds, set on the benchmark (docs/BENCHMARKS.md, "Auto-register").
"""

from __future__ import annotations

import SimpleITK as sitk

from . import geometry

SAME_SOLUTION_MM = 10.0   # two results closer than this (mean over the head) are one solution
MIN_HEAD_DICE = 0.85
MIN_MI_GAP = 0.10


def head_dice(fixed_mask: sitk.Image, moving_mask: sitk.Image, fixed_to_moving) -> float:
    """Dice of the fixed head mask and the moving one resampled through the transform,
    where both fields of view reach."""
    transform = geometry.sitk_from_matrix(fixed_to_moving)
    moved = sitk.Resample(moving_mask, fixed_mask, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    everywhere = sitk.Image(moving_mask.GetSize(), sitk.sitkUInt8) + 1
    everywhere.CopyInformation(moving_mask)
    in_view = sitk.GetArrayViewFromImage(
        sitk.Resample(everywhere, fixed_mask, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)) > 0
    a = (sitk.GetArrayViewFromImage(fixed_mask) > 0) & in_view
    b = sitk.GetArrayViewFromImage(moved) > 0
    total = int(a.sum() + b.sum())
    return 2.0 * int((a & b).sum()) / total if total else 0.0


def measure(matrix, fixed_mask: sitk.Image, moving_mask: sitk.Image, screened: list[dict], chosen: dict) -> dict:
    """The measures of the module docstring, ``confident``, and ``warnings`` for the user."""
    dice = head_dice(fixed_mask, moving_mask, matrix)
    others = [c["screened_mi"] for c in screened
              if geometry.mean_displacement_in_mask(c["matrix"], chosen["matrix"], fixed_mask, 5000) > SAME_SOLUTION_MM]
    gap = None if not others else (min(others) - chosen["screened_mi"]) / max(abs(chosen["screened_mi"]), 1e-9)
    warnings = []
    if dice < MIN_HEAD_DICE:
        warnings.append(f"LOW CONFIDENCE: the two heads overlap poorly after registration (head Dice {dice:.2f} < "
                        f"{MIN_HEAD_DICE}): check the result by eye")
    if gap is not None and gap < MIN_MI_GAP:
        warnings.append(f"LOW CONFIDENCE: a different alignment fits almost as well (MI gap {gap:.3f} < "
                        f"{MIN_MI_GAP}): check the result by eye, e.g. for a left-right flip")
    return {"mattes_mi": chosen.get("final_mi", chosen["screened_mi"]),
            "head_dice": dice, "runner_up_mi_gap": None if gap is None else float(gap),
            "refinement_moved_mm": geometry.mean_displacement_in_mask(matrix, chosen["matrix"], fixed_mask, 5000),
            "confident": not warnings, "warnings": warnings}
