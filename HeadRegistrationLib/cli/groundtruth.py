"""``headreg groundtruth``: the reference transform of a pair, or of a batch of pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core import batch, geometry, qa, transform_io, volume_io
from ..core.errors import HeadRegError
from ..core.files import JSON_SUFFIXES, PICTURE_SUFFIXES, check_outputs, write_all, write_csv
from ..groundtruth import reference
from .common import (LOW_CONFIDENCE, add_executor, add_series, batch_outcome, check_executor, print_warnings,
                     progress_bar, read_volume)

SUMMARY_COLUMNS = ["id", "status", "fixed", "moving", "metric", "confident", "seconds", "warnings", "error"]


def add_parser(commands) -> None:
    p = commands.add_parser("groundtruth", help="reference transform of a pair or a batch by symmetry + MI",
                            description="Ground truth after the paper: both heads to their PCA symmetry frames, "
                                        "mutual-information registration of the frames, composed back. "
                                        "One pair: FIXED MOVING -o OUT.tfm. A batch: --pairs CSV (columns "
                                        "fixed,moving[,id]) --out DIR, writing per pair <id>.tfm, <id>.json and "
                                        "a QA picture <id>.png, skipping pairs already done.")
    p.add_argument("fixed", type=Path, nargs="?", help="fixed volume (MR): file or DICOM folder")
    p.add_argument("moving", type=Path, nargs="?", help="moving volume (CT): file or DICOM folder")
    p.add_argument("-o", "--output", type=Path, help="transform file to write (.tfm, .txt, .h5)")
    p.add_argument("--record", type=Path, metavar="JSON", help="also write settings, metric values and time")
    p.add_argument("--qa", type=Path, metavar="PNG", help="also write a three-plane QA picture")
    p.add_argument("--pairs", type=Path, metavar="CSV", help="batch: CSV with columns fixed,moving[,id]")
    p.add_argument("--out", type=Path, metavar="DIR", help="batch: output folder")
    p.add_argument("--preset", choices=reference.PRESETS, default="accurate",
                   help="optimiser settings: 'paper' (the paper's (1+1)-EO) or 'accurate' (default)")
    p.add_argument("--no-symmetry", action="store_true", help="optimise from the images as they lie")
    p.add_argument("--retry-failed", action="store_true", help="batch: run again the pairs recorded as failed")
    add_series(p)
    add_executor(p)
    p.set_defaults(run=run)


def run(args) -> int:
    if args.pairs is not None:
        if args.fixed or args.moving or args.output:
            raise HeadRegError("give either FIXED MOVING -o OUT.tfm or --pairs CSV --out DIR, not both")
        return run_batch(args)
    if not (args.fixed and args.moving):
        raise HeadRegError("give FIXED MOVING -o OUT.tfm, or --pairs CSV --out DIR")
    return run_pair(args)


def run_pair(args) -> int:
    if args.output is None:
        raise HeadRegError("give -o OUT.tfm for one pair (or --pairs CSV --out DIR for a batch)")
    check_outputs([(args.output, transform_io.TRANSFORM_SUFFIXES), (args.record, JSON_SUFFIXES),
                   (args.qa, PICTURE_SUFFIXES)], (args.fixed, args.moving))   # before the work, not after it
    fixed, moving = read_volume(args.fixed, args), read_volume(args.moving, args)
    for path, image in ((args.fixed, fixed), (args.moving, moving)):
        volume_io.check_volume_content(image, str(path))
    with progress_bar(1, "groundtruth") as bar:
        truth = reference.ground_truth(fixed, moving, args.preset, not args.no_symmetry)
        bar.update(1)
    record = {"fixed": str(args.fixed), "moving": str(args.moving), **truth.record()}
    write_all([(args.output, lambda p: transform_io.write_transform(truth.matrix, p))]
              + ([(args.qa, lambda p: qa.overlay_figure(fixed, moving, truth.matrix, p,
                                                        f"{args.fixed.name} (grey) + {args.moving.name}"))]
                 if args.qa else [])
              + ([(args.record, lambda p: batch.write_json(record, p))] if args.record else []))
    angles_and_shifts = geometry.parameters_from_matrix(truth.matrix)
    print(f"wrote {args.output} (fixed -> moving, LPS mm): angles {np.round(angles_and_shifts[:3], 2).tolist()} deg, "
          f"translation {np.round(angles_and_shifts[3:], 2).tolist()} mm about the origin")
    print(f"preset {args.preset}, symmetry alignment {'off' if args.no_symmetry else 'on'}: "
          f"MI {-truth.metric:.4f}, {truth.seconds:.1f} s, {'confident' if truth.confident else 'LOW CONFIDENCE'}")
    print_warnings(truth.warnings)
    return 0 if truth.confident else LOW_CONFIDENCE


def run_batch(args) -> int:
    if args.out is None:
        raise HeadRegError("give --out DIR for the batch's outputs")
    check_executor(args)
    pairs = batch.read_pairs(args.pairs)
    args.out.mkdir(parents=True, exist_ok=True)
    for leftover in args.out.glob(".*.partial.*"):  # from an interrupted run
        leftover.unlink()
    tasks = [{**pair, "out": str(args.out.resolve()), "preset": args.preset, "symmetry": not args.no_symmetry,
              "retry_failed": args.retry_failed} for pair in pairs]
    _, skipped = batch.run_tasks(tasks, reference.run_pair, reference.pair_done, args.workers,
                                 scheduler=args.scheduler)
    summary = batch.read_records(tasks, lambda t: reference.pair_outputs(t)["record"])
    write_csv(args.out / "summary.csv", SUMMARY_COLUMNS,
              [{**r, "confident": r.get("quality", {}).get("confident"), "warnings": "; ".join(r.get("warnings", [])),
                "error": r.get("error", "")} for r in summary])
    doubtful = sum(r.get("status") == "ok" and not r.get("quality", {}).get("confident") for r in summary)
    return batch_outcome(summary, skipped, args.out, args.retry_failed, doubtful)
