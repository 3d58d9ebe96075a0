"""Auto-register on benchmark cases with one scanner or export quirk added to one volume:
does the result stay right, and is it flagged when it is not?

    python scanner_quirks.py --datasets seg3d-t1/whole,tcga3-t2/hn-mr --out quirks

Quirks (the other volume as the case has it): a CT padded with -3024 or -2048 outside its
reconstruction circle, a metal insert, noise of a sharp bone kernel (80 HU), the CT as
linear attenuation (float, not HU), the CT exported in 8 bits with a brain window (0-80 HU:
bone saturated); an MR scaled to 0-1 float or by 1e-5, with 30 hot voxels, with noise
around zero (negative values), a strong bias field, or a low SNR (Rician, 12 %). Each case
is given CT first; error: mean TRE over the fixed head (success under 2 mm).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from cases import make_case
from HeadRegistrationLib.core import geometry
from HeadRegistrationLib.core.errors import HeadRegError
from HeadRegistrationLib.data import synthesis
from HeadRegistrationLib.register import autoregister, symmetry


def _like(array: np.ndarray, reference: sitk.Image, pixel=sitk.sitkFloat32) -> sitk.Image:
    image = sitk.Cast(sitk.GetImageFromArray(array), pixel)
    image.CopyInformation(reference)
    return image


def _array(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image).astype(np.float32)


def _metal(ct):
    a = _array(ct)
    z, y, x = np.array(a.shape) // 2
    a[z - 1:z + 2, y + 40:y + 44, x - 3:x + 3] = 3071
    return _like(a, ct, sitk.sitkInt16)


def _rician(a, sigma, rng):
    return np.hypot(a + rng.normal(0, sigma, a.shape), rng.normal(0, sigma, a.shape)).astype(np.float32)


def _bias(mr):
    a = _array(mr)
    z, _, x = np.indices(a.shape)
    return _like(a * np.exp(0.8 * (x / a.shape[2] - 0.5) + 0.5 * (z / a.shape[0] - 0.5)), mr)


def _hot(mr):
    a = _array(mr)
    a.flat[np.random.default_rng(0).integers(0, a.size, 30)] = 32000
    return _like(a, mr)


CT_QUIRKS = {
    "ct-circle-3024": lambda ct: synthesis.outside_reconstruction_circle(ct, -3024.0),
    "ct-circle-2048": lambda ct: synthesis.outside_reconstruction_circle(ct, -2048.0),
    "ct-metal": _metal,
    "ct-bone-kernel-noise": lambda ct: _like(np.clip(_array(ct) + np.random.default_rng(2).normal(
        0, 80, ct.GetSize()[::-1]), -1024, 3071), ct, sitk.sitkInt16),
    "ct-attenuation": lambda ct: _like((_array(ct) + 1000) / 1000 * 0.0195, ct),
    "ct-8bit-brain-window": lambda ct: _like(np.clip(_array(ct) / 80 * 255, 0, 255), ct, sitk.sitkUInt8),
}
MR_QUIRKS = {
    "mr-unit-float": lambda mr: _like(_array(mr) / _array(mr).max(), mr),
    "mr-scaled-1e-5": lambda mr: _like(_array(mr) * 1e-5, mr),
    "mr-hot-voxels": _hot,
    "mr-negative-noise": lambda mr: _like(_array(mr) - 0.5 * _array(mr).mean() + np.random.default_rng(1).normal(
        0, 0.05 * _array(mr).mean(), mr.GetSize()[::-1]), mr),
    "mr-bias": _bias,
    "mr-low-snr": lambda mr: _like(_rician(_array(mr), 0.12 * np.percentile(_array(mr), 99),
                                           np.random.default_rng(3)), mr),
}
QUIRKS = ("none", *CT_QUIRKS, *MR_QUIRKS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="seg3d-t1/whole,tcga3-t2/hn-mr,seg3d-t2/mr-slab")
    parser.add_argument("--quirks", default=",".join(QUIRKS))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    models = autoregister.load_models()
    rows = []
    for dataset in args.datasets.split(","):
        for seed, angle in ((11, 10.0), (12, 70.0)):
            fixed, moving, truth = make_case(dataset, seed, angle, 25.0)
            head = symmetry.head_mask(fixed)
            for quirk in args.quirks.split(","):
                path = args.out / f"{dataset.replace('/', '_')}-{seed}-{quirk}.json"
                if not path.exists():
                    mr = MR_QUIRKS[quirk](fixed) if quirk in MR_QUIRKS else fixed
                    ct = CT_QUIRKS[quirk](moving) if quirk in CT_QUIRKS else moving
                    began = time.perf_counter()
                    try:
                        result = autoregister.register_volumes(ct, mr, models=models)
                        row = {"tre_mm": geometry.mean_displacement_in_mask(result.matrix, truth, head),
                               "confident": result.confident, "roles_right": result.fixed_index == 1}
                    except HeadRegError as refused:
                        row = {"tre_mm": float("inf"), "confident": False, "roles_right": None,
                               "error": str(refused)}
                    row.update(dataset=dataset, seed=seed, angle=angle, quirk=quirk,
                               seconds=time.perf_counter() - began)
                    path.write_text(json.dumps(row))
                row = json.loads(path.read_text())
                print(json.dumps(row), flush=True)
                rows.append(row)
    print("\n| quirk | right (< 2 mm) | wrong, flagged | wrong, NOT flagged | right, flagged | max mm of the right |")
    print("|---|---|---|---|---|---|")
    for quirk in args.quirks.split(","):
        mine = [r for r in rows if r["quirk"] == quirk]
        right = [r for r in mine if r["tre_mm"] < 2.0]
        wrong = [r for r in mine if r["tre_mm"] >= 2.0]
        print(f"| {quirk} | {len(right)}/{len(mine)} | {sum(not r['confident'] for r in wrong)} | "
              f"{sum(r['confident'] for r in wrong)} | {sum(not r['confident'] for r in right)} | "
              f"{max((r['tre_mm'] for r in right), default=float('nan')):.2f} |")


if __name__ == "__main__":
    main()
