"""The ``headreg`` command line (DESIGN.md, "The command line")."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from tqdm import tqdm

from . import __version__, batch, geometry, groundtruth, modality, phantom, qa, registration, transform_io, volume_io
from .errors import HeadRegError
from .files import write_atomically, write_image

MAX_VOXELS = 1024 ** 3  # refuse phantom grids larger than this


def _progress(total: int, description: str):
    """A progress bar on stderr (hidden when stderr is not a terminal and HEADREG_PROGRESS is unset)."""
    return tqdm(total=total, desc=description, unit="step", file=sys.stderr, leave=False,
                disable=None if "HEADREG_PROGRESS" not in os.environ else False)


def _grid(size, spacing, name) -> dict:
    if any(n < 2 for n in size):
        raise HeadRegError(f"--{name}-size must be at least 2 voxels along each axis")
    if not all(np.isfinite(spacing)) or any(s <= 0 for s in spacing):
        raise HeadRegError(f"--{name}-spacing must be positive millimetres")
    if np.prod(size, dtype=float) > MAX_VOXELS:
        raise HeadRegError(f"--{name}-size {size} is too large (more than {MAX_VOXELS} voxels)")
    return {"size": tuple(size), "spacing": tuple(spacing)}


def write_phantom(outdir: Path, seed: int, rotation: float | None, translation: float | None,
                  ct_grid: dict, mr_grid: dict, labels: bool, overwrite: bool) -> phantom.PhantomPair:
    """Generate a phantom pair and write mr.nii.gz, ct.nii.gz, truth.tfm (and label maps)
    into ``outdir``; all files appear together, or none does."""
    names = ["mr.nii.gz", "ct.nii.gz", "truth.tfm"] + (["mr_labels.nii.gz", "ct_labels.nii.gz"] if labels else [])
    if outdir.exists() and not outdir.is_dir():
        raise HeadRegError(f"{outdir} exists and is not a folder")
    existing = [n for n in names if (outdir / n).exists()]
    if existing and not overwrite:
        raise HeadRegError(f"{outdir} already holds {', '.join(existing)} (use --overwrite to replace)")
    with _progress(len(phantom.STAGES) + len(names), "phantom") as bar:
        def advance(stage):
            bar.set_postfix_str(stage)
            bar.update(1)

        pair = phantom.make_phantom_pair(seed, rotation, translation, ct_grid, mr_grid, progress=advance)
        outdir.mkdir(parents=True, exist_ok=True)
        staging = outdir / f".partial-{os.getpid()}"
        staging.mkdir(exist_ok=True)
        try:
            images = {"mr.nii.gz": pair.mr, "ct.nii.gz": pair.ct,
                      "mr_labels.nii.gz": pair.mr_labels, "ct_labels.nii.gz": pair.ct_labels}
            for name in names:
                if name == "truth.tfm":
                    transform_io.write_transform(pair.truth, staging / name, center=pair.rotation_center)
                else:
                    write_image(images[name], staging / name)
                advance(f"wrote {name}")
            for name in names:
                os.replace(staging / name, outdir / name)
        finally:
            for leftover in staging.glob("*"):
                leftover.unlink()
            staging.rmdir()
    return pair


def _describe_truth(pair: phantom.PhantomPair) -> str:
    angle = geometry.rotation_error_deg(pair.truth, np.eye(4))
    shift = geometry.translation_error_mm(pair.truth, np.eye(4), pair.rotation_center)
    return (f"truth: in physical space the CT lies {angle:.1f} deg turned and {shift:.1f} mm displaced "
            f"(at the MR centre) from the MR")


def command_phantom(args) -> int:
    pair = write_phantom(args.outdir, args.seed, args.rotation, args.translation,
                         _grid(args.ct_size, args.ct_spacing, "ct"), _grid(args.mr_size, args.mr_spacing, "mr"),
                         args.labels, args.overwrite)
    print(f"wrote {args.outdir}/mr.nii.gz (fixed), ct.nii.gz (moving), truth.tfm (MR -> CT, LPS mm)"
          + (", mr_labels.nii.gz, ct_labels.nii.gz" if args.labels else ""))
    print(_describe_truth(pair))
    return 0


def command_info(args) -> int:
    image = volume_io.read_volume(args.file)
    description = volume_io.describe_volume(image)
    evidence = modality.rule_based_modality(image)
    description["modality_guess"] = {"modality": evidence.modality, "confidence": evidence.confidence,
                                     "reason": evidence.reason}
    if args.json:
        print(json.dumps({"file": str(args.file), **description}, indent=2))
        return 0
    print(f"{'file:':<14}{args.file}")
    for key, value in description.items():
        if key == "modality_guess":
            continue
        if key == "direction":
            value = "  ".join(" ".join(f"{v:+.4f}" for v in row) for row in value)
        elif isinstance(value, dict):
            value = ", ".join(f"{k} {v:g}" for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            value = " x ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
        elif isinstance(value, float):
            value = f"{value:g}"
        print(f"{key + ':':<14}{value}")
    guess = evidence.modality or "unknown"
    print(f"{'modality:':<14}{guess} (rule-based guess, confidence {evidence.confidence:.2f}: {evidence.reason})")
    return 0


def command_demo(args) -> int:
    outdir = args.out
    pair = write_phantom(outdir, args.seed, None, None, phantom.CT_GRID, phantom.MR_GRID, True, True)
    ct = sitk.ReadImage(str(outdir / "ct.nii.gz"))
    mr_labels = sitk.ReadImage(str(outdir / "mr_labels.nii.gz"))
    truth = transform_io.read_transform(outdir / "truth.tfm")
    dice = phantom.bone_dice(ct, mr_labels, truth)
    dice_identity = phantom.bone_dice(ct, mr_labels, np.eye(4))
    print(f"demo pair in {outdir}/: mr.nii.gz (fixed), ct.nii.gz (moving), truth.tfm, label maps")
    print(_describe_truth(pair))
    print(f"check: the CT resampled onto the MR with truth.tfm overlaps the MR skull with bone Dice {dice:.2f} "
          f"(without it: {dice_identity:.2f})")
    print("automatic registration is not built yet (the pipeline of issue 6): "
          "this demo made the pair and checked its truth, it registered nothing.")
    return 0


def _groundtruth_pair(args) -> int:
    if args.output is None:
        raise HeadRegError("give -o OUT.tfm for one pair (or --pairs CSV --out DIR for a batch)")
    for path in (args.output, args.record, args.qa):  # fail before the work, not after it
        if path is not None and not path.parent.is_dir():
            raise HeadRegError(f"cannot write {path}: folder {path.parent} does not exist")
    fixed, moving = volume_io.read_volume(args.fixed), volume_io.read_volume(args.moving)
    with _progress(1, "groundtruth") as bar:
        truth = groundtruth.ground_truth(fixed, moving, args.preset, not args.no_symmetry)
        bar.update(1)
    transform_io.write_transform(truth.matrix, args.output)
    if args.qa:
        qa.overlay_figure(fixed, moving, truth.matrix, args.qa, f"{args.fixed.name} (grey) + {args.moving.name}")
    if args.record:
        batch.write_json({"fixed": str(args.fixed), "moving": str(args.moving), **truth.record()}, args.record)
    angles_and_shifts = geometry.parameters_from_matrix(truth.matrix)
    print(f"wrote {args.output} (fixed -> moving, LPS mm): angles {np.round(angles_and_shifts[:3], 2).tolist()} deg, "
          f"translation {np.round(angles_and_shifts[3:], 2).tolist()} mm about the origin")
    print(f"preset {args.preset}, symmetry alignment {'off' if args.no_symmetry else 'on'}: "
          f"Mattes MI {truth.metric:.4f}, {truth.seconds:.1f} s")
    for warning in truth.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _groundtruth_batch(args) -> int:
    if args.out is None:
        raise HeadRegError("give --out DIR for the batch's outputs")
    if args.workers < 1:
        raise HeadRegError("--workers must be at least 1")
    pairs = batch.read_pairs(args.pairs)
    args.out.mkdir(parents=True, exist_ok=True)
    for leftover in args.out.glob(".*.partial.*"):  # from an interrupted run
        leftover.unlink()
    tasks = [{**pair, "out": str(args.out.resolve()), "preset": args.preset, "symmetry": not args.no_symmetry}
             for pair in pairs]
    records, skipped = batch.run_tasks(tasks, groundtruth.run_pair, groundtruth.pair_done, args.workers)
    failed = [r for r in records if r.get("status") != "ok"]
    summary = [batch.read_json(groundtruth.pair_outputs(t)["record"]) or {**t, "status": "not run"} for t in tasks]
    columns = ["id", "status", "fixed", "moving", "mattes_mi", "seconds", "warnings", "error"]

    def write_summary(path):
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for r in summary:
                writer.writerow([r.get("id"), r.get("status"), r.get("fixed"), r.get("moving"), r.get("mattes_mi"),
                                 r.get("seconds"), "; ".join(r.get("warnings", [])), r.get("error", "")])

    write_atomically(args.out / "summary.csv", write_summary)
    print(f"{len(records) - len(failed)} pairs registered, {skipped} already done, {len(failed)} failed; "
          f"outputs and summary.csv in {args.out}")
    for r in failed:
        print(f"failed: {r['id']}: {r.get('error')}", file=sys.stderr)
    return 1 if failed else 0


def command_groundtruth(args) -> int:
    if args.pairs is not None:
        if args.fixed or args.moving or args.output:
            raise HeadRegError("give either FIXED MOVING -o OUT.tfm or --pairs CSV --out DIR, not both")
        return _groundtruth_batch(args)
    if not (args.fixed and args.moving):
        raise HeadRegError("give FIXED MOVING -o OUT.tfm, or --pairs CSV --out DIR")
    return _groundtruth_pair(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="headreg",
        description="Fully automatic rigid registration of head CT and MRI (HeadRegistration). "
                    "Transforms map fixed (MR) points to moving (CT) points, LPS mm, as ITK files.")
    parser.add_argument("--version", action="version", version=f"headreg {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("phantom", help="write a digital head phantom pair: mr.nii.gz, ct.nii.gz, truth.tfm",
                            description="Write a CT and an MR T1 of the same procedural head with a known "
                                        "rigid misalignment. Without --rotation/--translation, both are drawn "
                                        "from the seed within 15 deg and 5 mm per axis.")
    p.add_argument("outdir", type=Path, help="output folder (created if missing)")
    p.add_argument("--seed", type=int, default=0, help="subject, misalignment and noise (default 0)")
    p.add_argument("--rotation", type=float, metavar="DEG", help="rotation angle about a random axis, degrees")
    p.add_argument("--translation", type=float, metavar="MM", help="translation distance in a random direction, mm")
    p.add_argument("--ct-size", type=int, nargs=3, default=phantom.CT_GRID["size"], metavar=("NX", "NY", "NZ"))
    p.add_argument("--ct-spacing", type=float, nargs=3, default=phantom.CT_GRID["spacing"], metavar=("SX", "SY", "SZ"))
    p.add_argument("--mr-size", type=int, nargs=3, default=phantom.MR_GRID["size"], metavar=("NX", "NY", "NZ"))
    p.add_argument("--mr-spacing", type=float, nargs=3, default=phantom.MR_GRID["spacing"], metavar=("SX", "SY", "SZ"))
    p.add_argument("--labels", action="store_true", help="also write the tissue label maps of both grids")
    p.add_argument("--overwrite", action="store_true", help="replace files already in OUTDIR")
    p.set_defaults(run=command_phantom)

    p = commands.add_parser("info", help="print a volume's geometry, intensity range and a modality guess",
                            description="Read a volume (any file SimpleITK reads, or a DICOM folder) and "
                                        "print its geometry, intensities and a rule-based modality guess.")
    p.add_argument("file", type=Path, help="volume file or DICOM folder")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(run=command_info)

    p = commands.add_parser("demo", help="run the main job on the embedded phantom pair",
                            description="Generate the embedded phantom pair and run on it what the project "
                                        "can do so far.")
    p.add_argument("--out", type=Path, default=Path("headreg-demo"), help="output folder (default ./headreg-demo)")
    p.add_argument("--seed", type=int, default=0, help="phantom seed (default 0)")
    p.set_defaults(run=command_demo)

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
    p.add_argument("--workers", type=int, default=1, help="batch: worker processes (default 1)")
    p.add_argument("--preset", choices=sorted(registration.PRESETS), default="accurate",
                   help="optimiser settings: 'paper' (the paper's (1+1)-EO) or 'accurate' (default)")
    p.add_argument("--no-symmetry", action="store_true", help="optimise from the images as they lie")
    p.set_defaults(run=command_groundtruth)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except HeadRegError as error:
        print(f"headreg {args.command}: error: {error}", file=sys.stderr)
    except OSError as error:
        print(f"headreg {args.command}: error: {error.filename or ''}: {error.strerror or error}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"headreg {args.command}: interrupted", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
