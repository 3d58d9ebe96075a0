"""Shipping the learned registration (paper: "Registration", DCNN features + ANN): fit the
ANN on a trained DCNN's features, measure the learned prediction alone on the held-out
subjects, and write ``registration.pt``, ``registration-ann.npz`` and the model card
``registration.json`` as ``register`` loads them (``prediction.load_learned``)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk
import torch

from ..core import geometry
from ..core.files import write_atomically
from ..core.resources import torch_device
from ..data import phantom
from ..register import ann, prediction, symmetry
from . import training

SPLITS = ("train", "validation", "test")


def parameter_errors(predicted: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation error (degrees) and translation error at the grid centre (mm) of each row of
    six parameters."""
    rotation = np.array([geometry.rotation_error_deg(geometry.matrix_from_parameters(p),
                                                     geometry.matrix_from_parameters(t))
                         for p, t in zip(predicted, truth)])
    return rotation, np.linalg.norm(predicted[:, 3:] - truth[:, 3:], axis=1)


def r_squared(predicted: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, float]:
    """R^2 per parameter and over all six."""
    residual, spread = (predicted - truth) ** 2, (truth - truth.mean(0)) ** 2
    return 1 - residual.sum(0) / spread.sum(0), float(1 - residual.sum() / spread.sum())


