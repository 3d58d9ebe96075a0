"""Mutual-information rigid registration with SimpleITK (paper: "Generation of ground truth data").

A preset is a list of stages, each one SimpleITK optimisation of a Euler3D transform
on Mattes mutual information, run one after the other:

* ``paper``: the paper's (1+1) evolutionary optimiser, growth factor 1.05, epsilon
  1.5e-6, initial radius 6.25e-3, 100 iterations, 50 histogram bins (MATLAB's
  ``imregconfig('multimodal')``). The paper names 500 spatial samples but also says it
  "considered all pixel values": in MATLAB, ``UseAllPixels`` (on by default) makes the
  sample count inert, so every voxel of the fixed head is used here (500 random samples
  measured worse: docs/BENCHMARKS.md). MATLAB does not document how it scales the rigid
  parameters for the radius; here one radius is 6.25e-3 rad (0.36 deg) of rotation and
  0.625 mm of translation.
* ``accurate``: a coarse (1+1)-EO with a wide radius on 6 mm copies, then regular-step
  gradient descent at 2x and full resolution on 50 000 samples, with scales from physical
  shifts; chosen by the ground-truth benchmark (docs/BENCHMARKS.md).

Transforms are fixed -> moving 4x4 matrices (geometry.py). Each stage optimises a
``Euler3DTransform`` about ``center`` composed after the stage's start, so a stage
returns ``start @ T_opt``.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from . import geometry
from .errors import HeadRegError

PRESETS = {
    "paper": {"stages": [
        {"optimizer": "one_plus_one", "spacing_mm": None, "iterations": 100, "growth_factor": 1.05,
         "epsilon": 1.5e-6, "initial_radius": 6.25e-3, "translation_unit_mm": 100.0,
         "spatial_samples": None, "histogram_bins": 50}]},
    "accurate": {"stages": [
        {"optimizer": "one_plus_one", "spacing_mm": 6.0, "iterations": 300, "growth_factor": 1.05,
         "epsilon": 1e-6, "initial_radius": 0.05, "translation_unit_mm": 100.0,
         "spatial_samples": None, "histogram_bins": 32},
        {"optimizer": "gradient_descent", "spacing_mm": None, "shrink_factors": [2, 1], "smoothing_mm": [1.0, 0.0],
         "iterations": 200, "learning_rate": 4.0, "minimum_step": 1e-3, "relaxation": 0.7,
         "spatial_samples": 50000, "histogram_bins": 50}]},
}
RANKING_SPACING_MM = 4.0  # grid on which candidate starts are compared
SEED = 1                  # of the metric's sample draws and the evolutionary optimiser


@dataclass
class RegistrationResult:
    matrix: np.ndarray          # fixed -> moving, LPS mm
    metric: float               # Mattes MI at the end of the last stage (negative: lower is better)
    initial_metric: float       # the same metric at the start of the last stage
    iterations: int             # of the last stage
    stop_condition: str
    seconds: float
    preset: str = ""


@contextmanager
def one_thread():
    """Run ITK on one thread inside the block, and restore its setting after. ITK's
    multi-threaded sums differ in the last bits from run to run, and gradient descent
    turns those bits into differences of 1e-4 mm; on one thread every run gives the same
    transform (issue 6: identical within 1e-6)."""
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)


def mattes_method(bins: int, smoothed_gradient: bool = True) -> sitk.ImageRegistrationMethod:
    """A registration method with Mattes MI. Its derivative reads the moving image's
    gradient: ``smoothed_gradient`` takes it from the whole image smoothed by its largest
    voxel size (ITK's default; on 4 mm slabs it ended nearer the truth than unsmoothed
    gradients, 0.9-1.5 against 1.5-2.2 mm); without, at the sample points only (a metric
    value alone needs no gradient: there this cuts each MI evaluation to a quarter). The
    fixed image's gradient, which ITK also computes by default, is never used by Mattes MI."""
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(bins)
    method.SetMetricUseFixedImageGradientFilter(False)
    method.SetMetricUseMovingImageGradientFilter(smoothed_gradient)
    return method


def _float(image: sitk.Image) -> sitk.Image:
    return sitk.Cast(image, sitk.sitkFloat32)


def _euler(matrix, center) -> sitk.Euler3DTransform:
    transform = geometry.sitk_from_matrix(matrix, center)
    if not isinstance(transform, sitk.Euler3DTransform):
        raise HeadRegError("the starting transform must be rigid")
    return transform


def metric_mask(fixed: sitk.Image, head_mask: sitk.Image | None) -> sitk.Image | None:
    """The head mask, dilated by 6 mm so the head's outline counts, on the fixed grid."""
    if head_mask is None:
        return None
    dilated = sitk.BinaryDilate(head_mask, [max(1, int(round(6.0 / head_mask.GetSpacing()[0])))] * 3)
    return sitk.Resample(dilated, fixed, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)


def coarse_copy(image: sitk.Image, spacing_mm: float) -> sitk.Image:
    """``image`` smoothed (sigma half the spacing) and resampled to ``spacing_mm`` isotropic voxels."""
    from .symmetry import resample_isotropic
    return resample_isotropic(sitk.SmoothingRecursiveGaussian(_float(image), spacing_mm / 2), spacing_mm)


