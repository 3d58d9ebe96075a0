"""Symmetry (PCA) frame of a head volume (paper: "Generation of ground truth data").

The paper resamples each image to isotropic voxels, separates the head from the
background with Otsu's two-level threshold, takes the principal components of the
head's point cloud, and moves the image so that its axes lie on the principal
components and its centre on the cloud's mean.

Here a frame is the rigid 4x4 matrix ``F`` that maps frame coordinates (origin at the
cloud mean, axes along the principal components by decreasing variance) to physical
LPS millimetres. Aligning two heads by their frames is ``F_moving @ P @ inv(F_fixed)``
(fixed -> moving). PCA fixes the axes only up to sign, and their order only when the
variances differ; ``P`` runs over the 24 proper rotations that permute and flip the
axes (``AXIS_PERMUTATIONS``), and the caller picks by mutual information after a short
optimisation from each plausible one (the starts of ``search.search``): anatomy that PCA
cannot see (face in front, neck below) decides. Images are not resampled into the
frame: registration works on the originals and starts from the frame alignment.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..core import geometry
from ..core.errors import HeadRegError

MASK_SPACING_MM = 2.0   # isotropic voxel size of the head mask: plenty for PCA, fast
OPENING_MM = 4.0        # radius of the opening that cuts thin bridges (head rest, cables)


def _proper_axis_permutations() -> tuple[np.ndarray, ...]:
    """The 24 signed permutation matrices with determinant +1, identity first."""
    found = []
    for order in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            p = np.zeros((3, 3))
            p[list(order), range(3)] = signs
            if np.linalg.det(p) > 0:
                found.append(p)
    return tuple(found)


AXIS_PERMUTATIONS = _proper_axis_permutations()


@dataclass
class SymmetryFrame:
    center: np.ndarray     # mean of the head point cloud, LPS mm
    axes: np.ndarray       # 3x3, columns: principal axes by decreasing variance, det +1
    variances: np.ndarray  # variance along each axis, mm^2
    points: int            # size of the point cloud

    @property
    def matrix(self) -> np.ndarray:
        """Frame coordinates -> physical LPS mm."""
        return geometry.rigid_matrix(self.axes, self.center)

    def distinct_axes(self, tolerance: float = 0.05) -> bool:
        """Whether neighbouring variances differ by more than ``tolerance`` (relative),
        i.e. whether the axis order is well defined."""
        v = self.variances
        return bool(v[0] > (1 + tolerance) * v[1] and v[1] > (1 + tolerance) * v[2])


def resample_isotropic(image: sitk.Image, spacing_mm: float) -> sitk.Image:
    """``image`` on a grid of ``spacing_mm`` voxels with the same extent and direction
    (linear interpolation, outside filled with the image minimum)."""
    spacing = np.array(image.GetSpacing())
    size = np.array(image.GetSize())
    new_size = np.maximum(1, np.round(size * spacing / spacing_mm)).astype(int)
    # Keep the physical extent: the first voxel's corner stays where it was.
    direction = np.array(image.GetDirection()).reshape(3, 3)
    corner = np.array(image.GetOrigin()) - direction @ (spacing / 2)
    origin = corner + direction @ (np.full(3, spacing_mm) / 2)
    minimum = float(sitk.GetArrayViewFromImage(image).min())
    return sitk.Resample(sitk.Cast(image, sitk.sitkFloat32), [int(n) for n in new_size], sitk.Transform(),
                         sitk.sitkLinear, origin.tolist(), [spacing_mm] * 3, image.GetDirection(), minimum,
                         sitk.sitkFloat32)


def fill_holes_slicewise(mask: np.ndarray) -> np.ndarray:
    """Fill holes in every 2D slice along each axis: a scalp cut open by the field of
    view is closed in-plane even when it is not closed in 3D. One 3D fill per axis: the
    slices are stacked with a wall of foreground between them, so that background
    connects only within its own slice."""
    filled = mask.copy()
    for axis in range(3):
        planes = np.moveaxis(mask, axis, 0)
        walled = np.ones((2 * planes.shape[0] + 1, *planes.shape[1:]), dtype=np.uint8)
        walled[1::2] = planes
        closed = sitk.GetArrayFromImage(sitk.BinaryFillhole(sitk.GetImageFromArray(walled)))[1::2].astype(bool)
        filled |= np.moveaxis(closed, 0, axis)
    return filled


def head_mask(image: sitk.Image, spacing_mm: float = MASK_SPACING_MM) -> sitk.Image:
    """Binary head mask (uint8) on an isotropic grid of ``spacing_mm``.

    Otsu's two-level threshold (on intensities clipped to the 1st-99.5th percentile, so
    that a few extreme voxels do not set it), holes filled (skull and CSF in MR, sinuses
    in CT), an opening of ``OPENING_MM`` that cuts the head off thin contacts such as a
    head rest or table, and the largest connected component: the head.
    """
    iso = resample_isotropic(image, spacing_mm)
    values = sitk.GetArrayFromImage(iso)
    low, high = np.percentile(values, [1.0, 99.5])
    if not high > low:
        raise HeadRegError("the volume is nearly constant: no head to find")
    clipped = sitk.GetImageFromArray(np.clip(values, low, high))
    foreground = sitk.GetArrayFromImage(sitk.OtsuThreshold(clipped, 0, 1)).astype(bool)
    foreground = fill_holes_slicewise(foreground)
    mask = sitk.GetImageFromArray(foreground.astype(np.uint8))
    mask.CopyInformation(iso)
    radius = max(1, int(round(OPENING_MM / spacing_mm)))
    opened = sitk.BinaryMorphologicalOpening(mask, [radius] * 3, sitk.sitkBall)
    components = sitk.RelabelComponent(sitk.ConnectedComponent(opened), sortByObjectSize=True)
    head = sitk.Cast(components == 1, sitk.sitkUInt8)
    # The opening also rounds the head's own edges; give them back inside the Otsu mask.
    head = sitk.Cast(sitk.BinaryDilate(head, [radius] * 3, sitk.sitkBall) & mask, sitk.sitkUInt8)
    if not sitk.GetArrayViewFromImage(head).any():
        raise HeadRegError("no head found: the Otsu foreground is empty after cleaning")
    return head


def symmetry_frame(image: sitk.Image, mask: sitk.Image | None = None) -> SymmetryFrame:
    """PCA frame of the head in ``image`` (``mask`` from ``head_mask`` when not given)."""
    mask = head_mask(image) if mask is None else mask
    points = geometry.physical_points(mask, sitk.GetArrayViewFromImage(mask) > 0)
    if len(points) < 100:
        raise HeadRegError(f"the head mask has only {len(points)} voxels: too small for a symmetry frame")
    center = points.mean(axis=0)
    variances, vectors = np.linalg.eigh(np.cov((points - center).T))
    order = np.argsort(variances)[::-1]
    axes = vectors[:, order]
    if np.linalg.det(axes) < 0:
        axes[:, 2] *= -1
    return SymmetryFrame(center, axes, variances[order], len(points))


def candidate_alignments(fixed_frame: SymmetryFrame, moving_frame: SymmetryFrame) -> list[np.ndarray]:
    """The 24 fixed -> moving matrices ``F_moving @ P @ inv(F_fixed)`` that put the
    moving head's frame on the fixed head's, one per axis permutation ``P``."""
    to_fixed_frame = geometry.invert(fixed_frame.matrix)
    return [moving_frame.matrix @ geometry.rigid_matrix(p, (0, 0, 0)) @ to_fixed_frame
            for p in AXIS_PERMUTATIONS]


def compose_ground_truth(fixed_frame_matrix, registration_in_frame, moving_frame_matrix) -> np.ndarray:
    """The paper's ``T_comp = T_fix^-1 . T_reg . T_mov`` in this project's convention.

    The paper's transforms map moving to fixed (MATLAB's ``imregister``): ``T_mov`` takes
    the moving image into its symmetry frame, ``T_reg`` the moving frame onto the fixed
    frame, ``T_fix^-1`` the fixed frame back to the fixed image. Here every matrix maps the
    other way (fixed -> moving): frames map frame -> physical, and the registration maps
    fixed-frame points to moving-frame points, so ``T = F_moving @ T_reg @ inv(F_fixed)``,
    which is the inverse of the paper's product written with ``T_fix = inv(F_fixed)``,
    ``T_mov = inv(F_moving)`` and its ``T_reg = inv(registration_in_frame)``.
    """
    return geometry.compose(moving_frame_matrix, registration_in_frame, geometry.invert(fixed_frame_matrix))
