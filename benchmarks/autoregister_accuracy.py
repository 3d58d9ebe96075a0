"""The auto-register pipeline (`headreg register`'s `autoregister.register_volumes`) per
initial-rotation bin: success (mean TRE over the fixed head < 2 mm), median and max TRE,
time, and whether the quality check flagged the failures.

Pairs as in groundtruth_accuracy.py (phantom on whole-head grids, phantom on RIRE's slab
grids with the head turned in the CT scanner or the CT volume turned through its header,
MNI152 T1 + scct CT templates), turned by an angle drawn in the bin about a random
axis and moved 10-40 mm; inputs given CT first, so the roles must be found.

    python benchmarks/autoregister_accuracy.py --pairs-per-bin 2 --out ar-bench

Each case is written to OUT/<dataset>-<seed>.json as it finishes; a rerun skips those.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from cases import make_case
from groundtruth_accuracy import BINS, make_pair
from HeadRegistrationLib import autoregister, geometry, symmetry
from HeadRegistrationLib.errors import HeadRegError

SUCCESS_MM = 2.0


def run_case(dataset: str, seed: int, lo: float, hi: float, models) -> dict:
    rng = np.random.default_rng(seed)
    angle, distance = rng.uniform(lo, hi), rng.uniform(10, 40)
    fixed, moving, truth = (make_case if "/" in dataset else make_pair)(dataset, seed, angle, distance)
    began = time.perf_counter()
    try:
        result = autoregister.register_volumes(moving, fixed, models=models)
    except HeadRegError as refused:   # a refusal is a failure of the benchmark case
        return {"dataset": dataset, "seed": seed, "bin": f"{lo}-{hi}", "angle": angle, "distance": distance,
                "tre_mm": float("inf"), "roles_right": None, "seconds": time.perf_counter() - began,
                "quality": {"confident": False, "head_dice": None, "runner_up_mi_gap": None},
                "error": str(refused)}
    seconds = time.perf_counter() - began
    return {"dataset": dataset, "seed": seed, "bin": f"{lo}-{hi}", "angle": angle, "distance": distance,
            "tre_mm": geometry.mean_displacement_in_mask(result.matrix, truth, symmetry.head_mask(fixed)),
            "roles_right": result.fixed_index == 1, "seconds": seconds, "stage_seconds": result.seconds,
            "quality": result.quality, "warnings": result.warnings,
            "starts": [{k: v for k, v in start.items() if k != "matrix"} for start in result.starts]}


def summarise(rows: list[dict]) -> str:
    lines = ["| dataset | " + " | ".join(f"{lo}-{hi} deg" for lo, hi in BINS) + " | median s |",
             "|---" * (2 + len(BINS)) + "|"]
    for dataset in sorted({r["dataset"] for r in rows}):
        cells = []
        for lo, hi in BINS:
            errors = [r["tre_mm"] for r in rows if r["dataset"] == dataset and r["bin"] == f"{lo}-{hi}"]
            cells.append(f"{sum(e < SUCCESS_MM for e in errors)}/{len(errors)}, median {np.median(errors):.2f}, "
                         f"max {max(errors):.1f}" if errors else "")
        seconds = np.median([r["seconds"] for r in rows if r["dataset"] == dataset])
        lines.append(f"| {dataset} | " + " | ".join(cells) + f" | {seconds:.1f} |")
    flagged = [r for r in rows if not r["quality"]["confident"]]
    failed = [r for r in rows if r["tre_mm"] >= SUCCESS_MM]
    lines += ["", f"Quality check: {len(flagged)} of {len(rows)} flagged LOW CONFIDENCE; "
              f"{sum(not r['quality']['confident'] for r in failed)} of the {len(failed)} failures flagged, "
              f"{sum(r['tre_mm'] < SUCCESS_MM for r in flagged)} successes flagged. "
              f"Roles right in {sum(r['roles_right'] for r in rows)} of {len(rows)}. "
              f"Median TRE over all cases {np.median([r['tre_mm'] for r in rows]):.2f} mm. "
              f"Refused: {sum('error' in r for r in rows)}."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="phantom,mni,phantom-slab,slab-header",
                        help="comma-separated: groundtruth_accuracy.py's datasets or cases.py's source/view names")
    parser.add_argument("--first-seed", type=int, default=200)
    parser.add_argument("--pairs-per-bin", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--models", help="model folder (default: the shipped models)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    models = autoregister.load_models(args.models)
    rows = []
    for dataset in args.datasets.split(","):
        for b, (lo, hi) in enumerate(BINS):
            for j in range(args.pairs_per_bin):
                seed = args.first_seed + 10 * b + j
                path = args.out / f"{dataset.replace('/', '_')}-{seed}.json"
                if not path.exists():
                    path.write_text(json.dumps(run_case(dataset, seed, lo, hi, models), indent=1))
                row = json.loads(path.read_text())
                print(f"{dataset} {row['angle']:.0f} deg {row['distance']:.0f} mm: TRE {row['tre_mm']:.2f} mm, "
                      f"{row['seconds']:.1f} s, head Dice {row['quality']['head_dice']}, "
                      f"gap {row['quality']['runner_up_mi_gap']} {row.get('error', '')}", flush=True)
                rows.append(row)
    print(summarise(rows))


if __name__ == "__main__":
    main()
