"""Features + regressors (paper: "Registration of multi-modal images", Fig. 8 and the R^2
comparison): the trained DCNN's 2 x 128 features of every pair, then the six parameters
regressed by the DCNN's own head, the ANN with Bayesian regularisation (``ann.py``, as
MATLAB's trainbr), scikit-learn SVR and Gaussian process regression (one model per
parameter) and a plain MLP. Fitted on the training subjects, scored on the test subjects:
R^2 per parameter and overall, and an error histogram per parameter (PNG).

    python benchmarks/compare_regressors.py /work/trainset runs/g16 --pool 2 --plot errors.png

or from the features ``ship_registration.py --features`` wrote (no set needed):

    python benchmarks/compare_regressors.py /work/runs/gpu40/features.npz /work/runs/gpu40/run --plot errors.png
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, WhiteKernel
from sklearn.neural_network import MLPRegressor
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR

from HeadRegistrationLib.core import geometry
from HeadRegistrationLib.learn import training
from HeadRegistrationLib.register import ann, network
from HeadRegistrationLib.learn.shipping import r_squared


def per_parameter(make, x, y, x_test):
    return np.column_stack([make().fit(x, y[:, k]).predict(x_test) for k in range(y.shape[1])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("set", help="a built set, or the features.npz of ship_registration.py --features")
    parser.add_argument("run", help="folder of a training run (model.pt)")
    parser.add_argument("--pool", type=int, default=1)
    parser.add_argument("--split", default="test")
    parser.add_argument("--ann-epochs", type=int, default=100, help="Levenberg-Marquardt epochs of the ANN")
    parser.add_argument("--gpr-samples", type=int, default=1500, help="GPR fits on at most this many examples")
    parser.add_argument("--plot", help="write the error histograms here (PNG)")
    args = parser.parse_args()
    model, _ = training.load_registration(f"{args.run}/model.pt")
    cpu = torch.device("cpu")
    if args.set.endswith(".npz"):
        saved = np.load(args.set)
        x_train, x_test = saved["train_features"], saved[f"{args.split}_features"]
        y_train, y_test = (saved[f"{s}_parameters"].astype(np.float64) for s in ("train", args.split))
        subjects = {s: sorted(set(saved[f"{s}_subjects"])) for s in ("train", args.split)}
        with torch.no_grad():
            head = model.head(torch.from_numpy(x_test)).numpy() * np.array(network.PARAMETER_SCALE)
    else:
        train = training.PairExamples(args.set, "train", pool=args.pool)
        test = training.PairExamples(args.set, args.split, pool=args.pool)
        x_train, x_test = (training.predict(model, e, cpu, features=True) for e in (train, test))
        y_train, y_test = train.examples.parameters.astype(np.float64), test.examples.parameters.astype(np.float64)
        subjects = {"train": train.examples.subjects, args.split: test.examples.subjects}
        head = training.predict(model, test, cpu)
    scaler = StandardScaler().fit(x_train)
    xs_train, xs_test = scaler.transform(x_train), scaler.transform(x_test)
    subset = np.random.default_rng(0).permutation(len(xs_train))[:args.gpr_samples]
    kernel = RBF(length_scale=np.sqrt(xs_train.shape[1])) + WhiteKernel(0.1)
    regressors = {
        "DCNN head": lambda: head.astype(np.float64),
        "ANN (Bayesian regularisation)": lambda: ann.BayesianANN(hidden=10, epochs=args.ann_epochs).fit(x_train, y_train)
        .predict(x_test),
        "SVR (RBF, per parameter)": lambda: per_parameter(lambda: SVR(C=10.0), xs_train, y_train, xs_test),
        "GPR (RBF + noise, per parameter)": lambda: per_parameter(
            lambda: GaussianProcessRegressor(kernel, normalize_y=True, random_state=0), xs_train[subset],
            y_train[subset], xs_test),
        "MLP (10 tanh, adam)": lambda: MLPRegressor(hidden_layer_sizes=(10,), activation="tanh", max_iter=2000, random_state=0)
        .fit(xs_train, y_train).predict(xs_test),
    }
    print(f"{len(y_train)} training examples ({', '.join(subjects['train'])}), {len(y_test)} {args.split} "
          f"examples ({', '.join(subjects[args.split])}), {x_train.shape[1]} features")
    print("| regressor | " + " | ".join(geometry.PARAMETER_NAMES) + " | overall | s |")
    print("|---" * 9 + "|")
    predictions = {}
    for name, fit_and_predict in regressors.items():
        began = time.perf_counter()
        predicted = fit_and_predict()
        seconds = time.perf_counter() - began
        predictions[name] = predicted
        scores, overall = r_squared(predicted, y_test)
        print(f"| {name} | " + " | ".join(f"{s:.3f}" for s in scores) + f" | {overall:.3f} | {seconds:.1f} |")
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        figure, axes = plt.subplots(2, 3, figsize=(12, 7))
        for k, ax in enumerate(axes.ravel()):
            for name, predicted in predictions.items():
                ax.hist(predicted[:, k] - y_test[:, k], bins=30, histtype="step", label=name)
            ax.set_title(f"error of {geometry.PARAMETER_NAMES[k]}")
        axes[0, 0].legend(fontsize=7)
        figure.tight_layout()
        figure.savefig(args.plot, dpi=80)


if __name__ == "__main__":
    main()
