"""``headreg train``: the learned models from a built set, written as shipped (weights and
model cards): ``registration`` (the DCNN, then the ANN on its features) and ``modality``
(the CT/MR classifier). Runs on the CPU or a GPU; the DCNN trains data-parallel under
``torchrun --nproc_per_node N -m HeadRegistrationLib.cli train registration ...``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..core.errors import HeadRegError
from ..learn import backbones, modality, shipping, training
from ..register import network


def add_parser(commands) -> None:
    p = commands.add_parser("train", help="train the registration DCNN + ANN or the CT/MR classifier on a built set",
                            description="Train the learned models on a set made by `headreg dataset build` and "
                                        "write them into --out as `register --model DIR` reads them (the shipped "
                                        "folder is HeadRegistrationLib/models/). 'registration' trains (or "
                                        "resumes) the DCNN in OUT/run/, fits the ANN on its features and measures "
                                        "both on the held-out subjects; 'modality' trains the classifier.")
    p.add_argument("model", choices=("registration", "modality"))
    p.add_argument("set", type=Path, help="a built training set (manifest.json, index.csv)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder of the model files and cards")
    p.add_argument("--epochs", type=int, help="epochs (registration: the paper's 30; modality: 6)")
    p.add_argument("--widths", default=",".join(map(str, network.DEFAULT_WIDTHS)),
                   help="channels per DCNN block (default 16,32,64,128)")
    p.add_argument("--pool", type=int, default=2, help="registration: average-pool the set's grid by this (default 2)")
    p.add_argument("--batch-size", type=int, default=8, help="registration: pairs per batch (default 8)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="registration: where to train")
    p.add_argument("--workers", type=int, default=0, help="registration: processes reading the examples")
    p.add_argument("--ann-epochs", type=int, default=200, help="registration: ANN epochs (default 200)")
    p.add_argument("--ann-data", default="train", choices=("train", "validation", "train+validation"),
                   help="registration: the subjects whose features the ANN is fitted on")
    p.add_argument("--backbone", choices=tuple(backbones.REGRESSORS), default="dcnn",
                   help="registration: the network (default the paper's DCNN; the others are the paper's compared "
                        "methods, Tables 1-2: trained and measured the same way, their card written as "
                        "registration-<backbone>.json, not used by register)")
    p.add_argument("--width", type=float, default=1.0,
                   help="registration, --backbone other than dcnn: channels x the published ones (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(v) for v in text.split(","))
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        raise HeadRegError(f"--widths must be a comma list of channel counts, got {text!r}")
    return widths


def run(args) -> int:
    if not (args.set / "manifest.json").is_file():
        raise HeadRegError(f"{args.set} is not a built training set (no manifest.json): make one with "
                           "`headreg dataset build`")
    widths = _widths(args.widths)
    if not args.width > 0:
        raise HeadRegError(f"--width must be positive, got {args.width}")
    if args.model == "modality":
        card = modality.ship_modality(args.set, args.out, epochs=args.epochs or 6, widths=widths, seed=args.seed,
                                      say=print)
        print(f"wrote {args.out}/modality.pt and modality.json (test accuracy "
              f"{card['metrics'].get('test', {}).get('accuracy', float('nan')):.3f})")
        return 0
    training.train_registration(args.set, args.out / "run", epochs=args.epochs or training.PAPER_SCHEDULE["epochs"],
                                batch_size=args.batch_size, widths=widths, seed=args.seed, device=args.device,
                                pool=args.pool, workers=args.workers, progress=sys.stderr.isatty(),
                                backbone=args.backbone, width=args.width)
    if int(os.environ.get("RANK", "0")) != 0:   # under torchrun the first process ships the model
        return 0
    shipping.ship_registration(args.set, args.out / "run", args.out, args.ann_data, args.ann_epochs,
                               workers=args.workers, say=print)
    if args.backbone != "dcnn":
        print(f"wrote {args.out}/registration-{args.backbone}.json (the weights: {args.out}/run/model.pt)")
        return 0
    print(f"wrote {args.out}/registration.pt, registration-ann.npz and registration.json")
    return 0
