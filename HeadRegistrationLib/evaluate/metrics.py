"""Evaluation against known truth (paper: "Complete registration process", equations 1-6,
Tables 1 and 2), with what users also need: TRE in mm, rotation and translation errors,
and success per initial-rotation bin.

The paper compares the moving image resampled with the truth (x) and with the result (y).
Here x and y are the head masks (symmetry.head_mask's Otsu threshold) of the moving image
resampled onto the fixed grid through each transform, for DSC, JSC, Rp = |x∩y|/|y|,
Rs = |x∩y|/|x| and CMS = 2 Rp Rs / (Rp + Rs) (which equals DSC by its definition);
SSIM (equation 6, one global window) compares the two resampled intensities over the
union of the masks, with C1 = (0.01 L)^2, C2 = (0.03 L)^2 and L their range.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..core import geometry
from ..register import symmetry

BINS = ((0, 15), (15, 45), (45, 90), (90, 180))   # initial rotation, degrees
SUCCESS_MM = 2.0                                   # mean TRE over the head


def _resampled(moving: sitk.Image, fixed: sitk.Image, matrix) -> sitk.Image:
    background = float(sitk.GetArrayViewFromImage(moving).min())
    return sitk.Resample(sitk.Cast(moving, sitk.sitkFloat32), fixed, geometry.sitk_from_matrix(matrix),
                         sitk.sitkLinear, background, sitk.sitkFloat32)


def paper_metrics(fixed: sitk.Image, moving: sitk.Image, truth, found, head_mask=symmetry.head_mask) -> dict:
    """DSC, JSC, Rp, Rs, CMS and SSIM (module docstring) of ``found`` against ``truth``;
    ``head_mask``: image -> mask of its head (on volumes whose head is a plain threshold,
    a threshold is much faster than the default)."""
    x_image, y_image = _resampled(moving, fixed, truth), _resampled(moving, fixed, found)
    x_mask = sitk.Resample(head_mask(x_image), fixed, sitk.Transform(), sitk.sitkNearestNeighbor)
    y_mask = sitk.Resample(head_mask(y_image), fixed, sitk.Transform(), sitk.sitkNearestNeighbor)
    x, y = (sitk.GetArrayViewFromImage(m) > 0 for m in (x_mask, y_mask))
    both, either = int((x & y).sum()), int((x | y).sum())
    rp = both / max(int(y.sum()), 1)
    rs = both / max(int(x.sum()), 1)
    a, b = sitk.GetArrayViewFromImage(x_image)[x | y], sitk.GetArrayViewFromImage(y_image)[x | y]
    value_range = float(max(a.max(), b.max()) - min(a.min(), b.min())) if a.size else 1.0
    c1, c2 = (0.01 * value_range) ** 2, (0.03 * value_range) ** 2
    covariance = float(np.mean((a - a.mean()) * (b - b.mean()))) if a.size else 0.0
    ssim = ((2 * a.mean() * b.mean() + c1) * (2 * covariance + c2)
            / ((a.mean() ** 2 + b.mean() ** 2 + c1) * (a.var() + b.var() + c2))) if a.size else 0.0
    return {"dsc": 2 * both / max(int(x.sum() + y.sum()), 1), "jsc": both / max(either, 1), "rp": rp, "rs": rs,
            "cms": 2 * rp * rs / (rp + rs) if rp + rs else 0.0, "ssim": float(ssim)}


def errors(fixed_head: sitk.Image, truth, found, rotation_center) -> dict:
    """Mean and max TRE over the fixed head, rotation error, and translation error at
    ``rotation_center`` (the fixed head's centre)."""
    points = geometry.physical_points(fixed_head, sitk.GetArrayViewFromImage(fixed_head) > 0)
    tre = geometry.target_registration_errors(truth, found, points)
    return {"tre_mean_mm": float(tre.mean()), "tre_max_mm": float(tre.max()),
            "rotation_error_deg": geometry.rotation_error_deg(truth, found),
            "translation_error_mm": geometry.translation_error_mm(truth, found, rotation_center)}


def rotation_bin(truth) -> str:
    """The initial-rotation bin of a case: the angle of its true rotation."""
    angle = geometry.rotation_error_deg(truth, np.eye(4))
    for lo, hi in BINS:
        if angle <= hi + 1e-6:
            return f"{lo}-{hi}"
    return f"{BINS[-1][0]}-{BINS[-1][1]}"


def summary_table(rows: list[dict], method: str = "headreg") -> list[dict]:
    """Per bin (and overall): cases, successes (mean TRE < ``SUCCESS_MM``), median and max
    TRE, the paper's metrics' means and the median time."""
    table = []
    for name in [f"{lo}-{hi}" for lo, hi in BINS] + ["all"]:
        chosen = [r for r in rows if name in ("all", r["bin"])]
        if not chosen:
            continue
        tre = [r["tre_mean_mm"] for r in chosen]
        entry = {"method": method, "bin": name, "cases": len(chosen),
                 "success": sum(t < SUCCESS_MM for t in tre), "median_tre_mm": float(np.median(tre)),
                 "max_tre_mm": float(np.max(tre)), "median_seconds": float(np.median([r["seconds"] for r in chosen]))}
        entry.update({key: float(np.mean([r[key] for r in chosen]))
                      for key in ("dsc", "jsc", "rp", "rs", "cms", "ssim")})
        table.append(entry)
    return table


def markdown(table: list[dict]) -> str:
    lines = ["| method | initial rotation | success (TRE < 2 mm) | median TRE mm | max TRE mm | DSC | JSC | Rp | Rs | "
             "CMS | SSIM | median s |", "|---" * 12 + "|"]
    for e in table:
        lines.append(f"| {e['method']} | {e['bin']} | {e['success']}/{e['cases']} | {e['median_tre_mm']:.2f} | "
                     f"{e['max_tre_mm']:.2f} | {e['dsc']:.4f} | {e['jsc']:.4f} | {e['rp']:.4f} | {e['rs']:.4f} | "
                     f"{e['cms']:.4f} | {e['ssim']:.4f} | {e['median_seconds']:.1f} |")
    return "\n".join(lines)


def plot(records: list[dict], path) -> None:
    """Mean TRE over the head against the initial rotation, log scale, the 2 mm success line."""
    from matplotlib.figure import Figure   # drawn off screen: no pyplot, no backend chosen

    from ..core.files import write_atomically
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    axes.scatter([r["initial_rotation_deg"] for r in records], [max(r["tre_mean_mm"], 1e-3) for r in records],
                 c=["tab:green" if r["tre_mean_mm"] < SUCCESS_MM else "tab:red" for r in records])
    axes.axhline(SUCCESS_MM, color="grey", linestyle="--", label=f"success: mean TRE < {SUCCESS_MM:g} mm")
    axes.set(xscale="linear", yscale="log", xlabel="initial rotation (degrees)", ylabel="mean TRE over the head (mm)",
             xlim=(0, 180))
    axes.legend()
    figure.tight_layout()
    write_atomically(path, lambda p: figure.savefig(p, format="png", dpi=100))
