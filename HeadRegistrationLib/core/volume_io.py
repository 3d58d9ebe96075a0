"""Reading volumes (any file SimpleITK reads, or a DICOM folder), describing and checking them.

Physical space is LPS in millimetres (DESIGN.md). Every bad input raises
:class:`~HeadRegistrationLib.core.errors.HeadRegError` with a one-line message that
names the path; nothing on disk is ever modified.
"""

from __future__ import annotations

import gzip
import logging
import math
import os
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import HeadRegError, one_line

logger = logging.getLogger(__name__)

_TAG_SERIES_UID = "0020|000e"
_TAG_POSITION = "0020|0032"      # ImagePositionPatient
_TAG_ORIENTATION = "0020|0037"   # ImageOrientationPatient
_SPACING_TOLERANCE = 0.01        # relative spread of slice gaps still called uniform
MAX_VOXELS = 2 ** 30             # larger volumes are refused before their pixels are read
MIN_SLICES = 8                   # fewer voxels along an axis leave the pipeline's smoothing nothing to work on
MIN_DISTINCT_VALUES = 16         # fewer distinct values: a label map or a mask, not a scan
_SHEAR_TOLERANCE = 1e-4          # direction columns further from orthonormal are a sheared grid


def _reason(exc: Exception) -> str:
    """The one-line reason of a SimpleITK / ITK reading error."""
    text = one_line(exc)
    if "not read completely" in text or "expected" in text and "bytes" in text:
        return f"the file is truncated or corrupt ({text[:200]})"
    return text


def _holds_dicom(folder: str) -> bool:
    """Whether ``folder`` holds a DICOM Part 10 file (the "DICM" marker after the
    128-byte preamble): GDCM is asked only about such folders, so that it has no
    "No Series were found" warning to print (ITK can silence it only globally)."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return False
    for name in names:
        try:
            with open(os.path.join(folder, name), "rb") as file:
                if file.read(132)[128:] == b"DICM":
                    return True
        except OSError:  # a folder, or unreadable: not a slice
            continue
    return False


# ---------------------------------------------------------------- files

def read_volume(path, series_uid: str | None = None) -> sitk.Image:
    """Read a 3D scalar volume from a file SimpleITK reads or from a DICOM folder.

    A folder is read with :func:`read_dicom_series` (``series_uid`` picks the
    series). A single-slice DICOM file is read as the whole series it belongs
    to, from the files beside it. The pixel type is kept as read.
    """
    path = Path(path).expanduser()
    try:
        path.resolve(strict=True)
    except FileNotFoundError:
        raise HeadRegError(f"{path}: no such file or folder") from None
    except (OSError, RuntimeError) as error:   # a symbolic link loop (RuntimeError before Python 3.13)
        raise HeadRegError(f"{path}: cannot be opened ({getattr(error, 'strerror', None) or error})") from None
    if path.is_dir():
        return _orthogonal(read_dicom_series(path, series_uid), path)
    if not path.is_file():
        raise HeadRegError(f"{path}: not a regular file or folder")

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise HeadRegError(f"cannot read {path}: {_reason(exc)}") from None
    size = list(reader.GetSize())

    is_dicom = reader.HasMetaDataKey(_TAG_SERIES_UID)
    if is_dicom and len(size) == 3 and size[2] == 1:
        uid = reader.GetMetaData(_TAG_SERIES_UID).strip().rstrip("\x00")
        if series_uid is not None and series_uid != uid:
            raise HeadRegError(f"{path} belongs to DICOM series {uid}, not {series_uid}")
        siblings = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path.parent), uid)
        if len(siblings) > 1:
            logger.info("%s is one DICOM slice: reading its series %s (%d files) from %s",
                        path, uid, len(siblings), path.parent)
            return read_dicom_series(path.parent, uid)
    elif series_uid is not None:
        raise HeadRegError(f"{path}: a series UID can only be given with a DICOM folder")

    _check_header(path, size, reader.GetNumberOfComponents(), reader.GetPixelIDValue())
    if path.name.lower().endswith((".nii", ".nii.gz")):
        _check_nifti_data(path)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise HeadRegError(f"cannot read {path}: {_reason(exc)}") from None
    if image.GetDimension() == 4:  # a 4D file with a single volume (checked above)
        image = sitk.Extract(image, list(image.GetSize()[:3]) + [0], [0, 0, 0, 0])
    check_finite(image, str(path))
    return _orthogonal(image, path)


_NIFTI_FLOATS = {16: "f4", 64: "f8"}   # NIfTI datatype codes of float32 and float64


def _check_nifti_data(path: Path) -> None:
    """What ITK's NIfTI reader hides: a file shorter than its header says (ITK fills the
    rest with zeros) and NaN or infinite voxels (ITK reads them as 0). Reads the raw data
    once, in pieces."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            header = handle.read(540)
            if len(header) < 348:
                raise HeadRegError(f"cannot read {path}: the file is truncated (no complete NIfTI header)")
            for order in "<>":
                version = {348: 1, 540: 2}.get(int(np.frombuffer(header[:4], order + "i4")[0]))
                if version:
                    break
            else:
                return   # not a NIfTI header ITK would read: leave the verdict to ITK
            if version == 1:
                dims = np.frombuffer(header[40:56], order + "i2").astype(np.int64)
                datatype, bitpix = (int(v) for v in np.frombuffer(header[70:74], order + "i2"))
                offset = int(np.frombuffer(header[108:112], order + "f4")[0])
            else:
                dims = np.frombuffer(header[16:80], order + "i8")
                datatype, bitpix = (int(v) for v in np.frombuffer(header[12:16], order + "i2"))
                offset = int(np.frombuffer(header[168:176], order + "i8")[0])
            count = int(np.prod(np.maximum(dims[1:1 + int(dims[0])], 1)))
            expected = count * bitpix // 8
            handle.seek(max(offset, len(header) if version == 2 else 348))
            kind = _NIFTI_FLOATS.get(datatype)
            received = bad = 0
            while received < expected:
                piece = handle.read(min(1 << 24, expected - received))
                if not piece:
                    break
                if kind:
                    usable = len(piece) - len(piece) % int(kind[1])
                    bad += int(np.count_nonzero(~np.isfinite(np.frombuffer(piece[:usable], order + kind))))
                received += len(piece)
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise HeadRegError(f"cannot read {path}: the compressed file is truncated or corrupt ({error})") from None
    if received < expected:
        raise HeadRegError(f"cannot read {path}: the file is truncated ({received} of the {expected} bytes "
                           "of voxel data its header announces)")
    if bad:
        raise HeadRegError(f"{path} has {bad} NaN or infinite voxel(s) of {count}")


