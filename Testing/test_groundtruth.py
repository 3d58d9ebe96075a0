"""Symmetry frames, MI registration and ground truth (paper: "Generation of ground truth data")."""

import numpy as np
import pytest
import SimpleITK as sitk

from HeadRegistrationLib.core import geometry
from HeadRegistrationLib.data import phantom
from HeadRegistrationLib.groundtruth import reference
from HeadRegistrationLib.register import registration, search, symmetry
from HeadRegistrationLib.core.errors import HeadRegError

# Small grids that cover the whole head, so the tests stay fast.
WHOLE_HEAD_SMALL = {"ct_grid": {"size": (128, 128, 60), "spacing": (2.0, 2.0, 4.0)},
                    "mr_grid": {"size": (120, 120, 60), "spacing": (2.2, 2.2, 4.0)}}


@pytest.fixture(scope="module")
def turned_pair():
    return phantom.make_phantom_pair(seed=5, rotation_deg=70.0, translation_mm=25.0, **WHOLE_HEAD_SMALL)


def ellipsoid(axes_mm, rotation, spacing=2.0, center=(10.0, -20.0, 5.0)):
    """A solid ellipsoid with semi-axes ``axes_mm`` along the columns of ``rotation``."""
    image = sitk.Image(80, 80, 80, sitk.sitkFloat32)
    image.SetSpacing([spacing] * 3)
    image.SetOrigin((np.array(center) - 79 * spacing / 2).tolist())
    points = geometry.physical_points(image) - np.array(center)
    local = points @ np.asarray(rotation)
    inside = ((local / np.array(axes_mm)) ** 2).sum(axis=1) <= 1
    values = np.where(inside, 100.0, 0.0).reshape(80, 80, 80) + np.random.default_rng(0).normal(0, 3, (80, 80, 80))
    out = sitk.GetImageFromArray(values.astype(np.float32))
    out.CopyInformation(image)
    return out


def test_axis_permutations_are_the_24_proper_rotations():
    perms = symmetry.AXIS_PERMUTATIONS
    assert len(perms) == 24
    assert np.array_equal(perms[0], np.eye(3))
    assert all(np.isclose(np.linalg.det(p), 1) and np.allclose(p.T @ p, np.eye(3)) for p in perms)
    assert len({p.tobytes() for p in perms}) == 24


def test_symmetry_frame_finds_the_axes_and_centre_of_an_ellipsoid():
    rotation = geometry.rotation_about_axis([1, 2, 3], 35)
    frame = symmetry.symmetry_frame(ellipsoid((70, 50, 30), rotation))
    assert np.allclose(frame.center, (10, -20, 5), atol=0.5)
    # Each principal axis is the ellipsoid's axis of the same rank, up to sign.
    assert np.allclose(np.abs(np.sum(frame.axes * rotation, axis=0)), 1, atol=0.01)
    assert np.isclose(np.linalg.det(frame.axes), 1)
    assert frame.distinct_axes()
    assert not symmetry.symmetry_frame(ellipsoid((60, 59, 30), np.eye(3))).distinct_axes()


def test_head_mask_keeps_the_head_and_drops_the_table(phantom_pair):
    mask = symmetry.head_mask(phantom_pair.ct)
    labels = sitk.Resample(phantom_pair.ct_labels, mask, sitk.Transform(), sitk.sitkNearestNeighbor)
    head = sitk.GetArrayViewFromImage(labels) > 0
    found = sitk.GetArrayViewFromImage(mask) > 0
    assert (found & head).sum() / head.sum() > 0.97
    assert (found & ~head).sum() / found.sum() < 0.03   # no table, no head rest


def test_head_mask_refuses_a_constant_volume():
    with pytest.raises(HeadRegError, match="constant"):
        symmetry.head_mask(sitk.Image(20, 20, 20, sitk.sitkInt16))


def test_candidate_alignments_put_the_moving_frame_on_the_fixed_one():
    fixed = symmetry.SymmetryFrame(np.array([1.0, 2, 3]), geometry.rotation_about_axis([0, 0, 1], 30),
                                   np.array([3.0, 2, 1]), 1000)
    moving = symmetry.SymmetryFrame(np.array([-5.0, 0, 9]), geometry.rotation_about_axis([1, 1, 0], 80),
                                    np.array([3.0, 2, 1]), 1000)
    first = symmetry.candidate_alignments(fixed, moving)[0]
    assert np.allclose(geometry.transform_points(first, fixed.center[None]), moving.center)
    assert np.allclose(first[:3, :3] @ fixed.axes, moving.axes)


