"""QA pictures: the fixed image with the registered moving image over it, in three planes.

Each plane is resampled directly from both volumes onto a 2D grid through a chosen
centre (radiological display: the patient's right on the left of the picture), so the
picture shows physical space whatever the images' own orientation.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from . import geometry
from .files import write_atomically

PLANES = {  # name: (picture column direction, picture row direction), LPS
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),
}


def plane_slice(image: sitk.Image, center, plane: str, transform=None, field_mm: float = 240.0,
                pixel_mm: float = 1.0, default: float = 0.0) -> np.ndarray:
    """A 2D array of ``image`` on the ``plane`` through ``center`` (LPS mm); ``transform``
    (4x4, picture point -> image point) carries a moving image onto the fixed one."""
    column, row = (np.array(v) for v in PLANES[plane])
    normal = np.cross(column, row)
    n = int(round(field_mm / pixel_mm))
    origin = np.asarray(center, dtype=float) - (column + row) * (n - 1) * pixel_mm / 2
    reference = sitk.Image(n, n, 1, sitk.sitkFloat32)
    reference.SetSpacing((pixel_mm, pixel_mm, pixel_mm))
    reference.SetOrigin(origin.tolist())
    reference.SetDirection(np.column_stack([column, row, normal]).ravel().tolist())
    resampler = sitk.Transform() if transform is None else geometry.sitk_from_matrix(transform)
    picture = sitk.Resample(sitk.Cast(image, sitk.sitkFloat32), reference, resampler, sitk.sitkLinear,
                            default, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(picture)[0]


def _window(values: np.ndarray) -> np.ndarray:
    """Scale to 0..1 between the 1st and 99th percentile of the non-background pixels."""
    inside = values[values > values.min()]
    low, high = np.percentile(inside, [1, 99]) if inside.size else (0.0, 1.0)
    return np.clip((values - low) / max(high - low, 1e-6), 0, 1)


def _figure_and_axes():
    """A figure of two rows of three planes, drawn off screen (a matplotlib Figure, not
    pyplot: no backend is chosen and nothing global changes)."""
    from matplotlib.figure import Figure   # only pictures need matplotlib

    figure = Figure(figsize=(11, 7.6))
    return figure, figure.subplots(2, 3)


def overlay_figure(fixed: sitk.Image, moving: sitk.Image, fixed_to_moving, path, title: str = "",
                   center=None, tile_mm: float = 20.0):
    """Write a PNG: top row, the fixed image in grey with the moving image (through
    ``fixed_to_moving``) in colour; bottom row, a checkerboard of the two."""
    if center is None:
        center = geometry.grid_center(fixed)
    figure, axes = _figure_and_axes()
    for column, plane in enumerate(PLANES):
        fixed_slice = _window(plane_slice(fixed, center, plane, default=-1e9))
        moving_raw = plane_slice(moving, center, plane, fixed_to_moving, default=-1e9)
        moving_slice = _window(moving_raw)
        axes[0, column].imshow(fixed_slice, cmap="gray")
        axes[0, column].imshow(np.ma.masked_where(moving_raw <= -1e9, moving_slice), cmap="magma", alpha=0.45)
        tiles = ((np.indices(fixed_slice.shape) // int(tile_mm)).sum(axis=0) % 2).astype(bool)
        axes[1, column].imshow(np.where(tiles, moving_slice, fixed_slice), cmap="gray")
        axes[0, column].set_title(plane)
        for ax in axes[:, column]:
            ax.set_axis_off()
    figure.suptitle(title or "fixed (grey) with moving (colour) / checkerboard", fontsize=10)
    figure.tight_layout()
    write_atomically(path, lambda p: figure.savefig(p, dpi=80, format="png"))


def bone_edge_figure(mr: sitk.Image, ct: sitk.Image, path, fixed_to_moving=None, title: str = "",
                     center=None, bone_hu: float = 250.0):
    """Write a PNG of a CT/MR pair: top row the MR in grey with the CT's bone edges
    (``bone_hu`` contour) in red, bottom row the CT alone (window -200..1500 HU)."""
    if center is None:
        center = geometry.grid_center(mr)
    figure, axes = _figure_and_axes()
    for column, plane in enumerate(PLANES):
        mr_slice = plane_slice(mr, center, plane, default=-1e9)
        ct_slice = plane_slice(ct, center, plane, fixed_to_moving, default=-1000.0)
        axes[0, column].imshow(_window(mr_slice), cmap="gray")
        if (ct_slice > bone_hu).any():
            axes[0, column].contour(ct_slice, levels=[bone_hu], colors="red", linewidths=0.6)
        axes[1, column].imshow(np.clip((ct_slice + 200.0) / 1700.0, 0, 1), cmap="gray")
        axes[0, column].set_title(plane)
        for ax in axes[:, column]:
            ax.set_axis_off()
    figure.suptitle(title or f"MR with CT bone edges ({bone_hu:.0f} HU) / CT", fontsize=10)
    figure.tight_layout()
    write_atomically(path, lambda p: figure.savefig(p, dpi=80, format="png"))