def _configure(method: sitk.ImageRegistrationMethod, stage: dict, fixed: sitk.Image,
               mask: sitk.Image | None) -> None:
    if stage["spatial_samples"]:  # a number of samples at full resolution; None: every voxel
        voxels = sitk.GetArrayViewFromImage(mask).sum() if mask is not None else np.prod(fixed.GetSize())
        method.SetMetricSamplingStrategy(method.RANDOM if stage["optimizer"] == "one_plus_one" else method.REGULAR)
        method.SetMetricSamplingPercentage(float(min(1.0, stage["spatial_samples"] / max(int(voxels), 1))), SEED)
    if stage["optimizer"] == "one_plus_one":
        method.SetOptimizerAsOnePlusOneEvolutionary(
            numberOfIterations=stage["iterations"], epsilon=stage["epsilon"],
            initialRadius=stage["initial_radius"], growthFactor=stage["growth_factor"], seed=SEED)
        unit = stage["translation_unit_mm"]
        method.SetOptimizerScales([1.0, 1.0, 1.0, 1.0 / unit, 1.0 / unit, 1.0 / unit])
    else:
        method.SetShrinkFactorsPerLevel(stage["shrink_factors"])
        method.SetSmoothingSigmasPerLevel(stage["smoothing_mm"])
        method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
        method.SetOptimizerAsRegularStepGradientDescent(
            learningRate=stage["learning_rate"], minStep=stage["minimum_step"],
            numberOfIterations=stage["iterations"], relaxationFactor=stage["relaxation"],
            gradientMagnitudeTolerance=1e-8)
        method.SetOptimizerScalesFromPhysicalShift()


def run_stage(fixed: sitk.Image, moving: sitk.Image, initial, center, stage: dict,
              head_mask: sitk.Image | None = None, prepared_mask: sitk.Image | None = None) -> RegistrationResult:
    """One optimisation stage (see ``PRESETS``) from ``initial``: ``initial @ T_opt``.
    ``prepared_mask`` (from ``metric_mask``, on the fixed grid) replaces ``head_mask``
    where the caller reuses one mask for many runs."""
    if stage["spacing_mm"]:
        fixed, moving = coarse_copy(fixed, stage["spacing_mm"]), coarse_copy(moving, stage["spacing_mm"])
    fixed_f, moving_f = _float(fixed), _float(moving)
    mask = prepared_mask if prepared_mask is not None else metric_mask(fixed, head_mask)
    method = mattes_method(stage["histogram_bins"])
    method.SetInterpolator(sitk.sitkLinear)
    if mask is not None:
        method.SetMetricFixedMask(mask)
    method.SetMovingInitialTransform(_euler(initial, center))
    optimised = sitk.Euler3DTransform()
    optimised.SetComputeZYX(True)
    optimised.SetCenter(tuple(float(c) for c in center))
    method.SetInitialTransform(optimised, inPlace=True)
    _configure(method, stage, fixed, mask)
    start = time.perf_counter()
    try:
        initial_metric = method.MetricEvaluate(fixed_f, moving_f)
        method.Execute(fixed_f, moving_f)
    except RuntimeError as error:
        raise HeadRegError(f"registration failed: {str(error).strip().splitlines()[-1]}") from None
    return RegistrationResult(geometry.compose(initial, geometry.matrix_from_sitk(optimised)),
                              float(method.GetMetricValue()), float(initial_metric),
                              int(method.GetOptimizerIteration()), method.GetOptimizerStopConditionDescription(),
                              time.perf_counter() - start)


def register(fixed: sitk.Image, moving: sitk.Image, initial=None, center=None, preset: str = "accurate",
             head_mask: sitk.Image | None = None) -> RegistrationResult:
    """Rigid MI registration of ``moving`` onto ``fixed`` from ``initial`` (fixed -> moving),
    through the stages of ``preset``.

    ``center`` is the rotation centre in fixed LPS mm (default: the fixed image centre);
    ``head_mask`` (any grid) restricts the metric to the fixed head.
    """
    if preset not in PRESETS:
        raise HeadRegError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    matrix = np.eye(4) if initial is None else geometry.as_matrix(initial)
    if center is None:
        center = geometry.grid_center(fixed)
    began = time.perf_counter()
    for stage in PRESETS[preset]["stages"]:
        result = run_stage(fixed, moving, matrix, center, stage, head_mask)
        matrix = result.matrix
    result.seconds, result.preset = time.perf_counter() - began, preset
    return result


def mutual_information(fixed: sitk.Image, moving: sitk.Image, matrix, head_mask: sitk.Image | None = None,
                       bins: int = 50, prepared_mask: sitk.Image | None = None) -> float:
    """Mattes MI (negative, lower is better) of ``moving`` resampled onto ``fixed``
    through ``matrix``, over all voxels of the (dilated) fixed head mask
    (or of ``prepared_mask``, see ``run_stage``)."""
    method = mattes_method(bins, smoothed_gradient=False)
    method.SetInterpolator(sitk.sitkLinear)
    mask = prepared_mask if prepared_mask is not None else metric_mask(fixed, head_mask)
    if mask is not None:
        method.SetMetricFixedMask(mask)
    method.SetInitialTransform(geometry.sitk_from_matrix(matrix), inPlace=False)
    try:
        return float(method.MetricEvaluate(_float(fixed), _float(moving)))
    except RuntimeError:  # no overlap at all: the worst possible value
        return 0.0


def rank_candidates(fixed: sitk.Image, moving: sitk.Image, candidates, head_mask: sitk.Image | None = None,
                    spacing_mm: float = RANKING_SPACING_MM) -> list[tuple[float, int]]:
    """(MI, index) of each candidate start, best first, measured on both images
    smoothed and resampled to ``spacing_mm`` isotropic voxels."""
    fixed_coarse, moving_coarse = coarse_copy(fixed, spacing_mm), coarse_copy(moving, spacing_mm)
    scores = [(mutual_information(fixed_coarse, moving_coarse, m, head_mask), k) for k, m in enumerate(candidates)]
    return sorted(scores)
