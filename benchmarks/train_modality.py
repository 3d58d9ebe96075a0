"""Train the CT/MR classifier on a built set, measure it (the paper's Table 3) on held-out
subjects and on every volume of ../shared/data and the phantom, and write the shipped
weights and model card to HeadRegistrationLib/models/.

    python benchmarks/train_modality.py /work/trainset [--save]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import SimpleITK as sitk
import torch

from HeadRegistrationLib.data import dataset, phantom
from HeadRegistrationLib.register import classifier, network

SHARED = {  # file -> true modality (data/README.md)
    "rire_training_001/training_001_mr_T1.mha": "MR", "seg3d_epilepsy/MR.nii.gz": "MR",
    "templates/MNI152_T1_2mm.nii.gz": "MR", "templates/scct.nii.gz": "CT", "templates/ch2.nii.gz": "MR",
    "mr_small/HeadMRVolume.mhd": "MR", "ct_phantom/CT_pitch.nii.gz": "CT",
}


def per_appearance(model, folder) -> dict:
    """Right/count on the test split for each kind of volume: modality, how it was made
    (real, or the synthesised contrast) and subject."""
    volumes = classifier.SingleVolumes(folder, "test")
    predicted, truth = classifier.predict_set(model, volumes)
    tally = {}
    for i, (guess, label) in enumerate(zip(predicted, truth)):
        row = volumes.examples.rows[i // 2]
        record = json.loads((Path(folder) / row["volumes"]).with_suffix(".json").read_text())
        name = classifier.LABELS[label]
        key = f"{name} {record['appearance'][name.lower()]} ({row['subject']})"
        right, count = tally.get(key, (0, 0))
        tally[key] = (right + int(guess == label), count + 1)
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("set")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--save", action="store_true", help="write modality.{pt,json} to --out")
    parser.add_argument("--out", type=Path, default=classifier.MODELS, help="model folder (default: the shipped one)")
    args = parser.parse_args()
    torch.manual_seed(0)
    began = time.perf_counter()
    model, results = classifier.train_classifier(args.set, epochs=args.epochs)
    seconds = time.perf_counter() - began
    print(f"trained in {seconds:.0f} s")
    print(json.dumps(results, indent=1))
    results["test_per_appearance"] = per_appearance(model, args.set)
    for key, (right, count) in sorted(results["test_per_appearance"].items()):
        print(f"test, {key}: {right}/{count} right")
    checks = {}
    data = dataset.default_data_dir()
    pair = phantom.make_phantom_pair(0)
    volumes = {f"phantom {name}": (image, name) for name, image in (("CT", pair.ct), ("MR", pair.mr))}
    for relative, truth in SHARED.items():
        if (data / relative).exists():
            volumes[relative] = (sitk.ReadImage(str(data / relative)), truth)
    for name, (image, truth) in volumes.items():
        began = time.perf_counter()
        decision = classifier.decide(image, model)
        checks[name] = {"truth": truth, "decided": decision.modality, "probability": round(decision.probability, 3),
                        "learned_ct_probability": round(decision.learned_ct_probability, 3),
                        "seconds": round(time.perf_counter() - began, 2), "warnings": decision.warnings}
        print(f"{name}: {truth} -> {decision.modality} {decision.probability:.3f} (learned P(CT) "
              f"{decision.learned_ct_probability:.3f}) {'OK' if truth == decision.modality else 'WRONG'}")
    if args.save:
        manifest = Path(args.set) / "manifest.json"
        card = {"data": {"set": str(Path(args.set).resolve()),
                         "manifest_sha256": hashlib.sha256(manifest.read_bytes()).hexdigest(),
                         "subjects": json.loads(manifest.read_text())["subjects"]},
                "training": {"epochs": args.epochs, "optimiser": "SGD momentum 0.9, lr 1e-2, batch 16",
                             "loss": "cross-entropy", "seconds": round(seconds), "device": "cpu"},
                "metrics": results, "checks": checks}
        classifier.save_model(model, network.DEFAULT_WIDTHS, card, args.out)
        print(f"wrote {args.out}/modality.pt and modality.json")


if __name__ == "__main__":
    main()
