"""The n sweep of the paper ("Data augmentation": R^2 against the number of synthetic
copies per subject): one registration DCNN per n, trained on the first n copies of each
training subject (the set's ``index-nNNN.csv``, written by ``headreg dataset sweep``), and
scored on the test subjects by the R^2 of its own head, per parameter and overall. Runs
are resumable (one folder per n under OUT); the table goes to stdout, the plot to OUT.

    python benchmarks/copies_sweep.py /work/trainset /work/runs/sweep --copies 4,9,24,49,124 --epochs 10 --pool 2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from HeadRegistrationLib.core import geometry
from HeadRegistrationLib.learn import training
from HeadRegistrationLib.learn.shipping import r_squared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("set")
    parser.add_argument("out")
    parser.add_argument("--copies", default="4,9,24,49,124")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--drop-epoch", type=int, default=None, help="default: two thirds of --epochs, as 20 of 30")
    parser.add_argument("--pool", type=int, default=2)
    parser.add_argument("--workers", type=int, default=0, help="processes reading the examples (0: this one)")
    args = parser.parse_args()
    out = Path(args.out)
    drop = args.drop_epoch if args.drop_epoch is not None else round(args.epochs * 2 / 3)
    cpu = torch.device("cpu")
    rows = []
    for n in (int(c) for c in args.copies.split(",")):
        index = f"index-n{n:03d}.csv"
        began = time.perf_counter()
        training.train_registration(args.set, out / f"n{n:03d}", args.epochs, drop_epoch=drop, index=index,
                                    pool=args.pool, progress=False, workers=args.workers)
        seconds = time.perf_counter() - began
        model, _ = training.load_registration(out / f"n{n:03d}" / "model.pt")
        test = training.PairExamples(args.set, "test", "index.csv", args.pool)   # every copy of the test subjects
        truth = test.examples.parameters.astype(np.float64)
        predicted = training.predict(model, test, cpu, workers=args.workers).astype(np.float64)
        rows.append((n, len(training.PairExamples(args.set, "train", index)), *r_squared(predicted, truth), seconds))
        print(f"n={n}: {rows[-1][1]} training examples, R^2 overall {rows[-1][3]:.3f}, {seconds:.0f} s", flush=True)
    print("| copies per subject | training examples | " + " | ".join(geometry.PARAMETER_NAMES) + " | overall | s |")
    print("|---" * 10 + "|")
    for n, count, per_parameter, overall, seconds in rows:
        print(f"| {n} | {count} | " + " | ".join(f"{r:.3f}" for r in per_parameter) + f" | {overall:.3f} | {seconds:.0f} |")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axis = plt.subplots(figsize=(6, 4))
    copies = [r[0] for r in rows]
    for k, name in enumerate(geometry.PARAMETER_NAMES):
        axis.plot(copies, [r[2][k] for r in rows], marker=".", linewidth=1, label=name)
    axis.plot(copies, [r[3] for r in rows], marker="o", color="black", linewidth=2, label="overall")
    axis.set_xlabel("synthetic copies per subject (n)")
    axis.set_ylabel("R^2 on the test subjects (DCNN head)")
    axis.axhline(0, color="grey", linewidth=0.5)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out / "copies_sweep.png", dpi=90)
    print(f"plot: {out / 'copies_sweep.png'}")


if __name__ == "__main__":
    main()