def test_composition_is_the_papers_formula_in_our_direction():
    rng = np.random.default_rng(4)
    f_fixed, f_moving, t_reg = (geometry.random_rigid(rng, a, d, rng.normal(size=3) * 50)
                                for a, d in ((40, 30), (120, 10), (8, 4)))
    composed = symmetry.compose_ground_truth(f_fixed, t_reg, f_moving)
    # Paper (moving -> fixed): T_comp = T_fix^-1 T_reg' T_mov with T_fix, T_mov: image -> frame.
    t_fix, t_mov, t_reg_paper = geometry.invert(f_fixed), geometry.invert(f_moving), geometry.invert(t_reg)
    paper = geometry.compose(geometry.invert(t_fix), t_reg_paper, t_mov)
    assert np.allclose(composed, geometry.invert(paper))
    # And point by point: a fixed point goes to its frame, across, and back out.
    x = rng.normal(size=(5, 3)) * 60
    step = geometry.transform_points(f_moving, geometry.transform_points(t_reg, geometry.transform_points(
        geometry.invert(f_fixed), x)))
    assert np.allclose(geometry.transform_points(composed, x), step)


def test_the_papers_registration_from_near_the_truth_closes_in(phantom_pair):
    mask = symmetry.head_mask(phantom_pair.mr)
    center = symmetry.symmetry_frame(phantom_pair.mr, mask).center
    nudge = geometry.rigid_matrix(geometry.rotation_about_axis([1, 0, 1], 3), [2, -1.5, 1], center)
    start = geometry.compose(phantom_pair.truth, nudge)
    before = geometry.mean_displacement_in_mask(start, phantom_pair.truth, mask)
    result = registration.register(phantom_pair.mr, phantom_pair.ct, start, center, "paper", mask)
    after = geometry.mean_displacement_in_mask(result.matrix, phantom_pair.truth, mask)
    assert before > 3
    assert after < 2.5
    assert result.metric < result.initial_metric


def test_unknown_preset_is_refused(phantom_pair):
    with pytest.raises(HeadRegError, match="unknown preset"):
        registration.register(phantom_pair.mr, phantom_pair.ct, preset="fast")


def test_ground_truth_with_symmetry_recovers_a_large_turn(turned_pair):
    truth = reference.ground_truth(turned_pair.mr, turned_pair.ct, "accurate", use_symmetry=True)
    mask = symmetry.head_mask(turned_pair.mr)
    assert geometry.mean_displacement_in_mask(truth.matrix, turned_pair.truth, mask) < 1.0
    # The record holds the frames and the registration between them, and they compose to the result.
    assert np.allclose(symmetry.compose_ground_truth(truth.fixed_frame, truth.registration_in_frame,
                                                     truth.moving_frame), truth.matrix)
    record = truth.record()
    assert record["symmetry_alignment"] and record["settings"]["search"] == search.EFFORT["exhaustive"]
    assert record["candidates"] and record["quality"]["head_dice"] > 0.85 and not record["warnings"]


def test_the_papers_optimiser_without_symmetry_is_lost_at_a_large_turn(turned_pair):
    truth = reference.ground_truth(turned_pair.mr, turned_pair.ct, "paper", use_symmetry=False)
    mask = symmetry.head_mask(turned_pair.mr)
    assert geometry.mean_displacement_in_mask(truth.matrix, turned_pair.truth, mask) > 10
    assert truth.fixed_frame is None and not truth.candidates


def test_two_scans_of_one_modality_are_registered_with_a_warning():
    """Two MRs (here of two different heads: nothing in the images can prove otherwise)
    are registered as asked, but the record says that the same head is not checked."""
    from conftest import shared_file
    from HeadRegistrationLib.core import volume_io
    first = volume_io.read_volume(shared_file("seg3d_epilepsy/MR.nii.gz"))
    second = volume_io.read_volume(shared_file("templates/ch2.nii.gz"))
    truth = reference.ground_truth(first, second)
    assert any("both volumes look like MR" in w and "same head" in w for w in truth.warnings), truth.warnings
