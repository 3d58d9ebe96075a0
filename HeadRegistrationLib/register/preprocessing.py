"""Preprocessing for the network (paper: "Registration of multi-modal images", input layer).

Both volumes are resampled onto one network grid: a cube of ``size`` voxels of ``spacing``
mm on the patient's axes (LPS), centred on the fixed head; its centre
(``geometry.grid_center``) is the rotation centre of the six parameters. On that shared grid the two
heads keep their physical relation, so the six parameters the network regresses are those
of the fixed -> moving transform about the grid centre (``geometry.PARAMETER_NAMES``).
Intensities are normalised per modality to a range of about 0..3.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..core import geometry
from ..core.errors import HeadRegError

DEFAULT_GRID_SIZE = (64, 64, 64)     # x, y, z voxels
DEFAULT_GRID_SPACING_MM = 4.0        # 256 mm field of view: the whole head with room to move
WORKING_VOXELS = 2 ** 26             # larger inputs are registered on an averaged-down copy


def network_grid(center, size=DEFAULT_GRID_SIZE, spacing_mm: float = DEFAULT_GRID_SPACING_MM) -> sitk.Image:
    """An empty float32 image on the patient's axes whose voxel grid is centred on ``center``."""
    size = [int(n) for n in size]
    if len(size) != 3 or min(size) < 4 or not spacing_mm > 0:
        raise HeadRegError(f"a network grid needs 3 sizes of at least 4 voxels and a positive spacing, got "
                           f"{size} at {spacing_mm} mm")
    grid = sitk.Image(size, sitk.sitkFloat32)
    grid.SetSpacing([float(spacing_mm)] * 3)
    grid.SetOrigin((np.asarray(center, dtype=float) - (np.array(size) - 1) / 2 * spacing_mm).tolist())
    return grid


def working_copy(image: sitk.Image, max_voxels: int = WORKING_VOXELS) -> tuple[sitk.Image, list[int]]:
    """``image`` averaged down (``sitk.BinShrink``, same physical space) by integer factors
    along its finest axes until it has at most ``max_voxels`` voxels, and the factors
    (all 1: the image itself)."""
    factors = [1, 1, 1]
    size, spacing = np.array(image.GetSize()), np.array(image.GetSpacing())
    while np.prod(size // factors, dtype=float) > max_voxels:
        candidates = [a for a in range(3) if size[a] // (factors[a] + 1) >= 2]
        if not candidates:
            break
        factors[min(candidates, key=lambda a: spacing[a] * factors[a])] += 1
    return (image if factors == [1, 1, 1] else sitk.BinShrink(image, factors)), factors


PADDING_MIN_FRACTION = 0.005   # of the voxels at the minimum, for it to be a padding value
PADDING_MIN_GAP = 0.2          # of the other voxels' range, between the padding and the lowest of them


def without_padding(image: sitk.Image) -> tuple[sitk.Image, str]:
    """``image`` with its padding value, if it has one, replaced by its lowest real value,
    and what was done, in words ("": nothing, the image itself).

    CT scanners store what lies outside the reconstruction circle as one value far below
    air: -3024 or -2048 HU. Left in, it is the image's darkest "tissue": the Otsu head mask
    takes the circle for the head and resampling fills with it. It is recognised as a
    value held by many voxels (``PADDING_MIN_FRACTION``) that lies below all the others by
    a gap of at least ``PADDING_MIN_GAP`` of their range; an MR's zero background or a CT's
    clipped -1024 lies next to the values above it and is kept."""
    values = sitk.GetArrayViewFromImage(image)
    low = values.min()
    padded = values == low
    fraction = float(padded.mean())
    if fraction < PADDING_MIN_FRACTION or fraction == 1.0:
        return image, ""
    rest = values[~padded]
    floor, top = np.percentile(rest[:: max(1, rest.size // 1_000_000)], [0.01, 99.99])
    if not floor - float(low) > PADDING_MIN_GAP * (top - floor):
        return image, ""
    cleaned = sitk.GetImageFromArray(np.where(padded, np.asarray(floor, values.dtype), values))
    cleaned.CopyInformation(image)
    return cleaned, (f"{fraction:.0%} of the voxels hold the padding value {low:g} (outside the scanned field): "
                     "taken as air")


def crop_to_head(image: sitk.Image, head_mask: sitk.Image, margin_mm: float) -> sitk.Image:
    """The part of ``image`` (same voxels and physical space) that covers the head mask's
    bounding box grown by ``margin_mm``: registration work on the air around a head is wasted."""
    statistics = sitk.LabelShapeStatisticsImageFilter()
    statistics.Execute(sitk.Cast(head_mask > 0, sitk.sitkUInt8))
    if not statistics.HasLabel(1):
        return image
    box = np.array(statistics.GetBoundingBox(1), dtype=float)
    margin = margin_mm / np.array(head_mask.GetSpacing())
    low, high = box[:3] - 0.5 - margin, box[:3] + box[3:] - 0.5 + margin
    corners = [head_mask.TransformContinuousIndexToPhysicalPoint([(low, high)[(k >> a) & 1][a] for a in range(3)])
               for k in range(8)]
    indices = np.array([image.TransformPhysicalPointToContinuousIndex(c) for c in corners])
    start = np.clip(np.floor(indices.min(axis=0)).astype(int), 0, np.array(image.GetSize()) - 1)
    stop = np.clip(np.ceil(indices.max(axis=0)).astype(int) + 1, start + 1, np.array(image.GetSize()))
    return sitk.RegionOfInterest(image, (stop - start).tolist(), start.tolist())


def normalise_ct(hu: np.ndarray) -> np.ndarray:
    """Hounsfield units to network input: air 0, water 1, dense bone 3 (clipped)."""
    return np.clip((hu.astype(np.float32) + 1000.0) / 1000.0, 0.0, 3.0)


def normalise_mr(signal: np.ndarray) -> np.ndarray:
    """MR signal to network input: divided by the 99th percentile of the voxels above
    the mean (the head), clipped at 3."""
    values = signal.astype(np.float32)
    head = values[values > values.mean()]
    scale = float(np.percentile(head, 99)) if head.size else 0.0
    if not scale > 0:
        raise HeadRegError("the MR is empty on the network grid")
    return np.clip(values / scale, 0.0, 3.0)


def on_grid(image: sitk.Image, grid: sitk.Image, grid_to_image=None, background: float | None = None) -> np.ndarray:
    """``image`` sampled (linear) on ``grid`` through ``grid_to_image`` (4x4, grid points ->
    image points; identity when None), as a z, y, x float32 array. Outside the image:
    ``background`` (the image minimum when None)."""
    if background is None:
        background = float(sitk.GetArrayViewFromImage(image).min())
    transform = sitk.Transform() if grid_to_image is None else geometry.sitk_from_matrix(grid_to_image)
    return sitk.GetArrayFromImage(sitk.Resample(sitk.Cast(image, sitk.sitkFloat32), grid, transform,
                                                sitk.sitkLinear, background, sitk.sitkFloat32))
