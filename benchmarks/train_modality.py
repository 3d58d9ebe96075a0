"""Train the CT/MR classifier on a built set and measure it (the paper's Table 3) on
held-out subjects, per kind of volume, and on every volume of ../shared/data and the
phantom (``learn.modality.ship_modality``, what ``headreg train modality`` runs); --save
writes the shipped weights and model card to HeadRegistrationLib/models/.

    python benchmarks/train_modality.py /work/trainset [--save]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from HeadRegistrationLib.learn import modality


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("set")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--save", action="store_true", help="write the shipped modality.{pt,json}")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as scratch:
        card = modality.ship_modality(args.set, None if args.save else Path(scratch), epochs=args.epochs, say=print)
    print(json.dumps(card["metrics"], indent=1))
    for key, (right, count) in sorted(card["metrics"].get("test_per_appearance", {}).items()):
        print(f"test, {key}: {right}/{count} right")


if __name__ == "__main__":
    main()
