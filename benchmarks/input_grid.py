"""Accuracy against time of the network's input grid (issue: "choose the default by
measurement"): for each training run given (``train_registration.py --pool P`` on the same
set), the DCNN head's errors and R^2 on the test subjects, and the CPU time of the network
on one pair (batch 1, median of 20, after 3 warm-ups).

    python benchmarks/input_grid.py /work/trainset /work/runs/grid-pool4 /work/runs/grid-pool2 /work/runs/grid-pool1 --index index-n049.csv
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from HeadRegistrationLib.learn import training
from HeadRegistrationLib.learn.shipping import parameter_errors, r_squared


def network_ms(model: torch.nn.Module, size: tuple[int, int, int]) -> float:
    pair = torch.randn(1, 2, *size)
    seconds = []
    with torch.no_grad():
        for k in range(23):
            began = time.perf_counter()
            model(pair)
            if k >= 3:
                seconds.append(time.perf_counter() - began)
    return 1000 * float(np.median(seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("set")
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--index", default="index.csv")
    args = parser.parse_args()
    print(f"| input grid | test R^2 | test rotation median (p90) | test translation median (p90) | network ms per pair "
          f"({torch.get_num_threads()} CPU threads) |")
    print("|---|---|---|---|---|")
    for run in args.runs:
        model, settings = training.load_registration(Path(run) / "model.pt")
        test = training.PairExamples(args.set, "test", args.index, settings["pool"])
        truth = test.examples.parameters.astype(np.float64)
        predicted = training.predict(model, test, torch.device("cpu")).astype(np.float64)
        rotation, translation = parameter_errors(predicted, truth)
        size = tuple(test[0][0].shape[1:])
        print(f"| {size[0]}^3 (pool {settings['pool']}) | {r_squared(predicted, truth)[1]:.3f} | {np.median(rotation):.2f} deg "
              f"({np.percentile(rotation, 90):.2f}) | {np.median(translation):.2f} mm ({np.percentile(translation, 90):.2f}) "
              f"| {network_ms(model, size):.1f} |", flush=True)


if __name__ == "__main__":
    main()
