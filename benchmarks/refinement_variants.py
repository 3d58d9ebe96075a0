"""Refinement settings compared from the same screened starts (autoregister's last stage).

Pairs: 8 phantom pairs on RIRE's grids (``make_phantom_pair`` defaults: up to 15 degrees
and 5 mm per axis) and 5 slab pairs of the auto-register benchmark. Each pair is first
registered with ``refine=False`` (roles, starts, screening: the refinement's start, kept in
OUT/screened.npz); then every variant refines from that start. Prints the mean TRE over
the fixed head and the time of each variant per pair, then median, max, successes (< 2 mm)
and median time per variant.

    python benchmarks/refinement_variants.py --out refine-variants
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from autoregister_accuracy import BINS
from groundtruth_accuracy import make_pair
from HeadRegistrationLib import autoregister, geometry, phantom, preprocessing, registration, symmetry

FULL = {**registration.PRESETS["accurate"]["stages"][1], "shrink_factors": [1], "smoothing_mm": [0.0]}
THREE_MM = {"optimizer": "gradient_descent", "spacing_mm": None, "shrink_factors": [1], "smoothing_mm": [0.0],
            "iterations": 100, "learning_rate": 2.0, "minimum_step": 1e-2, "relaxation": 0.6,
            "spatial_samples": None, "histogram_bins": 40}


def multilevel(shrink, smoothing, **changes):
    return {**FULL, "shrink_factors": shrink, "smoothing_mm": smoothing, **changes}


# (level, stage) steps; levels: "3mm" isotropic copies, "full" the fixed image with the moving
# image no finer than it, "full-as-is" the moving image itself.
VARIANTS = {
    "3 mm copies, then full (moving as is)": [("3mm", THREE_MM), ("full-as-is", FULL)],
    "3 mm copies, then full": [("3mm", THREE_MM), ("full", FULL)],
    "3 mm copies with 20 000 samples, then full": [("3mm", {**THREE_MM, "spatial_samples": 20000}), ("full", FULL)],
    "full, one level": [("full", FULL)],
    "full, shrink 4-2-1, smoothing 2-1-0 mm (shipped, \"shipped\" below)": [("full", autoregister.REFINE_STAGE)],
    "full, shrink 8-4-2-1, smoothing 4-2-1-0 mm": [("full", multilevel([8, 4, 2, 1], [4.0, 2.0, 1.0, 0.0]))],
    "full, shrink 4-2-1, smoothing 3-1.5-0 mm": [("full", multilevel([4, 2, 1], [3.0, 1.5, 0.0]))],
    "full, shrink 6-3-1, smoothing 3-1.5-0 mm": [("full", multilevel([6, 3, 1], [3.0, 1.5, 0.0]))],
    "full, shrink 4-2-1, learning rate 2": [("full", multilevel([4, 2, 1], [2.0, 1.0, 0.0], learning_rate=2.0))],
    # for time (issue 6's 5 s): the shipped stage with fewer samples, a larger last step, fewer iterations
    "shipped, 25 000 samples": [("full", {**autoregister.REFINE_STAGE, "spatial_samples": 25000})],
    "shipped, 10 000 samples": [("full", {**autoregister.REFINE_STAGE, "spatial_samples": 10000})],
    "shipped, minimum step 0.01": [("full", {**autoregister.REFINE_STAGE, "minimum_step": 0.01})],
    "shipped, 50 iterations per level": [("full", {**autoregister.REFINE_STAGE, "iterations": 50})],
}
SLAB_SEEDS = {200: BINS[0], 201: BINS[0], 211: BINS[1], 220: BINS[2], 230: BINS[3]}
CASES = [("rire-grid", seed) for seed in range(8)] + [("slab", seed) for seed in SLAB_SEEDS]


def load(kind: str, seed: int):
    """(fixed MR, moving CT, truth) of a case, as the auto-register benchmark draws it."""
    if kind == "rire-grid":
        pair = phantom.make_phantom_pair(seed)
        return pair.mr, pair.ct, pair.truth
    lo, hi = SLAB_SEEDS[seed]
    rng = np.random.default_rng(seed)
    angle, distance = rng.uniform(lo, hi), rng.uniform(10, 40)
    return make_pair("phantom-slab", seed, angle, distance)


def refine_case(case, start) -> dict:
    fixed, moving, truth = load(*case)
    head = symmetry.head_mask(fixed)
    mask = symmetry.head_mask(fixed, autoregister.MASK_SPACING_MM)
    center = symmetry.symmetry_frame(fixed, mask).center
    levels = {"3mm": autoregister.Level.of(fixed, moving, mask, 3.0),
              "full": autoregister.Level.of(fixed, preprocessing.no_finer_than(moving, fixed)[0], mask, None),
              "full-as-is": autoregister.Level.of(fixed, moving, mask, None)}
    row = {}
    for name, steps in VARIANTS.items():
        began, matrix = time.perf_counter(), start
        for level, stage in steps:
            matrix = levels[level].optimise(matrix, center, stage).matrix
        row[name] = (geometry.mean_displacement_in_mask(matrix, truth, head), time.perf_counter() - began)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / "screened.npz"
    starts = dict(np.load(cache)) if cache.exists() else {}
    models = autoregister.load_models()
    for kind, seed in CASES:
        if f"{kind}-{seed}" not in starts:
            fixed, moving, _ = load(kind, seed)
            starts[f"{kind}-{seed}"] = autoregister.register_volumes(moving, fixed, refine=False, models=models).matrix
            np.savez(cache, **starts)
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)   # one ITK thread per case, cases side by side
    with ThreadPoolExecutor(threads) as pool:
        rows = list(pool.map(lambda case: refine_case(case, starts[f"{case[0]}-{case[1]}"]), CASES))
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    for (kind, seed), row in zip(CASES, rows):
        print(f"{kind}-{seed}: " + " | ".join(f"{error:.2f} mm {seconds:.1f} s" for error, seconds in row.values()))
    print("| refinement | median TRE mm | max TRE mm | < 2 mm | median s |\n|---|---|---|---|---|")
    for name in VARIANTS:
        errors, seconds = [r[name][0] for r in rows], [r[name][1] for r in rows]
        print(f"| {name} | {np.median(errors):.2f} | {max(errors):.2f} | {sum(e < 2 for e in errors)}/{len(errors)} | "
              f"{np.median(seconds):.1f} |")


if __name__ == "__main__":
    main()
