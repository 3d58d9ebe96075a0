"""Fit the ANN on a trained registration DCNN's features and measure the learned
prediction alone on held-out subjects (``learn.shipping.ship_registration``, what
``headreg train registration`` runs after training), with --passes > 1 also after
resampling through the transform found (each pass adds the correction read from what is
left). --save writes the shipped HeadRegistrationLib/models/registration.* ; without it
the files go to --out (a temporary folder by default).

    python benchmarks/ship_registration.py /work/trainset /work/runs/cm16/run --passes 3 --save
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from HeadRegistrationLib.learn import shipping


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("set")
    parser.add_argument("run", help="folder of a training run (model.pt)")
    parser.add_argument("--ann-data", default="train", choices=("train", "validation", "train+validation"),
                        help="the subjects whose features the ANN is fitted on")
    parser.add_argument("--ann-epochs", type=int, default=200)
    parser.add_argument("--passes", type=int, default=1)
    parser.add_argument("--save", action="store_true", help="write HeadRegistrationLib/models/registration.*")
    parser.add_argument("--out", type=Path, help="where the model files go without --save (default: a temporary folder)")
    parser.add_argument("--workers", type=int, default=0, help="processes reading the examples (0: this one)")
    parser.add_argument("--features", type=Path, metavar="NPZ",
                        help="also write every split's DCNN features, truths and subjects (to try regressors elsewhere)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as scratch:
        out = None if args.save else (args.out or Path(scratch))
        card = shipping.ship_registration(args.set, args.run, out, args.ann_data, args.ann_epochs, args.passes,
                                          args.workers, say=print, features_path=args.features)
    print(json.dumps(card["metrics"], indent=1))
    print("wrote the shipped models" if args.save else f"wrote {out}" if args.out else "measured (nothing kept)")


if __name__ == "__main__":
    main()
