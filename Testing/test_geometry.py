"""Conversions between the forms of a rigid transform, checked against SimpleITK itself."""

import numpy as np
import pytest
import SimpleITK as sitk

from HeadRegistrationLib.core import geometry
from HeadRegistrationLib.core.errors import HeadRegError

RNG = np.random.default_rng(7)
CENTER = np.array([12.0, -30.0, 55.0])


def random_parameters(rng=RNG, angle_range=180.0):
    return np.concatenate([rng.uniform(-angle_range, angle_range, 3) * [1, 0.49, 1], rng.uniform(-40, 40, 3)])


def test_parameters_round_trip_and_match_simpleitk_euler_zyx():
    for _ in range(50):
        parameters = random_parameters()
        matrix = geometry.matrix_from_parameters(parameters, CENTER)
        assert geometry.is_rigid(matrix)
        np.testing.assert_allclose(geometry.parameters_from_matrix(matrix, CENTER), parameters, atol=1e-9)
        euler = sitk.Euler3DTransform(CENTER.tolist(), *np.deg2rad(parameters[:3]), parameters[3:].tolist())
        euler.SetComputeZYX(True)
        points = RNG.uniform(-100, 100, (5, 3))
        expected = np.array([euler.TransformPoint(p.tolist()) for p in points])
        np.testing.assert_allclose(geometry.transform_points(matrix, points), expected, atol=1e-9)


def test_parameter_order_and_units():
    assert geometry.PARAMETER_NAMES[0] == "angle_x_deg" and geometry.PARAMETER_NAMES[5] == "translation_z_mm"
    quarter_turn_z = geometry.matrix_from_parameters([0, 0, 90, 1, 2, 3])
    np.testing.assert_allclose(geometry.transform_points(quarter_turn_z, [1, 0, 0]), [1, 3, 3], atol=1e-12)
    # The centre is a fixed point of the rotation.
    turned = geometry.matrix_from_parameters([30, -20, 10, 0, 0, 0], CENTER)
    np.testing.assert_allclose(geometry.transform_points(turned, CENTER), CENTER, atol=1e-12)


def test_parameters_at_gimbal_lock_still_reproduce_the_matrix():
    matrix = geometry.matrix_from_parameters([25, 90, -40, 1, 2, 3], CENTER)
    again = geometry.matrix_from_parameters(geometry.parameters_from_matrix(matrix, CENTER), CENTER)
    np.testing.assert_allclose(again, matrix, atol=1e-9)


def test_sitk_round_trip_rigid_and_affine():
    rigid = geometry.matrix_from_parameters(random_parameters(), CENTER)
    affine = rigid.copy()
    affine[:3, :3] = affine[:3, :3] @ np.diag([1.1, 0.9, 1.05])
    for matrix, name in ((rigid, "Euler3DTransform"), (affine, "AffineTransform")):
        for center in (None, CENTER):
            transform = geometry.sitk_from_matrix(matrix, center)
            assert transform.GetName() == name
            np.testing.assert_allclose(geometry.matrix_from_sitk(transform), matrix, atol=1e-9)


def test_matrix_from_composite_and_versor_transforms():
    a = geometry.matrix_from_parameters(random_parameters(), CENTER)
    b = geometry.matrix_from_parameters(random_parameters(), -CENTER)
    composite = sitk.CompositeTransform([geometry.sitk_from_matrix(a), geometry.sitk_from_matrix(b)])
    # ITK applies the last transform of a composite first.
    np.testing.assert_allclose(geometry.matrix_from_sitk(composite), geometry.compose(a, b), atol=1e-9)
    versor = sitk.VersorRigid3DTransform((0, 0, 1, 0), (3, 4, 5), (1, 2, 3))  # half turn about z
    np.testing.assert_allclose(geometry.transform_points(geometry.matrix_from_sitk(versor), [1, 2, 3]),
                               [4, 6, 8], atol=1e-9)


