"""The paper's comparisons as measured here: the registration networks of Tables 1 and 2
and the classifiers of Table 3 (learn.backbones, learn.compared), each trained the same
way on the training subjects of one built set and measured on its test subjects (never
seen in training).

Registration (Tables 1-2): the six parameters each method gives for a test pair, their
rotation and translation errors (median, 90th percentile), R^2 per parameter, the
paper's DSC/JSC/Rp/Rs/CMS/SSIM (``metrics.paper_metrics``) after the learned step alone
and after one refinement common to all (Mattes MI on the unpooled grid from the learned
start), prediction time on this machine's CPU and the parameter count. Table 1 is each
method as published; Table 2 the same networks as feature extractors for the paper's ANN.
Classification (Table 3): accuracy, sensitivity, specificity, precision, F-measure and
G-mean with CT as positive, per kind of volume, and the decision on the shared real
volumes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk
import torch

from ..core import geometry
from ..data import dataset
from ..learn import backbones, compared, modality, shipping, training
from ..register import ann, prediction
from . import metrics

REGISTRATION_METHODS = (*backbones.REGRESSORS, "liu", "zou")
METRIC_NAMES = ("dsc", "jsc", "rp", "rs", "cms", "ssim")
TABLE3 = ("accuracy", "sensitivity", "specificity", "precision", "f_measure", "g_mean")


def _ct_head(image: sitk.Image) -> sitk.Image:
    """The head of a normalised grid CT (``preprocessing.normalise_ct``: above -500 HU)."""
    return sitk.Cast(image > 0.5, sitk.sitkUInt8)


def refine(fixed: np.ndarray, moving: np.ndarray, spacing: float, start: np.ndarray) -> np.ndarray:
    """Six parameters after a rigid Mattes-MI refinement (two levels) from ``start``."""
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(32)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(0.1, 0)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-2, numberOfIterations=60)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([2, 1])
    method.SetSmoothingSigmasPerLevel([1, 0])
    method.SetInterpolator(sitk.sitkLinear)
    method.SetInitialTransform(geometry.sitk_from_matrix(geometry.matrix_from_parameters(start)), inPlace=False)
    found = method.Execute(shipping.grid_image(fixed, spacing), shipping.grid_image(moving, spacing))
    return geometry.parameters_from_matrix(geometry.matrix_from_sitk(found))


def measure(predicted: np.ndarray, truth: np.ndarray, volumes: list[np.ndarray], spacing: float,
            with_refinement: bool = True) -> dict:
    """Errors, R^2 and the paper's metrics of ``predicted`` (N, 6) against ``truth``, on the
    unpooled test ``volumes`` (each (2, z, y, x)); the same after ``refine``."""
    rows = {"learned": predicted}
    if with_refinement:
        rows["refined"] = np.array([refine(v[0], v[1], spacing, p) for v, p in zip(volumes, predicted)])
    record = {}
    for stage, found in rows.items():
        rotation, translation = shipping.parameter_errors(found, truth)
        r2, overall = shipping.r_squared(found, truth)
        scores = [metrics.paper_metrics(shipping.grid_image(v[0], spacing), shipping.grid_image(v[1], spacing),
                                        geometry.matrix_from_parameters(t), geometry.matrix_from_parameters(f),
                                        _ct_head)
                  for v, t, f in zip(volumes, truth, found)]
        record[stage] = {"rotation_median_deg": float(np.median(rotation)),
                         "rotation_p90_deg": float(np.percentile(rotation, 90)),
                         "translation_median_mm": float(np.median(translation)),
                         "translation_p90_mm": float(np.percentile(translation, 90)),
                         "r_squared": r2.tolist(), "r_squared_overall": overall,
                         **{name: float(np.mean([s[name] for s in scores])) for name in METRIC_NAMES}}
    return record


def _milliseconds(predict: Callable[[], object], repeats: int = 5) -> float:
    timings = []
    for _ in range(repeats):
        began = time.perf_counter()
        predict()
        timings.append(time.perf_counter() - began)
    return 1000 * float(np.median(timings))


def _train_and_predict(method: str, set_folder, out: Path, train, test, width: float, epochs: int, spacing: float,
                       optimiser: str, device: str):
    """One compared method trained on ``train``: (model, its parameters for ``test``,
    training seconds, CPU milliseconds of one prediction)."""
    torch.manual_seed(0)
    began = time.perf_counter()
    if method in backbones.REGRESSORS:
        training.train_registration(set_folder, out / method, epochs, drop_epoch=max(1, 2 * epochs // 3),
                                    backbone=method, width=width, pool=2, progress=False, device=device,
                                    optimiser=optimiser)
        model, _ = training.load_registration(out / method / "model.pt")
        seconds = time.perf_counter() - began
        with torch.no_grad():
            return (model, training.predict(model, test, torch.device("cpu")), seconds,
                    _milliseconds(lambda: model(test[0][0][None])))
    trainers = {"liu": (compared.train_synthesis, compared.predict_liu),
                "zou": (compared.train_points, compared.predict_zou)}
    if method not in trainers:
        raise ValueError(f"unknown method {method!r}: choose from {', '.join(REGISTRATION_METHODS)}")
    fit, predict = trainers[method]
    model = fit(train, 2 * spacing, width, epochs, device=device)   # the pooled grid: twice the set's spacing
    seconds = time.perf_counter() - began
    return (model, predict(model, test, 2 * spacing), seconds,
            _milliseconds(lambda: predict(model, _First(test, 1), 2 * spacing)))


def registration_table(set_folder, out, methods=REGISTRATION_METHODS, width: float = 0.25, epochs: int = 10,
                       ann_epochs: int = 100, with_refinement: bool = True, test_pairs: int | None = None,
                       optimiser: str = "sgd", with_shipped: bool = True, device: str = "cpu",
                       say: Callable[[str], None] = lambda line: None) -> list[dict]:
    """Train every method in ``methods`` on the set's training subjects (the DCNN at its
    published width, the others at ``width``; the paper's SGD schedule shortened to
    ``epochs``, or Adam: ``optimiser`` "adam"; on ``device``) and measure it on the test
    subjects (predictions and timings on the CPU). The
    first record is no correction at all (the identity: what refinement alone does), then
    (``with_shipped``) the shipped DCNN and ANN; then one per method: its Table 1 row
    ("published") and, for every network, its Table 2 row (its features -> the ANN)."""
    out = Path(out)
    train, test = training.PairExamples(set_folder, "train", pool=2), training.PairExamples(set_folder, "test", pool=2)
    unpooled = training.PairExamples(set_folder, "test", pool=1)
    count = len(test) if test_pairs is None else min(test_pairs, len(test))
    if not len(train) or not count:
        raise ValueError(f"{set_folder} needs training and test subjects")
    truth = test.examples.parameters[:count].astype(np.float64)
    volumes = [unpooled[i][0].numpy() for i in range(count)]
    spacing = json.loads((Path(set_folder) / "manifest.json").read_text())["settings"]["grid_spacing_mm"]
    records = [{"method": "none (identity)", "width": 0.0, "parameters": 0, "train_seconds": 0, "test_pairs": count,
                "test_subjects": test.examples.subjects,
                "published": {**measure(np.zeros_like(truth), truth, volumes, spacing, with_refinement), "cpu_ms": 0.0}}]
    say(f"no correction: {_summary(records[0]['published'])}")
    if with_shipped:   # the shipped DCNN + ANN (trained on a GPU on a larger set): held out only if it never saw them
        learned = prediction.load_learned()
        seen = {s for s, v in learned.card["data"]["subjects"].items() if v["split"] != "test"}
        pairs = torch.stack([test[i][0] for i in range(count)])
        shipped = {"method": "dcnn (shipped)", "width": 1.0, "parameters": backbones.parameter_count(learned.network),
                   "train_seconds": None, "test_pairs": count, "test_subjects": test.examples.subjects,
                   "seen_in_training": sorted(seen & set(test.examples.subjects))}
        for regressor, table in (("head", "published"), ("ann", "with_ann")):
            shipped[table] = measure(prediction.predict_parameters(learned, pairs, regressor), truth, volumes, spacing,
                                     with_refinement)
        shipped["published"]["cpu_ms"] = _milliseconds(lambda: prediction.predict_parameters(learned, pairs[:1], "ann"))
        records.append(shipped)
        say(f"shipped: {_summary(shipped['published'])}; + ANN: {_summary(shipped['with_ann'])}")
    for method in methods:
        method_width = 1.0 if method == "dcnn" else width
        model, published, seconds, milliseconds = _train_and_predict(
            method, set_folder, out, train, _First(test, count), method_width, epochs, spacing, optimiser, device)
        record = {"method": method, "width": method_width, "parameters": backbones.parameter_count(model),
                  "train_seconds": round(seconds), "test_pairs": count, "test_subjects": test.examples.subjects,
                  "published": {**measure(published, truth, volumes, spacing, with_refinement),
                                "cpu_ms": milliseconds}}
        say(f"{method}: trained in {seconds:.0f} s; {_summary(record['published'])}")
        features = {split: training.predict(model, examples, torch.device("cpu"), features=True)
                    for split, examples in (("train", train), ("test", test))}
        regression = ann.BayesianANN(hidden=10, epochs=ann_epochs).fit(
            features["train"].astype(np.float64), train.examples.parameters.astype(np.float64))
        with_ann = regression.predict(features["test"][:count].astype(np.float64))
        record["with_ann"] = measure(with_ann, truth, volumes, spacing, with_refinement)
        say(f"{method} + ANN: {_summary(record['with_ann'])}")
        records.append(record)
    return records


class _First:
    """The first ``count`` examples of a split, as the compared methods read them."""

    def __init__(self, examples: training.PairExamples, count: int):
        self.source, self.count, self.examples = examples, count, examples.examples

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int):
        return self.source[i]


def _summary(record: dict) -> str:
    learned = record["learned"]
    text = (f"learned {learned['rotation_median_deg']:.2f} deg / {learned['translation_median_mm']:.2f} mm median, "
            f"R^2 {learned['r_squared_overall']:.3f}, DSC {learned['dsc']:.4f}")
    if "refined" in record:
        text += f"; refined {record['refined']['rotation_median_deg']:.2f} deg, DSC {record['refined']['dsc']:.4f}"
    return text


def classifier_table(set_folder, names=backbones.NAMES, width: float = 0.25, epochs: int = 6, data_dir=None,
                     optimiser: str = "sgd", device: str = "cpu",
                     say: Callable[[str], None] = lambda line: None) -> list[dict]:
    """Train every classifier (the DCNN at its published width, the others at ``width``) as
    the shipped one is trained (or with Adam at 1e-3: ``optimiser`` "adam") and measure it
    on the test subjects (Table 3), per kind of volume, and on the shared real volumes (the
    network alone and the final decision)."""
    records = []
    for name in names:
        torch.manual_seed(0)
        model = backbones.classifier(name, 1.0 if name == "dcnn" else width)
        began = time.perf_counter()
        model, results = modality.train_classifier(set_folder, epochs=epochs, model=model, optimiser=optimiser,
                                                   learning_rate=1e-3 if optimiser == "adam" else 1e-2, device=device)
        seconds = time.perf_counter() - began
        example = modality.SingleVolumes(set_folder, "test")[0][0][None]
        model.eval()
        with torch.no_grad():
            milliseconds = _milliseconds(lambda: model(example))
        checks = modality.checks(model, data_dir if data_dir is not None else dataset.default_data_dir())
        record = {"method": name, "width": 1.0 if name == "dcnn" else width, "optimiser": optimiser,
                  "parameters": backbones.parameter_count(model), "train_seconds": round(seconds), "cpu_ms": milliseconds,
                  "test": {key: results["test"][key] for key in (*TABLE3, "counts", "subjects")},
                  "test_per_appearance": modality.per_appearance(model, set_folder),
                  "shared_network_right": sum((c["learned_ct_probability"] >= 0.5) == (c["truth"] == "CT")
                                              for c in checks.values()),
                  "shared_decision_right": sum(c["decided"] == c["truth"] for c in checks.values()),
                  "shared_count": len(checks), "checks": checks}
        say(f"{name}: {record['parameters']} parameters, trained in {seconds:.0f} s, test accuracy "
            f"{record['test']['accuracy']:.3f}, shared volumes {record['shared_network_right']}/{len(checks)} "
            f"(network alone), {record['shared_decision_right']}/{len(checks)} (decision)")
        records.append(record)
    return records
