"""Train (or resume) the registration DCNN on a built set and measure it on held-out subjects.

Reports, for the validation and test subjects, the median and 90th percentile of the
rotation error (degrees) and of the translation error at the grid centre (mm) of the
learned prediction alone, the R^2 of each parameter, and the same for predicting zero
(no correction) as the baseline.

    python benchmarks/train_registration.py /work/trainset runs/dcnn --epochs 30 --pool 2
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from HeadRegistrationLib.learn import training
from HeadRegistrationLib.learn.shipping import parameter_errors, r_squared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("set")
    parser.add_argument("out")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--pool", type=int, default=1, help="average-pool the set's grid by this factor")
    parser.add_argument("--widths", default="16,32,64,128")
    parser.add_argument("--index", default="index.csv")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--workers", type=int, default=0, help="processes reading the examples (0: this one)")
    args = parser.parse_args()
    widths = tuple(int(w) for w in args.widths.split(","))
    torch.set_num_threads(max(1, torch.get_num_threads()))
    began = time.perf_counter()
    history = training.train_registration(args.set, args.out, args.epochs, args.batch_size, args.learning_rate,
                                          widths=widths, index=args.index, pool=args.pool,
                                          device=args.device, workers=args.workers)
    print(f"trained {len(history)} epochs in {time.perf_counter() - began:.0f} s (this call); last: {history[-1]}")
    if int(os.environ.get("RANK", "0")) != 0:
        return   # under torchrun, the first process measures
    model, _ = training.load_registration(f"{args.out}/model.pt")
    for split in ("validation", "test"):
        examples = training.PairExamples(args.set, split, args.index, args.pool)
        if not len(examples):
            continue
        began = time.perf_counter()
        predicted = training.predict(model, examples, torch.device("cpu"), workers=args.workers)
        seconds = (time.perf_counter() - began) / len(examples)
        truth = examples.examples.parameters
        for name, guess in (("DCNN", predicted), ("no correction", np.zeros_like(truth))):
            rotation, translation = parameter_errors(guess, truth)
            print(f"{split} ({len(examples)} examples, {', '.join(examples.examples.subjects)}), {name}: rotation "
                  f"median {np.median(rotation):.2f} deg (p90 {np.percentile(rotation, 90):.2f}), translation median "
                  f"{np.median(translation):.2f} mm (p90 {np.percentile(translation, 90):.2f}); R^2 "
                  f"{np.round(r_squared(guess, truth)[0], 3).tolist()}")
        print(f"  CPU inference {1000 * seconds:.0f} ms per pair")


if __name__ == "__main__":
    main()
