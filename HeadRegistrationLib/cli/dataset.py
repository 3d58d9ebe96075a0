"""``headreg dataset``: build (or resume) a training set; ``sweep`` also writes its subsets."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..core.errors import HeadRegError
from ..data import augmentation, dataset
from ..register import preprocessing
from .common import add_executor, check_executor


def add_parser(commands) -> None:
    p = commands.add_parser("dataset", help="build a training set: real anatomy, synthesised partners, rigid copies",
                            description="Build (or resume) a training set of network-ready pairs with labels, "
                                        "QA pictures and a manifest; 'sweep' also writes the subsets of the first "
                                        "n copies of every subject for n in --counts.")
    p.add_argument("action", choices=("build", "sweep"))
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--copies", type=int, default=augmentation.PAPER_COPIES, help="build: copies per subject (99)")
    p.add_argument("--counts", default="4:124:5", help="sweep: START:STOP:STEP or a comma list (4:124:5)")
    p.add_argument("--phantoms", type=int, default=4, help="phantom subjects (default 4)")
    p.add_argument("--data", type=Path, default=dataset.default_data_dir(), help="shared head volumes")
    p.add_argument("--no-shared", action="store_true", help="phantom subjects only")
    p.add_argument("--subjects", help="comma list of subject ids to use (default all)")
    p.add_argument("--max-angle", type=float, default=augmentation.PAPER_MAX_ANGLE_DEG, help="degrees (15)")
    p.add_argument("--max-shift", type=float, default=augmentation.PAPER_MAX_SHIFT_MM, help="mm per axis (5)")
    p.add_argument("--grid-size", type=int, nargs=3, default=preprocessing.DEFAULT_GRID_SIZE,
                   metavar=("NX", "NY", "NZ"), help="network grid (64 64 64)")
    p.add_argument("--grid-spacing", type=float, default=preprocessing.DEFAULT_GRID_SPACING_MM, help="mm (4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the splits and copies (default 0)")
    p.add_argument("--fractions", default="0.6,0.2,0.2",
                   help="shares of the subjects for train, validation and test (default 0.6,0.2,0.2)")
    p.add_argument("--splits-from", type=Path, metavar="MANIFEST",
                   help="subjects named in this set's manifest.json (or the set of this model card, e.g. "
                        "HeadRegistrationLib/models/registration.json) keep their split; --fractions counts them and "
                        "places the others")
    add_executor(p)
    p.set_defaults(run=run)


def counts(text: str) -> list[int]:
    """'4:124:5' -> 4, 9, ..., 124; '10,20' -> 10, 20."""
    try:
        if ":" in text:
            start, stop, step = (int(v) for v in text.split(":"))
            found = list(range(start, stop + 1, step))
        else:
            found = [int(v) for v in text.split(",")]
    except ValueError:
        raise HeadRegError(f"--counts must be START:STOP:STEP or a comma list of integers, got {text!r}") from None
    if not found or min(found) < 1:
        raise HeadRegError(f"--counts must give copy counts of at least 1, got {text!r}")
    return sorted(set(found))


def split_fractions(text: str) -> tuple[float, float, float]:
    """'0.6,0.2,0.2' -> shares of train, validation and test."""
    try:
        fractions = tuple(float(v) for v in text.split(","))
    except ValueError:
        fractions = ()
    if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) <= 0:
        raise HeadRegError(f"--fractions must be three shares TRAIN,VALIDATION,TEST (e.g. 0.6,0.2,0.2), got {text!r}")
    return fractions


def _subjects(args) -> list[dict]:
    if not args.no_shared and not args.data.is_dir():
        raise HeadRegError(f"--data {args.data}: no such folder (give the shared head volumes, or --no-shared)")
    subjects = dataset.phantom_subjects(args.phantoms)
    if not args.no_shared:
        shared = dataset.shared_subjects(args.data)
        if not shared:
            print(f"note: no shared head volumes under {args.data}; phantom subjects only", file=sys.stderr)
        subjects += shared
    if args.subjects:
        wanted = args.subjects.split(",")
        unknown = sorted(set(wanted) - {s["id"] for s in subjects})
        if unknown:
            raise HeadRegError(f"unknown subject(s) {', '.join(unknown)}; known: "
                               f"{', '.join(s['id'] for s in subjects)}")
        subjects = [s for s in subjects if s["id"] in wanted]
    if not subjects:
        raise HeadRegError("no subjects: give --phantoms N or shared data")
    return subjects


def run(args) -> int:
    check_executor(args)
    copy_counts = counts(args.counts) if args.action == "sweep" else [args.copies]
    if min(copy_counts) < 1:
        raise HeadRegError("--copies must be at least 1")
    fractions = split_fractions(args.fractions)
    fixed_splits = dataset.splits_from(args.splits_from) if args.splits_from else {}
    subjects = _subjects(args)
    preprocessing.network_grid((0, 0, 0), args.grid_size, args.grid_spacing)   # checks the grid
    augmentation.random_pose(np.random.default_rng(0), (0, 0, 0), args.max_angle, args.max_shift)  # checks ranges
    settings = {"copies": max(copy_counts), "seed": args.seed, "grid_size": list(args.grid_size),
                "grid_spacing_mm": args.grid_spacing, "max_angle_deg": args.max_angle,
                "max_shift_mm": args.max_shift, "center_jitter_mm": 5.0}
    ids = {s["id"] for s in subjects}
    fixed_splits = {s: split for s, split in fixed_splits.items() if s in ids}   # only subjects of this build
    manifest = dataset.build(args.out, subjects, settings, args.workers, fractions, fixed_splits, args.scheduler)
    splits = {s: manifest["subjects"][s]["split"] for s in manifest["subjects"]}
    if args.action == "sweep":
        for n in copy_counts:
            dataset.write_manifest(args.out, subjects, settings, splits, n, f"-n{n:03d}")
        print(f"sweep: index-nNNN.csv and manifest-nNNN.json for n = {', '.join(map(str, copy_counts))}")
    for split in augmentation.SPLITS:
        names = [s for s, where in splits.items() if where == split]
        print(f"{split}: {len(names)} subjects ({', '.join(names)})")
    print(f"{manifest['examples']} examples in {args.out} (index.csv, manifest.json, qa/)")
    for failure in manifest["failed"]:
        print(f"failed: {failure['id']}: {failure['error']}", file=sys.stderr)
    return 1 if manifest["failed"] else 0
