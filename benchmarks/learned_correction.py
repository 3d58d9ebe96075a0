"""What the learned prediction (the paper's DCNN + ANN, prediction.py) does inside the
search, per initial-rotation bin (issue 16, item 6):

* from the images as they lie (the header start): its rotation error before and after the
  network, and how often the network's result lies within 15 degrees of the truth;
* from the search's best-ranked distinct starts (the ones it corrects; ranked as the search
  ranks them): the same, before and after.

The network was trained on misalignments of up to 15 degrees and 5 mm (HeadRegistrationLib/models/
registration.json): a local corrector. The search does not depend on it: compare
``autoregister_accuracy.py --variant no-learned``.

    python benchmarks/learned_correction.py --pairs-per-bin 2 --out learned
"""

from __future__ import annotations

import json

import numpy as np

from autoregister_accuracy import case_parser
from cases import BINS, case_list, make_case
from groundtruth_accuracy import make_pair
from HeadRegistrationLib.core import geometry
from HeadRegistrationLib.register import autoregister, prediction, search, symmetry


def run_case(case: dict, learned) -> dict:
    fixed, moving, truth = (make_case if "/" in case["dataset"] else make_pair)(
        case["dataset"], case["seed"], case["angle"], case["distance"])
    masks = [symmetry.head_mask(image, autoregister.MASK_SPACING_MM) for image in (fixed, moving)]
    frames = [symmetry.symmetry_frame(image, mask) for image, mask in zip((fixed, moving), masks)]
    center = frames[0].center
    coarse = search.Level(fixed, moving, *masks, search.COARSE_MM, search.EFFORT["fast"]["ranking_points"], 32, "cpu")
    starts = search.mask_translations(search.base_rotations(search.EFFORT["fast"]["sampled"]), np.eye(3), fixed,
                                      moving, *masks, center, frames[1].center, "cpu")
    starts = list(starts) + [np.eye(4)] + symmetry.candidate_alignments(*frames) + list(search.mask_translations(
        frames[1].axes[None], frames[0].axes, fixed, moving, *masks, center, frames[1].center, "cpu"))
    values = coarse.evaluate(starts)[0]
    ranked = [search.Candidate("start", starts[k]) for k in np.argsort(values)]
    best = search.distinct(ranked, search.head_points(masks[0]), search.EFFORT["fast"]["network"])

    def errors(matrix):
        return (geometry.rotation_error_deg(matrix, truth),
                geometry.mean_displacement_in_mask(matrix, truth, masks[0], 5000))
    pairs = []
    for start in [np.eye(4)] + [c.matrix for c in best]:
        corrected = prediction.predict_transform(learned, fixed, moving, center, start=start)
        pairs.append({"before": errors(start), "after": errors(corrected)})
    return {**case, "header": pairs[0], "ranked": pairs[1:]}


def summarise(rows: list[dict]) -> str:
    lines = ["| start | bin | starts | rotation error before, median deg | after | within 15 deg before | after |",
             "|---|---|---|---|---|---|---|"]
    for kind in ("header", "ranked"):
        for lo, hi in BINS:
            chosen = [p for r in rows if r["bin"] == f"{lo}-{hi}"
                      for p in (r[kind] if kind == "ranked" else [r[kind]])]
            if not chosen:
                continue
            before = np.array([p["before"][0] for p in chosen])
            after = np.array([p["after"][0] for p in chosen])
            lines.append(f"| {kind} | {lo}-{hi} | {len(chosen)} | {np.median(before):.1f} | {np.median(after):.1f} | "
                         f"{np.mean(before < 15):.0%} | {np.mean(after < 15):.0%} |")
    return "\n".join(lines)


def main() -> None:
    parser = case_parser(__doc__, 1, 200)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    learned = prediction.load_learned()
    rows = []
    for case in case_list(args.datasets.split(","), args.pairs_per_bin, args.first_seed):
        path = args.out / f"{case['id']}.json"
        if not path.exists():
            path.write_text(json.dumps(run_case(case, learned), indent=1, default=float))
        rows.append(json.loads(path.read_text()))
    print(summarise(rows))


if __name__ == "__main__":
    main()
