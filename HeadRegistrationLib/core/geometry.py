"""Rigid-transform conventions of the project, and every conversion between their forms.

The convention (DESIGN.md, "Conventions"):

* Physical space is LPS, in millimetres, as in ITK and SimpleITK.
* A transform is the 4x4 matrix ``T`` that maps a physical point of the
  *fixed* image (MR) to the matching point of the *moving* image (CT), so that
  ``sitk.Resample(moving, fixed, sitk_from_matrix(T))`` puts the moving image
  onto the fixed one. ITK transform files hold this same transform.
* In 3D Slicer, the transform node that carries the moving volume holds
  ``ToParent_RAS = D @ inv(T) @ D`` with ``D = diag(-1, -1, 1, 1)``.

The six rigid parameters (the regression target of the paper's "Registration of
multi-modal images") are defined here and only here, see ``PARAMETER_NAMES``:
three Euler angles in degrees and three translations in millimetres, about a
rotation centre ``c`` given in fixed-image LPS millimetres::

    T(x) = R @ (x - c) + c + t,     R = Rz(angle_z) @ Ry(angle_y) @ Rx(angle_x)

i.e. a rotation about x first, then y, then z (SimpleITK's ``Euler3DTransform``
with ``ComputeZYX`` on).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .errors import HeadRegError

PARAMETER_NAMES = (
    "angle_x_deg",
    "angle_y_deg",
    "angle_z_deg",
    "translation_x_mm",
    "translation_y_mm",
    "translation_z_mm",
)

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])  # D, its own inverse


# ---------------------------------------------------------------- basics

def as_matrix(matrix) -> np.ndarray:
    """A 4x4 float64 copy of ``matrix``, checked to be a homogeneous affine matrix."""
    m = np.array(matrix, dtype=float)
    if m.shape != (4, 4) or not np.all(np.isfinite(m)):
        raise HeadRegError(f"expected a finite 4x4 matrix, got shape {m.shape}")
    if not np.allclose(m[3], [0, 0, 0, 1]):
        raise HeadRegError("the last row of a 4x4 transform matrix must be 0 0 0 1")
    return m


def is_rigid(matrix, tolerance: float = 1e-6) -> bool:
    """Whether the linear part is a proper rotation (orthonormal, determinant +1)."""
    r = as_matrix(matrix)[:3, :3]
    return bool(np.allclose(r.T @ r, np.eye(3), atol=tolerance) and np.linalg.det(r) > 0)


def compose(*matrices) -> np.ndarray:
    """Matrix product, applied right to left: ``compose(A, B)(x) == A(B(x))``."""
    result = np.eye(4)
    for m in matrices:
        result = result @ as_matrix(m)
    return result


def invert(matrix) -> np.ndarray:
    """Inverse transform (exact for rigid matrices, general otherwise)."""
    m = as_matrix(matrix)
    if is_rigid(m):
        inverse = np.eye(4)
        inverse[:3, :3] = m[:3, :3].T
        inverse[:3, 3] = -m[:3, :3].T @ m[:3, 3]
        return inverse
    return np.linalg.inv(m)


def transform_points(matrix, points) -> np.ndarray:
    """Map an (N, 3) array (or one 3-vector) of physical points by a 4x4 matrix."""
    m = as_matrix(matrix)
    p = np.asarray(points, dtype=float)
    return p @ m[:3, :3].T + m[:3, 3]


def translation_matrix(offset) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = np.asarray(offset, dtype=float)
    return m


def rotation_about_axis(axis, angle_deg: float) -> np.ndarray:
    """3x3 rotation by ``angle_deg`` about ``axis`` (right hand rule, Rodrigues' formula)."""
    a = np.asarray(axis, dtype=float)
    norm = np.linalg.norm(a)
    if norm == 0:
        raise HeadRegError("rotation axis must not be zero")
    a = a / norm
    theta = np.deg2rad(angle_deg)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(theta) * k + (1 - np.cos(theta)) * (k @ k)


def rigid_matrix(rotation, translation, center=(0.0, 0.0, 0.0)) -> np.ndarray:
    """4x4 matrix of ``x -> rotation @ (x - center) + center + translation``."""
    r = np.asarray(rotation, dtype=float)
    c = np.asarray(center, dtype=float)
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = c - r @ c + np.asarray(translation, dtype=float)
    return m


def random_rigid(rng: np.random.Generator, angle_deg: float, distance_mm: float,
                 center=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Rotation by exactly ``angle_deg`` about a random axis through ``center``, then a
    translation of exactly ``distance_mm`` in a random direction (paper, "Data augmentation")."""
    axis = rng.normal(size=3)
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    return rigid_matrix(rotation_about_axis(axis, angle_deg), distance_mm * direction, center)


# ---------------------------------------------------------------- 6 parameters

def _euler_zyx(angles_deg) -> np.ndarray:
    ax, ay, az = np.deg2rad(np.asarray(angles_deg, dtype=float))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def matrix_from_parameters(parameters, center=(0.0, 0.0, 0.0)) -> np.ndarray:
    """4x4 matrix from the six parameters (order and units: ``PARAMETER_NAMES``)."""
    p = np.asarray(parameters, dtype=float)
    if p.shape != (6,):
        raise HeadRegError(f"expected 6 rigid parameters, got shape {p.shape}")
    return rigid_matrix(_euler_zyx(p[:3]), p[3:], center)


def parameters_from_matrix(matrix, center=(0.0, 0.0, 0.0)) -> np.ndarray:
    """The six parameters of a rigid 4x4 matrix about ``center`` (inverse of
    ``matrix_from_parameters``; angle_y in [-90, 90], the others in (-180, 180])."""
    m = as_matrix(matrix)
    if not is_rigid(m, 1e-4):
        raise HeadRegError("matrix is not a rigid transform (rotation + translation)")
    r = m[:3, :3]
    ay = np.arcsin(np.clip(-r[2, 0], -1.0, 1.0))
    if abs(r[2, 0]) < 1 - 1e-9:
        ax = np.arctan2(r[2, 1], r[2, 2])
        az = np.arctan2(r[1, 0], r[0, 0])
    else:  # gimbal lock: only angle_z - angle_x (or +) is defined; put it all in angle_z
        ax = 0.0
        az = np.arctan2(-r[0, 1], r[1, 1])
    c = np.asarray(center, dtype=float)
    translation = m[:3, 3] - c + r @ c
    return np.concatenate([np.rad2deg([ax, ay, az]), translation])


# ---------------------------------------------------------------- SimpleITK

def sitk_from_matrix(matrix, center=None) -> sitk.Transform:
    """SimpleITK transform of a 4x4 matrix: ``Euler3DTransform`` when rigid, else
    ``AffineTransform``. ``center`` only changes how the file spells it, not the mapping."""
    m = as_matrix(matrix)
    c = np.zeros(3) if center is None else np.asarray(center, dtype=float)
    if is_rigid(m):
        transform = sitk.Euler3DTransform()
        transform.SetComputeZYX(True)
    else:
        transform = sitk.AffineTransform(3)
    transform.SetCenter(c.tolist())
    transform.SetMatrix(m[:3, :3].ravel().tolist())
    transform.SetTranslation((m[:3, 3] - c + m[:3, :3] @ c).tolist())
    return transform


def matrix_from_sitk(transform: sitk.Transform) -> np.ndarray:
    """4x4 matrix of any linear SimpleITK transform (also composites of linear ones),
    measured by mapping points; raises ``HeadRegError`` if the transform is not linear."""
    if not transform.IsLinear():
        raise HeadRegError(f"{transform.GetName()} is not a linear transform")
    basis = np.vstack([np.zeros(3), np.eye(3)])
    mapped = np.array([transform.TransformPoint(tuple(p)) for p in basis])
    m = np.eye(4)
    m[:3, 3] = mapped[0]
    m[:3, :3] = (mapped[1:] - mapped[0]).T
    return m


# ---------------------------------------------------------------- Slicer

def slicer_to_parent_ras(matrix) -> np.ndarray:
    """Slicer's ToParent matrix (RAS) for the node that carries the moving volume:
    ``D @ inv(T) @ D``."""
    return LPS_TO_RAS @ invert(matrix) @ LPS_TO_RAS


def matrix_from_slicer_to_parent_ras(to_parent_ras) -> np.ndarray:
    """Inverse of ``slicer_to_parent_ras``: the fixed-to-moving LPS matrix ``T``."""
    return invert(LPS_TO_RAS @ as_matrix(to_parent_ras) @ LPS_TO_RAS)


# ---------------------------------------------------------------- error measures

def rotation_error_deg(matrix_a, matrix_b) -> float:
    """Angle in degrees of the rotation that takes the rotation part of B onto that of A."""
    ra, rb = as_matrix(matrix_a)[:3, :3], as_matrix(matrix_b)[:3, :3]
    cos_angle = (np.trace(ra.T @ rb) - 1.0) / 2.0
    return float(np.rad2deg(np.arccos(np.clip(cos_angle, -1.0, 1.0))))


def translation_error_mm(matrix_a, matrix_b, at) -> float:
    """Distance between where A and B map the point ``at`` (e.g. the fixed image centre);
    a translation error that, unlike comparing matrix columns, does not depend on the origin."""
    return float(target_registration_errors(matrix_a, matrix_b, np.reshape(at, (1, 3)))[0])


def target_registration_errors(matrix_a, matrix_b, points) -> np.ndarray:
    """Per point distance in mm between where A and B map each of the (N, 3) points."""
    return np.linalg.norm(transform_points(matrix_a, points) - transform_points(matrix_b, points), axis=1)


def physical_points(image: sitk.Image, mask=None) -> np.ndarray:
    """LPS coordinates (N, 3) of the voxel centres of ``image`` where ``mask`` (a numpy
    array in SimpleITK's z, y, x order, or None for all voxels) is true."""
    if mask is None:
        mask = np.ones(image.GetSize()[::-1], dtype=bool)
    index_zyx = np.argwhere(mask)
    index_xyz = index_zyx[:, ::-1].astype(float)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    return (index_xyz * np.array(image.GetSpacing())) @ direction.T + np.array(image.GetOrigin())


def grid_center(image: sitk.Image) -> np.ndarray:
    """Physical centre (LPS mm) of an image's voxel grid."""
    return np.array(image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in image.GetSize()]))


def mean_displacement_in_mask(matrix_a, matrix_b, mask: sitk.Image, max_points: int = 50000,
                              seed: int = 0) -> float:
    """Mean distance in mm between A and B over the voxels of a binary ``mask`` image
    (a head region of the fixed image): the TRE over the head. At most ``max_points``
    voxels, drawn at random with ``seed``, are used."""
    points = physical_points(mask, sitk.GetArrayViewFromImage(mask) > 0)
    if len(points) == 0:
        raise HeadRegError("the mask is empty")
    if len(points) > max_points:
        points = points[np.random.default_rng(seed).choice(len(points), max_points, replace=False)]
    return float(target_registration_errors(matrix_a, matrix_b, points).mean())


def moved_header(image: sitk.Image, motion) -> sitk.Image:
    """``image`` with the same voxels, its origin and direction carried by the rigid
    ``motion`` (each voxel's point p goes to motion(p)): the volume given in another
    orientation. If ``T`` mapped fixed points to ``image``'s, ``motion @ T`` maps them to the copy's."""
    moved = sitk.Image(image)
    motion = as_matrix(motion)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    moved.SetDirection((motion[:3, :3] @ direction).ravel().tolist())
    moved.SetOrigin(transform_points(motion, np.array(image.GetOrigin())[None])[0].tolist())
    return moved
