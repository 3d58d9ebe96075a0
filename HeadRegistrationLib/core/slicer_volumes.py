"""Slicer's form of a scalar volume (a voxel array and an IJK-to-RAS matrix) <-> SimpleITK images.

Slicer keeps a volume as a numpy array in (k, j, i) order, as ``slicer.util.arrayFromVolume``
gives it, and a 4x4 ``IJKToRAS`` matrix; ITK keeps origin, spacing and direction in LPS.
Both describe the same voxel grid::

    IJKToRAS = D @ index_to_physical_matrix(image),     D = diag(-1, -1, 1, 1)

These functions only convert geometry; they know nothing of parent transforms. Pure numpy
and SimpleITK: this module never imports slicer, so it is tested without Slicer.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .errors import HeadRegError
from .geometry import LPS_TO_RAS, as_matrix


def index_to_physical_matrix(image: sitk.Image) -> np.ndarray:
    """4x4 matrix that maps a voxel index (i, j, k) of a 3D ``image`` to its LPS point in mm."""
    if image.GetDimension() != 3:
        raise HeadRegError(f"expected a 3D image, got {image.GetDimension()}D")
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    m = np.eye(4)
    m[:3, :3] = direction * np.array(image.GetSpacing(), dtype=float)  # column j scaled by spacing j
    m[:3, 3] = image.GetOrigin()
    return m


def ijk_to_ras_from_image(image: sitk.Image) -> np.ndarray:
    """Slicer's IJKToRAS matrix of a 3D SimpleITK image (the inverse of
    ``image_from_array_and_ijk_to_ras`` for the geometry)."""
    return LPS_TO_RAS @ index_to_physical_matrix(image)


def image_from_array_and_ijk_to_ras(array_kji, ijk_to_ras, tolerance: float = 1e-4) -> sitk.Image:
    """A SimpleITK image from a voxel array in (k, j, i) order and Slicer's IJKToRAS matrix.

    The voxels are copied (the array is never modified or shared). Raises ``HeadRegError`` for
    an array that is not 3D or is empty, and for a matrix with a zero spacing or a sheared
    grid (columns not orthogonal within ``tolerance``), which ITK cannot represent.
    """
    array = np.asarray(array_kji)
    if array.ndim != 3:
        raise HeadRegError(f"expected a 3D scalar volume, got an array of shape {array.shape}")
    if array.size == 0:
        raise HeadRegError("the volume has no voxels")
    index_to_lps = LPS_TO_RAS @ as_matrix(ijk_to_ras)
    axes = index_to_lps[:3, :3]
    spacing = np.linalg.norm(axes, axis=0)
    if not np.all(spacing > 0):
        raise HeadRegError(f"the IJK to RAS matrix has a zero voxel spacing: {spacing.tolist()}")
    direction = axes / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=tolerance):
        raise HeadRegError("the IJK to RAS matrix describes a sheared voxel grid, which ITK cannot represent")
    if array.dtype == bool:
        array = array.astype(np.uint8)
    try:
        image = sitk.GetImageFromArray(array)  # copies the voxels
    except (RuntimeError, TypeError) as exc:
        raise HeadRegError(f"voxel type {array.dtype} is not supported") from exc
    image.SetSpacing(spacing.tolist())
    image.SetDirection(direction.ravel().tolist())
    image.SetOrigin(index_to_lps[:3, 3].tolist())
    return image
