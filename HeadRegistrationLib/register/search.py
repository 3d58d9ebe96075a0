"""The one search behind every registration (``register``, ``groundtruth``, ``evaluate``
and the Slicer module): from two head volumes whose roles are known to the rigid
transform with the best mutual information, after the paper's "Complete registration
process" (symmetry alignment, learned prediction, MI refinement), made global.

Every stage works on ``Candidate`` records (kind, fixed -> moving matrix, metric at each
stage) and on one metric, computed for many poses at once with PyTorch:

* **The metric** (``Level.metric``): Mattes-style mutual information (cubic B-spline
  Parzen window on the moving intensities) between the fixed image at points of its head
  and the moving image at the mapped points. A point that falls outside the moving
  image's field of view is counted in a bin of its own, "outside", rather than dropped:
  the MI then weighs what the two images share by how much of the fixed head it covers,
  so that a pose cannot win by leaving the other image's view (issue 16, item 3).
* **Starts** (``starts``): the 24 symmetry-frame alignments (the paper's PCA ground
  truth), the 24 turns of the image axes, the images as they lie (the header), and a dense
  sampling of all rotations. Each gets the translation at which the two head masks agree
  best where both fields of view reach (``mask_translations``, by FFT), so that a head is
  not put on a neck or a chest.
* **Learned correction**: the paper's DCNN + ANN corrects the best-ranked starts.
* **Screening**: the best distinct starts optimised together (batched gradient descent
  on the metric) on coarse copies; the winner's mirror alternatives (turned 180 degrees
  about each axis of the fixed head) join the best distinct others.
* **Refinement**: the survivors on finer copies, then the best on the images themselves.
  Each optimisation returns the best pose it met, so a stage never makes a result worse
  on its own metric; the finest metric picks the result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import SimpleITK as sitk
import torch

from ..core import geometry
from . import preprocessing, registration, symmetry
from ..core.errors import HeadRegError

SAME_SOLUTION_MM = 10.0    # two poses closer than this (mean over the fixed head) are one solution
ROTATION_RADIUS_MM = 80.0  # a rotation of 1/80 rad moves the head's edge about 1 mm: the optimiser's scale


# ---------------------------------------------------------------- candidates

@dataclass
class Candidate:
    kind: str                                    # symmetry, axis turn, header, sampled, learned, mirror
    matrix: np.ndarray                           # fixed -> moving, LPS mm
    metric: dict = field(default_factory=dict)   # stage -> metric (negative MI: lower is better)
    overlap: dict = field(default_factory=dict)  # stage -> fraction of the fixed head inside the moving view
    poses: dict = field(default_factory=dict)    # stage -> the matrix it ended at

    def record(self) -> dict:
        return {"kind": self.kind, "metric": {k: round(float(v), 6) for k, v in self.metric.items()},
                "overlap": {k: round(float(v), 4) for k, v in self.overlap.items()}}


# ---------------------------------------------------------------- rotations

def sampled_rotations(count: int) -> np.ndarray:
    """``count`` rotations (3x3 each) spread evenly over all orientations: a super-Fibonacci
    spiral of unit quaternions (Alexa, CVPR 2022), deterministic. 256 leave no rotation more
    than 35 degrees from one of them; 512, 28 degrees."""
    s = np.arange(count) + 0.5
    r, big_r = np.sqrt(s / count), np.sqrt(1 - s / count)
    alpha, beta = 2 * np.pi * s / np.sqrt(2), 2 * np.pi * s / 1.533751168755204288118041
    w, x, y, z = r * np.sin(alpha), r * np.cos(alpha), big_r * np.sin(beta), big_r * np.cos(beta)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1)], -2)


def base_rotations(count: int) -> np.ndarray:
    """The rotations B of ``sampled_rotations(count)`` nearer the identity than any other
    B P (P one of the 24 axis turns), identity first: the set {B P} spreads over all
    orientations as evenly as ``count`` samples do, and each B P costs no resampling of
    a mask that B has put on a grid (``mask_translations``)."""
    samples = sampled_rotations(count)
    traces = np.einsum("nij,kji->nk", samples, np.array(symmetry.AXIS_PERMUTATIONS))   # trace(B P)
    own = traces[:, 0] >= traces.max(axis=1) - 1e-9
    return np.concatenate([np.eye(3)[None], samples[own]])


def mirror_alternatives(matrix, fixed_frame: symmetry.SymmetryFrame) -> list[np.ndarray]:
    """``matrix`` composed with a half turn about each principal axis of the fixed head
    (through its centre): the poses a near-symmetric head confuses with the right one
    (front-back, left-right, top-bottom)."""
    turns = [geometry.rigid_matrix(fixed_frame.axes @ np.diag(signs) @ fixed_frame.axes.T, (0, 0, 0),
                                   fixed_frame.center) for signs in ((1, -1, -1), (-1, 1, -1), (-1, -1, 1))]
    return [geometry.compose(matrix, turn) for turn in turns]


# ---------------------------------------------------------------- images as tensors

def _to_index(image: sitk.Image) -> np.ndarray:
    """4x4 from physical LPS mm to ``image``'s continuous index (x, y, z)."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    matrix = np.eye(4)
    matrix[:3, :3] = np.diag(1.0 / np.array(image.GetSpacing())) @ direction.T
    matrix[:3, 3] = -matrix[:3, :3] @ np.array(image.GetOrigin())
    return matrix


