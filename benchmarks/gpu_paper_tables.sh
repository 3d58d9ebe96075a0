#!/usr/bin/env bash
# The paper's Tables 1-3 at the compared networks' published widths, trained on a GPU
# (the CPU-size runs are in docs/BENCHMARKS.md): for the GPU machine, one command.
#
#   benchmarks/gpu_paper_tables.sh SET OUT [EPOCHS]
#
# SET: a built set (headreg dataset build, the 64^3 grid at 4 mm); EPOCHS: registration
# epochs (default 30, the paper's). Writes OUT/classifiers-*.{json,md}, OUT/registration-*.{json,md}.
set -euo pipefail
set_folder=$1 out=$2 epochs=${3:-30}
here=$(cd "$(dirname "$0")" && pwd)
export PYTHONUNBUFFERED=1
for optimiser in sgd adam; do
    date; python3 "$here/paper_tables.py" classifiers "$set_folder" --out "$out" --width 1 --device cuda --optimiser "$optimiser"
done
date; python3 "$here/paper_tables.py" registration "$set_folder" --out "$out" --width 1 --epochs "$epochs" --device cuda
date; echo done
