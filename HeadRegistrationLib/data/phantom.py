"""Digital head phantom: the project's embedded default data.

A procedural head (scalp, fat, skull with diploe, CSF, grey and white matter with
sulci, ventricles, cerebellum, brainstem and spine, eyes and orbits, nose, nasal
cavity and sinuses, teeth and jaw) is painted as a label map on a 1 mm grid in the
MR's physical space, then rendered

* as a CT in Hounsfield units on a clinical grid (default like RIRE: 512x512x29 at
  0.65x0.65x4 mm), with the head holder and table under the head, partial volume
  (thick slices are the average of 1 mm sub-slices) and correlated noise, and
* as an MR T1 (default 256x256x26 at 1.25x1.25x4 mm) with a smooth bias field and
  Rician noise,

with a known rigid misalignment ``truth`` (fixed = MR to moving = CT, DESIGN.md).
The seed drives the subject (head size, skull thickness, ventricles, folding), the
misalignment and the noise. Left/right is near-symmetric (only the folding differs);
front/back (face, cerebellum) and top/bottom (vertex, neck) are clearly not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import SimpleITK as sitk

import os
from pathlib import Path

from ..core import geometry, transform_io
from ..core.files import write_image
from . import synthesis, tissues
from ..core.errors import HeadRegError

LABEL = {name: value[0] for name, value in tissues.PHANTOM_TISSUES.items()}
BONE_LABELS = (LABEL["cortical_bone"], LABEL["diploe"], LABEL["teeth"])

CT_GRID = {"size": (512, 512, 29), "spacing": (0.653595, 0.653595, 4.0)}   # RIRE CT
MR_GRID = {"size": (256, 256, 26), "spacing": (1.25, 1.25, 4.0)}           # RIRE MR T1
WHOLE_HEAD_GRIDS = {"ct_grid": {"size": (512, 512, 48), "spacing": (0.5, 0.5, 5.0)},   # grids that hold the
                    "mr_grid": {"size": (256, 256, 120), "spacing": (1.0, 1.0, 2.0)}}  # head at any turn

STAGES = ("anatomy", "CT", "MR")
_ANATOMY_BOUNDS = ((-92.0, 92.0), (-128.0, 104.0), (-175.0, 112.0))  # mm around the head centre


@dataclass
class PhantomPair:
    mr: sitk.Image          # fixed, T1, int16
    ct: sitk.Image          # moving, Hounsfield units, int16
    truth: np.ndarray       # 4x4 fixed (MR) -> moving (CT), LPS mm
    mr_labels: sitk.Image   # tissue labels on the MR grid (tissues.PHANTOM_TISSUES)
    ct_labels: sitk.Image   # tissue labels on the CT grid (0 also for the table)
    rotation_center: np.ndarray  # centre of the MR grid, mm: where the misalignment turns


# ---------------------------------------------------------------- anatomy

class _Painter:
    """Paints shapes given in head coordinates (mm, LPS, origin at the head centre) into
    a label volume, each shape evaluated only inside its bounding box."""

    def __init__(self, spacing: float, scale):
        (x0, x1), (y0, y1), (z0, z1) = _ANATOMY_BOUNDS
        self.axes = [np.arange(lo, hi + spacing / 2, spacing, dtype=np.float32) for lo, hi in
                     ((x0, x1), (y0, y1), (z0, z1))]
        self.scale = np.asarray(scale, dtype=np.float32)  # subject size, per axis
        self.labels = np.zeros([len(a) for a in self.axes[::-1]], dtype=np.uint8)  # z, y, x
        self.box = (slice(None),) * 3  # the box being painted, for at()

    def _box(self, lo, hi):
        slices, coords = [], []
        for axis, a, b, s in zip(self.axes, lo, hi, self.scale):
            i0, i1 = np.searchsorted(axis, [a * s, b * s])
            slices.append(slice(i0, i1))
            coords.append(axis[i0:i1] / s)
        x, y, z = coords
        return tuple(slices[::-1]), (x[None, None, :], y[None, :, None], z[:, None, None])

    def paint(self, label: str, lo, hi, inside: Callable):
        """Set ``label`` where ``inside(x, y, z)`` holds, inside the box ``lo``..``hi``."""
        box, (x, y, z) = self._box(lo, hi)
        self.box = box
        region = self.labels[box]
        mask = np.broadcast_to(inside(x, y, z), region.shape)
        region[mask] = LABEL[label]

    def at(self, values: np.ndarray) -> np.ndarray:
        """``values`` (a full-grid array) inside the box being painted."""
        return values[self.box]

    def ellipsoid(self, label, center, semi_axes, where: Callable | None = None):
        c, a = np.asarray(center, float), np.asarray(semi_axes, float)
        if np.any(a <= 0):
            return

        def inside(x, y, z):
            mask = ((x - c[0]) / a[0]) ** 2 + ((y - c[1]) / a[1]) ** 2 + ((z - c[2]) / a[2]) ** 2 <= 1
            return mask & where(x, y, z) if where else mask

        self.paint(label, c - a, c + a, inside)

    def cylinder_z(self, label, center_xy, semi_axes_xy, z_range, where: Callable | None = None):
        c, a = np.asarray(center_xy, float), np.asarray(semi_axes_xy, float)

        def inside(x, y, z):
            mask = (((x - c[0]) / a[0]) ** 2 + ((y - c[1]) / a[1]) ** 2 <= 1) & (z >= z_range[0]) & (z <= z_range[1])
            return mask & where(x, y, z) if where else mask

        self.paint(label, (*(c - a), z_range[0]), (*(c + a), z_range[1]), inside)


def _smooth_noise(shape_zyx, spacing, rng, correlation_mm: float) -> np.ndarray:
    """A smooth random field with zero mean and unit standard deviation on the anatomy grid."""
    coarse_shape = [max(2, int(np.ceil(n * spacing / correlation_mm)) + 2) for n in shape_zyx]
    coarse = sitk.GetImageFromArray(rng.standard_normal(coarse_shape).astype(np.float32))
    coarse.SetSpacing([correlation_mm] * 3)
    coarse = sitk.SmoothingRecursiveGaussian(coarse, correlation_mm * 0.7)
    fine = sitk.Image(list(shape_zyx[::-1]), sitk.sitkFloat32)
    fine.SetSpacing([spacing] * 3)
    field = sitk.GetArrayFromImage(sitk.Resample(coarse, fine, sitk.Transform(), sitk.sitkLinear))
    return (field - field.mean()) / (field.std() + 1e-12)


def paint_head(seed: int = 0, spacing: float = 1.0) -> sitk.Image:
    """Label map of a procedural head in head coordinates (origin at the head centre,
    LPS mm). ``seed`` varies size, skull thickness, ventricles and folding."""
    rng = np.random.default_rng([seed, 1])
    scale = 1.0 + 0.04 * np.clip(rng.standard_normal(3), -2, 2)
    skull = 1.0 + 0.15 * np.clip(rng.standard_normal(), -2, 2)       # skull thickness factor
    ventricle = 1.0 + 0.2 * np.clip(rng.standard_normal(), -1.5, 2)  # ventricle size factor
    p = _Painter(spacing, scale)
    folding = _smooth_noise(p.labels.shape, spacing, rng, 9.0)
    boundary = _smooth_noise(p.labels.shape, spacing, rng, 14.0)

    # Outer shapes of the head: cranium, face, neck, nose and ears.
    cranium_c, cranium_a = np.array([0.0, 5.0, 10.0]), np.array([76.0, 96.0, 90.0])
    face_c, face_a = np.array([0.0, -22.0, -48.0]), np.array([62.0, 74.0, 62.0])
    neck_c, neck_a = np.array([0.0, 15.0]), np.array([52.0, 56.0])
    neck_z = (-175.0, -60.0)

    def head_layer(label, inset):
        p.ellipsoid(label, cranium_c, cranium_a - inset)
        p.ellipsoid(label, face_c, face_a - inset)
        p.cylinder_z(label, neck_c, neck_a - inset, neck_z)

    for side in (-1, 1):
        p.ellipsoid("skin", (side * 74.0, 12.0, -22.0), (9.0, 15.0, 27.0))  # ears
    p.ellipsoid("skin", (0.0, -96.0, -50.0), (11.0, 17.0, 25.0))              # nose
    p.ellipsoid("cartilage", (0.0, -96.0, -50.0), (8.0, 14.0, 22.0))
    for side in (-1, 1):
        p.ellipsoid("air", (side * 6.0, -100.0, -70.0), (3.5, 8.0, 5.0))      # nostrils
    head_layer("skin", 0.0)
    head_layer("fat", 2.0)
    head_layer("muscle", 5.0)

    # Skull base: the floor of the cranial cavity steps down from the anterior fossa
    # (above the orbits) through the middle fossa to the posterior fossa.
    def base_height(y):
        return -10.0 - 50.0 / (1.0 + np.exp(-(y + 10.0) / 12.0))

    def above(offset):
        return lambda x, y, z: z > base_height(y) + offset

    t = skull
    p.ellipsoid("cortical_bone", cranium_c, cranium_a - 5.0, above(-8.0 * t))
    p.ellipsoid("diploe", cranium_c, cranium_a - 5.0 - 1.8 * t, above(-6.0 * t))
    p.ellipsoid("cortical_bone", cranium_c, cranium_a - 5.0 - 4.5 * t, above(-2.0 * t))
    cavity_a = cranium_a - 5.0 - 6.5 * t
    p.ellipsoid("csf", cranium_c, cavity_a, above(0.0))
    # Facial skeleton (front half) and jaw.
    p.ellipsoid("cortical_bone", face_c, face_a - 9.0, lambda x, y, z: (y < -20) & (z < base_height(y) - 4))
    p.ellipsoid("muscle", face_c, face_a - 15.0, lambda x, y, z: (y < -20) & (z < base_height(y) - 10))
    p.ellipsoid("cortical_bone", (0.0, -35.0, -98.0), (50.0, 56.0, 16.0), lambda x, y, z: (y < 5) & (z < -94))
    p.ellipsoid("muscle", (0.0, -35.0, -98.0), (43.0, 49.0, 10.0), lambda x, y, z: (y < 5) & (z < -94))
    p.ellipsoid("teeth", (0.0, -48.0, -84.0), (29.0, 38.0, 7.0),
                lambda x, y, z: (y < -42) & ((x / 22.0) ** 2 + ((y + 48.0) / 31.0) ** 2 > 1))
    p.ellipsoid("air", (0.0, -55.0, -91.0), (20.0, 26.0, 3.0))               # oral cavity
    # Nasal cavity with septum, maxillary and sphenoid sinuses.
    p.ellipsoid("sinus_air", (0.0, -68.0, -50.0), (12.0, 26.0, 20.0), lambda x, y, z: np.abs(x) > 1.2)
    p.ellipsoid("cartilage", (0.0, -68.0, -50.0), (1.2, 26.0, 20.0))
    for side in (-1, 1):
        p.ellipsoid("sinus_air", (side * 30.0, -52.0, -55.0), (13.0, 16.0, 15.0))
    p.ellipsoid("sinus_air", (0.0, -22.0, -33.0), (11.0, 10.0, 8.0))
    # Orbits and eyes.
    for side in (-1, 1):
        p.ellipsoid("cortical_bone", (side * 32.0, -58.0, -26.0), (19.0, 27.0, 18.0))
        p.ellipsoid("orbital_fat", (side * 32.0, -60.0, -26.0), (16.0, 24.0, 15.0))
        p.ellipsoid("eye", (side * 32.0, -72.0, -26.0), (12.0, 12.0, 12.0))
        p.ellipsoid("lens", (side * 32.0, -83.0, -26.0), (4.5, 2.0, 4.5))
    # Spine: vertebral bodies in front, the canal with the cord behind.
    below_base = lambda x, y, z: z < base_height(y) - 8.0  # noqa: E731
    p.cylinder_z("cortical_bone", (0.0, 8.0), (14.0, 12.0), (-175.0, -75.0))
    p.cylinder_z("diploe", (0.0, 8.0), (11.0, 9.0), (-175.0, -78.0))
    p.cylinder_z("cortical_bone", (0.0, 32.0), (17.0, 17.0), (-175.0, -50.0), below_base)
    p.cylinder_z("csf", (0.0, 32.0), (10.0, 10.0), (-175.0, -40.0))
    p.cylinder_z("white_matter", (0.0, 32.0), (7.0, 7.0), (-175.0, -40.0))

    # Brain: cerebrum above the tentorium, cerebellum below it, brainstem.
    def in_cavity(inset):  # inside the cranial cavity, at least ``inset`` mm (scalar or field) deep
        def inside(x, y, z):
            (ax, ay, az), (cx, cy, cz) = [cavity_a[i] - inset for i in range(3)], cranium_c
            inside_ellipsoid = ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 + ((z - cz) / az) ** 2 <= 1
            return inside_ellipsoid & (z > base_height(y) + inset)
        return inside

    p.paint("grey_matter", cranium_c - cavity_a, cranium_c + cavity_a,
            lambda x, y, z: in_cavity(2.5)(x, y, z) & ((y < 15) | (z > -20.0)))
    p.paint("white_matter", cranium_c - cavity_a, cranium_c + cavity_a,
            lambda x, y, z: in_cavity(6.0 + 2.5 * p.at(boundary))(x, y, z) & ((y < 15) | (z > -16.0)))
    # Sulci: zero-crossing sheets of a smooth random field, within 16 mm of the brain
    # surface, lined with grey matter; and the interhemispheric fissure.
    def sulcus(width):
        return lambda x, y, z: (in_cavity(2.5)(x, y, z) & ~in_cavity(18.0)(x, y, z) & ((y < 15) | (z > -20.0))
                                & (np.abs(p.at(folding)) < width))

    p.paint("grey_matter", cranium_c - cavity_a, cranium_c + cavity_a, sulcus(0.3))
    p.paint("csf", cranium_c - cavity_a, cranium_c + cavity_a, sulcus(0.1))
    p.paint("csf", (-1.0, -100.0, -10.0), (1.0, 100.0, 110.0),
            lambda x, y, z: in_cavity(0.0)(x, y, z) & (z > 30.0 - 0.012 * y * y))
    p.ellipsoid("csf", (0.0, 50.0, -42.0), (50.0, 30.0, 22.0), in_cavity(0.0))
    p.ellipsoid("grey_matter", (0.0, 50.0, -42.0), (48.0, 28.0, 20.0), in_cavity(1.5))
    p.ellipsoid("white_matter", (0.0, 46.0, -40.0), (26.0, 12.0, 9.0))
    p.cylinder_z("white_matter", (0.0, 22.0), (11.0, 12.0), (-75.0, 0.0))
    # Ventricles: lateral (frontal and occipital horns), third and fourth.
    v = ventricle
    for side in (-1, 1):
        p.ellipsoid("csf", (side * 10.0, -4.0, 18.0), (5.5 * v, 26.0, 8.0 * v))
        p.ellipsoid("csf", (side * 19.0, 26.0, 10.0), (4.5 * v, 14.0, 6.0 * v))
    p.ellipsoid("csf", (0.0, 4.0, 0.0), (2.0 * v, 12.0, 8.0))
    p.ellipsoid("csf", (0.0, 38.0, -40.0), (6.0, 5.0 * v, 5.0))

    image = sitk.GetImageFromArray(p.labels)
    image.SetSpacing([spacing] * 3)
    image.SetOrigin([float(axis[0]) for axis in p.axes])
    return image


# ---------------------------------------------------------------- rendering

def clinical_grid(size, spacing, origin=(0.0, 0.0, 0.0)) -> sitk.Image:
    """An empty image with the geometry of a scan (identity direction; by default the
    origin at the first voxel centre, as in RIRE)."""
    grid = sitk.Image([int(n) for n in size], sitk.sitkUInt8)
    grid.SetSpacing([float(s) for s in spacing])
    grid.SetOrigin([float(o) for o in origin])
    return grid


def _property_map(labels: sitk.Image, shown_as: str) -> sitk.Image:
    """What a scanner shows of each tissue (``tissues.phantom_value``) at the labels."""
    lookup = np.zeros(256, dtype=np.float32)
    for name, (label, *_) in tissues.PHANTOM_TISSUES.items():
        lookup[label] = tissues.phantom_value(name, shown_as)
    image = sitk.GetImageFromArray(lookup[sitk.GetArrayViewFromImage(labels)])
    image.CopyInformation(labels)
    return image


def _render_thick_slices(property_map: sitk.Image, grid: sitk.Image, grid_to_map: np.ndarray,
                         background: float, sub_slices: int) -> np.ndarray:
    """Sample ``property_map`` on ``grid`` (through ``grid_to_map``, a 4x4 matrix from grid
    points to map points) as thick slices: each slice is the mean of ``sub_slices`` thin
    ones spread over its thickness (partial volume). Returns a z, y, x float32 array."""
    spacing = np.array(grid.GetSpacing())
    fine = sitk.Image([grid.GetSize()[0], grid.GetSize()[1], grid.GetSize()[2] * sub_slices], sitk.sitkUInt8)
    fine.SetSpacing([spacing[0], spacing[1], spacing[2] / sub_slices])
    fine.SetDirection(grid.GetDirection())
    first = np.array(grid.TransformContinuousIndexToPhysicalPoint([0, 0, -0.5 + 0.5 / sub_slices]))
    fine.SetOrigin(first.tolist())
    sampled = sitk.Resample(property_map, fine, geometry.sitk_from_matrix(grid_to_map), sitk.sitkLinear,
                            background, sitk.sitkFloat32)
    array = sitk.GetArrayViewFromImage(sampled)
    return array.reshape(grid.GetSize()[2], sub_slices, *array.shape[1:]).mean(axis=1)


def _labels_on_grid(labels: sitk.Image, grid: sitk.Image, grid_to_map: np.ndarray) -> sitk.Image:
    return sitk.Resample(labels, grid, geometry.sitk_from_matrix(grid_to_map), sitk.sitkNearestNeighbor, 0,
                         sitk.sitkUInt8)


def _head_support(grid: sitk.Image, head_hu: np.ndarray, sub_pixels: int = 3) -> np.ndarray:
    """Hounsfield units of the head holder and table (``synthesis.head_rest_hu``), fixed to
    the CT scanner (posterior = +y), as a y, x array shared by all slices, with partial
    volume from ``sub_pixels`` squared samples per pixel; NaN where there is none."""
    size, spacing, origin = grid.GetSize(), np.array(grid.GetSpacing()), np.array(grid.GetOrigin())
    head = head_hu > -500
    columns = np.nonzero(head.any(axis=(0, 2)))[0]
    if len(columns) == 0:
        return np.full((size[1], size[0]), np.nan, dtype=np.float32)
    back = origin[1] + spacing[1] * columns.max()                     # the most posterior head point
    xs = np.nonzero(head.any(axis=(0, 1)))[0]
    middle = origin[0] + spacing[0] * (xs.min() + xs.max()) / 2
    offsets = (np.arange(sub_pixels) + 0.5) / sub_pixels - 0.5
    x = origin[0] + spacing[0] * (np.arange(size[0])[:, None] + offsets[None, :]).ravel()
    y = origin[1] + spacing[1] * (np.arange(size[1])[:, None] + offsets[None, :]).ravel()
    hu = synthesis.head_rest_hu(x[None, :], y[:, None], back, middle)
    # Average the sub-pixels (air where nothing is) and keep NaN where there is no support.
    support = ~np.isnan(hu)
    filled = np.where(support, hu, -1000.0)
    ny, nx = size[1], size[0]
    mean = filled.reshape(ny, sub_pixels, nx, sub_pixels).mean(axis=(1, 3))
    any_support = support.reshape(ny, sub_pixels, nx, sub_pixels).any(axis=(1, 3))
    return np.where(any_support, mean, np.nan).astype(np.float32)


def render_ct(labels: sitk.Image, grid: sitk.Image, grid_to_anatomy: np.ndarray, rng: np.random.Generator,
              noise_hu: float = 6.0) -> sitk.Image:
    """CT in Hounsfield units (int16) of the head ``labels`` on ``grid``, with the head
    holder and table, thick-slice partial volume and correlated noise."""
    hu = _render_thick_slices(_property_map(labels, "ct"), grid, grid_to_anatomy, -1000.0,
                              max(1, int(round(grid.GetSpacing()[2]))))
    support = _head_support(grid, hu)
    outside_head = hu < -990.0
    hu = np.where(outside_head & ~np.isnan(support)[None], support[None], hu)
    noise = sitk.GetImageFromArray(rng.standard_normal(hu.shape).astype(np.float32))
    noise.SetSpacing(grid.GetSpacing())
    noise = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(noise, [grid.GetSpacing()[0], grid.GetSpacing()[1], 0.01]))
    hu = hu + noise * (noise_hu / (noise.std() + 1e-12))
    ct = sitk.GetImageFromArray(np.clip(np.round(hu), -1024, 3071).astype(np.int16))
    ct.CopyInformation(grid)
    return ct


def render_mr(labels: sitk.Image, grid: sitk.Image, grid_to_anatomy: np.ndarray, rng: np.random.Generator,
              noise_fraction: float = 0.025, bias_strength: float = 0.2, white_matter: float = 700.0) -> sitk.Image:
    """MR T1 (int16) of the head ``labels`` on ``grid``: thick-slice partial volume, a smooth
    multiplicative bias field (within about +-``bias_strength``) and Rician noise (standard
    deviation ``noise_fraction`` of white matter)."""
    signal = _render_thick_slices(_property_map(labels, "t1"), grid, grid_to_anatomy, 0.0,
                                  max(1, int(round(grid.GetSpacing()[2]))))
    signal = signal * synthesis.bias_field(signal.shape, rng, bias_strength) * (
        white_matter / tissues.phantom_value("white_matter", "t1"))
    magnitude = synthesis.rician(signal, noise_fraction * white_matter, rng)
    mr = sitk.GetImageFromArray(np.clip(np.round(magnitude), 0, 32767).astype(np.int16))
    mr.CopyInformation(grid)
    return mr


def make_phantom_pair(seed: int = 0, rotation_deg: float | None = None, translation_mm: float | None = None,
                      ct_grid: dict = CT_GRID, mr_grid: dict = MR_GRID,
                      progress: Callable[[str], None] | None = None) -> PhantomPair:
    """A CT and an MR T1 of the same procedural head with a known misalignment.

    The CT is turned by ``rotation_deg`` about a random axis through the MR grid centre
    and moved by ``translation_mm`` in a random direction (both drawn from ``seed``).
    Left as None, the angle is drawn in [0, 15] degrees and the translation uniformly in
    +-5 mm per axis: the paper's augmentation range.
    """
    for name, value in (("rotation", rotation_deg), ("translation", translation_mm)):
        if value is not None and not np.isfinite(value):
            raise HeadRegError(f"{name} must be a finite number, got {value}")
    if translation_mm is not None and translation_mm < 0:
        raise HeadRegError(f"translation must be a distance (>= 0 mm), got {translation_mm}")
    report = progress or (lambda stage: None)
    rng_pose, rng_ct, rng_mr = (np.random.default_rng([seed, k]) for k in (2, 3, 4))

    mr_geometry = clinical_grid(**mr_grid)
    ct_geometry = clinical_grid(**ct_grid)
    mr_center, ct_center = geometry.grid_center(mr_geometry), geometry.grid_center(ct_geometry)
    # The head sits near the MR grid centre; the anatomy grid lives in MR space.
    head_center = mr_center + rng_pose.uniform(-5, 5, 3) + np.array([0.0, 0.0, -15.0])
    anatomy = paint_head(seed)
    anatomy.SetOrigin((np.array(anatomy.GetOrigin()) + head_center).tolist())
    report("anatomy")

    angle = rng_pose.uniform(0, 15) if rotation_deg is None else float(rotation_deg)
    axis = rng_pose.normal(size=3)
    if translation_mm is None:
        translation = rng_pose.uniform(-5, 5, 3)
    else:
        direction = rng_pose.normal(size=3)
        translation = translation_mm * direction / np.linalg.norm(direction)
    # Fixed (MR) -> moving (CT): turn about the MR centre, carry it to the CT centre, shift.
    truth = geometry.rigid_matrix(geometry.rotation_about_axis(axis, angle), ct_center - mr_center + translation,
                                  mr_center)

    ct_to_anatomy = geometry.invert(truth)
    ct = render_ct(anatomy, ct_geometry, ct_to_anatomy, rng_ct)
    ct_labels = _labels_on_grid(anatomy, ct_geometry, ct_to_anatomy)
    report("CT")
    mr = render_mr(anatomy, mr_geometry, np.eye(4), rng_mr)
    mr_labels = _labels_on_grid(anatomy, mr_geometry, np.eye(4))
    report("MR")
    return PhantomPair(mr, ct, truth, mr_labels, ct_labels, mr_center)


def bone_dice(ct: sitk.Image, mr_labels: sitk.Image, fixed_to_moving, bone_hu: float = 300.0) -> float:
    """Dice of the CT bone (above ``bone_hu``) resampled onto the MR grid through
    ``fixed_to_moving`` and the bone labels of the MR, where the CT covers the MR."""
    transform = geometry.sitk_from_matrix(fixed_to_moving)
    ct_on_mr = sitk.GetArrayFromImage(sitk.Resample(ct, mr_labels, transform, sitk.sitkLinear, -2000.0,
                                                    sitk.sitkFloat32))
    covered = ct_on_mr > -1500.0
    ct_bone = (ct_on_mr > bone_hu) & covered
    mr_bone = np.isin(sitk.GetArrayViewFromImage(mr_labels), BONE_LABELS) & covered
    total = ct_bone.sum() + mr_bone.sum()
    return float(2.0 * (ct_bone & mr_bone).sum() / total) if total else 0.0


PAIR_FILES = ("mr.nii.gz", "ct.nii.gz", "truth.tfm")
LABEL_FILES = ("mr_labels.nii.gz", "ct_labels.nii.gz")


def write_steps(labels: bool) -> int:
    """How many times ``write_phantom`` calls its ``progress``."""
    return len(STAGES) + len(PAIR_FILES) + (len(LABEL_FILES) if labels else 0)


def write_phantom(outdir: Path, seed: int, rotation: float | None, translation: float | None,
                  ct_grid: dict = CT_GRID, mr_grid: dict = MR_GRID, labels: bool = False, overwrite: bool = False,
                  progress: Callable[[str], None] | None = None) -> PhantomPair:
    """Generate a phantom pair and write mr.nii.gz, ct.nii.gz, truth.tfm (and with ``labels``
    the label maps) into ``outdir``; all files appear together, or none does."""
    outdir = Path(outdir)
    names = list(PAIR_FILES) + (list(LABEL_FILES) if labels else [])
    if outdir.exists() and not outdir.is_dir():
        raise HeadRegError(f"{outdir} exists and is not a folder")
    existing = [n for n in names if (outdir / n).exists()]
    if existing and not overwrite:
        raise HeadRegError(f"{outdir} already holds {', '.join(existing)} (use --overwrite to replace)")
    report = progress or (lambda stage: None)
    pair = make_phantom_pair(seed, rotation, translation, ct_grid, mr_grid, progress=report)
    outdir.mkdir(parents=True, exist_ok=True)
    staging = outdir / f".partial-{os.getpid()}"
    staging.mkdir(exist_ok=True)
    try:
        images = {"mr.nii.gz": pair.mr, "ct.nii.gz": pair.ct,
                  "mr_labels.nii.gz": pair.mr_labels, "ct_labels.nii.gz": pair.ct_labels}
        for name in names:
            if name == "truth.tfm":
                transform_io.write_transform(pair.truth, staging / name, center=pair.rotation_center)
            else:
                write_image(images[name], staging / name)
            report(f"wrote {name}")
        for name in names:
            os.replace(staging / name, outdir / name)
    finally:
        for leftover in staging.glob("*"):
            leftover.unlink()
        staging.rmdir()
    return pair
