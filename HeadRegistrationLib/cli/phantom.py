"""``headreg phantom``: a digital head phantom pair with its known truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core import geometry
from ..data import phantom
from .common import grid, progress_bar


def add_parser(commands) -> None:
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
    p.set_defaults(run=run)


def write(outdir: Path, seed: int, rotation, translation, ct_grid: dict, mr_grid: dict, labels: bool,
          overwrite: bool) -> phantom.PhantomPair:
    """``phantom.write_phantom`` with a progress bar."""
    with progress_bar(phantom.write_steps(labels), "phantom") as bar:
        def advance(stage):
            bar.set_postfix_str(stage)
            bar.update(1)
        return phantom.write_phantom(outdir, seed, rotation, translation, ct_grid, mr_grid, labels, overwrite,
                                     progress=advance)


def describe_truth(pair: phantom.PhantomPair) -> str:
    angle = geometry.rotation_error_deg(pair.truth, np.eye(4))
    shift = geometry.translation_error_mm(pair.truth, np.eye(4), pair.rotation_center)
    return (f"truth: in physical space the CT lies {angle:.1f} deg turned and {shift:.1f} mm displaced "
            f"(at the MR centre) from the MR")


def run(args) -> int:
    pair = write(args.outdir, args.seed, args.rotation, args.translation,
                 grid(args.ct_size, args.ct_spacing, "ct"), grid(args.mr_size, args.mr_spacing, "mr"),
                 args.labels, args.overwrite)
    print(f"wrote {args.outdir}/mr.nii.gz (fixed), ct.nii.gz (moving), truth.tfm (MR -> CT, LPS mm)"
          + (", mr_labels.nii.gz, ct_labels.nii.gz" if args.labels else ""))
    print(describe_truth(pair))
    return 0
