"""``headreg register``: a CT and an MR given in any order; OUT.tfm maps MR to CT points."""

from __future__ import annotations

import json
import time
from pathlib import Path

import SimpleITK as sitk

from ..core import geometry, qa, transform_io
from ..core.files import IMAGE_SUFFIXES, JSON_SUFFIXES, PICTURE_SUFFIXES, check_outputs, write_all, write_image
from ..register import autoregister
from .common import LOW_CONFIDENCE, add_series, print_warnings, read_volume


def add_parser(commands) -> None:
    p = commands.add_parser("register", help="register a CT and an MR given in any order: OUT.tfm maps MR to CT points",
                            description="Fully automatic rigid registration of a head CT and MR given in any order: "
                                        "detects which is the MR (fixed) and the CT (moving), then symmetry frames, "
                                        "learned prediction, MI refinement and a quality check. OUT.tfm maps fixed "
                                        "(MR) points to moving (CT) points, LPS mm (ITK convention).")
    p.add_argument("a", type=Path, metavar="A", help="a volume file or DICOM folder")
    p.add_argument("b", type=Path, metavar="B", help="the other volume")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.tfm", help="the transform (ITK file)")
    p.add_argument("--report", type=Path, metavar="OUT.json", help="roles, probabilities, matrix, times, quality")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the networks run")
    p.add_argument("--no-refine", action="store_true", help="skip the MI refinement (symmetry + learned only)")
    p.add_argument("--model", type=Path, metavar="DIR", help="folder of the models (default: the shipped ones)")
    p.add_argument("--resampled", type=Path, metavar="OUT", help="the moving volume resampled onto the fixed one")
    p.add_argument("--qa", type=Path, metavar="OUT.png", help="three-plane overlay of the result")
    add_series(p)
    p.set_defaults(run=run)


def run(args) -> int:
    check_outputs([(args.output, transform_io.TRANSFORM_SUFFIXES), (args.report, JSON_SUFFIXES),
                   (args.resampled, IMAGE_SUFFIXES), (args.qa, PICTURE_SUFFIXES)], (args.a, args.b))
    began = time.perf_counter()
    images = [read_volume(path, args) for path in (args.a, args.b)]
    reading = time.perf_counter() - began
    names = (str(args.a), str(args.b))
    result = autoregister.register_volumes(*images, refine=not args.no_refine, device=args.device,
                                           model_folder=args.model, names=names)
    result.seconds["reading"] = reading
    fixed, moving = (images[0], images[1]) if result.fixed_index == 0 else (images[1], images[0])
    began = time.perf_counter()
    settings = {"refine": not args.no_refine, "device": args.device,
                "model": None if args.model is None else str(args.model)}
    writes = [(args.output, lambda p: transform_io.write_transform(result.matrix, p))]
    if args.resampled:
        writes.append((args.resampled, lambda p: write_image(sitk.Resample(
            moving, fixed, geometry.sitk_from_matrix(result.matrix), sitk.sitkLinear,
            float(sitk.GetArrayViewFromImage(moving).min()), moving.GetPixelID()), p)))
    if args.qa:
        writes.append((args.qa, lambda p: qa.overlay_figure(
            fixed, moving, result.matrix, p, f"{Path(names[result.fixed_index]).name} (MR, grey) + "
                                             f"{Path(names[1 - result.fixed_index]).name} (CT, colour)")))
    if args.report:
        def write_report(p):
            result.seconds["writing"] = time.perf_counter() - began
            Path(p).write_text(json.dumps(autoregister.report(result, (args.a, args.b), settings), indent=2))
        writes.append((args.report, write_report))
    write_all(writes)
    print("\n".join(autoregister.describe(result, names)))
    print(f"wrote {args.output} in {sum(result.seconds.values()):.1f} s")
    print_warnings(result.warnings)
    return 0 if result.confident else LOW_CONFIDENCE
