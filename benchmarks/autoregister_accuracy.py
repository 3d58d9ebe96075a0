"""The auto-register pipeline (`headreg register`'s `autoregister.register_volumes`) per
dataset and initial-rotation bin: success (mean error over the fixed head < 2 mm), median
and max error, time, roles, and whether the quality check flagged the failures.

Datasets: cases.py's "<source>/<view>" (real anatomy in T1/T2/PD, head-and-neck and chest
fields of view, slabs, thick slices, obliquely cut slabs) and groundtruth_accuracy.py's
phantom, phantom-slab, slab-header and mni. Each case is turned by an angle drawn in its
bin about a random axis and moved 10-40 mm; inputs are given CT first, so the roles must be
found. Two sets of seeds: the tuning set (--first-seed 200, where thresholds are set) and
the report set (--first-seed 1000).

    python benchmarks/autoregister_accuracy.py --pairs-per-bin 2 --out ar-tune
    python benchmarks/autoregister_accuracy.py --pairs-per-bin 2 --first-seed 1000 --out ar-report

--variant measures what one part of the search buys, by taking it away (see VARIANTS).
--floor also optimises from the truth at full resolution (the best this
data allows: synthesised partners do not match their source to the last millimetre).

Each case is written to OUT/<case id>.json as it finishes; a rerun skips those.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from cases import DATASETS, case_list, make_case
from groundtruth_accuracy import BINS, make_pair
from HeadRegistrationLib.core import geometry
from HeadRegistrationLib.register import autoregister, search, symmetry
from HeadRegistrationLib.core.errors import HeadRegError

SUCCESS_MM = 2.0
OLD_DATASETS = ("phantom", "phantom-slab", "slab-header", "mni")


def _without_outside_bin():
    """The metric over the overlap alone: points outside the moving view are dropped."""
    def metric(self, matrices):
        count, bins = matrices.shape[0], self.bins
        position, inside = search._sample(self.moving, self.size, search._map(self.points, self.to_index @ matrices))
        floor = torch.floor(position)
        t = position - floor
        t2, t3, u = t * t, t * t * t, 1 - t
        weights = torch.stack([u * u * u, 3 * t3 - 6 * t2 + 4, 3 * (t2 - t3 + t) + 1, t3], -1) / 6 * inside[..., None]
        columns = (floor.long()[..., None] + self._spline).clamp(0, bins - 1)
        width = bins + 1
        flat = (torch.arange(count)[:, None, None] * (bins * width) + self.fixed_bins[None, :, None] * width
                + columns).reshape(-1)
        joint = search._Histogram.apply(flat, weights.reshape(-1), count * bins * width).reshape(count, bins, width)
        joint = joint / joint.sum((1, 2), keepdim=True).clamp_min(1e-9)

        def entropy(p, dims):
            return -(p * torch.log(p.clamp_min(1e-12))).sum(dims)
        return -(entropy(joint.sum(2), 1) + entropy(joint.sum(1), 1) - entropy(joint, (1, 2))), inside.float().mean(1)
    search.Level.metric = metric


def _centres_only():
    """Starts placed by the head centres alone (no mask agreement)."""
    def placed(bases, frame, fixed, moving, fixed_mask, moving_mask, fixed_center, moving_center, device, **_):
        rotations = np.einsum("bij,pjk,lk->bpil", np.asarray(bases), np.array(symmetry.AXIS_PERMUTATIONS),
                              np.asarray(frame)).reshape(-1, 3, 3)
        matrices = np.tile(np.eye(4), (len(rotations), 1, 1))
        matrices[:, :3, :3] = rotations
        matrices[:, :3, 3] = np.asarray(moving_center) - rotations @ np.asarray(fixed_center)
        return matrices
    search.mask_translations = placed


VARIANTS = {
    "shipped": lambda: None,
    "no-outside-bin": _without_outside_bin,
    "centres-only": _centres_only,
    "no-mirrors": lambda: setattr(search, "mirror_alternatives", lambda matrix, frame: []),
    "no-learned": lambda: search.EFFORT["fast"].update(network=0),
    "no-sampled": lambda: search.EFFORT["fast"].update(sampled=0),
    "sampled-1024": lambda: search.EFFORT["fast"].update(sampled=1024),
    "lean": lambda: search.EFFORT["fast"].update(ranking_points=2000, screened=12, screen_iterations=60,
                                                 fine_iterations=25, refine_iterations=30, refine_points=40000),
}


def floor_mm(fixed, moving, truth) -> float:
    """How far the best pose near the truth (a long optimisation from it at full resolution
    on 400 000 points) lies from the truth: the error a perfect search would still have on
    this pair."""
    masks = [symmetry.head_mask(image, 4.0) for image in (fixed, moving)]
    level = search.Level(*search.refinement_images(fixed, moving, *masks), *masks, None, 400_000, 48, "cpu")
    center = symmetry.symmetry_frame(fixed, masks[0]).center
    best = search.optimise(level, [truth], center, 150, 0.5, 0.01)[0][0]
    return geometry.mean_displacement_in_mask(best, truth, symmetry.head_mask(fixed))


def run_case(case: dict, models, with_floor: bool) -> dict:
    maker = make_case if "/" in case["dataset"] else make_pair
    fixed, moving, truth = maker(case["dataset"], case["seed"], case["angle"], case["distance"])
    record = {k: case[k] for k in ("id", "dataset", "seed", "bin", "angle", "distance")}
    began = time.perf_counter()
    try:
        result = autoregister.register_volumes(moving, fixed, models=models)
    except HeadRegError as refused:   # a refusal is a failure of the benchmark case
        return {**record, "tre_mm": float("inf"), "roles_right": None, "seconds": time.perf_counter() - began,
                "quality": {"confident": False}, "error": str(refused)}
    record.update(seconds=time.perf_counter() - began, stage_seconds=result.seconds,
                  tre_mm=geometry.mean_displacement_in_mask(result.matrix, truth, symmetry.head_mask(fixed)),
                  roles_right=result.fixed_index == 1, quality=result.quality, warnings=result.warnings,
                  chosen=result.candidates[0]["kind"] if result.candidates else None, candidates=result.candidates)
    if with_floor:
        record["floor_mm"] = floor_mm(fixed, moving, truth)
    return record


def summarise(rows: list[dict]) -> str:
    lines = ["| dataset | " + " | ".join(f"{lo}-{hi} deg" for lo, hi in BINS) + " | median mm | median s |",
             "|---" * (3 + len(BINS)) + "|"]
    for dataset in sorted({r["dataset"] for r in rows}):
        cells = []
        for lo, hi in BINS:
            errors = [r["tre_mm"] for r in rows if r["dataset"] == dataset and r["bin"] == f"{lo}-{hi}"]
            cells.append(f"{sum(e < SUCCESS_MM for e in errors)}/{len(errors)}" if errors else "")
        mine = [r for r in rows if r["dataset"] == dataset]
        floors = [r["floor_mm"] for r in mine if "floor_mm" in r]
        floor = f" (floor {np.median(floors):.2f})" if floors else ""
        lines.append(f"| {dataset} | " + " | ".join(cells) + f" | {np.median([r['tre_mm'] for r in mine]):.2f}{floor}"
                     f" | {np.median([r['seconds'] for r in mine]):.1f} |")
    failed = [r for r in rows if r["tre_mm"] >= SUCCESS_MM]
    succeeded = [r for r in rows if r["tre_mm"] < SUCCESS_MM]
    lines += ["", f"{len(succeeded)}/{len(rows)} succeeded. Failures flagged LOW CONFIDENCE or refused: "
              f"{sum(not r['quality']['confident'] for r in failed)} of {len(failed)}; successes flagged: "
              f"{sum(not r['quality']['confident'] for r in succeeded)} of {len(succeeded)}. Roles right in "
              f"{sum(bool(r['roles_right']) for r in rows)} of {len(rows)} "
              f"(refused: {sum('error' in r for r in rows)}). "
              f"Median error {np.median([r['tre_mm'] for r in rows]):.2f} mm, median "
              f"{np.median([r['seconds'] for r in rows]):.1f} s."]
    for r in failed:
        lines.append(f"- failed: {r['id']} ({r['angle']:.0f} deg): {r['tre_mm']:.1f} mm, "
                     f"{'flagged' if not r['quality']['confident'] else 'NOT flagged'} {r.get('error', '')}")
    return "\n".join(lines)


def case_parser(description: str, pairs_per_bin: int, first_seed: int) -> argparse.ArgumentParser:
    """The options every benchmark over these cases takes: datasets, pairs per bin, seeds, output folder."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(OLD_DATASETS + DATASETS),
                        help="comma-separated: cases.py's source/view names or " + ", ".join(OLD_DATASETS))
    parser.add_argument("--pairs-per-bin", type=int, default=pairs_per_bin)
    parser.add_argument("--first-seed", type=int, default=first_seed, help="200: the tuning set; 1000: the report set")
    parser.add_argument("--out", type=Path, required=True)
    return parser


