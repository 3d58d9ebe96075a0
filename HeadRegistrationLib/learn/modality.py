"""Training the CT/MR classifier (paper: "Identification of image modality", Table 3): the
single volumes of a built set, cross-entropy training, the paper's metrics on held-out
subjects per kind of volume, checks on the phantom and the shared real volumes, and the
shipped files ``modality.pt`` and ``modality.json`` (``classifier.save_model``)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk
import torch
from torch.utils.data import DataLoader, Dataset

from ..data import dataset, phantom
from ..core.resources import torch_device
from ..register import classifier, network

# Shared real volumes (../shared/data/README.md) and their true modality: checked after training.
SHARED_CHECKS = {
    "rire_training_001/training_001_mr_T1.mha": "MR", "seg3d_epilepsy/MR.nii.gz": "MR",
    "templates/MNI152_T1_2mm.nii.gz": "MR", "templates/scct.nii.gz": "CT", "templates/ch2.nii.gz": "MR",
    "mr_small/HeadMRVolume.mhd": "MR", "ct_phantom/CT_pitch.nii.gz": "CT",
}


class SingleVolumes(Dataset):
    """Each example of a set split into its MR (label 0) and CT (label 1) volumes."""

    def __init__(self, folder, split: str, index: str = "index.csv"):
        self.examples = dataset.TrainingSet(folder, split, index)

    def __len__(self) -> int:
        return 2 * len(self.examples)

    def __getitem__(self, i: int):
        volume = np.asarray(self.examples.volumes(i // 2)[i % 2])
        return classifier.pooled(classifier.normalise_any(volume)), i % 2


def table3_metrics(predicted: np.ndarray, truth: np.ndarray) -> dict:
    """The paper's Table 3 with CT as the positive class: accuracy, sensitivity, specificity,
    precision, F-measure and G-mean."""
    tp, tn = int(np.sum((predicted == 1) & (truth == 1))), int(np.sum((predicted == 0) & (truth == 0)))
    fp, fn = int(np.sum((predicted == 1) & (truth == 0))), int(np.sum((predicted == 0) & (truth == 1)))
    sensitivity = tp / max(tp + fn, 1)
    specificity = tn / max(tn + fp, 1)
    precision = tp / max(tp + fp, 1)
    return {"accuracy": (tp + tn) / max(len(truth), 1), "sensitivity": sensitivity, "specificity": specificity,
            "precision": precision, "f_measure": 2 * precision * sensitivity / max(precision + sensitivity, 1e-12),
            "g_mean": float(np.sqrt(sensitivity * specificity)), "counts": {"tp": tp, "tn": tn, "fp": fp, "fn": fn}}


def train_classifier(folder, epochs: int = 6, batch_size: int = 16, learning_rate: float = 1e-2, seed: int = 0,
                     widths=network.DEFAULT_WIDTHS, index: str = "index.csv",
                     model: torch.nn.Module | None = None, optimiser: str = "sgd",
                     device: str = "cpu") -> tuple[torch.nn.Module, dict]:
    """Train on the set's training subjects (SGD with momentum 0.9, or ``optimiser`` "adam";
    cross-entropy, CPU); returns the model and the metrics on its validation and test
    subjects. ``model``: another classifier to train the same way (``backbones``, Table 3),
    else the DCNN of ``widths``. ``device``: where to train (the model returns on the CPU)."""
    torch.manual_seed(seed)
    place = torch_device(device)
    model = (network.ModalityNet(widths) if model is None else model).to(place)
    optimiser = (torch.optim.Adam(model.parameters(), lr=learning_rate) if optimiser == "adam" else
                 torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=0.9))
    train = SingleVolumes(folder, "train", index)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for volumes, labels in DataLoader(train, batch_size=batch_size, shuffle=True, generator=generator):
            loss = torch.nn.functional.cross_entropy(model(volumes.to(place)), labels.to(place))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    model.cpu()
    results = {}
    for split in ("validation", "test"):
        held_out = SingleVolumes(folder, split, index)
        if len(held_out):
            predicted, truth = predict_set(model, held_out)
            results[split] = {"subjects": held_out.examples.subjects, **table3_metrics(predicted, truth)}
    return model, results


@torch.no_grad()
def predict_set(model: network.ModalityNet, volumes: SingleVolumes) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    predicted, truth = [], []
    for batch, labels in DataLoader(volumes, batch_size=32):
        predicted.append(model(batch).argmax(dim=1).numpy())
        truth.append(labels.numpy())
    return np.concatenate(predicted), np.concatenate(truth)


def per_appearance(model, folder, split: str = "test") -> dict:
    """[right, count] on a split for each kind of volume: modality, how it was made (real,
    or the synthesised contrast) and subject."""
    volumes = SingleVolumes(folder, split)
    predicted, truth = predict_set(model, volumes)
    tally = {}
    for i, (guess, label) in enumerate(zip(predicted, truth)):
        row = volumes.examples.rows[i // 2]
        record = json.loads((Path(folder) / row["volumes"]).with_suffix(".json").read_text())
        name = classifier.LABELS[label]
        key = f"{name} {record['appearance'][name.lower()]} ({row['subject']})"
        right, count = tally.get(key, (0, 0))
        tally[key] = (right + int(guess == label), count + 1)
    return tally


def checks(model, data_dir) -> dict:
    """The final decision (network and rules) on the phantom's CT and MR and on every shared
    real volume present under ``data_dir``."""
    pair = phantom.make_phantom_pair(0)
    volumes = {f"phantom {name}": (image, name) for name, image in (("CT", pair.ct), ("MR", pair.mr))}
    for relative, truth in SHARED_CHECKS.items():
        if (Path(data_dir) / relative).exists():
            volumes[relative] = (sitk.ReadImage(str(Path(data_dir) / relative)), truth)
    found = {}
    for name, (image, truth) in volumes.items():
        began = time.perf_counter()
        decision = classifier.decide(image, model)
        found[name] = {"truth": truth, "decided": decision.modality, "probability": round(decision.probability, 3),
                       "learned_ct_probability": round(decision.learned_ct_probability, 3),
                       "seconds": round(time.perf_counter() - began, 2), "warnings": decision.warnings}
    return found


def ship_modality(set_folder, out=None, epochs: int = 6, widths=network.DEFAULT_WIDTHS, seed: int = 0,
                  data_dir=None, say: Callable[[str], None] = lambda line: None) -> dict:
    """Train the classifier on a built set, measure it, and write ``modality.pt`` and its card
    into ``out`` (the shipped folder when None). Returns the card."""
    began = time.perf_counter()
    model, results = train_classifier(set_folder, epochs=epochs, widths=widths, seed=seed)
    seconds = time.perf_counter() - began
    say(f"trained in {seconds:.0f} s: {json.dumps({s: r['accuracy'] for s, r in results.items()})} accuracy")
    if SingleVolumes(set_folder, "test"):
        results["test_per_appearance"] = per_appearance(model, set_folder)
    found = checks(model, dataset.default_data_dir() if data_dir is None else data_dir)
    for name, check in found.items():
        say(f"{name}: {check['truth']} -> {check['decided']} {check['probability']:.3f}")
    manifest = Path(set_folder) / "manifest.json"
    card = {"data": {"set": str(Path(set_folder).resolve()),
                     "manifest_sha256": hashlib.sha256(manifest.read_bytes()).hexdigest(),
                     "subjects": json.loads(manifest.read_text())["subjects"]},
            "training": {"epochs": epochs, "optimiser": "SGD momentum 0.9, lr 1e-2, batch 16",
                         "loss": "cross-entropy", "seconds": round(seconds), "device": "cpu", "seed": seed},
            "metrics": results, "checks": found}
    classifier.save_model(model, widths, card, out)
    return card
