"""``headreg info``: a volume's geometry, intensities and a rule-based modality guess."""

from __future__ import annotations

import json
from pathlib import Path

from ..core import volume_io
from ..register import modality
from .common import add_series, read_volume


def add_parser(commands) -> None:
    p = commands.add_parser("info", help="print a volume's geometry, intensity range and a modality guess",
                            description="Read a volume (any file SimpleITK reads, or a DICOM folder) and "
                                        "print its geometry, intensities and a rule-based modality guess.")
    p.add_argument("file", type=Path, help="volume file or DICOM folder")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_series(p)
    p.set_defaults(run=run)


def _text(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {'none' if v is None else format(v, 'g')}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return " x ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def run(args) -> int:
    image = read_volume(args.file, args)
    description = volume_io.describe_volume(image)
    evidence = modality.rule_based_modality(image)
    if args.json:
        description["modality_guess"] = {"modality": evidence.modality, "confidence": evidence.confidence,
                                         "reason": evidence.reason}
        print(json.dumps({"file": str(args.file), **description}, indent=2))
        return 0
    print(f"{'file:':<14}{args.file}")
    for key, value in description.items():
        if key == "direction":
            value = "  ".join(" ".join(f"{v:+.4f}" for v in row) for row in value)
        print(f"{key + ':':<14}{value if key == 'direction' else _text(value)}")
    guess = evidence.modality or "unknown"
    print(f"{'modality:':<14}{guess} (rule-based guess, confidence {evidence.confidence:.2f}: {evidence.reason})")
    return 0
