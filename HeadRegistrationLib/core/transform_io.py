"""ITK transform files (.tfm, .txt, .h5), read and written in the project's convention:
the file holds the fixed-to-moving (resampling) transform in LPS millimetres, which is
what ITK, ANTs, Elastix's transformix and Slicer's transform storage node use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from . import geometry
from .errors import HeadRegError
from .files import write_atomically

TRANSFORM_SUFFIXES = (".tfm", ".txt", ".h5", ".hdf5", ".mat")


def write_transform(matrix, path, center=None) -> Path:
    """Write a 4x4 fixed-to-moving matrix as an ITK transform file (rigid matrices as
    ``Euler3DTransform`` about ``center``, others as ``AffineTransform``)."""
    path = Path(path)
    if path.suffix.lower() not in TRANSFORM_SUFFIXES:
        raise HeadRegError(f"{path}: a transform file name must end in one of {', '.join(TRANSFORM_SUFFIXES)}")
    transform = geometry.sitk_from_matrix(matrix, center)
    return write_atomically(path, lambda p: sitk.WriteTransform(transform, p))


def read_transform(path) -> np.ndarray:
    """The 4x4 fixed-to-moving matrix held in an ITK transform file; rejects files that
    are missing, unreadable or hold a non-linear transform."""
    path = Path(path)
    if not path.is_file():
        raise HeadRegError(f"{path}: no such transform file")
    try:
        transform = sitk.ReadTransform(str(path))
    except RuntimeError:
        raise HeadRegError(f"{path}: not a readable ITK transform file") from None
    try:
        return geometry.matrix_from_sitk(transform)
    except HeadRegError as error:
        raise HeadRegError(f"{path}: {error}") from None
