#!/usr/bin/env bash
# A bigger training set, the registration DCNN trained on it, the ANN fitted and the learned
# prediction measured and shipped, then the n sweep: for a machine with many cores and a GPU.
#
#   benchmarks/gpu_training.sh DATA OUT [PHANTOMS COPIES COUNTS POOL]
#
# DATA holds the shared head volumes (../shared/data); POOL averages the set's 64^3 grid
# (2, the default: 32^3 at 8 mm). The subjects of the shipped model keep their split (so the
# held-out subjects stay the same) and the new phantom heads all train.
# Writes OUT/set, OUT/run (DCNN), OUT/features.npz, OUT/sweep and HeadRegistrationLib/models/registration.*
set -euo pipefail
data=$1 out=$2 phantoms=${3:-40} copies=${4:-150} counts=${5:-4,9,24,49,99,150} pool=${6:-2}
here=$(cd "$(dirname "$0")" && pwd)
cores=$(nproc)
export PYTHONUNBUFFERED=1
date; echo "build: $phantoms phantoms + shared subjects, $copies copies each, $cores workers"
OMP_NUM_THREADS=1 python3 -m HeadRegistrationLib.cli dataset sweep --out "$out/set" --data "$data" \
    --phantoms "$phantoms" --counts "$counts" --fractions 1,0,0 \
    --splits-from "$here/../HeadRegistrationLib/models/registration.json" --workers "$cores"
date; echo "train the DCNN (the paper's schedule)"
python3 "$here/train_registration.py" "$out/set" "$out/run" --epochs 30 --pool "$pool" --workers $((cores - 2))
date; echo "fit the ANN, measure, ship"
python3 "$here/ship_registration.py" "$out/set" "$out/run" --ann-data train --ann-epochs 100 \
    --workers $((cores - 2)) --features "$out/features.npz" --save
date; echo "the n sweep"
python3 "$here/copies_sweep.py" "$out/set" "$out/sweep" --copies "$counts" --epochs 30 --pool "$pool" --workers $((cores - 2))
date; echo done
