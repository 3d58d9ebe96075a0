"""ITK transform files, and the RAS form that Slicer's own storage node reads and writes."""

import numpy as np
import pytest
import SimpleITK as sitk

from HeadRegistrationLib.core import geometry, transform_io
from HeadRegistrationLib.core.errors import HeadRegError

T = geometry.matrix_from_parameters([12, -7, 33, 5, -2, 9], [10.0, 20.0, 30.0])


@pytest.mark.parametrize("suffix", [".tfm", ".txt", ".h5"])
def test_write_read_round_trip(tmp_path, suffix):
    path = transform_io.write_transform(T, tmp_path / f"t{suffix}", center=[1.0, 2.0, 3.0])
    np.testing.assert_allclose(transform_io.read_transform(path), T, atol=1e-9)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"t{suffix}"]  # no temporary left


def test_written_file_is_what_simpleitk_resamples_with(tmp_path):
    path = transform_io.write_transform(T, tmp_path / "t.tfm")
    transform = sitk.ReadTransform(str(path))
    point = np.array([3.0, -4.0, 5.0])
    np.testing.assert_allclose(transform.TransformPoint(point.tolist()), geometry.transform_points(T, point),
                               atol=1e-9)


def test_affine_matrix_is_written_as_affine(tmp_path):
    affine = T @ np.diag([1.2, 1.0, 0.8, 1.0])
    path = transform_io.write_transform(affine, tmp_path / "a.tfm")
    assert "AffineTransform" in path.read_text()
    np.testing.assert_allclose(transform_io.read_transform(path), affine, atol=1e-9)


def test_bad_transform_files_are_refused(tmp_path):
    with pytest.raises(HeadRegError, match="no such"):
        transform_io.read_transform(tmp_path / "missing.tfm")
    garbage = tmp_path / "garbage.tfm"
    garbage.write_text("not a transform\n")
    with pytest.raises(HeadRegError, match="not a readable"):
        transform_io.read_transform(garbage)
    with pytest.raises(HeadRegError, match="must end in"):
        transform_io.write_transform(T, tmp_path / "t.nii.gz")
    with pytest.raises(HeadRegError, match="does not exist"):
        transform_io.write_transform(T, tmp_path / "no" / "t.tfm")


def test_slicer_storage_node_reads_and_writes_our_convention(tmp_path):
    """With Slicer's own MRML library: a transform node whose ToParent is
    slicer_to_parent_ras(T), saved by vtkMRMLTransformStorageNode, is T in the ITK file;
    and our file, loaded by the storage node, gives that ToParent matrix."""
    slicer = pytest.importorskip("slicer", reason="slicer-core (Slicer's MRML library) is not installed")
    vtk = pytest.importorskip("vtk")
    scene = slicer.vtkMRMLScene()

    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    to_parent = vtk.vtkMatrix4x4()
    for i, row in enumerate(geometry.slicer_to_parent_ras(T)):
        for j, value in enumerate(row):
            to_parent.SetElement(i, j, value)
    node.SetMatrixTransformToParent(to_parent)
    storage = scene.AddNewNodeByClass("vtkMRMLTransformStorageNode")
    storage.SetFileName(str(tmp_path / "from_slicer.tfm"))
    assert storage.WriteData(node)
    np.testing.assert_allclose(transform_io.read_transform(tmp_path / "from_slicer.tfm"), T, atol=1e-9)

    ours = transform_io.write_transform(T, tmp_path / "ours.tfm", center=[4.0, 5.0, 6.0])
    loaded = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    reader = scene.AddNewNodeByClass("vtkMRMLTransformStorageNode")
    reader.SetFileName(str(ours))
    assert reader.ReadData(loaded)
    matrix = vtk.vtkMatrix4x4()
    loaded.GetMatrixTransformToParent(matrix)
    read_back = np.array([[matrix.GetElement(i, j) for j in range(4)] for i in range(4)])
    np.testing.assert_allclose(read_back, geometry.slicer_to_parent_ras(T), atol=1e-9)
    np.testing.assert_allclose(geometry.matrix_from_slicer_to_parent_ras(read_back), T, atol=1e-9)