def _volume(image: sitk.Image, device) -> torch.Tensor:
    array = np.ascontiguousarray(sitk.GetArrayFromImage(image), dtype=np.float32)
    return torch.from_numpy(array)[None, None].to(device)


class _Histogram(torch.autograd.Function):
    """Weights summed into bins, the sums in integers (weights quantised to 2^-24): the
    same bits whatever order the threads add in, so that a rerun gives the same transform.
    The gradient of each weight is its bin's."""

    @staticmethod
    def forward(ctx, bins: torch.Tensor, weights: torch.Tensor, size: int):
        ctx.save_for_backward(bins)
        quantised = torch.round(weights.double() * 2 ** 24).long()
        return torch.zeros(size, dtype=torch.long, device=weights.device).index_add_(0, bins, quantised).to(
            weights.dtype) / 2 ** 24

    @staticmethod
    def backward(ctx, gradient):
        bins, = ctx.saved_tensors
        return None, gradient[bins], None


def _map(points: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """(M, 3) points through (N, 4, 4) matrices (or one 4x4): (N, M, 3), summed term by
    term (no matrix product, whose sums a library may order differently from run to run)."""
    matrices = matrices.reshape(-1, 4, 4)
    mapped = matrices[:, None, :3, 3] + points[:, 0, None] * matrices[:, None, :3, 0]
    mapped = mapped + points[:, 1, None] * matrices[:, None, :3, 1]
    return mapped + points[:, 2, None] * matrices[:, None, :3, 2]


def _sample(volume: torch.Tensor, size: torch.Tensor, index: torch.Tensor):
    """Trilinear values of ``volume`` at continuous voxel indices (..., 3: x, y, z), and
    whether each lies in its field of view."""
    inside = ((index >= -0.5) & (index <= size - 0.5)).all(-1)
    grid = (2 * index / (size - 1).clamp_min(1) - 1).reshape(1, -1, 1, 1, 3)
    values = torch.nn.functional.grid_sample(volume, grid, mode="bilinear", padding_mode="border",
                                             align_corners=True)
    return values.reshape(index.shape[:-1]), inside


class Level:
    """Both images at one resolution: the fixed image's values at points of its head
    (the head mask dilated by 6 mm, so that the outline counts), binned, and the moving
    image as a tensor of continuous bin positions with its field of view."""

    def __init__(self, fixed: sitk.Image, moving: sitk.Image, fixed_mask: sitk.Image, moving_mask: sitk.Image,
                 spacing_mm: float | None, max_points: int, bins: int, device):
        if spacing_mm:
            fixed, moving = (registration.coarse_copy(image, spacing_mm) for image in (fixed, moving))
        self.name = f"{spacing_mm:g} mm" if spacing_mm else "full"
        self.device, self.bins = device, bins
        inside = sitk.GetArrayFromImage(registration.metric_mask(fixed, fixed_mask)) > 0
        points = geometry.physical_points(fixed, inside)
        values = sitk.GetArrayViewFromImage(fixed)[inside].astype(np.float64)
        if len(points) < 100:
            raise HeadRegError(f"the fixed head has only {len(points)} voxels at {self.name}: too small to register")
        stride = int(np.ceil(len(points) / max_points))
        points, values = points[::stride], values[::stride]
        low, high = np.percentile(values, [0.5, 99.5])
        fixed_bins = np.clip(((values - low) / max(high - low, 1e-9) * bins).astype(np.int64), 0, bins - 1)
        moving_head = sitk.Resample(sitk.BinaryDilate(moving_mask, [2] * 3), moving, sitk.Transform(),
                                    sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        moving_values = sitk.GetArrayViewFromImage(moving)
        head_values = moving_values[sitk.GetArrayViewFromImage(moving_head) > 0]
        mlow, mhigh = np.percentile(head_values if head_values.size else moving_values, [0.5, 99.5])
        positions = np.clip((moving_values.astype(np.float32) - mlow) / max(mhigh - mlow, 1e-9), 0, 1) * (bins - 1)
        self.points = torch.from_numpy(points.astype(np.float32)).to(device)
        self.fixed_bins = torch.from_numpy(fixed_bins).to(device)
        self.moving = torch.from_numpy(np.ascontiguousarray(positions, dtype=np.float32))[None, None].to(device)
        self.to_index = torch.from_numpy(_to_index(moving).astype(np.float32)).to(device)
        self.size = torch.tensor(moving.GetSize(), dtype=torch.float32, device=device)
        self._spline = torch.arange(-1, 3, device=device)

    @property
    def point_count(self) -> int:
        return int(self.points.shape[0])

    def metric(self, matrices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(negative MI, fraction of the points inside the moving view) of each of the
        (N, 4, 4) fixed -> moving ``matrices`` (float32 tensor on the level's device)."""
        count, bins = matrices.shape[0], self.bins
        position, inside = _sample(self.moving, self.size, _map(self.points, self.to_index @ matrices))
        floor = torch.floor(position)
        t = position - floor
        t2, t3, u = t * t, t * t * t, 1 - t
        weights = torch.stack([u * u * u, 3 * t3 - 6 * t2 + 4, 3 * (t2 - t3 + t) + 1, t3], -1) / 6
        columns = (floor.long()[..., None] + self._spline).clamp(0, bins - 1)
        # Outside the moving view: all weight in the last column, "outside".
        weights = torch.where(inside[..., None], weights, (self._spline == -1).to(weights.dtype))
        columns = torch.where(inside[..., None], columns, torch.full_like(columns, bins))
        width = bins + 1
        flat = (torch.arange(count, device=self.device)[:, None, None] * (bins * width)
                + self.fixed_bins[None, :, None] * width + columns).reshape(-1)
        joint = _Histogram.apply(flat, weights.reshape(-1), count * bins * width)
        joint = joint.reshape(count, bins, width) / self.point_count

        def entropy(p, dims):
            return -(p * torch.log(p.clamp_min(1e-12))).sum(dims)
        mi = entropy(joint.sum(2), 1) + entropy(joint.sum(1), 1) - entropy(joint, (1, 2))
        return -mi, inside.float().mean(1)

    def evaluate(self, matrices) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            value, overlap = self.metric(torch.as_tensor(np.asarray(matrices), dtype=torch.float32,
                                                         device=self.device))
        return value.cpu().numpy().astype(float), overlap.cpu().numpy().astype(float)


# ---------------------------------------------------------------- batched optimisation

def _rotation_matrices(vectors: torch.Tensor) -> torch.Tensor:
    """(N, 3) rotation vectors (rad) -> (N, 3, 3): the exponential of their cross-product
    matrices (differentiable at zero, where every optimisation starts)."""
    cross = torch.zeros(vectors.shape[0], 3, 3, dtype=vectors.dtype, device=vectors.device)
    cross[:, 0, 1], cross[:, 0, 2], cross[:, 1, 2] = -vectors[:, 2], vectors[:, 1], -vectors[:, 0]
    return torch.linalg.matrix_exp(cross - cross.transpose(1, 2))


def _steps(parameters: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """(N, 6) parameters (rotation vector in mm at ``ROTATION_RADIUS_MM``, translation mm)
    -> (N, 4, 4): x -> R (x - c) + c + t."""
    rotation = _rotation_matrices(parameters[:, :3] / ROTATION_RADIUS_MM)
    step = torch.zeros(parameters.shape[0], 4, 4, dtype=parameters.dtype, device=parameters.device)
    step[:, :3, :3] = rotation
    step[:, :3, 3] = center - (rotation @ center) + parameters[:, 3:]
    step[:, 3, 3] = 1
    return step


def optimise(level: Level, starts, center, iterations: int, first_step_mm: float, last_step_mm: float,
             patience: int | None = None, check: Callable[[], None] | None = None,
             progress: Callable[[float], None] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optimise every start at once: Adam (Kingma and Ba 2015, its usual moments 0.9 and
    0.999) on each pose's six parameters about ``center``. The step shrinks geometrically
    from ``first_step_mm`` to ``last_step_mm`` over ``iterations``; with ``patience``, each
    pose's step is halved instead whenever that many iterations in a row improved its
    metric by less than ``PROGRESS`` (relative), until it is below ``last_step_mm`` (at most
    ``iterations``): a long shallow valley is followed to its end, a converged pose stops.
    Returns the best pose each met, its metric and overlap: never worse than its start.
    ``check`` is called at every iteration (it raises to stop the work, e.g. on Cancel),
    ``progress`` with the fraction of the iterations done."""
    starts = np.asarray(starts, dtype=float)
    count, device = len(starts), level.device
    start_tensor = torch.as_tensor(starts, dtype=torch.float32, device=device)
    center_tensor = torch.as_tensor(np.asarray(center, dtype=float), dtype=torch.float32, device=device)
    parameters = torch.zeros(count, 6, device=device)
    first_moment, second_moment = torch.zeros_like(parameters), torch.zeros_like(parameters)
    decay = (last_step_mm / first_step_mm) ** (1.0 / max(iterations - 1, 1))
    step = torch.full((count, 1), float(first_step_mm), device=device)
    waited = torch.zeros(count, device=device)
    best_value = torch.full((count,), float("inf"), device=device)
    progress_value = torch.full((count,), float("inf"), device=device)   # the best at the last real progress
    best_overlap = torch.zeros(count, device=device)
    best_parameters = torch.zeros(count, 6, device=device)
    for iteration in range(iterations + 1):
        if check is not None:
            check()
        if progress is not None:
            progress(iteration / (iterations + 1))
        parameters.requires_grad_(True)
        value, overlap = level.metric(start_tensor @ _steps(parameters, center_tensor))
        with torch.no_grad():
            better = value < best_value
            best_value = torch.where(better, value, best_value)
            best_overlap = torch.where(better, overlap, best_overlap)
            best_parameters = torch.where(better[:, None], parameters, best_parameters)
            if patience:
                improved = best_value < progress_value - PROGRESS * best_value.abs()
                progress_value = torch.where(improved, best_value, progress_value)
                waited = torch.where(improved, torch.zeros_like(waited), waited + 1)
                tired = waited >= patience
                step = torch.where(tired[:, None], step / 2, step)
                waited = torch.where(tired, torch.zeros_like(waited), waited)
        if iteration == iterations or (patience and bool((step < last_step_mm).all())):
            break
        gradient, = torch.autograd.grad(value.sum(), parameters)
        with torch.no_grad():
            first_moment = 0.9 * first_moment + 0.1 * gradient
            second_moment = 0.999 * second_moment + 0.001 * gradient * gradient
            if not patience:
                step = torch.full_like(step, first_step_mm * decay ** iteration)
            parameters = parameters - step * (first_moment / (1 - 0.9 ** (iteration + 1))) / (
                torch.sqrt(second_moment / (1 - 0.999 ** (iteration + 1))) + 1e-8)
    steps = _steps(best_parameters.double().cpu(), torch.as_tensor(np.asarray(center, dtype=float)))
    return (np.einsum("nij,njk->nik", starts, steps.numpy()), best_value.cpu().numpy().astype(float),
            best_overlap.cpu().numpy().astype(float))


# ---------------------------------------------------------------- translations of the starts

def _index(image: sitk.Image, points: torch.Tensor) -> torch.Tensor:
    return _map(points, torch.from_numpy(_to_index(image).astype(np.float32)).to(points.device))[0]


def _on_grid(mask: sitk.Image, view: sitk.Image, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A head mask (fractions, smoothed to the grid's scale) and whether its image's field
    of view holds them, at (M, 3) ``points``."""
    def size(image):
        return torch.tensor(image.GetSize(), dtype=torch.float32, device=points.device)
    head, inside = _sample(_volume(mask, points.device), size(mask), _index(mask, points))
    view_index = _index(view, points)
    in_view = ((view_index >= -0.5) & (view_index <= size(view) - 0.5)).all(-1).float()
    return head * inside * in_view, in_view


def _axis_turn_gathers(size: int, device) -> torch.Tensor:
    """(24, size^3): for each axis turn P, the flat index of P q for each point q of a
    cubic grid centred on the origin (z, y, x order), so that ``array.flat[gather]`` is
    the array sampled at P q."""
    offsets = np.arange(size) - (size - 1) / 2
    z, y, x = np.meshgrid(offsets, offsets, offsets, indexing="ij")
    q = np.stack([x.ravel(), y.ravel(), z.ravel()], 1)
    gathers = []
    for turn in symmetry.AXIS_PERMUTATIONS:
        turned = np.rint(q @ turn.T + (size - 1) / 2).astype(np.int64)
        gathers.append(turned[:, 2] * size * size + turned[:, 1] * size + turned[:, 0])
    return torch.from_numpy(np.array(gathers)).to(device)


def mask_translations(bases: np.ndarray, frame: np.ndarray, fixed: sitk.Image, moving: sitk.Image,
                      fixed_mask: sitk.Image, moving_mask: sitk.Image, fixed_center, moving_center, device,
                      spacing_mm: float = 16.0, size: int = 32) -> np.ndarray:
    """Starts for the rotations ``R = B P E^T`` (B in ``bases``, P each of the 24 axis
    turns, E = ``frame``), in that order: for each, the fixed -> moving matrix
    ``x -> R (x - c_f - E t) + c_m`` whose shift t makes the two head masks agree best where
    both fields of view reach: +1 for head on head, -1 for one image's head on the other's
    air inside its view. Three cross-correlations by FFT on a ``size``^3 grid of
    ``spacing_mm`` (axes E) around the fixed head; each base puts the moving mask on the grid
    once, and its 24 turns are permutations of that grid."""
    fixed_center, moving_center = np.asarray(fixed_center, float), np.asarray(moving_center, float)
    frame = np.asarray(frame, dtype=float)
    offsets = (np.arange(size) - (size - 1) / 2) * spacing_mm
    z, y, x = np.meshgrid(offsets, offsets, offsets, indexing="ij")
    q = torch.from_numpy(np.stack([x.ravel(), y.ravel(), z.ravel()], 1).astype(np.float32)).to(device)
    shape = (size, size, size)
    fixed_points = q @ torch.from_numpy(frame.T.astype(np.float32)).to(device) \
        + torch.from_numpy(fixed_center.astype(np.float32)).to(device)
    fixed_head, fixed_view = _on_grid(registration.coarse_copy(fixed_mask, spacing_mm / 2), fixed, fixed_points)
    head_spectrum = torch.fft.rfftn(fixed_head.reshape(shape))
    view_spectrum = torch.fft.rfftn(fixed_view.reshape(shape))
    moving_coarse = registration.coarse_copy(moving_mask, spacing_mm / 2)
    gathers = _axis_turn_gathers(size, device)
    origin = torch.from_numpy(moving_center.astype(np.float32)).to(device)
    shifts = []
    for base in np.asarray(bases, dtype=float):
        moving_points = q @ torch.from_numpy(base.T.astype(np.float32)).to(device) + origin   # B q + c_m
        head, view = _on_grid(moving_coarse, moving, moving_points)
        head, view = head[gathers].reshape(-1, *shape), view[gathers].reshape(-1, *shape)     # at B P q
        head_hat, view_hat = torch.fft.rfftn(head, dim=(1, 2, 3)), torch.fft.rfftn(view, dim=(1, 2, 3))
        # score(t) = sum_x F_head(x) [3 M_head - M_view](x - t) - F_view(x) M_head(x - t)
        score = torch.fft.irfftn(head_spectrum * torch.conj(3 * head_hat - view_hat)
                                 - view_spectrum * torch.conj(head_hat), s=shape, dim=(1, 2, 3))
        best = score.reshape(score.shape[0], -1).argmax(1)
        index = torch.stack([best % size, (best // size) % size, best // (size * size)], 1)   # x, y, z
        shifts.append(torch.where(index > size // 2, index - size, index).float() * spacing_mm)
    shifts = torch.cat(shifts).cpu().numpy().astype(float)                                   # t, in axes E
    rotations = np.einsum("bij,pjk,lk->bpil", np.asarray(bases, dtype=float), np.array(symmetry.AXIS_PERMUTATIONS),
                          frame).reshape(-1, 3, 3)
    matrices = np.tile(np.eye(4), (len(rotations), 1, 1))
    matrices[:, :3, :3] = rotations
    matrices[:, :3, 3] = moving_center - np.einsum("nij,nj->ni", rotations, fixed_center + shifts @ frame.T)
    return matrices


# ---------------------------------------------------------------- distinct solutions

def distinct(candidates: list[Candidate], points: np.ndarray, limit: int | None = None,
             same_mm: float = SAME_SOLUTION_MM) -> list[Candidate]:
    """The candidates in their order, leaving out any within ``same_mm`` (mean over
    ``points``) of one kept before it; at most ``limit``."""
    kept, mapped = [], []
    for candidate in candidates:
        here = geometry.transform_points(candidate.matrix, points)
        if all(np.linalg.norm(here - other, axis=1).mean() > same_mm for other in mapped):
            kept.append(candidate)
            mapped.append(here)
            if limit and len(kept) == limit:
                break
    return kept


def head_points(mask: sitk.Image, count: int = 2000) -> np.ndarray:
    points = geometry.physical_points(mask, sitk.GetArrayViewFromImage(mask) > 0)
    return points[:: max(1, len(points) // count)]


# ---------------------------------------------------------------- the stages

EFFORT = {   # how hard each stage works: "fast" for register, "exhaustive" for ground truth
    "fast": {"sampled": 256, "ranking_points": 2000, "network": 3, "screened": 12, "screen_iterations": 60,
             "kept": 4, "fine_iterations": 25, "refined": 2, "refine_iterations": 100, "refine_points": 60000},
    "exhaustive": {"sampled": 1024, "ranking_points": 6000, "network": 6, "screened": 48,
                   "screen_iterations": 160, "kept": 8, "fine_iterations": 60, "refined": 4,
                   "refine_iterations": 300, "refine_points": 250000},
}
REFINE_PATIENCE = 5   # the refinement halves a pose's step after this many iterations without progress...
PROGRESS = 1e-4       # ...a relative improvement of the metric by at least this
COARSE_MM, FINE_MM = 6.0, 3.0
START_KINDS = ("symmetry", "axis turn", "sampled", "header")
CROP_MARGIN_MM = 15.0  # the refinement works on each image cropped to its head mask's box grown by this
REFINE_MARGIN = 0.05   # a second solution is refined when its MI is within this (relative) of the best


@dataclass
class SearchResult:
    chosen: Candidate
    candidates: list[Candidate]       # every candidate that reached the fine stage, best first
    seconds: dict                     # per stage
    runner_up: Candidate | None       # the best other solution at the fine stage (more than SAME_SOLUTION_MM away)


def refinement_images(fixed: sitk.Image, moving: sitk.Image, fixed_mask: sitk.Image,
                      moving_mask: sitk.Image) -> tuple[sitk.Image, sitk.Image]:
    """The images the refinement works on: both at their own resolution (the metric samples
    points of the fixed head, so a finer moving image costs memory, not time; averaging a
    0.5 mm CT down to a 0.9 mm MR's grid moved the optimum 0.15 mm off, docs/BENCHMARKS.md),
    cropped to their heads."""
    return (preprocessing.crop_to_head(fixed, fixed_mask, CROP_MARGIN_MM),
            preprocessing.crop_to_head(moving, moving_mask, CROP_MARGIN_MM))


def search(fixed: sitk.Image, moving: sitk.Image, fixed_mask: sitk.Image, moving_mask: sitk.Image,
           fixed_frame: symmetry.SymmetryFrame, moving_frame: symmetry.SymmetryFrame, device="cpu",
           correct: Callable[[np.ndarray], np.ndarray] | None = None, effort: str = "fast", refine: bool = True,
           progress: Callable[[str, float], None] | None = None, full_images: tuple | None = None,
           start_kinds=START_KINDS, check: Callable[[], None] | None = None) -> SearchResult:
    """The fixed -> moving rigid transform of two head volumes (module docstring).

    ``correct`` (the learned prediction, a start -> corrected start) is applied to the
    best-ranked starts; ``full_images`` (fixed, moving) are those the refinement works on
    (default: ``refinement_images``); ``start_kinds`` limits the starts (e.g. the
    paper's symmetry frames alone, or the header alone); ``check`` is called at every stage
    and optimiser iteration, and raises to stop the work (autoregister's Cancel);
    ``progress(stage, done)`` gets each stage's name with 0 as it begins, and the fraction
    of its iterations done as its optimiser runs.
    """
    if effort not in EFFORT:
        raise HeadRegError(f"unknown effort {effort!r}: choose one of {', '.join(EFFORT)}")
    settings = EFFORT[effort]
    check = check or (lambda: None)

    def report(stage, done=0.0):
        check()
        if progress is not None:
            progress(stage, done)
    seconds = {}
    clock = [time.perf_counter()]

    def lap(stage):
        now = time.perf_counter()
        seconds[stage] = seconds.get(stage, 0.0) + now - clock[0]
        clock[0] = now

    center = fixed_frame.center
    points = head_points(fixed_mask)

    report("starts")
    coarse = Level(fixed, moving, fixed_mask, moving_mask, COARSE_MM, settings["ranking_points"], 32, device)
    unknown = set(start_kinds) - set(START_KINDS)
    if unknown or not start_kinds:
        raise HeadRegError(f"unknown kinds of start {sorted(unknown)}: choose among {', '.join(START_KINDS)}")
    starts = []
    if "symmetry" in start_kinds:   # R = A_m P A_f^T, placed by the masks and by the frame centres
        starts += [Candidate("symmetry", m) for m in mask_translations(
            moving_frame.axes[None], fixed_frame.axes, fixed, moving, fixed_mask, moving_mask, center,
            moving_frame.center, device)]
        starts += [Candidate("symmetry", m) for m in symmetry.candidate_alignments(fixed_frame, moving_frame)]
    if "axis turn" in start_kinds or "sampled" in start_kinds:   # R = B P: B = I for the axis turns
        bases = base_rotations(settings["sampled"]) if "sampled" in start_kinds else np.eye(3)[None]
        placed = mask_translations(bases, np.eye(3), fixed, moving, fixed_mask, moving_mask, center,
                                   moving_frame.center, device)
        starts += [Candidate("axis turn" if k < 24 else "sampled", m) for k, m in enumerate(placed)
                   if ("axis turn" if k < 24 else "sampled") in start_kinds]
    if "header" in start_kinds:
        starts.append(Candidate("header", np.eye(4)))
    _score(coarse, starts, "start")
    starts.sort(key=lambda c: c.metric["start"])
    lap("starts")

    if correct is not None and settings["network"]:
        report("learned correction")
        corrected = [Candidate("learned", correct(c.matrix)) for c in distinct(starts, points, settings["network"])]
        _score(coarse, corrected, "start")
        starts = sorted(starts + corrected, key=lambda c: c.metric["start"])
        lap("learned correction")

    report("screening")
    screened = distinct(starts, points, settings["screened"])
    _optimise(coarse, screened, center, "screened", settings["screen_iterations"], 4.0, 0.25, check=check,
              progress=lambda done: report("screening", done))
    screened = distinct(sorted(screened, key=lambda c: c.metric["screened"]), points)
    winner = screened[0]
    mirrors = [Candidate("mirror", m) for m in mirror_alternatives(winner.matrix, fixed_frame)]
    survivors = screened[:settings["kept"]] + mirrors
    lap("screening")

    report("fine search")
    fine = Level(fixed, moving, fixed_mask, moving_mask, FINE_MM, 4 * settings["ranking_points"], 32, device)
    _optimise(fine, survivors, center, "fine", settings["fine_iterations"], FINE_MM, 0.1, check=check,
              progress=lambda done: report("fine search", done))
    survivors = distinct(sorted(survivors, key=lambda c: c.metric["fine"]), points)
    lap("fine search")

    chosen = survivors[0]
    if refine:
        report("refinement")
        full_fixed, full_moving = full_images or refinement_images(fixed, moving, fixed_mask, moving_mask)
        full = Level(full_fixed, full_moving, fixed_mask, moving_mask, None, settings["refine_points"], 48, device)
        margin = REFINE_MARGIN * abs(chosen.metric["fine"])
        finalists = [c for c in survivors[:settings["refined"]] if c.metric["fine"] - chosen.metric["fine"] <= margin]
        _score(full, finalists, "start of refinement")
        _optimise(full, finalists, center, "refined", settings["refine_iterations"], 1.0, 0.02, REFINE_PATIENCE,
                  check=check, progress=lambda done: report("refinement", done))
        chosen = min(finalists, key=lambda c: c.metric["refined"])
        lap("refinement")
    # The runner-up: the best other solution at the fine stage, against the result seen there.
    _score(fine, [chosen], "result at fine")
    others = distinct([chosen] + [c for c in survivors if c is not chosen], points)[1:]
    return SearchResult(chosen, survivors, seconds, others[0] if others else None)


def _score(level: Level, candidates: list[Candidate], stage: str) -> None:
    if not candidates:
        return
    values, overlaps = level.evaluate([c.matrix for c in candidates])
    for candidate, value, overlap in zip(candidates, values, overlaps):
        candidate.metric[stage], candidate.overlap[stage] = value, overlap


def _optimise(level: Level, candidates: list[Candidate], center, stage: str, iterations: int,
              first_step_mm: float, last_step_mm: float, patience: int | None = None, check=None,
              progress=None) -> None:
    matrices, values, overlaps = optimise(level, [c.matrix for c in candidates], center, iterations,
                                          first_step_mm, last_step_mm, patience, check, progress)
    for candidate, matrix, value, overlap in zip(candidates, matrices, values, overlaps):
        candidate.matrix, candidate.metric[stage], candidate.overlap[stage] = matrix, value, overlap
        candidate.poses[stage] = matrix
