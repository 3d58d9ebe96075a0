"""The paper's mutual-information registration with SimpleITK (paper: "Generation of ground
truth data"), kept as ``groundtruth --preset paper``; every other registration runs the
search (search.py).

``PRESETS["paper"]``: the (1+1) evolutionary optimiser on Mattes MI, growth factor 1.05,
epsilon 1.5e-6, initial radius 6.25e-3, 100 iterations, 50 histogram bins (MATLAB's
``imregconfig('multimodal')``). The paper names 500 spatial samples but also says it
"considered all pixel values": in MATLAB, ``UseAllPixels`` (on by default) makes the
sample count inert, so every voxel of the fixed head is used here (500 random samples
measured worse: docs/BENCHMARKS.md). MATLAB does not document how it scales the rigid
parameters for the radius; here one radius is 6.25e-3 rad (0.36 deg) of rotation and
0.625 mm of translation.

Transforms are fixed -> moving 4x4 matrices (geometry.py). A stage optimises a
``Euler3DTransform`` about ``center`` composed after its start, so it returns
``start @ T_opt``. Each registration runs ITK on one thread (set on the registration
object, not process-wide): ITK's multi-threaded sums differ in the last bits from run to
run, and on one thread every run gives the same transform.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..core import geometry
from ..core.errors import HeadRegError, one_line

PRESETS = {
    "paper": {"stages": [
        {"optimizer": "one_plus_one", "spacing_mm": None, "iterations": 100, "growth_factor": 1.05,
         "epsilon": 1.5e-6, "initial_radius": 6.25e-3, "translation_unit_mm": 100.0,
         "spatial_samples": None, "histogram_bins": 50}]},
}
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


def mattes_method(bins: int) -> sitk.ImageRegistrationMethod:
    """A registration method with Mattes MI, on one ITK thread. Mattes MI never reads the
    fixed image's gradient, which ITK would otherwise compute."""
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(bins)
    method.SetMetricUseFixedImageGradientFilter(False)
    method.SetNumberOfThreads(1)
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
    """``image`` smoothed (Gaussian, sigma half the spacing) and resampled to ``spacing_mm``
    isotropic voxels. Fine axes are first averaged down (``BinShrink``, whose box of width
    w blurs by w^2/12) to no more than the sigma, and the smoothing makes up the rest: the
    same blur at a fraction of the cost on a fine CT."""
    from .symmetry import resample_isotropic
    sigma = spacing_mm / 2
    spacing = np.array(image.GetSpacing())
    factors = [int(max(1, min(n // 2, np.floor(sigma / s)))) for s, n in zip(spacing, image.GetSize())]
    shrunk = _float(sitk.BinShrink(image, factors) if max(factors) > 1 else image)
    left = np.sqrt(np.maximum(sigma ** 2 - (np.array(factors) * spacing) ** 2 / 12, (0.05 * spacing) ** 2))
    return resample_isotropic(sitk.SmoothingRecursiveGaussian(shrunk, left.tolist()), spacing_mm)


def run_stage(fixed: sitk.Image, moving: sitk.Image, initial, center, stage: dict,
              head_mask: sitk.Image | None = None) -> RegistrationResult:
    """One (1+1)-evolutionary stage (see ``PRESETS``) from ``initial``: ``initial @ T_opt``."""
    if stage["spacing_mm"]:
        fixed, moving = coarse_copy(fixed, stage["spacing_mm"]), coarse_copy(moving, stage["spacing_mm"])
    fixed_f, moving_f = _float(fixed), _float(moving)
    mask = metric_mask(fixed, head_mask)
    method = mattes_method(stage["histogram_bins"])
    method.SetInterpolator(sitk.sitkLinear)
    if mask is not None:
        method.SetMetricFixedMask(mask)
    method.SetMovingInitialTransform(_euler(initial, center))
    optimised = sitk.Euler3DTransform()
    optimised.SetComputeZYX(True)
    optimised.SetCenter(tuple(float(c) for c in center))
    method.SetInitialTransform(optimised, inPlace=True)
    if stage["spatial_samples"]:  # a number of samples at full resolution; None: every voxel
        voxels = sitk.GetArrayViewFromImage(mask).sum() if mask is not None else np.prod(fixed.GetSize())
        method.SetMetricSamplingStrategy(method.RANDOM)
        method.SetMetricSamplingPercentage(float(min(1.0, stage["spatial_samples"] / max(int(voxels), 1))), SEED)
    method.SetOptimizerAsOnePlusOneEvolutionary(
        numberOfIterations=stage["iterations"], epsilon=stage["epsilon"],
        initialRadius=stage["initial_radius"], growthFactor=stage["growth_factor"], seed=SEED)
    unit = stage["translation_unit_mm"]
    method.SetOptimizerScales([1.0, 1.0, 1.0, 1.0 / unit, 1.0 / unit, 1.0 / unit])
    start = time.perf_counter()
    try:
        initial_metric = method.MetricEvaluate(fixed_f, moving_f)
        method.Execute(fixed_f, moving_f)
    except RuntimeError as error:
        raise HeadRegError(f"registration failed: {one_line(error)}") from None
    return RegistrationResult(geometry.compose(initial, geometry.matrix_from_sitk(optimised)),
                              float(method.GetMetricValue()), float(initial_metric),
                              int(method.GetOptimizerIteration()), method.GetOptimizerStopConditionDescription(),
                              time.perf_counter() - start)


def register(fixed: sitk.Image, moving: sitk.Image, initial=None, center=None, preset: str = "paper",
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
                       bins: int = 50) -> float:
    """Mattes MI (negative, lower is better) of ``moving`` resampled onto ``fixed``
    through ``matrix``, over all voxels of the (dilated) fixed head mask: the measure the
    paper's optimiser and ITK's peers use."""
    method = mattes_method(bins)
    method.SetMetricUseMovingImageGradientFilter(False)
    method.SetInterpolator(sitk.sitkLinear)
    mask = metric_mask(fixed, head_mask)
    if mask is not None:
        method.SetMetricFixedMask(mask)
    method.SetInitialTransform(geometry.sitk_from_matrix(matrix), inPlace=False)
    try:
        return float(method.MetricEvaluate(_float(fixed), _float(moving)))
    except RuntimeError:  # no overlap at all: the worst possible value
        return 0.0
