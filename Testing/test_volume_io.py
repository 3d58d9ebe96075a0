"""Tests of HeadRegistrationLib.core.volume_io on small synthetic files (and real data when present)."""

from __future__ import annotations

import json
import logging
import math
import random
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from HeadRegistrationLib.core.errors import HeadRegError
from HeadRegistrationLib.core.volume_io import (
    check_volume_content,
    describe_volume,
    read_dicom_series,
    read_volume,
)

DATA = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()
UID_ROOT = "1.2.826.0.1.3680043.2.1125."


def rotation(axis, degrees) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    versor = sitk.VersorTransform(axis.tolist(), math.radians(degrees))
    return np.array(versor.GetMatrix()).reshape(3, 3)


def make_image(size=(16, 14, 10), spacing=(0.8, 0.9, 2.0), origin=(-5.0, 10.0, 3.0),
               direction=np.eye(3), dtype=np.int16) -> sitk.Image:
    """A volume whose every slice differs: value = 100 z + 3 y + x - 1000."""
    z, y, x = np.indices(size[::-1])
    image = sitk.GetImageFromArray((100 * z + 3 * y + x - 1000).astype(dtype))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(np.asarray(direction, float).ravel().tolist())
    return image


def one_line_error(call, *words):
    """Call, expect a HeadRegError whose one-line message holds every word."""
    with pytest.raises(HeadRegError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert str(word) in message, message
    return message


def write_slices(folder: Path, slices, positions, orientation, pixel_spacing, series_uid,
                 names=None, intercept=-1024, order=None, modality="CT"):
    """Write a DICOM series (int16 stored, rescale intercept) slice by slice, like
    SimpleITK's DicomSeriesFromArray example. ``slices`` are 2D int16 arrays of real
    values (HU); ``names`` and ``order`` let file names and writing order lie."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    count = len(slices)
    names = names or [f"slice{k:03d}.dcm" for k in range(count)]
    order = order if order is not None else range(count)
    for k in order:
        image = sitk.GetImageFromArray(np.asarray(slices[k], np.int16))
        image.SetSpacing([float(s) for s in pixel_spacing])
        tags = {
            "0008|0031": "120000", "0008|0021": "20240101",
            "0008|0008": "ORIGINAL\\PRIMARY\\AXIAL",
            "0008|0060": modality,
            "0020|000d": series_uid + ".1",
            "0020|000e": series_uid,
            "0008|0018": f"{series_uid}.2.{k}",
            "0020|0013": str(count - k),  # instance numbers lie too
            "0020|0032": "\\".join(f"{v:.6f}" for v in positions[k]),
            "0020|0037": "\\".join(f"{v:.8f}" for v in orientation),
            "0028|1052": str(intercept),
            "0028|1053": "1",
        }
        for tag, value in tags.items():
            image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / names[k]))
        writer.Execute(image)


def write_series_of(image: sitk.Image, folder: Path, series_uid: str, **kwargs):
    """Write a 3D image as a DICOM series with its own (possibly oblique) geometry."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    array = sitk.GetArrayFromImage(image)
    positions = [image.TransformIndexToPhysicalPoint((0, 0, k)) for k in range(image.GetDepth())]
    orientation = list(direction[:, 0]) + list(direction[:, 1])
    write_slices(folder, list(array), positions, orientation, image.GetSpacing()[:2],
                 series_uid, **kwargs)


def assert_same(read: sitk.Image, truth: sitk.Image):
    assert read.GetSize() == truth.GetSize()
    np.testing.assert_allclose(read.GetSpacing(), truth.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(read.GetOrigin(), truth.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(read.GetDirection(), truth.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(read),
                                  sitk.GetArrayViewFromImage(truth))


# ---------------------------------------------------------------- files

@pytest.mark.parametrize("suffix", [".nii.gz", ".mha", ".nrrd"])
def test_file_round_trip_keeps_geometry_type_and_file(tmp_path, suffix):
    truth = make_image(direction=rotation([1, 2, 3], 25), dtype=np.int16)
    path = tmp_path / f"vol{suffix}"
    sitk.WriteImage(truth, str(path))
    before = path.read_bytes()
    image = read_volume(path)
    assert image.GetPixelID() == sitk.sitkInt16
    assert_same(image, truth)
    image[0, 0, 0] = 1234  # a fresh image: the file is untouched
    assert path.read_bytes() == before


def test_float_volume_keeps_pixel_type(tmp_path):
    truth = sitk.Cast(make_image(), sitk.sitkFloat32)
    sitk.WriteImage(truth, str(tmp_path / "f.nii.gz"))
    assert read_volume(str(tmp_path / "f.nii.gz")).GetPixelID() == sitk.sitkFloat32


def test_2d_and_single_slice_and_4d_rejected(tmp_path):
    sitk.WriteImage(sitk.Image(8, 9, sitk.sitkUInt8), str(tmp_path / "flat.nii.gz"))
    one_line_error(lambda: read_volume(tmp_path / "flat.nii.gz"), "flat.nii.gz", "2D")
    sitk.WriteImage(make_image(size=(8, 9, 1)), str(tmp_path / "slice.nii.gz"))
    one_line_error(lambda: read_volume(tmp_path / "slice.nii.gz"), "slice.nii.gz", "single slice")
    sitk.WriteImage(sitk.Image([6, 5, 4, 3], sitk.sitkInt16), str(tmp_path / "t.nii.gz"))
    one_line_error(lambda: read_volume(tmp_path / "t.nii.gz"), "t.nii.gz", "4D")


def test_vector_and_rgb_rejected(tmp_path):
    vector = sitk.Image([6, 5, 4], sitk.sitkVectorFloat32, 3)
    sitk.WriteImage(vector, str(tmp_path / "vec.mha"))
    one_line_error(lambda: read_volume(tmp_path / "vec.mha"), "vec.mha", "scalar")
    rgb = sitk.Image([6, 5, 4], sitk.sitkVectorUInt8, 3)
    sitk.WriteImage(rgb, str(tmp_path / "rgb.nrrd"))
    one_line_error(lambda: read_volume(tmp_path / "rgb.nrrd"), "rgb.nrrd", "RGB")


def test_missing_garbage_and_empty_files_rejected(tmp_path):
    one_line_error(lambda: read_volume(tmp_path / "nope.nii.gz"), "nope.nii.gz", "no such")
    garbage = tmp_path / "garbage.nii.gz"
    garbage.write_bytes(random.Random(0).randbytes(4096))
    one_line_error(lambda: read_volume(garbage), "garbage.nii.gz", "cannot read")
    empty = tmp_path / "empty.nii.gz"
    empty.write_bytes(b"")
    one_line_error(lambda: read_volume(empty), "empty.nii.gz")
    header = tmp_path / "zero.mhd"
    header.write_text("ObjectType = Image\nNDims = 3\nDimSize = 0 4 4\n"
                      "ElementType = MET_SHORT\nElementDataFile = zero.raw\n")
    (tmp_path / "zero.raw").write_bytes(b"")
    one_line_error(lambda: read_volume(header), "zero.mhd", "empty")


def test_series_uid_with_a_plain_file_rejected(tmp_path):
    sitk.WriteImage(make_image(), str(tmp_path / "v.nii.gz"))
    one_line_error(lambda: read_volume(tmp_path / "v.nii.gz", series_uid="1.2.3"), "v.nii.gz")


# ---------------------------------------------------------------- DICOM

def test_dicom_shuffled_files_and_names_sorted_by_position(tmp_path):
    truth = make_image(size=(12, 10, 9), spacing=(0.7, 0.6, 2.5))
    count = truth.GetDepth()
    names = [f"IM{n:04d}.dcm" for n in random.Random(1).sample(range(count), count)]
    order = random.Random(2).sample(range(count), count)
    write_series_of(truth, tmp_path / "dcm", UID_ROOT + "11", names=names, order=order)
    image = read_volume(tmp_path / "dcm")
    assert_same(image, truth)
    assert sitk.GetArrayViewFromImage(image).min() == -1000  # rescale intercept applied (HU)
    # one file of the series reads the whole series
    assert_same(read_volume(tmp_path / "dcm" / names[0]), truth)


def test_dicom_series_in_sub_folder_found(tmp_path):
    truth = make_image(size=(8, 8, 5))
    write_series_of(truth, tmp_path / "patient" / "study" / "series", UID_ROOT + "12")
    assert_same(read_dicom_series(tmp_path / "patient"), truth)


def test_dicom_two_series_choice(tmp_path, caplog):
    big = make_image(size=(8, 8, 7))
    small = make_image(size=(8, 8, 4), origin=(0, 0, 50))
    write_series_of(big, tmp_path, UID_ROOT + "21", names=[f"a{k}.dcm" for k in range(7)])
    write_series_of(small, tmp_path, UID_ROOT + "22", names=[f"b{k}.dcm" for k in range(4)])
    with caplog.at_level(logging.WARNING, logger="HeadRegistrationLib.core.volume_io"):
        assert_same(read_volume(tmp_path), big)
    assert UID_ROOT + "21" in caplog.text and UID_ROOT + "22" in caplog.text and "most files" in caplog.text
    assert_same(read_volume(tmp_path, series_uid=UID_ROOT + "22"), small)
    one_line_error(lambda: read_volume(tmp_path, series_uid="1.2.3.4"),
                   "1.2.3.4", UID_ROOT + "21", UID_ROOT + "22", str(tmp_path))


def test_dicom_oblique_direction_kept(tmp_path):
    truth = make_image(size=(10, 9, 6), direction=rotation([0.3, -1, 0.5], 28))
    write_series_of(truth, tmp_path, UID_ROOT + "31")
    image = read_volume(tmp_path)
    assert_same(image, truth)
    assert describe_volume(image)["oblique"]


def ball_series(folder: Path, tilt_deg: float, centre, radius=6.0, turn=np.eye(3)):
    """A CT-like series of a bright ball in air, slices stepping dz along the normal
    and dz*tan(tilt) along the column direction (gantry tilt); ``turn`` rotates the
    whole acquisition (oblique and tilted)."""
    nx, ny, count, dx, dz = 40, 40, 24, 1.0, 2.0
    shift = dz * math.tan(math.radians(tilt_deg))
    row, col = turn[:, 0], turn[:, 1]
    positions = [turn @ [0.0, k * shift, k * dz] for k in range(count)]
    j, i = np.indices((ny, nx)).astype(float)
    slices = []
    for p in positions:
        points = p + (i * dx)[..., None] * row + (j * dx)[..., None] * col
        dist = np.linalg.norm(points - centre, axis=-1)
        slices.append(np.rint(-1000 + 2000 * np.clip(radius - dist + 0.5, 0, 1)))
    write_slices(folder, slices, positions, list(row) + list(col), (dx, dx), UID_ROOT + "41")
    return positions


def centroid(image: sitk.Image) -> np.ndarray:
    """Intensity-weighted centroid above the minimum, in physical (LPS) coordinates."""
    weights = sitk.GetArrayFromImage(image).astype(float)
    weights -= weights.min()
    index = np.indices(weights.shape).reshape(3, -1)[::-1].T.astype(float)  # x, y, z
    mean_index = (weights.ravel() @ index) / weights.sum()
    return np.array(image.TransformContinuousIndexToPhysicalPoint(mean_index.tolist()))


def test_dicom_gantry_tilt_resampled_onto_orthogonal_grid(tmp_path, caplog):
    centre = np.array([20.0, 28.0, 30.0])
    ball_series(tmp_path, 15.0, centre)
    with caplog.at_level(logging.WARNING, logger="HeadRegistrationLib.core.volume_io"):
        image = read_volume(tmp_path)
    assert "tilt" in caplog.text and "15.00" in caplog.text
    np.testing.assert_allclose(image.GetDirection(), np.eye(3).ravel(), atol=1e-9)
    np.testing.assert_allclose(image.GetSpacing(), (1.0, 1.0, 2.0), atol=1e-6)
    np.testing.assert_allclose(image.GetOrigin(), (0.0, 0.0, 0.0), atol=1e-6)
    assert image.GetPixelID() == sitk.sitkInt32 or image.GetPixelID() == sitk.sitkInt16
    assert image.GetSize()[2] == 24 and image.GetSize()[1] >= 40 + 12  # 23 * 2 * tan 15 = 12.3
    assert sitk.GetArrayViewFromImage(image).min() == -1000  # padding = image minimum
    error = np.linalg.norm(centroid(image) - centre)
    assert error < 0.5, error  # within a voxel (1 x 1 x 2 mm)
    # the naive, untilted reading would put the ball ~8 mm away: the test can tell
    naive = sitk.ImageSeriesReader()
    naive.SetFileNames([str(tmp_path / f"slice{k:03d}.dcm") for k in range(24)])
    naive_image = naive.Execute()
    naive_image.SetDirection(np.eye(3).ravel().tolist())
    naive_image.SetSpacing((1.0, 1.0, 2.0))
    assert np.linalg.norm(centroid(naive_image) - centre) > 5


def test_dicom_oblique_and_tilted(tmp_path, caplog):
    turn = rotation([1, -0.4, 0.2], 20)
    centre = turn @ [20.0, 28.0, 30.0]
    ball_series(tmp_path, -12.0, centre, turn=turn)
    with caplog.at_level(logging.WARNING, logger="HeadRegistrationLib.core.volume_io"):
        image = read_volume(tmp_path)
    assert "12.00" in caplog.text
    np.testing.assert_allclose(np.array(image.GetDirection()).reshape(3, 3), turn, atol=1e-6)
    assert np.linalg.norm(centroid(image) - centre) < 0.5


def test_dicom_small_tilt_ignored(tmp_path, caplog):
    ball_series(tmp_path, 0.05, [20.0, 20.0, 20.0])  # drift 0.04 mm over the stack
    with caplog.at_level(logging.WARNING, logger="HeadRegistrationLib.core.volume_io"):
        image = read_volume(tmp_path)
    assert "tilt" not in caplog.text
    assert image.GetSize() == (40, 40, 24)


def test_dicom_duplicate_positions_rejected(tmp_path):
    slices = [np.full((6, 6), k, np.int16) for k in range(4)]
    write_slices(tmp_path / "dup", slices, [(0, 0, 0), (0, 0, 2), (0, 0, 2), (0, 0, 4)],
                 [1, 0, 0, 0, 1, 0], (1, 1), UID_ROOT + "51")
    one_line_error(lambda: read_volume(tmp_path / "dup"), "same position", "dup")


def test_dicom_mixed_slice_spacing_resampled_onto_regular_slices(tmp_path, caplog):
    """A clinical protocol: 4 mm slices through the skull base, 7 mm above; a missing
    slice is the same case. Values rise 10 HU per mm, so linear interpolation along the
    slice normal must give 10 HU per mm at every new slice."""
    depths = [0, 4, 8, 12, 19, 26, 33]
    slices = [np.full((8, 8), 10 * d, np.int16) for d in depths]
    write_slices(tmp_path, slices, [(0, 0, d) for d in depths], [1, 0, 0, 0, 1, 0], (1, 1), UID_ROOT + "52")
    with caplog.at_level(logging.WARNING, logger="HeadRegistrationLib.core.volume_io"):
        image = read_volume(tmp_path)
    assert "resampled onto regular" in caplog.text and "4.000 to 7.000" in caplog.text
    assert image.GetSize() == (8, 8, 9) and image.GetSpacing()[2] == pytest.approx(33 / 8)
    profile = sitk.GetArrayViewFromImage(image)[:, 4, 4]
    depth_of_slice = np.array([image.TransformIndexToPhysicalPoint((4, 4, k))[2] for k in range(9)])
    np.testing.assert_allclose(profile, 10 * depth_of_slice, atol=0.5)


def test_dicom_folder_with_a_ct_and_an_mr_series_names_the_choice(tmp_path, caplog, capsys):
    from HeadRegistrationLib import cli
    ct, mr = make_image(size=(10, 10, 9)), make_image(size=(10, 10, 8), origin=(0, 0, 50))
    write_series_of(ct, tmp_path, UID_ROOT + "71", names=[f"c{k}.dcm" for k in range(9)])
    write_series_of(mr, tmp_path, UID_ROOT + "72", names=[f"m{k}.dcm" for k in range(8)], modality="MR")
    with caplog.at_level(logging.WARNING, logger="HeadRegistrationLib.core.volume_io"):
        assert_same(read_volume(tmp_path), ct)
    assert f"{UID_ROOT}71 (CT, 9 files)" in caplog.text and f"{UID_ROOT}72 (MR, 8 files)" in caplog.text
    assert cli.main(["info", str(tmp_path), "--series", UID_ROOT + "72", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["size"] == [10, 10, 8]


def test_sheared_direction_resampled_onto_an_orthogonal_grid_in_info_and_register(tmp_path, caplog):
    """A sheared grid (a direction matrix whose columns are not perpendicular) is
    resampled onto orthogonal axes, as a gantry tilt is: every reader sees the same
    volume, and the anatomy stays where it was in physical space."""
    centre = np.array([12.0, 15.0, 10.0])
    sheared = np.array([[1.0, 0.25, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    sheared /= np.linalg.norm(sheared, axis=0)
    image = sitk.Image(30, 30, 24, sitk.sitkFloat32)
    image.SetDirection(sheared.ravel().tolist())
    points = np.array([image.TransformIndexToPhysicalPoint(idx) for idx in np.ndindex(30, 30, 24)])
    ball = (np.linalg.norm(points - centre, axis=1) < 5).reshape(30, 30, 24).transpose(2, 1, 0)
    array = ball.astype(np.float32) * 1000
    written = sitk.GetImageFromArray(array)
    written.CopyInformation(image)
    sitk.WriteImage(written, str(tmp_path / "sheared.nrrd"))
    with caplog.at_level(logging.WARNING, logger="HeadRegistrationLib.core.volume_io"):
        read = read_volume(tmp_path / "sheared.nrrd")
    assert "sheared" in caplog.text and "sheared.nrrd" in caplog.text
    direction = np.array(read.GetDirection()).reshape(3, 3)
    np.testing.assert_allclose(direction.T @ direction, np.eye(3), atol=1e-9)
    assert np.linalg.norm(centroid(read) - centre) < 0.5
    assert describe_volume(read)["oblique"] is False   # its first axis kept: x


@pytest.mark.skipif(__import__("shutil").which("dcm2niix") is None and not (
    Path(__import__("sys").executable).parent / "dcm2niix").exists(), reason="dcm2niix is not installed")
def test_real_gantry_tilted_series_matches_dcm2niix(tmp_path):
    """The real tilted series (../shared/data/dicom_gantry_tilt, -18.5 deg) read as
    dcm2niix's tilt-corrected conversion reads it: same grid, same values where the
    object is, the bone in the same place."""
    import shutil
    import subprocess
    import sys
    folder = DATA / "dicom_gantry_tilt"
    if not folder.exists():
        pytest.skip(f"real data not found: {folder}")
    tool = shutil.which("dcm2niix") or str(Path(sys.executable).parent / "dcm2niix")
    subprocess.run([tool, "-o", str(tmp_path), "-f", "tilt", str(folder)], check=True, capture_output=True)
    reference = sitk.ReadImage(str(next(tmp_path.glob("*Tilt*.nii"))))
    ours = read_volume(folder)
    assert ours.GetSize() == reference.GetSize()
    np.testing.assert_allclose(ours.GetSpacing(), reference.GetSpacing(), atol=1e-4)
    on_reference = sitk.GetArrayFromImage(sitk.Resample(ours, reference, sitk.Transform(), sitk.sitkLinear,
                                                        -1024.0, sitk.sitkFloat32))
    theirs = sitk.GetArrayFromImage(sitk.Cast(reference, sitk.sitkFloat32))
    inside = (theirs > -900) | (on_reference > -900)
    assert np.corrcoef(on_reference[inside], theirs[inside])[0, 1] > 0.995
    bone_ours, bone_theirs = (np.argwhere(a > 300).mean(0)[::-1] for a in (on_reference, theirs))
    shift = np.subtract(*(np.array(reference.TransformContinuousIndexToPhysicalPoint(b.tolist()))
                          for b in (bone_ours, bone_theirs)))
    assert np.linalg.norm(shift) < 0.5, shift


def test_dicom_single_slice_series_rejected(tmp_path):
    write_slices(tmp_path, [np.zeros((6, 6), np.int16)], [(0, 0, 0)], [1, 0, 0, 0, 1, 0],
                 (1, 1), UID_ROOT + "61")
    one_line_error(lambda: read_volume(tmp_path), "single", str(tmp_path))


def test_folder_without_dicom_rejected(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here\n")
    (tmp_path / "sub").mkdir()
    one_line_error(lambda: read_volume(tmp_path), "no DICOM series", str(tmp_path))


def test_dicom_reading_leaves_itk_global_state_and_stderr_alone(tmp_path, capfd, monkeypatch):
    """ITK's warnings ("No Series were found", "Non uniform sampling") are avoided per
    reader, not by switching ITK's global warning display (shared with every thread and
    with Slicer): none reaches stderr, and the global setting stays what it was."""
    depths = [0, 4, 8, 12, 19, 26, 33]
    write_slices(tmp_path / "uneven", [np.full((8, 8), d, np.int16) for d in depths],
                 [(0, 0, d) for d in depths], [1, 0, 0, 0, 1, 0], (1, 1), UID_ROOT + "53")
    (tmp_path / "none" / "sub").mkdir(parents=True)
    switched = []
    monkeypatch.setattr(sitk.ProcessObject, "SetGlobalWarningDisplay", staticmethod(switched.append))
    read_volume(tmp_path / "uneven")
    one_line_error(lambda: read_volume(tmp_path / "none"), "no DICOM series", "none")
    assert switched == []
    assert "WARNING" not in capfd.readouterr().err


# ---------------------------------------------------------------- describe, check

def test_describe_volume():
    image = sitk.Cast(make_image(size=(10, 8, 6), spacing=(0.5, 1.0, 2.0)), sitk.sitkFloat32)
    image[0, 0, 0] = float("nan")
    info = describe_volume(image)
    json.dumps(info)  # plain values
    assert info["size"] == [10, 8, 6] and info["spacing"] == [0.5, 1.0, 2.0]
    assert info["extent_mm"] == [5.0, 8.0, 12.0]
    assert info["direction"] == np.eye(3).tolist() and not info["oblique"]
    assert info["pixel_type"] == "32-bit float"
    assert info["nan_fraction"] == pytest.approx(1 / 480)
    values = sitk.GetArrayViewFromImage(image).ravel()[1:]
    assert info["intensity"]["min"] == values.min() and info["intensity"]["max"] == values.max()
    assert info["intensity"]["mean"] == pytest.approx(values.mean())
    assert info["intensity"]["p1"] == pytest.approx(np.percentile(values, 1))
    assert info["intensity"]["p99"] == pytest.approx(np.percentile(values, 99))
    flipped = make_image(direction=np.diag([-1.0, 1.0, -1.0])[[1, 0, 2]])
    assert not describe_volume(flipped)["oblique"]
    assert describe_volume(make_image(direction=rotation([0, 0, 1], 10)))["oblique"]


def test_check_volume_content():
    check_volume_content(make_image())
    nan = sitk.Cast(make_image(), sitk.sitkFloat32)
    nan[1, 2, 3] = float("nan")
    one_line_error(lambda: check_volume_content(nan, "the MR"), "the MR", "NaN")
    inf = sitk.Cast(make_image(), sitk.sitkFloat64)
    inf[1, 2, 3] = float("inf")
    one_line_error(lambda: check_volume_content(inf, "CT"), "CT", "infinite")
    one_line_error(lambda: check_volume_content(sitk.Image(10, 10, 10, sitk.sitkInt16)), "all zero")
    constant = sitk.Image(10, 10, 10, sitk.sitkInt16) + 7
    one_line_error(lambda: check_volume_content(constant, "CT"), "CT", "constant")
    one_line_error(lambda: check_volume_content(make_image(size=(16, 3, 10))), "axis 1", "at least 8")
    labels = sitk.GetImageFromArray(np.random.default_rng(0).integers(0, 6, (10, 10, 10)).astype(np.uint8))
    one_line_error(lambda: check_volume_content(labels, "seg.nrrd"), "seg.nrrd", "label map")


# ---------------------------------------------------------------- real data

@pytest.mark.parametrize("name, oblique", [
    ("rire_training_001/training_001_mr_T1.mha", False),
    ("ct_phantom/CT_pitch.nii.gz", True),
])
def test_real_data(name, oblique):
    path = DATA / name
    if not path.exists():
        pytest.skip(f"real data not found: {path}")
    image = read_volume(path)
    info = describe_volume(image)
    assert image.GetDimension() == 3 and min(image.GetSize()) > 1
    assert info["oblique"] is oblique
    check_volume_content(image, name)
