"""Fit the ANN on a trained registration DCNN's features, measure the learned prediction
alone on held-out subjects, and with --save ship it: HeadRegistrationLib/models/registration.pt,
registration-ann.npz and the model card registration.json.

For each held-out split and each regressor (the DCNN's own head, the ANN): median and
90th percentile of the rotation error (degrees) and of the translation error at the grid
centre (mm) after 1..--passes passes (each pass resamples the moving volume through the
transform found so far and adds the correction read from what is left), and R^2 per
parameter of the first pass. Then the CPU time of one whole prediction (both volumes onto
the grid, network, ANN) on the embedded phantom pair.

    python benchmarks/ship_registration.py /work/trainset /work/runs/cm16 --passes 3 --save
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from HeadRegistrationLib.core import geometry, resources
from HeadRegistrationLib.data import phantom
from HeadRegistrationLib.learn import training
from HeadRegistrationLib.register import ann, prediction, symmetry
from train_registration import errors, r_squared   # benchmarks/ beside this file


def moved(moving: np.ndarray, transform: np.ndarray, spacing: float) -> np.ndarray:
    """A stored (normalised) moving volume seen through ``transform`` (about the grid centre)."""
    image = sitk.GetImageFromArray(moving)
    image.SetSpacing([spacing] * 3)
    image.SetOrigin((-(np.array(moving.shape[::-1]) - 1) / 2 * spacing).tolist())
    return sitk.GetArrayFromImage(sitk.Resample(image, image, geometry.sitk_from_matrix(transform),
                                                sitk.sitkLinear, 0.0, sitk.sitkFloat32))


def passes_on_split(learned, examples: training.PairExamples, spacing: float, passes: int, regressor: str):
    """Parameters (N, 6) of the composed transform after each pass."""
    pool = learned.grid["pool"]
    results = [[] for _ in range(passes)]
    for i in range(len(examples)):
        volumes = examples.examples.volumes(i)
        transform = np.eye(4)
        for k in range(passes):
            pair = np.stack([volumes[0], volumes[1] if k == 0 else moved(volumes[1], transform, spacing)])
            pair = torch.nn.functional.avg_pool3d(torch.from_numpy(pair)[None], pool) if pool > 1 else \
                torch.from_numpy(pair)[None]
            correction = prediction.predict_parameters(learned, pair, regressor)[0]
            transform = transform @ geometry.matrix_from_parameters(correction)
            results[k].append(geometry.parameters_from_matrix(transform))
    return [np.array(r) for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("set")
    parser.add_argument("run", help="folder of a training run (model.pt)")
    parser.add_argument("--ann-data", default="train", choices=("train", "validation", "train+validation"),
                        help="the subjects whose features the ANN is fitted on")
    parser.add_argument("--ann-epochs", type=int, default=200)
    parser.add_argument("--passes", type=int, default=1)
    parser.add_argument("--save", action="store_true", help="write HeadRegistrationLib/models/registration.*")
    parser.add_argument("--workers", type=int, default=0, help="processes reading the examples (0: this one)")
    parser.add_argument("--features", type=Path, metavar="NPZ",
                        help="also write every split's DCNN features, truths and subjects (to try regressors elsewhere)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model, settings = training.load_registration(Path(args.run) / "model.pt")
    manifest_path = Path(args.set) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    set_settings = manifest["settings"]
    grid = {"grid_size": set_settings["grid_size"], "grid_spacing_mm": set_settings["grid_spacing_mm"],
            "pool": settings["pool"]}
    place = resources.torch_device("auto")   # the features on the GPU where there is one; the rest on the CPU
    torch.backends.cudnn.allow_tf32 = False   # features as the CPU computes them at registration time
    splits = {s: training.PairExamples(args.set, s, settings["index"], settings["pool"])
              for s in ("train", "validation", "test")}
    features = {s: training.predict(model.to(place), e, place, features=True, workers=args.workers)
                for s, e in splits.items()}
    model.cpu()
    if args.features:
        np.savez_compressed(args.features, **{f"{s}_features": f for s, f in features.items()},
                            **{f"{s}_parameters": e.examples.parameters for s, e in splits.items()},
                            **{f"{s}_subjects": np.array([r["subject"] for r in e.examples.rows]) for s, e in splits.items()})
    fit_on = args.ann_data.split("+")
    began = time.perf_counter()
    regression = ann.BayesianANN(hidden=10, epochs=args.ann_epochs).fit(
        np.concatenate([features[s] for s in fit_on]),
        np.concatenate([splits[s].examples.parameters for s in fit_on]).astype(np.float64))
    ann_seconds = time.perf_counter() - began
    print(f"ANN fitted on {args.ann_data} features in {ann_seconds:.0f} s: effective parameters "
          f"{regression.effective_parameters:.0f}, alpha {regression.alpha:.3g}, beta {regression.beta:.3g}")
    learned = prediction.LearnedRegistration(model, regression, {"input": grid})

    metrics = {}
    for split in ("validation", "test"):
        if split in fit_on or not len(splits[split]):
            continue
        truth = splits[split].examples.parameters.astype(np.float64)
        for regressor in ("head", "ann"):
            per_pass = passes_on_split(learned, splits[split], grid["grid_spacing_mm"], args.passes, regressor)
            r2, overall = r_squared(per_pass[0], truth)
            record = {"subjects": splits[split].examples.subjects, "examples": len(truth),
                      "r_squared": np.round(r2, 3).tolist(), "r_squared_overall": round(overall, 3), "passes": []}
            for k, predicted in enumerate(per_pass):
                rotation, translation = errors(predicted, truth)
                record["passes"].append({"rotation_median_deg": round(float(np.median(rotation)), 2),
                                         "rotation_p90_deg": round(float(np.percentile(rotation, 90)), 2),
                                         "translation_median_mm": round(float(np.median(translation)), 2),
                                         "translation_p90_mm": round(float(np.percentile(translation, 90)), 2)})
                print(f"{split} ({', '.join(record['subjects'])}), {regressor}, pass {k + 1}: rotation median "
                      f"{record['passes'][-1]['rotation_median_deg']} deg (p90 {record['passes'][-1]['rotation_p90_deg']}),"
                      f" translation median {record['passes'][-1]['translation_median_mm']} mm "
                      f"(p90 {record['passes'][-1]['translation_p90_mm']})")
            print(f"  R^2 {record['r_squared']} overall {record['r_squared_overall']}")
            metrics[f"{split} {regressor}"] = record
        rotation, translation = errors(np.zeros_like(truth), truth)
        print(f"{split}, no correction: rotation median {np.median(rotation):.2f} deg, translation median "
              f"{np.median(translation):.2f} mm")

    pair = phantom.make_phantom_pair(0)
    center = symmetry.symmetry_frame(pair.mr).center
    timings = []
    for _ in range(5):
        began = time.perf_counter()
        prediction.predict_transform(learned, pair.mr, pair.ct, center)
        timings.append(time.perf_counter() - began)
    print(f"one prediction on the phantom pair (CPU, {torch.get_num_threads()} threads): median "
          f"{1000 * np.median(timings):.0f} ms")

    if args.save:
        card = {"input": {**grid, "fixed": "MR, normalise_mr", "moving": "CT in HU, normalise_ct",
                          "center": "the fixed head's symmetry-frame centre"},
                "data": {"set": str(Path(args.set).resolve()),
                         "manifest_sha256": hashlib.sha256(manifest_path.read_bytes()).hexdigest(),
                         "settings": set_settings, "subjects": manifest["subjects"]},
                "training": {**settings, "history": torch.load(Path(args.run) / "model.pt", weights_only=True)["history"],
                             "ann_fitted_on": args.ann_data, "ann_epochs": args.ann_epochs},
                "metrics": metrics, "cpu_prediction_ms": round(1000 * float(np.median(timings)))}
        prediction.save_learned(model, regression, card)
        print(f"wrote {prediction.MODELS}/registration.pt, registration-ann.npz and registration.json")


if __name__ == "__main__":
    main()