def grid_image(volume: np.ndarray, spacing: float) -> sitk.Image:
    """A stored (z, y, x) grid volume as an image centred on the origin (the parameters'
    rotation centre)."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume, dtype=np.float32))
    image.SetSpacing([spacing] * 3)
    image.SetOrigin((-(np.array(volume.shape[::-1]) - 1) / 2 * spacing).tolist())
    return image


def moved(moving: np.ndarray, transform: np.ndarray, spacing: float) -> np.ndarray:
    """A stored (normalised) moving volume seen through ``transform`` (about the grid centre)."""
    image = grid_image(moving, spacing)
    return sitk.GetArrayFromImage(sitk.Resample(image, image, geometry.sitk_from_matrix(transform),
                                                sitk.sitkLinear, 0.0, sitk.sitkFloat32))


def passes_on_split(learned, examples: training.PairExamples, spacing: float, passes: int, regressor: str):
    """Parameters (N, 6) of the composed transform after each pass (each pass resamples the
    moving volume through the transform found so far and adds the correction read from
    what is left)."""
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


def split_record(per_pass: list[np.ndarray], truth: np.ndarray, subjects) -> dict:
    """The card's record of one split and regressor: R^2 of the first pass, median and 90th
    percentile errors after each pass."""
    r2, overall = r_squared(per_pass[0], truth)
    record = {"subjects": subjects, "examples": len(truth), "r_squared": np.round(r2, 3).tolist(),
              "r_squared_overall": round(overall, 3), "passes": []}
    for predicted in per_pass:
        rotation, translation = parameter_errors(predicted, truth)
        record["passes"].append({"rotation_median_deg": round(float(np.median(rotation)), 2),
                                 "rotation_p90_deg": round(float(np.percentile(rotation, 90)), 2),
                                 "translation_median_mm": round(float(np.median(translation)), 2),
                                 "translation_p90_mm": round(float(np.percentile(translation, 90)), 2)})
    return record


def prediction_milliseconds(learned, repeats: int = 5) -> int:
    """CPU time of one whole prediction (both volumes onto the grid, network, ANN) on the
    embedded phantom pair, median of ``repeats``."""
    pair = phantom.make_phantom_pair(0)
    center = symmetry.symmetry_frame(pair.mr).center
    timings = []
    for _ in range(repeats):
        began = time.perf_counter()
        prediction.predict_transform(learned, pair.mr, pair.ct, center)
        timings.append(time.perf_counter() - began)
    return round(1000 * float(np.median(timings)))


def ship_registration(set_folder, run_folder, out=None, ann_data: str = "train", ann_epochs: int = 200,
                      passes: int = 1, workers: int = 0, say: Callable[[str], None] = lambda line: None,
                      features_path=None) -> dict:
    """Fit the ANN on the features of the DCNN trained in ``run_folder`` (``model.pt``) for
    the subjects of ``ann_data`` ("train", "validation" or "train+validation"), measure both
    regressors (the DCNN's head and the ANN) on the other held-out splits, and write the
    model files and card into ``out`` (the shipped folder when None). A compared backbone
    (``train_registration(backbone=...)``) is measured the same way and only its card is
    written, ``registration-<backbone>.json``. Returns the card."""
    set_folder, run_folder = Path(set_folder), Path(run_folder)
    model, settings = training.load_registration(run_folder / "model.pt")
    manifest_path = set_folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    set_settings = manifest["settings"]
    grid = {"grid_size": set_settings["grid_size"], "grid_spacing_mm": set_settings["grid_spacing_mm"],
            "pool": settings["pool"]}
    place = torch_device("auto")   # the features on the GPU where there is one; the rest on the CPU
    torch.backends.cudnn.allow_tf32 = False   # features as the CPU computes them at registration time
    splits = {s: training.PairExamples(set_folder, s, settings["index"], settings["pool"]) for s in SPLITS}
    features = {s: training.predict(model.to(place), e, place, features=True, workers=workers)
                for s, e in splits.items()}
    model.cpu()
    if features_path:
        np.savez_compressed(features_path, **{f"{s}_features": f for s, f in features.items()},
                            **{f"{s}_parameters": e.examples.parameters for s, e in splits.items()},
                            **{f"{s}_subjects": np.array([r["subject"] for r in e.examples.rows])
                               for s, e in splits.items()})
    fit_on = ann_data.split("+")
    began = time.perf_counter()
    regression = ann.BayesianANN(hidden=10, epochs=ann_epochs).fit(
        np.concatenate([features[s] for s in fit_on]),
        np.concatenate([splits[s].examples.parameters for s in fit_on]).astype(np.float64))
    say(f"ANN fitted on {ann_data} features in {time.perf_counter() - began:.0f} s: effective parameters "
        f"{regression.effective_parameters:.0f}, alpha {regression.alpha:.3g}, beta {regression.beta:.3g}")
    learned = prediction.LearnedRegistration(model, regression, {"input": grid})
    metrics = {}
    for split in ("validation", "test"):
        if split in fit_on or not len(splits[split]):
            continue
        truth = splits[split].examples.parameters.astype(np.float64)
        for regressor in ("head", "ann"):
            per_pass = passes_on_split(learned, splits[split], grid["grid_spacing_mm"], passes, regressor)
            metrics[f"{split} {regressor}"] = record = split_record(per_pass, truth, splits[split].examples.subjects)
            say(f"{split} ({', '.join(record['subjects'])}), {regressor}: {record['passes']}; R^2 "
                f"{record['r_squared']} overall {record['r_squared_overall']}")
    milliseconds = prediction_milliseconds(learned)
    say(f"one prediction on the phantom pair (CPU, {torch.get_num_threads()} threads): {milliseconds} ms")
    card = {"input": {**grid, "fixed": "MR, normalise_mr", "moving": "CT in HU, normalise_ct",
                      "center": "the fixed head's symmetry-frame centre"},
            "data": {"set": str(set_folder.resolve()),
                     "manifest_sha256": hashlib.sha256(manifest_path.read_bytes()).hexdigest(),
                     "settings": set_settings, "subjects": manifest["subjects"]},
            "training": {**settings, "history": torch.load(run_folder / "model.pt", weights_only=True)["history"],
                         "ann_fitted_on": ann_data, "ann_epochs": ann_epochs},
            "metrics": metrics, "cpu_prediction_ms": milliseconds}
    if settings.get("backbone", "dcnn") == "dcnn":
        prediction.save_learned(model, regression, card, out)
    else:   # a compared network (Tables 1-2): measured, not shipped (register runs the paper's DCNN)
        path = Path(out) / f"registration-{settings['backbone']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda target: Path(target).write_text(json.dumps(
            {"model": settings["backbone"], "weights": str(run_folder / "model.pt"), **card}, indent=2)))
    return card