def main() -> None:
    parser = case_parser(__doc__, 2, 200)
    parser.add_argument("--variant", choices=VARIANTS, default="shipped")
    parser.add_argument("--floor", action="store_true", help="also measure each pair's floor")
    parser.add_argument("--models", help="model folder (default: the shipped models)")
    args = parser.parse_args()
    VARIANTS[args.variant]()
    args.out.mkdir(parents=True, exist_ok=True)
    models = autoregister.load_models(args.models)
    rows = []
    for case in case_list(args.datasets.split(","), args.pairs_per_bin, args.first_seed):
        path = args.out / f"{case['id']}.json"
        if not path.exists():
            path.write_text(json.dumps(run_case(case, models, args.floor), indent=1, default=float))
        row = json.loads(path.read_text())
        print(f"{row['id']} {row['angle']:.0f} deg {row['distance']:.0f} mm: {row['tre_mm']:.2f} mm"
              f"{' (floor %.2f)' % row['floor_mm'] if 'floor_mm' in row else ''}, {row['seconds']:.1f} s, "
              f"{'confident' if row['quality']['confident'] else 'LOW CONFIDENCE'}, chosen {row.get('chosen')} "
              f"{row.get('error', '')}", flush=True)
        rows.append(row)
    print(summarise(rows))


if __name__ == "__main__":
    main()
