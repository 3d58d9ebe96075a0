"""Our pipeline and its peers side by side in one run, on the same pairs (issue 6):
ANTs rigid (antspyx, Mattes MI), ANTs with its multi-start initialiser
(``ants.affine_initializer`` over the whole sphere of rotations), Elastix rigid
(itk-elastix, default rigid map, centre-of-gravity initialisation) and SimpleITK Mattes MI
with moments initialisation. Peers get the MR as fixed and the CT as moving (they cannot
tell); ours gets the CT first and must find the roles.

    pip install -e '.[bench]'   # antspyx, itk-elastix
    python benchmarks/peers.py --pairs-per-bin 1 --out peers-bench

Pairs as in autoregister_accuracy.py (cases.py's datasets and groundtruth_accuracy.py's;
rotation drawn in each bin, 10-40 mm apart; the report set of seeds by default). Each
case is written to OUT/<case id>.json as it finishes; a rerun skips those. The summary
also compares each peer with headreg on the pairs where both succeed.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from autoregister_accuracy import case_parser
from cases import case_list, make_case
from groundtruth_accuracy import BINS, make_pair
from HeadRegistrationLib.core import geometry
from HeadRegistrationLib.evaluate import metrics
from HeadRegistrationLib.register import autoregister, symmetry


def ours(fixed, moving, models):
    return autoregister.register_volumes(moving, fixed, models=models).matrix


def simpleitk_moments(fixed, moving, models=None):
    fixed_f, moving_f = sitk.Cast(fixed, sitk.sitkFloat32), sitk.Cast(moving, sitk.sitkFloat32)
    initial = sitk.CenteredTransformInitializer(fixed_f, moving_f, sitk.Euler3DTransform(),
                                                sitk.CenteredTransformInitializerFilter.MOMENTS)
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(50)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(0.05, 1)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(2.0, 1e-3, 200, relaxationFactor=0.7)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([4, 2, 1])
    method.SetSmoothingSigmasPerLevel([2.0, 1.0, 0.0])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(initial, inPlace=True)
    method.Execute(fixed_f, moving_f)
    return geometry.matrix_from_sitk(initial)


def _ants_images(fixed, moving, folder):
    import ants
    paths = []
    for name, image in (("fixed.nii.gz", fixed), ("moving.nii.gz", moving)):
        sitk.WriteImage(sitk.Cast(image, sitk.sitkFloat32), str(Path(folder) / name))
        paths.append(ants.image_read(str(Path(folder) / name)))
    return paths


def _ants_matrix(transform_file: str) -> np.ndarray:
    return geometry.matrix_from_sitk(sitk.ReadTransform(transform_file))


def ants_rigid(fixed, moving, models=None, multistart=False):
    import ants
    with tempfile.TemporaryDirectory() as folder:
        fixed_a, moving_a = _ants_images(fixed, moving, folder)
        began = time.perf_counter()
        initial = None
        if multistart:
            initial = ants.affine_initializer(fixed_a, moving_a, search_factor=60, radian_fraction=1.0,
                                              use_principal_axis=False, local_search_iterations=10,
                                              txfn=str(Path(folder) / "init.mat"))
        result = ants.registration(fixed_a, moving_a, type_of_transform="Rigid", aff_metric="mattes",
                                   initial_transform=initial)
        seconds = time.perf_counter() - began
        return _ants_matrix(result["fwdtransforms"][0]), seconds


def ants_multistart(fixed, moving, models=None):
    return ants_rigid(fixed, moving, multistart=True)


def elastix_rigid(fixed, moving, models=None):
    import itk
    with tempfile.TemporaryDirectory() as folder:
        for name, image in (("fixed.nii.gz", fixed), ("moving.nii.gz", moving)):
            sitk.WriteImage(sitk.Cast(image, sitk.sitkFloat32), str(Path(folder) / name))
        fixed_i = itk.imread(str(Path(folder) / "fixed.nii.gz"), itk.F)
        moving_i = itk.imread(str(Path(folder) / "moving.nii.gz"), itk.F)
        parameters = itk.ParameterObject.New()
        rigid = parameters.GetDefaultParameterMap("rigid")
        rigid["AutomaticTransformInitialization"] = ["true"]
        rigid["AutomaticTransformInitializationMethod"] = ["CenterOfGravity"]
        parameters.AddParameterMap(rigid)
        began = time.perf_counter()
        _, result = itk.elastix_registration_method(fixed_i, moving_i, parameter_object=parameters,
                                                    log_to_console=False)
        seconds = time.perf_counter() - began
    values = [float(v) for v in result.GetParameter(0, "TransformParameters")]
    center = [float(v) for v in result.GetParameter(0, "CenterOfRotationPoint")]
    transform = sitk.Euler3DTransform(center, *values[:3], values[3:])
    if result.GetParameter(0, "ComputeZYX")[0] == "true" if "ComputeZYX" in result.GetParameterMap(0) else False:
        transform.SetComputeZYX(True)
    return geometry.matrix_from_sitk(transform), seconds


METHODS = {"headreg": ours, "ants-rigid": ants_rigid, "ants-multistart": ants_multistart,
           "elastix-rigid": elastix_rigid, "simpleitk-moments": simpleitk_moments}


def run_case(case: dict, methods, models) -> dict:
    dataset, seed, angle, distance = case["dataset"], case["seed"], case["angle"], case["distance"]
    fixed, moving, truth = (make_case if "/" in dataset else make_pair)(dataset, seed, angle, distance)
    head = symmetry.head_mask(fixed)
    rows = []
    for name in methods:
        began = time.perf_counter()
        try:
            found = METHODS[name](fixed, moving, models)
            seconds = time.perf_counter() - began
            if isinstance(found, tuple):   # peers that convert files report their own registration time
                found, seconds = found
            tre = geometry.mean_displacement_in_mask(found, truth, head)
        except Exception as failure:   # a peer's failure is a result of the benchmark
            print(f"{dataset} {seed} {name}: {failure}", flush=True)
            tre, seconds = float("inf"), time.perf_counter() - began
        rows.append({"id": case["id"], "dataset": dataset, "seed": seed, "angle": angle, "distance": distance,
                     "bin": case["bin"], "method": name, "tre_mm": tre, "seconds": seconds})
        print(f"{dataset} {angle:.0f} deg {distance:.0f} mm {name}: TRE {tre:.2f} mm, {seconds:.1f} s", flush=True)
    return {"rows": rows}


def summarise(rows: list[dict]) -> str:
    ours_time = np.median([r["seconds"] for r in rows if r["method"] == "headreg"])
    lines = ["| method | " + " | ".join(f"{lo}-{hi} deg" for lo, hi in BINS)
             + " | all: success | median TRE mm | max TRE mm | median s | time / headreg |", "|---" * (len(BINS) + 6) + "|"]
    for method in METHODS:
        chosen = [r for r in rows if r["method"] == method]
        if not chosen:
            continue
        cells = []
        for lo, hi in BINS:
            tre = [r["tre_mm"] for r in chosen if r["bin"] == f"{lo}-{hi}"]
            cells.append(f"{sum(t < metrics.SUCCESS_MM for t in tre)}/{len(tre)}" if tre else "")
        tre = [r["tre_mm"] for r in chosen]
        seconds = np.median([r["seconds"] for r in chosen])
        lines.append(f"| {method} | " + " | ".join(cells)
                     + f" | {sum(t < metrics.SUCCESS_MM for t in tre)}/{len(tre)} | {np.median(tre):.2f} | "
                     f"{max(tre):.1f} | {seconds:.1f} | {seconds / ours_time:.2f} |")
    lines += ["", "| peer | pairs both succeed | headreg median mm | peer median mm |", "|---|---|---|---|"]
    ours_by_id = {r["id"]: r["tre_mm"] for r in rows if r["method"] == "headreg"}
    for method in METHODS:
        if method == "headreg":
            continue
        both = [(ours_by_id[r["id"]], r["tre_mm"]) for r in rows if r["method"] == method and r["id"] in ours_by_id
                and max(ours_by_id[r["id"]], r["tre_mm"]) < metrics.SUCCESS_MM]
        if both:
            lines.append(f"| {method} | {len(both)} | {np.median([a for a, _ in both]):.2f} | "
                         f"{np.median([b for _, b in both]):.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = case_parser(__doc__, 1, 1000)
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    methods = args.methods.split(",")
    models = autoregister.load_models()
    rows = []
    for case in case_list(args.datasets.split(","), args.pairs_per_bin, args.first_seed):
        path = args.out / f"{case['id']}.json"
        if not path.exists():
            path.write_text(json.dumps(run_case(case, methods, models), indent=1))
        rows += json.loads(path.read_text())["rows"]
    print(summarise(rows))


if __name__ == "__main__":
    main()
