"""Choose the ANN's number of Levenberg-Marquardt epochs on the validation subjects, from
the features ``ship_registration.py --features`` wrote: for each count, fit on the training
features and print the learned prediction's R^2 and median errors (pass 1) per held-out split.

    python benchmarks/ann_epochs.py /work/runs/gpu40/features.npz --epochs 25,50,100
"""

from __future__ import annotations

import argparse

import numpy as np

from HeadRegistrationLib.register import ann
from HeadRegistrationLib.learn.shipping import parameter_errors, r_squared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("features")
    parser.add_argument("--epochs", default="25,50,100")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = np.load(args.features)
    for epochs in (int(e) for e in args.epochs.split(",")):
        model = ann.BayesianANN(hidden=10, epochs=epochs, seed=args.seed).fit(
            data["train_features"], data["train_parameters"].astype(np.float64))
        for split in ("validation", "test"):
            truth = data[f"{split}_parameters"].astype(np.float64)
            predicted = model.predict(data[f"{split}_features"])
            rotation, translation = parameter_errors(predicted, truth)
            print(f"{epochs} epochs, {split}: R^2 overall {r_squared(predicted, truth)[1]:.3f}, rotation median "
                  f"{np.median(rotation):.2f} deg, translation median {np.median(translation):.2f} mm", flush=True)


if __name__ == "__main__":
    main()
