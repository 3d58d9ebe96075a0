"""Quality of a registration without ground truth (issue 6; the paper judges its results
against ground truth only).

* ``mutual_information``: the search's metric at the result (search.py: MI over the fixed
  head, the moving image's outside counted), comparable between candidates of one pair,
  not between pairs.
* ``head_dice``: overlap of the two head masks (Otsu, symmetry.head_mask) once the moving
  one is carried onto the fixed one, counted only where both fields of view reach. Two
  views of one head overlap well whatever the modalities; a flipped or shifted result
  does not.
* ``runner_up_mi_gap``: how much worse (relative MI at the search's fine level, points
  ``search.FINE_MM`` apart, where each was optimised) the best other solution is than the result, among them the result's
  mirror alternatives. Near zero, two different answers fit the images almost equally: a
  symmetric ambiguity.
* ``overlap``: the fraction of the fixed head inside the moving image's field of view.
* ``refinement_moved_mm``: how far the refinement moved the result over the head
  (agreement between the stages).

The result is ``confident`` when the head overlap and the MI gap both clear their
thresholds, set on the tuning pairs of the benchmark (docs/BENCHMARKS.md, "Auto-register").
"""

from __future__ import annotations

import SimpleITK as sitk

from ..core import geometry

# Set on the tuning seeds (benchmarks/autoregister_accuracy.py --first-seed 200): right results
# had head Dice >= 0.909 and runner-up gaps >= 0.079; the gross failures of a weaker search
# (--variant centres-only) Dice 0.49-0.887 with gaps -0.03 to 0.11.
MIN_HEAD_DICE = 0.895
MIN_MI_GAP = 0.05


def head_dice(fixed_mask: sitk.Image, moving_mask: sitk.Image, fixed_to_moving) -> float:
    """Dice of the fixed head mask and the moving one resampled through the transform,
    where both fields of view reach."""
    transform = geometry.sitk_from_matrix(fixed_to_moving)
    moved = sitk.Resample(moving_mask, fixed_mask, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    everywhere = sitk.Image(moving_mask.GetSize(), sitk.sitkUInt8) + 1
    everywhere.CopyInformation(moving_mask)
    in_view = sitk.GetArrayFromImage(
        sitk.Resample(everywhere, fixed_mask, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)) > 0
    a = (sitk.GetArrayViewFromImage(fixed_mask) > 0) & in_view
    b = sitk.GetArrayViewFromImage(moved) > 0
    total = int(a.sum() + b.sum())
    return 2.0 * int((a & b).sum()) / total if total else 0.0


def mi_gap(chosen_metric: float, runner_up_metric: float | None) -> float | None:
    """Relative MI gap of the runner-up behind the chosen solution (metrics negative MI)."""
    if runner_up_metric is None:
        return None
    return (runner_up_metric - chosen_metric) / max(abs(chosen_metric), 1e-9)


def measure(found, fixed_mask: sitk.Image, moving_mask: sitk.Image) -> dict:
    """The measures of the module docstring for a ``search.SearchResult``, ``confident``,
    and ``warnings`` for the user."""
    chosen = found.chosen
    last = "refined" if "refined" in chosen.metric else "fine"
    dice = head_dice(fixed_mask, moving_mask, chosen.matrix)
    gap = mi_gap(chosen.metric["result at fine"], found.runner_up.metric["fine"] if found.runner_up else None)
    warnings = []
    if dice < MIN_HEAD_DICE:
        warnings.append(f"LOW CONFIDENCE: the two heads overlap poorly after registration (head Dice {dice:.2f} < "
                        f"{MIN_HEAD_DICE}): check the result by eye")
    if gap is not None and gap < MIN_MI_GAP:
        warnings.append(f"LOW CONFIDENCE: a different alignment fits almost as well (MI gap {gap:.3f} < "
                        f"{MIN_MI_GAP}): check the result by eye, e.g. for a left-right flip")
    moved = (geometry.mean_displacement_in_mask(chosen.matrix, chosen.poses["fine"], fixed_mask, 5000)
             if "refined" in chosen.poses else 0.0)
    return {"mutual_information": -float(chosen.metric[last]), "head_dice": dice,
            "runner_up_mi_gap": None if gap is None else float(gap), "overlap": float(chosen.overlap[last]),
            "refinement_moved_mm": float(moved), "confident": not warnings, "warnings": warnings}
