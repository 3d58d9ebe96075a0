"""RIRE .standard files: parsing, least-squares gold transform, target registration error."""

import numpy as np
import pytest

from HeadRegistrationLib.core import geometry
from HeadRegistrationLib.evaluate import rire
from HeadRegistrationLib.core.errors import HeadRegError

from conftest import shared_file

HEADER = """Transformation Parameters
From: CT
To: mr_T1

Point      x          y          z        new_x       new_y       new_z

"""


def write_standard(path, from_points, to_points):
    rows = "".join(f"  {i + 1}  " + " ".join(f"{v:.4f}" for v in (*a, *b)) + "\n"
                   for i, (a, b) in enumerate(zip(from_points, to_points)))
    path.write_text(HEADER + rows + "\n(All distances are in millimeters.)\n")
    return path


def corners(size=(512, 512, 29), spacing=(0.653595, 0.653595, 4.0)):
    extent = (np.array(size) - 1) * spacing
    return np.array([[x, y, z] for z in (0, extent[2]) for y in (0, extent[1]) for x in (0, extent[0])])


def test_synthetic_standard_recovers_the_transform(tmp_path):
    truth = geometry.matrix_from_parameters([3, -2, 5, 4, -6, 10], [160, 160, 50])  # MR -> CT
    ct_corners = corners()
    mr_points = geometry.transform_points(geometry.invert(truth), ct_corners)
    standard = rire.read_standard(write_standard(tmp_path / "ct_T1.standard", ct_corners, mr_points))
    assert (standard.from_name, standard.to_name) == ("CT", "mr_T1")
    np.testing.assert_allclose(standard.matrix, truth, atol=1e-3)
    assert standard.fit_residual_mm < 1e-3
    assert standard.target_registration_errors(truth).max() < 1e-3
    shifted = geometry.compose(geometry.translation_matrix([0, 3, 4]), truth)
    np.testing.assert_allclose(standard.target_registration_errors(shifted), 5.0, atol=1e-3)
    np.testing.assert_allclose(standard.target_registration_errors(shifted, [[100, 100, 50], [0, 0, 0]]),
                               5.0, atol=1e-3)


def test_real_rire_standard():
    standard = rire.read_standard(shared_file("rire_training_001/ct_T1.standard"))
    assert (standard.from_name, standard.to_name) == ("CT", "mr_T1")
    np.testing.assert_allclose(standard.from_points, corners(), atol=1e-3)
    assert geometry.is_rigid(standard.matrix) and standard.fit_residual_mm < 0.01
    # The gold standard maps the CT corners onto the listed MR points.
    np.testing.assert_allclose(geometry.transform_points(geometry.invert(standard.matrix), standard.from_points),
                               standard.to_points, atol=0.01)
    assert geometry.rotation_error_deg(standard.matrix, np.eye(4)) == pytest.approx(4.85, abs=0.05)


def test_fit_rigid_least_squares_with_noise():
    rng = np.random.default_rng(1)
    truth = geometry.matrix_from_parameters([20, 30, -40, 1, 2, 3])
    source = rng.uniform(-100, 100, (50, 3))
    target = geometry.transform_points(truth, source) + rng.normal(0, 0.1, (50, 3))
    fitted = rire.fit_rigid(source, target)
    assert geometry.rotation_error_deg(fitted, truth) < 0.1
    with pytest.raises(HeadRegError):
        rire.fit_rigid(source[:2], target[:2])


def test_bad_standard_files(tmp_path):
    with pytest.raises(HeadRegError, match="cannot read"):
        rire.read_standard(tmp_path / "missing.standard")
    bad = tmp_path / "bad.standard"
    bad.write_text(HEADER + "  1  0 0 0 1 1 1\n")
    with pytest.raises(HeadRegError, match="not a RIRE"):
        rire.read_standard(bad)
