"""``headreg demo``: the main job on the embedded phantom pair, against its known truth."""

from __future__ import annotations

import json
from pathlib import Path

import SimpleITK as sitk

from ..core import geometry, qa, transform_io, volume_io
from ..core.files import write_atomically
from ..data import phantom
from ..register import autoregister
from . import phantom as phantom_command
from .common import LOW_CONFIDENCE, print_warnings


def add_parser(commands) -> None:
    p = commands.add_parser("demo", help="run the main job on the embedded phantom pair",
                            description="Generate the embedded phantom pair, register it with the whole pipeline "
                                        "(as `headreg register`), and print the error against its known truth.")
    p.add_argument("--out", type=Path, default=Path("headreg-demo"), help="output folder (default ./headreg-demo)")
    p.add_argument("--seed", type=int, default=0, help="phantom seed (default 0)")
    p.set_defaults(run=run)


def run(args) -> int:
    outdir = args.out
    pair = phantom_command.write(outdir, args.seed, None, None, phantom.CT_GRID, phantom.MR_GRID, True, True)
    print(f"demo pair in {outdir}/: mr.nii.gz (fixed), ct.nii.gz (moving), truth.tfm, label maps")
    print(phantom_command.describe_truth(pair))
    mr, ct = (volume_io.read_volume(outdir / name) for name in ("mr.nii.gz", "ct.nii.gz"))
    truth = transform_io.read_transform(outdir / "truth.tfm")
    result = autoregister.register_volumes(ct, mr)   # CT first: the pipeline finds the roles itself
    seconds = sum(result.seconds.values())
    transform_io.write_transform(result.matrix, outdir / "registered.tfm")
    qa.overlay_figure(mr, ct, result.matrix, outdir / "qa.png", "headreg demo: MR (grey) + CT (colour), registered")
    record = autoregister.report(result, (outdir / "ct.nii.gz", outdir / "mr.nii.gz"),
                                 {"refine": True, "device": "auto"})
    write_atomically(outdir / "report.json", lambda p: Path(p).write_text(json.dumps(record, indent=2)))
    mr_labels = sitk.ReadImage(str(outdir / "mr_labels.nii.gz"))
    tre = geometry.mean_displacement_in_mask(result.matrix, truth, sitk.Cast(mr_labels > 0, sitk.sitkUInt8))
    print(f"registered in {seconds:.1f} s (roles found: {record['fixed']['path']} is the MR, "
          f"{record['moving']['path']} the CT): error against the truth {tre:.2f} mm mean over the head, "
          f"{geometry.rotation_error_deg(result.matrix, truth):.2f} deg; bone Dice "
          f"{phantom.bone_dice(ct, mr_labels, result.matrix):.2f} "
          f"(truth: {phantom.bone_dice(ct, mr_labels, truth):.2f})")
    print(f"wrote {outdir}/registered.tfm, report.json and qa.png")
    print_warnings(result.warnings)
    return 0 if result.confident else LOW_CONFIDENCE