def test_matrix_from_nonlinear_transform_is_refused():
    grid = sitk.Image([4, 4, 4], sitk.sitkFloat32)
    bspline = sitk.BSplineTransformInitializer(grid, [3, 3, 3])
    parameters = np.array(bspline.GetParameters())
    parameters[len(parameters) // 2] = 5.0
    bspline.SetParameters(parameters.tolist())
    with pytest.raises(HeadRegError, match="not a linear"):
        geometry.matrix_from_sitk(bspline)


def test_compose_and_invert():
    a = geometry.matrix_from_parameters(random_parameters(), CENTER)
    b = geometry.matrix_from_parameters(random_parameters(), -CENTER)
    point = np.array([5.0, -7.0, 9.0])
    np.testing.assert_allclose(geometry.transform_points(geometry.compose(a, b), point),
                               geometry.transform_points(a, geometry.transform_points(b, point)), atol=1e-9)
    np.testing.assert_allclose(geometry.compose(a, geometry.invert(a)), np.eye(4), atol=1e-12)
    affine = a @ np.diag([2.0, 1.0, 0.5, 1.0])
    np.testing.assert_allclose(geometry.invert(affine), np.linalg.inv(affine), atol=1e-12)
    with pytest.raises(HeadRegError):
        geometry.as_matrix(np.ones((3, 4)))


def test_rotation_about_axis_and_random_rigid():
    rotation = geometry.rotation_about_axis([0, 0, 1], 90)
    np.testing.assert_allclose(rotation @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    m = geometry.random_rigid(np.random.default_rng(0), 37.0, 12.0, CENTER)
    assert geometry.rotation_error_deg(m, np.eye(4)) == pytest.approx(37.0)
    assert geometry.translation_error_mm(m, np.eye(4), CENTER) == pytest.approx(12.0)


def test_matrix_agrees_with_simpleitk_resampling():
    """A bright point at x in the fixed grid lands, after resampling the moving image with
    T, where the moving image had it at T(x): the convention of DESIGN.md."""
    fixed = sitk.Image([60, 50, 40], sitk.sitkFloat32)
    fixed.SetSpacing([1.2, 1.0, 1.5])
    fixed.SetOrigin([-30.0, -20.0, -25.0])
    moving = sitk.Image([70, 70, 50], sitk.sitkFloat32)
    moving.SetSpacing([1.0, 1.0, 1.0])
    moving.SetOrigin([-35.0, -35.0, -25.0])
    moving.SetDirection(geometry.rotation_about_axis([1, 1, 0], 20).ravel().tolist())
    T = geometry.matrix_from_parameters([10, -15, 25, 4, -6, 3], [2.0, 1.0, 0.0])
    target_fixed = np.array([6.0, 3.0, 5.0])
    target_moving = geometry.transform_points(T, target_fixed)
    # A smooth blob at target_moving in the moving image.
    index = np.indices(moving.GetSize()[::-1]).reshape(3, -1)[::-1].T.astype(float)
    direction = np.array(moving.GetDirection()).reshape(3, 3)
    points = index * moving.GetSpacing() @ direction.T + moving.GetOrigin()
    blob = np.exp(-np.sum((points - target_moving) ** 2, axis=1) / (2 * 2.0 ** 2))
    moving_image = sitk.GetImageFromArray(blob.reshape(moving.GetSize()[::-1]).astype(np.float32))
    moving_image.CopyInformation(moving)
    resampled = sitk.Resample(moving_image, fixed, geometry.sitk_from_matrix(T), sitk.sitkLinear)
    values = sitk.GetArrayFromImage(resampled).ravel()
    fixed_points = geometry.physical_points(fixed)
    centroid = (fixed_points * values[:, None]).sum(axis=0) / values.sum()
    np.testing.assert_allclose(centroid, target_fixed, atol=0.15)
    # ... and the inverse matrix would have put it elsewhere.
    wrong = sitk.GetArrayFromImage(sitk.Resample(moving_image, fixed, geometry.sitk_from_matrix(geometry.invert(T))))
    assert np.abs(wrong.ravel() - values).max() > 0.5


def test_slicer_ras_round_trip_and_formula():
    T = geometry.matrix_from_parameters([5, 10, -20, 3, -4, 8], CENTER)
    to_parent = geometry.slicer_to_parent_ras(T)
    d = np.diag([-1.0, -1.0, 1.0, 1.0])
    np.testing.assert_allclose(to_parent, d @ np.linalg.inv(T) @ d, atol=1e-12)
    np.testing.assert_allclose(geometry.matrix_from_slicer_to_parent_ras(to_parent), T, atol=1e-12)
    # A moving-image point p (LPS) is shown by Slicer at ToParent(p_RAS): the fixed point T^-1(p).
    p_lps = np.array([10.0, 20.0, 30.0])
    shown_ras = geometry.transform_points(to_parent, p_lps * [-1, -1, 1])
    np.testing.assert_allclose(shown_ras * [-1, -1, 1], geometry.transform_points(geometry.invert(T), p_lps),
                               atol=1e-9)


def test_error_measures():
    a = geometry.matrix_from_parameters([0, 0, 30, 0, 0, 0])
    b = geometry.matrix_from_parameters([0, 0, 0, 3, 4, 0])
    assert geometry.rotation_error_deg(a, b) == pytest.approx(30.0)
    assert geometry.rotation_error_deg(b, b) == pytest.approx(0.0, abs=1e-6)
    assert geometry.translation_error_mm(b, np.eye(4), [100, -50, 7]) == pytest.approx(5.0)
    errors = geometry.target_registration_errors(a, np.eye(4), [[0, 0, 0], [10, 0, 0]])
    np.testing.assert_allclose(errors, [0.0, 2 * 10 * np.sin(np.deg2rad(15))], atol=1e-12)


def test_mean_displacement_in_mask():
    mask = sitk.Image([20, 20, 20], sitk.sitkUInt8)
    mask.SetOrigin([-10.0, -10.0, -10.0])
    mask[5:15, 5:15, 5:15] = 1
    shift = geometry.translation_matrix([0.0, 0.0, 2.5])
    assert geometry.mean_displacement_in_mask(shift, np.eye(4), mask) == pytest.approx(2.5)
    # A rotation about the cube's centre (-0.5 on each axis) moves points by their radius.
    rotation = geometry.rigid_matrix(geometry.rotation_about_axis([0, 0, 1], 90), [0, 0, 0], [-0.5, -0.5, -0.5])
    points = geometry.physical_points(mask, sitk.GetArrayFromImage(mask) > 0)
    expected = np.sqrt(2) * np.linalg.norm(points[:, :2] + 0.5, axis=1).mean()
    assert geometry.mean_displacement_in_mask(rotation, np.eye(4), mask) == pytest.approx(expected)
    with pytest.raises(HeadRegError, match="empty"):
        geometry.mean_displacement_in_mask(shift, np.eye(4), mask * 0)
