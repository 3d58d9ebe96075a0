"""``headreg synth``: the CT of an MR's anatomy, or the MR of a CT's, on the source's grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..core import qa, volume_io
from ..core.errors import HeadRegError
from ..core.files import IMAGE_SUFFIXES, PICTURE_SUFFIXES, check_outputs, write_all, write_image
from ..data import dataset, synthesis, tissues
from ..register import modality
from .common import add_series, read_volume


def add_parser(commands) -> None:
    p = commands.add_parser("synth", help="synthesise the CT of an MR's anatomy, or the MR of a CT's",
                            description="Write a partner volume of the other modality in the source's physical "
                                        "space, on its grid.")
    p.add_argument("source", type=Path, help="real volume: file or DICOM folder")
    p.add_argument("--to", choices=("ct", "mr"), required=True, help="modality of the partner to make")
    p.add_argument("-o", "--output", type=Path, required=True, help="partner volume to write")
    p.add_argument("--seed", type=int, default=0, help="scanner appearance (default 0)")
    p.add_argument("--weighting", choices=synthesis.WEIGHTINGS, default="t1", help="--to ct: the source MR's weighting")
    p.add_argument("--skull", type=Path, help="--to ct: a real bone mask of the source MR")
    p.add_argument("--no-template", action="store_true", help="--to ct: do not use the MNI152/scct templates")
    p.add_argument("--data", type=Path, default=dataset.default_data_dir(), help="folder holding templates/")
    p.add_argument("--ct-units", choices=("hu", "hu-plus-1024", "cormack", "two-peaks"), default="hu",
                   help="--to mr: the source CT's units (two-peaks: calibrate from air and soft tissue)")
    p.add_argument("--mr-weighting", choices=tissues.RENDERED, help="--to mr: the partner's weighting "
                   "(random by default)")
    p.add_argument("--qa", type=Path, metavar="PNG", help="also write a picture: MR with CT bone edges")
    add_series(p)
    p.set_defaults(run=run)


def _ct_partner(source, args, rng):
    """(the CT, a note on where its bone came from)."""
    skull = volume_io.read_volume(args.skull) if args.skull else None
    if skull is not None:
        labels = np.unique(sitk.GetArrayViewFromImage(skull))
        if labels.size != 2:
            raise HeadRegError(f"{args.skull} has {labels.size} distinct values: --skull needs a binary bone "
                               "mask (0 outside the bone, one value inside)")
    template_hu = None
    templates = None if (skull is not None or args.no_template) else dataset.read_templates(args.data)
    if templates is not None:
        template_hu = synthesis.carry_template(source, *templates)
        note = ", bone and air from the MNI152/scct templates"
    elif skull is not None:
        note = f", bone from {args.skull.name}"
    else:
        note = ", bone from the dark shell around the brain (no templates)"
    return synthesis.synthesise(source, "ct", rng, args.weighting, skull, template_hu), note


def run(args) -> int:
    check_outputs([(args.output, IMAGE_SUFFIXES), (args.qa, PICTURE_SUFFIXES)],
                  [args.source] + ([args.skull] if args.skull else []))
    source = sitk.Cast(read_volume(args.source, args), sitk.sitkFloat32)
    volume_io.check_volume_content(source, str(args.source))
    evidence = modality.rule_based_modality(source)
    if evidence.modality == ("MR" if args.to == "mr" else "CT") and evidence.confidence >= 0.9:
        raise HeadRegError(f"{args.source} already looks like {evidence.modality} ({evidence.reason}): "
                           f"--to {args.to} makes the partner of the other modality")
    rng = np.random.default_rng(args.seed)
    note = ""
    if args.to == "ct":
        ct, note = _ct_partner(source, args, rng)
        mr, partner = source, ct
    else:
        lowest = float(sitk.GetArrayViewFromImage(source).min())
        if args.ct_units == "hu" and lowest > -500:
            raise HeadRegError(f"{args.source.name} does not look like a CT in Hounsfield units (its minimum is "
                               f"{lowest:g}, air is -1000): give --ct-units hu-plus-1024, cormack or two-peaks")
        ct = dataset.ct_in_hounsfield(source, args.ct_units.replace("-", "_"))
        mr = synthesis.synthesise(ct, "mr", rng, target_weighting=args.mr_weighting)
        partner = mr
    write_all([(args.output, lambda p: write_image(partner, p))]
              + ([(args.qa, lambda p: qa.bone_edge_figure(mr, ct, p, title=f"{args.source.name} -> "
                                                          f"{args.to.upper()} (seed {args.seed})"))]
                 if args.qa else []))
    print(f"wrote {args.output}: {'a CT' if args.to == 'ct' else 'an MR'} of the anatomy of {args.source.name} on its grid "
          f"(seed {args.seed}{note})")
    return 0
