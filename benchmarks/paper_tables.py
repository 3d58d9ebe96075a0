"""The paper's comparison tables as measured here (``evaluate.comparison``): every compared
registration method (Tables 1-2) or classifier (Table 3) trained the same way on the
training subjects of one built set and measured on its test subjects. Writes the records
(JSON) and the tables (Markdown) into OUT.

    python benchmarks/paper_tables.py classifiers /work/runs/roleset --out runs/table3 [--width 0.25] [--epochs 6]
    python benchmarks/paper_tables.py registration /work/runs/roleset --out runs/tables12 [--width 0.25] [--epochs 10]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from HeadRegistrationLib.evaluate import comparison

def registration_markdown(records: list[dict], table: str) -> str:
    lines = ["| method | width | parameters | stage | rot. median / p90 (deg) | transl. median / p90 (mm) | R^2 "
             "(rx ry rz tx ty tz; all) | DSC | JSC | Rp | Rs | CMS | SSIM | CPU ms |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for record in records:
        for stage, row in record.get(table, {}).items():
            if stage == "cpu_ms":
                continue
            r2 = " ".join(f"{v:.2f}" for v in row["r_squared"])
            lines.append(f"| {record['method']} | {record['width']:g} | {record['parameters']:,} | {stage} | "
                         f"{row['rotation_median_deg']:.2f} / {row['rotation_p90_deg']:.2f} | "
                         f"{row['translation_median_mm']:.2f} / {row['translation_p90_mm']:.2f} | "
                         f"{r2}; {row['r_squared_overall']:.2f} | "
                         + " | ".join(f"{row[name]:.4f}" for name in comparison.METRIC_NAMES)
                         + f" | {record['published']['cpu_ms']:.0f} |")
    return "\n".join(lines)


def classifier_markdown(records: list[dict]) -> str:
    lines = ["| classifier | width | parameters | accuracy | sensitivity | specificity | precision | F-measure | "
             "G-mean | shared volumes right (network / decision) | train s | CPU ms |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['method']} | {r['width']:g} | {r['parameters']:,} | "
                     + " | ".join(f"{r['test'][k]:.3f}" for k in comparison.TABLE3)
                     + f" | {r['shared_network_right']}/{r['shared_count']} / {r['shared_decision_right']}/"
                       f"{r['shared_count']} | {r['train_seconds']} | {r['cpu_ms']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", choices=("classifiers", "registration"))
    parser.add_argument("set", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--width", type=float, default=0.25, help="channels of the compared networks, x published")
    parser.add_argument("--epochs", type=int, help="classifiers: 6; registration: 10")
    parser.add_argument("--methods", help="comma list (default: all)")
    parser.add_argument("--test-pairs", type=int, help="registration: the first N test pairs only")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu", help="where to train")
    parser.add_argument("--optimiser", choices=("sgd", "adam"), default="sgd",
                        help="the paper's SGD (classifiers: momentum 0.9, 1e-2; registration: 1e-3, dropped tenfold "
                             "at 2/3 of the epochs) or Adam at 1e-3 (registration: dropped the same way)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    machine = f"{platform.node()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    if args.table == "classifiers":
        names = tuple(args.methods.split(",")) if args.methods else comparison.backbones.NAMES
        records = comparison.classifier_table(args.set, names, args.width, args.epochs or 6,
                                              optimiser=args.optimiser, device=args.device, say=print)
        tables = classifier_markdown(records)
    else:
        methods = tuple(args.methods.split(",")) if args.methods else comparison.REGISTRATION_METHODS
        records = comparison.registration_table(args.set, args.out / "runs", methods, args.width, args.epochs or 10,
                                                test_pairs=args.test_pairs, optimiser=args.optimiser,
                                                device=args.device, say=print)
        tables = ("Table 1 (each method as published)\n\n" + registration_markdown(records, "published")
                  + "\n\nTable 2 (the networks' features -> the paper's ANN)\n\n"
                  + registration_markdown(records, "with_ann"))
    name = f"{args.table}-{args.optimiser}"
    (args.out / f"{name}.json").write_text(json.dumps({"machine": machine, "records": records}, indent=1))
    (args.out / f"{name}.md").write_text(tables + "\n")
    print(tables)
    print(f"{machine}; {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
