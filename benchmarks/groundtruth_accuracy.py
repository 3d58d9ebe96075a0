"""Ground-truth accuracy with and without symmetry alignment, per initial-rotation bin.

Pairs with a known misalignment (the rotation drawn in the bin, about a random axis, and
a translation of 10-30 mm in a random direction), each registered with both presets,
with and without symmetry alignment. Error: mean TRE over the fixed head (mean
displacement between the result and the truth over the head mask).

Datasets:
  phantom        the embedded phantom on grids that cover the whole head
                 (CT 512x512x48 at 0.5x0.5x5 mm, MR 256x256x120 at 1x1x2 mm)
  phantom-slab   the phantom on the RIRE grids (CT 116 mm, MR 104 mm thick slabs), the head
                 turned inside the CT scanner: beyond 15 degrees the CT slab cuts the head
                 obliquely, and the two slabs share only part of it
  slab-header    the same slabs both cut across the head, as two scanners cut them (the
                 CT tilted 0-15 degrees and moved up to 5 mm, the phantom's default), then
                 the whole CT volume turned and moved by the bin's angle and distance
                 through its header (origin and direction): a volume given in another
                 orientation, with every voxel as scanned
  mni            ../shared/data/templates: MNI152 T1 (fixed) and the aligned scct CT
                 template (moving), the CT turned and moved by the known transform

    python benchmarks/groundtruth_accuracy.py --pairs-per-bin 3 --workers 2 --out gt-bench

Every case writes its record to OUT/<dataset>-<seed>.json as it finishes; a second run
with the same --out skips the cases already there, and the table covers them all.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from HeadRegistrationLib.core import batch, geometry
from HeadRegistrationLib.data import phantom
from HeadRegistrationLib.groundtruth import reference
from HeadRegistrationLib.register import autoregister, symmetry

BINS = ((0, 15), (15, 45), (45, 90), (90, 180))
TEMPLATES = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "templates"
WHOLE_HEAD = phantom.WHOLE_HEAD_GRIDS


def moved_copy(image: sitk.Image, fixed_to_moving: np.ndarray) -> sitk.Image:
    """``image`` carried so that ``fixed_to_moving`` maps the original's points to the
    copy's, on a grid like the original's centred where its centre goes."""
    center = geometry.grid_center(image)
    grid = sitk.Image(image.GetSize(), sitk.sitkFloat32)
    grid.SetSpacing(image.GetSpacing())
    grid.SetDirection(image.GetDirection())
    grid.SetOrigin((np.array(image.GetOrigin()) + geometry.transform_points(fixed_to_moving, center[None])[0]
                    - center).tolist())
    background = float(sitk.GetArrayViewFromImage(image).min())
    return sitk.Resample(image, grid, geometry.sitk_from_matrix(geometry.invert(fixed_to_moving)),
                         sitk.sitkLinear, background, sitk.sitkFloat32)


def make_pair(dataset: str, seed: int, angle: float, distance: float):
    if dataset == "mni":
        fixed = sitk.ReadImage(str(TEMPLATES / "MNI152_T1_2mm.nii.gz"), sitk.sitkFloat32)
        ct = sitk.ReadImage(str(TEMPLATES / "scct.nii.gz"), sitk.sitkFloat32)
        center = geometry.grid_center(fixed)
        truth = geometry.random_rigid(np.random.default_rng([seed, 7]), angle, distance, center)
        return fixed, moved_copy(ct, truth), truth
    if dataset == "slab-header":
        pair = phantom.make_phantom_pair(seed)
        header_move = geometry.random_rigid(np.random.default_rng([seed, 8]), angle, distance,
                                            geometry.grid_center(pair.ct))
        return pair.mr, geometry.moved_header(pair.ct, header_move), geometry.compose(header_move, pair.truth)
    grids = WHOLE_HEAD if dataset == "phantom" else {}
    pair = phantom.make_phantom_pair(seed, angle, distance, **grids)
    return pair.mr, pair.ct, pair.truth


def run_case(task: dict) -> dict:
    fixed, moving, truth = make_pair(task["dataset"], task["seed"], task["angle"], task["distance"])
    mask = symmetry.head_mask(fixed)
    results = []
    for preset in task["presets"]:
        for use_symmetry in ((True,) if preset == "register" else (True, False)):
            began = time.perf_counter()
            try:
                if preset == "register":   # headreg register on the same pair, for comparison (CT first)
                    found = autoregister.register_volumes(moving, fixed).matrix
                else:
                    found = reference.ground_truth(fixed, moving, preset, use_symmetry).matrix
                error = geometry.mean_displacement_in_mask(found, truth, mask)
            except Exception as failure:  # a failed registration is a result of the benchmark
                error = float("inf")
                print(f"{task['dataset']} seed {task['seed']}: {failure}", file=sys.stderr)
            results.append({**{k: task[k] for k in ("dataset", "bin", "seed", "angle", "distance")},
                            "preset": preset, "symmetry": use_symmetry, "tre_mm": error,
                            "seconds": time.perf_counter() - began})
    record = {"status": "ok", "results": results}
    batch.write_json(record, Path(task["out"]) / f"{task['id']}.json")
    return record


def summarise(rows: list[dict]) -> str:
    lines = ["| dataset | preset | symmetry | " + " | ".join(f"{lo}-{hi} deg" for lo, hi in BINS)
             + " | median s |", "|---" * (4 + len(BINS)) + "|"]
    keys = sorted({(r["dataset"], r["preset"], r["symmetry"]) for r in rows}, key=lambda k: (k[0], k[1], not k[2]))
    for dataset, preset, use_symmetry in keys:
        cells = []
        for lo, hi in BINS:
            errors = [r["tre_mm"] for r in rows if (r["dataset"], r["preset"], r["symmetry"]) == (dataset, preset,
                                                                                               use_symmetry)
                      and r["bin"] == f"{lo}-{hi}"]
            if errors:
                cells.append(f"{sum(e < 0.5 for e in errors)}/{len(errors)} < 0.5 mm, median {np.median(errors):.2f}, "
                             f"max {max(errors):.1f}")
            else:
                cells.append("")
        seconds = [r["seconds"] for r in rows if (r["dataset"], r["preset"], r["symmetry"]) == (dataset, preset,
                                                                                               use_symmetry)]
        lines.append(f"| {dataset} | {preset} | {'on' if use_symmetry else 'off'} | " + " | ".join(cells)
                     + f" | {np.median(seconds):.0f} |")
    # The paper's comparison: for each pair and preset, which of the two is better.
    lines.append("")
    lines.append("| dataset | preset | symmetry better | without better | equal (within 0.5 mm) |")
    lines.append("|---|---|---|---|---|")
    for dataset, preset in sorted({(r["dataset"], r["preset"]) for r in rows if r["preset"] != "register"}):
        pairs = {}
        for r in rows:
            if (r["dataset"], r["preset"]) == (dataset, preset):
                pairs.setdefault(r["seed"], {})[r["symmetry"]] = r["tre_mm"]
        with_better = sum(p[True] < p[False] - 0.5 for p in pairs.values())
        without_better = sum(p[False] < p[True] - 0.5 for p in pairs.values())
        equal = len(pairs) - with_better - without_better
        lines.append(f"| {dataset} | {preset} | {with_better}/{len(pairs)} | {without_better}/{len(pairs)} "
                     f"| {equal}/{len(pairs)} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="phantom,phantom-slab,mni")
    parser.add_argument("--presets", default="paper,accurate,register",
                        help="groundtruth presets, and 'register' for headreg register on the same pairs")
    parser.add_argument("--pairs-per-bin", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True, help="folder for the per-case records and cases.csv")
    args = parser.parse_args()
    tasks = []
    for dataset in args.datasets.split(","):
        if dataset == "mni" and not TEMPLATES.is_dir():
            print(f"skipping mni: {TEMPLATES} not found", file=sys.stderr)
            continue
        for b, (lo, hi) in enumerate(BINS):
            for k in range(args.pairs_per_bin):
                seed = 100 * b + k
                rng = np.random.default_rng([seed, 1])
                tasks.append({"id": f"{dataset}-{seed}", "dataset": dataset, "bin": f"{lo}-{hi}", "seed": seed,
                              "angle": float(rng.uniform(lo, hi)), "distance": float(rng.uniform(10, 30)),
                              "presets": args.presets.split(","), "out": str(args.out)})
    args.out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    records, skipped = batch.run_tasks(tasks, run_case, lambda t: (args.out / f"{t['id']}.json").exists(),
                                       args.workers, "cases", "case")
    failed = [r for r in records if r.get("status") != "ok"]
    for r in failed:
        print(f"case failed: {r['id']}: {r.get('error')}", file=sys.stderr)
    done = [batch.read_json(args.out / f"{t['id']}.json") for t in tasks]
    rows = [row for r in done if r for row in r["results"]]
    if not rows:
        return 1
    with open(args.out / "cases.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(summarise(rows))
    print(f"\n{len(tasks)} pairs ({skipped} done before), {len(rows)} registrations, {time.perf_counter() - began:.0f} s wall, "
          f"{args.workers} workers")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
