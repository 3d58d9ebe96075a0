"""``headreg modality``: CT or MR, with its probability, for each volume."""

from __future__ import annotations

import sys
from pathlib import Path

from ..core import volume_io
from ..core.errors import HeadRegError
from ..register import autoregister, classifier, preprocessing, symmetry
from .common import add_series, print_warnings, read_volume


def add_parser(commands) -> None:
    p = commands.add_parser("modality", help="CT or MR, with its probability, for each volume",
                            description="Print one line per input: the path, CT or MR, and the probability of "
                                        "that answer (learned classifier weighed with DICOM tag and Hounsfield "
                                        "evidence; disagreement is a warning on stderr).")
    p.add_argument("files", type=Path, nargs="+", metavar="FILE", help="volume file or DICOM folder")
    add_series(p)
    p.set_defaults(run=run)


def run(args) -> int:
    model = classifier.load_model()
    failed = 0
    for path in args.files:
        try:
            image = read_volume(path, args)
            volume_io.check_volume_content(image, str(path))
            image, padded = preprocessing.without_padding(image)
            mask = symmetry.head_mask(image, autoregister.MASK_SPACING_MM)
            autoregister.check_head(image, mask, str(path))
            decision = classifier.decide(image, model, head_mask=mask)
        except HeadRegError as error:   # one bad file does not stop the others
            message = str(error) if str(path) in str(error) else f"{path}: {error}"
            print(f"headreg modality: error: {message}", file=sys.stderr)
            failed += 1
            continue
        print(f"{path} {decision.modality} {decision.probability:.3f}", flush=True)
        print_warnings(decision.warnings + ([padded] if padded else []), f"warning: {path}: ")
    return 1 if failed else 0