def _orthogonal(image: sitk.Image, path) -> sitk.Image:
    """``image`` on an orthogonal grid: a sheared direction matrix (columns not orthonormal)
    is resampled onto the orthonormal axes nearest it, with a warning, as a gantry tilt is."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    if np.abs(direction.T @ direction - np.eye(3)).max() <= _SHEAR_TOLERANCE:
        return image
    if abs(np.linalg.det(direction)) < 1e-6:
        raise HeadRegError(f"{path} has a singular direction matrix: its voxels have no place in space")
    q, r = np.linalg.qr(direction)
    axes = q * np.sign(np.diag(r))   # the first axis kept, the second in the plane of the first two
    lengths = np.linalg.norm(direction, axis=0)
    cosines = np.abs((direction / lengths).T @ (direction / lengths) - np.eye(3)).max()
    logger.warning("%s: the direction matrix is sheared (axes up to %.2f degrees from perpendicular): "
                   "resampled onto an orthogonal grid", path, math.degrees(math.asin(min(1.0, cosines))))
    return _deshear(image, axes, np.array(image.GetSpacing()) * lengths)


def _check_header(path, size, components: int, pixel_id: int) -> None:
    """Reject what is not one 3D scalar volume, or is too large to hold, before the
    pixels are read."""
    if 0 in size or not size:
        raise HeadRegError(f"{path} is empty (size {'x'.join(map(str, size))})")
    if np.prod(size, dtype=float) > MAX_VOXELS:
        raise HeadRegError(f"{path} is too large to register in memory ({np.prod(size, dtype=float):.3g} voxels, "
                           f"size {'x'.join(map(str, size))}; at most {MAX_VOXELS:.3g}): crop or downsample it first")
    dims = "x".join(map(str, size))
    if len(size) == 4 and size[3] == 1:
        size = size[:3]
    if len(size) < 3 or (len(size) == 3 and 1 in size):
        raise HeadRegError(f"{path} is a 2D image or a single slice (size {dims}); "
                           "a 3D volume is needed")
    if len(size) > 3:
        raise HeadRegError(f"{path} is a {len(size)}D image (size {dims}); "
                           "a single 3D volume is needed")
    if components != 1 or pixel_id in (sitk.sitkComplexFloat32, sitk.sitkComplexFloat64):
        raise HeadRegError(f"{path} has {components}-component (vector, RGB or complex) "
                           "pixels; a scalar (grey-level) volume is needed")


# ---------------------------------------------------------------- DICOM

def _find_series(folder: Path) -> dict[str, list[str]]:
    """Series UID -> files, in ``folder``, or if it holds none, in its sub-folders."""
    series: dict[str, list[str]] = {}

    def add(where: str) -> None:
        if _holds_dicom(where):
            for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(where):
                series.setdefault(uid, []).extend(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(where, uid))
    add(str(folder))
    if series:
        return series
    for root, dirs, _ in os.walk(folder):
        dirs.sort()
        for name in dirs:
            add(os.path.join(root, name))
    return series


def _floats(reader: sitk.ImageFileReader, tag: str, count: int, filename: str) -> np.ndarray:
    if not reader.HasMetaDataKey(tag):
        raise HeadRegError(f"DICOM file {filename} has no tag {tag}; cannot place its slice")
    try:
        values = np.array([float(v) for v in reader.GetMetaData(tag).strip(" \x00").split("\\")])
    except ValueError:
        values = np.zeros(0)
    if values.size != count or not np.all(np.isfinite(values)):
        raise HeadRegError(f"DICOM file {filename} has a malformed tag {tag}: "
                           f"{reader.GetMetaData(tag)!r}")
    return values


def series_in(folder) -> list[str]:
    """The UIDs of the DICOM series in ``folder`` (or in its sub-folders)."""
    return list(_find_series(Path(folder)))


def _series_modality(filename: str) -> str:
    """'CT, ' or 'MR, ' (the Modality tag of a series' file), or '' when unreadable."""
    header = sitk.ImageFileReader()
    header.SetFileName(filename)
    try:
        header.ReadImageInformation()
        return f"{header.GetMetaData('0008|0060').strip()}, " if header.HasMetaDataKey("0008|0060") else ""
    except RuntimeError:
        return ""


def read_dicom_series(folder, series_uid: str | None = None) -> sitk.Image:
    """Read one DICOM series of ``folder`` (or of its sub-folders) as a 3D volume.

    The series is ``series_uid`` if given, otherwise the one with the most
    files. Slices are sorted by their position along the slice normal (from
    ImagePositionPatient / ImageOrientationPatient, never by file name);
    oblique orientations are kept; values are in real units (rescale slope and
    intercept applied, CT in HU). A gantry-tilted series (slice offsets not
    along the normal) is resampled with linear interpolation onto an
    orthogonal grid and a warning is logged. Slice gaps that differ by more
    than 1 % (missing slices, mixed spacing) and duplicate positions are
    rejected, not resampled.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise HeadRegError(f"{folder}: not a folder")
    series = _find_series(folder)
    if not series:
        raise HeadRegError(f"no DICOM series found in {folder} or its sub-folders")
    listing = ", ".join(f"{uid} ({_series_modality(files[0])}{len(files)} files)" for uid, files in series.items())
    if series_uid is not None:
        if series_uid not in series:
            raise HeadRegError(f"DICOM series {series_uid} is not in {folder}; "
                               f"available: {listing}")
        uid = series_uid
    else:
        uid = max(series, key=lambda u: len(series[u]))
    files = series[uid]
    if len(series) > 1 and series_uid is None:
        logger.warning("%s holds %d DICOM series: %s; reading %s, the one with the most files "
                       "(give --series UID to choose)", folder, len(series), listing, uid)
    if len(files) == 1:  # maybe one multi-frame file
        try:
            return read_volume(files[0])
        except HeadRegError as exc:
            raise HeadRegError(f"DICOM series {uid} in {folder} has a single file: {exc}") from None
    return _read_sorted_series(folder, uid, files)


def _read_sorted_series(folder: Path, uid: str, files: list[str]) -> sitk.Image:
    """Sort the files of one series along the slice normal, read them, fix the geometry."""
    where = f"DICOM series {uid} in {folder}"
    positions, orientation, sizes = [], None, set()
    header = sitk.ImageFileReader()
    header.SetImageIO("GDCMImageIO")
    for name in files:
        header.SetFileName(name)
        try:
            header.ReadImageInformation()
        except RuntimeError as exc:
            raise HeadRegError(f"cannot read DICOM file {name}: {_reason(exc)}") from None
        iop = _floats(header, _TAG_ORIENTATION, 6, name)
        if orientation is None:
            orientation = iop
        elif not np.allclose(iop, orientation, atol=1e-4):
            raise HeadRegError(f"{where}: slices have different orientations "
                               f"(e.g. {files[0]} and {name})")
        positions.append(_floats(header, _TAG_POSITION, 3, name))
        sizes.add(tuple(header.GetSize()))
    if len(sizes) != 1 or next(iter(sizes))[2:] not in ((), (1,)):
        raise HeadRegError(f"{where}: slices have different sizes or several frames: "
                           f"{sorted(sizes)}")

    row, col = orientation[:3], orientation[3:]
    row, col = row / np.linalg.norm(row), col / np.linalg.norm(col)
    normal = np.cross(row, col)
    positions = np.array(positions)
    depth = positions @ normal
    order = np.argsort(depth, kind="stable")
    positions, depth = positions[order], depth[order]
    files = [files[i] for i in order]

    gaps = np.diff(depth)
    same = np.flatnonzero(gaps < 1e-3)
    if same.size:
        i = same[0]
        raise HeadRegError(f"{where}: {files[i]} and {files[i + 1]} are at the same position "
                           f"({depth[i]:.3f} mm along the normal); several volumes or "
                           "time points in one series are not supported")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.SetImageIO("GDCMImageIO")
    reader.SetSpacingWarningRelThreshold(float("inf"))  # uneven gaps are handled below, not warned of
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise HeadRegError(f"cannot read {where}: {_reason(exc)}") from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise HeadRegError(f"{where} has {image.GetNumberOfComponentsPerPixel()}-component "
                           "(RGB) pixels; a scalar (grey-level) volume is needed")

    step = (positions[-1] - positions[0]) / (len(files) - 1)
    if np.max(np.linalg.norm(np.diff(positions, axis=0) - step, axis=1)) > _SPACING_TOLERANCE * np.linalg.norm(step):
        image, positions = _regular_slices(image, positions, depth)
        logger.warning("%s: slice gaps vary from %.3f to %.3f mm (mixed spacing or missing slices): resampled "
                       "onto regular %.3f mm slices", where, gaps.min(), gaps.max(), gaps.min())
        step = (positions[-1] - positions[0]) / (len(positions) - 1)

    along = float(step @ normal)
    shear = step - along * normal
    spacing = image.GetSpacing()[:2]
    image.SetOrigin(positions[0].tolist())
    drift = np.linalg.norm(shear) * (len(positions) - 1)
    if drift <= 0.1 * min(spacing):  # no tilt worth a resampling
        image.SetSpacing(list(spacing) + [along])
        image.SetDirection(np.column_stack([row, col, normal]).ravel().tolist())
        return image
    image.SetSpacing(list(spacing) + [float(np.linalg.norm(step))])
    image.SetDirection(np.column_stack([row, col, step / np.linalg.norm(step)]).ravel().tolist())
    tilt = math.degrees(math.atan2(np.linalg.norm(shear), along))
    logger.warning("%s: gantry tilt of %.2f degrees corrected by resampling onto an "
                   "orthogonal grid", where, tilt)
    return _deshear(image, np.column_stack([row, col, normal]), np.array(list(spacing) + [along]))


def _regular_slices(image: sitk.Image, positions: np.ndarray, depth: np.ndarray):
    """The slices of ``image`` (at ``positions``, ``depth`` along the normal, ascending)
    interpolated linearly onto regularly spaced depths, the smallest gap apart, as 3D
    Slicer and dcm2niix do: (image, their positions)."""
    spacing = float(np.diff(depth).min())
    target = np.linspace(depth[0], depth[-1], int(round((depth[-1] - depth[0]) / spacing)) + 1)
    where = np.interp(target, depth, np.arange(len(depth)))
    below = np.minimum(np.floor(where).astype(int), len(depth) - 2)
    weight = (where - below).astype(np.float32)[:, None, None]
    slices = sitk.GetArrayViewFromImage(image)
    values = slices[below] * (1 - weight) + slices[below + 1] * weight
    if not np.issubdtype(slices.dtype, np.floating):
        values = np.rint(values)
    regular = sitk.GetImageFromArray(values.astype(slices.dtype))
    regular.SetSpacing(image.GetSpacing())
    for key in image.GetMetaDataKeys():
        regular.SetMetaData(key, image.GetMetaData(key))
    weight = weight[:, 0]
    return regular, positions[below] * (1 - weight) + positions[below + 1] * weight


def _deshear(image: sitk.Image, axes: np.ndarray, spacing: np.ndarray) -> sitk.Image:
    """Resample a sheared (tilted) image onto the orthogonal grid with these axes (columns)
    and spacing that covers it."""
    size = np.array(image.GetSize())
    corners = [image.TransformContinuousIndexToPhysicalPoint([float(c) for c in idx])
               for idx in np.array(np.meshgrid(*[[0, n - 1] for n in size])).reshape(3, -1).T]
    coords = (np.array(corners) - image.GetOrigin()) @ axes  # in the orthogonal frame
    low, high = coords.min(axis=0), coords.max(axis=0)
    out_size = np.ceil((high - low) / spacing - 1e-6).astype(int) + 1
    origin = np.array(image.GetOrigin()) + axes @ low
    minimum = float(sitk.GetArrayViewFromImage(image).min())
    resampled = sitk.Resample(image, out_size.tolist(), sitk.Transform(), sitk.sitkLinear,
                              origin.tolist(), spacing.tolist(), axes.ravel().tolist(),
                              minimum, sitk.sitkFloat32)
    if image.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
        return sitk.Cast(resampled, image.GetPixelID())
    rounded = sitk.GetImageFromArray(np.rint(sitk.GetArrayViewFromImage(resampled)))
    rounded.CopyInformation(resampled)
    return sitk.Cast(rounded, image.GetPixelID())


# ---------------------------------------------------------------- describing, checking

def _is_permutation(direction: np.ndarray, tolerance: float = 1e-4) -> bool:
    """Whether a direction matrix is a signed permutation of the identity."""
    return bool(np.all(np.abs(np.abs(direction).max(axis=0) - 1) < tolerance))


def describe_volume(image: sitk.Image) -> dict:
    """Geometry and intensity summary of ``image`` as plain JSON-serialisable values."""
    dim = image.GetDimension()
    size, spacing = list(image.GetSize()), list(image.GetSpacing())
    direction = np.array(image.GetDirection()).reshape(dim, dim)
    values = sitk.GetArrayViewFromImage(image)
    is_float = np.issubdtype(values.dtype, np.floating)
    nan_fraction = float(np.isnan(values).mean()) if is_float and values.size else 0.0
    finite = values[np.isfinite(values)] if is_float else values.ravel()
    stats = dict(min=None, max=None, mean=None, p1=None, p99=None)
    if finite.size:
        p1, p99 = np.percentile(finite, [1, 99])
        stats = dict(min=float(finite.min()), max=float(finite.max()),
                     mean=float(finite.mean(dtype=np.float64)), p1=float(p1), p99=float(p99))
    return {
        "size": size,
        "spacing": spacing,
        "origin": list(image.GetOrigin()),
        "direction": direction.tolist(),
        "pixel_type": image.GetPixelIDTypeAsString(),
        "extent_mm": [n * s for n, s in zip(size, spacing)],
        "intensity": stats,
        "nan_fraction": nan_fraction,
        "oblique": not _is_permutation(direction),
    }


def check_finite(image: sitk.Image, name: str) -> None:
    """Raise HeadRegError if ``image`` has NaN or infinite voxels."""
    values = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(values.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(values)))
        if bad:
            raise HeadRegError(f"{name} has {bad} NaN or infinite voxel(s) of {values.size}")


def check_volume_content(image: sitk.Image, name: str = "volume") -> None:
    """Raise HeadRegError if ``image`` cannot be a scan to register: fewer than
    MIN_SLICES voxels along an axis, NaN / infinite voxels, constant, or a label map or
    mask (fewer than MIN_DISTINCT_VALUES values)."""
    size = image.GetSize()
    for axis, n in enumerate(size):
        if n < MIN_SLICES:
            raise HeadRegError(f"{name} has {n} voxel(s) along axis {axis} (size {'x'.join(map(str, size))}); "
                               f"at least {MIN_SLICES} are needed to register it")
    check_finite(image, name)
    values = sitk.GetArrayViewFromImage(image)
    low, high = values.min(), values.max()
    if low == high:
        what = "all zero" if low == 0 else f"constant (every voxel is {low})"
        raise HeadRegError(f"{name} is {what}: there is nothing to register")
    sample = values.ravel()[:: max(1, values.size // 1_000_000)]
    distinct = np.unique(sample).size
    if distinct < MIN_DISTINCT_VALUES:
        raise HeadRegError(f"{name} has only {distinct} distinct values: a label map or a mask, not a CT or MR "
                           "scan")
