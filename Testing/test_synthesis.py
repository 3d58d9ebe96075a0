"""Cross-modal synthesis: classes, rendering, unit conversions, and `headreg synth`."""

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import shared_file

from HeadRegistrationLib import cli
from HeadRegistrationLib.data import dataset, synthesis, tissues


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


@pytest.fixture(scope="module")
def head_classes():
    """Synthesis classes of phantom head 0 at 2 mm."""
    return dataset.prepare_subject(dataset.phantom_subjects(1)[0], None)["classes"]


def test_rendered_ct_has_hounsfield_values_of_each_tissue(head_classes):
    ct = synthesis.render_ct(head_classes, np.random.default_rng(0))
    hu, labels = sitk.GetArrayFromImage(ct), sitk.GetArrayFromImage(head_classes)
    core = sitk.GetArrayFromImage(sitk.BinaryErode(head_classes == tissues.WHITE, [2] * 3)).astype(bool)
    assert ct.GetSize() == head_classes.GetSize() and ct.GetOrigin() == head_classes.GetOrigin()
    assert 10 < np.median(hu[core]) < 50                           # brain
    assert np.median(hu[labels == tissues.BONE]) > 500            # bone, blurred at its edges
    assert np.median(hu[(labels == tissues.AIR)]) < -900          # air (some head rest)


@pytest.fixture(scope="module")
def ct_and_its_classes(head_classes):
    ct = synthesis.render_ct(head_classes, np.random.default_rng(1))
    return ct, synthesis.classes_from_ct(ct)


def test_classes_from_ct_keep_the_anatomy(head_classes, ct_and_its_classes):
    ct, found = ct_and_its_classes
    classes, truth = sitk.GetArrayFromImage(found), sitk.GetArrayFromImage(head_classes)
    assert _dice(classes == tissues.BONE, truth == tissues.BONE) > 0.6
    brain = np.isin(truth, (tissues.GREY, tissues.WHITE, tissues.CSF))
    assert _dice(np.isin(classes, (tissues.GREY, tissues.WHITE, tissues.CSF)), brain) > 0.85
    dense_head = (sitk.GetArrayFromImage(ct) > 100) & (truth != tissues.AIR)
    assert (classes[dense_head] != tissues.AIR).mean() > 0.99   # the table is not head; the head's bone is


@pytest.mark.parametrize("weighting", synthesis.WEIGHTINGS)
def test_mr_from_ct_has_the_contrast_asked_for(head_classes, ct_and_its_classes, weighting):
    truth = sitk.GetArrayFromImage(head_classes)
    mr = sitk.GetArrayFromImage(synthesis.render_mr(ct_and_its_classes[1], np.random.default_rng(2), weighting))
    csf, white = mr[truth == tissues.CSF].mean(), mr[truth == tissues.WHITE].mean()
    assert (white > csf) if weighting == "t1" else (csf > white)


def test_mr_to_classes_finds_brain_and_skull_without_help(head_classes):
    """A T1 of the phantom, without skull mask or template: the brain, and a shell of bone
    around it (a crude guess: the fallback when neither is at hand)."""
    mr = synthesis.render_mr(head_classes, np.random.default_rng(2), "t1")
    classes = sitk.GetArrayFromImage(synthesis.classes_from_mr(mr, "t1"))
    truth = sitk.GetArrayFromImage(head_classes)
    brain = np.isin(truth, (tissues.GREY, tissues.WHITE, tissues.CSF))
    assert _dice(np.isin(classes, (tissues.GREY, tissues.WHITE, tissues.CSF)), brain) > 0.8
    skull = np.isin(truth, (tissues.BONE, tissues.MARROW))
    assert _dice(np.isin(classes, (tissues.BONE, tissues.MARROW)), skull) > 0.3


def test_a_given_skull_mask_is_the_bone(head_classes):
    mr = synthesis.render_mr(head_classes, np.random.default_rng(3), "t1")
    skull = sitk.Cast(head_classes == tissues.BONE, sitk.sitkUInt8)
    before = sitk.GetArrayFromImage(mr).copy()
    ct = synthesis.synthesise(mr, "ct", np.random.default_rng(3), "t1", skull=skull)
    assert np.array_equal(sitk.GetArrayFromImage(mr), before)     # the source is left alone
    bone = sitk.GetArrayFromImage(skull).astype(bool)
    assert _dice(sitk.GetArrayFromImage(ct) > tissues.BONE_HU, bone) > 0.7   # thin bone, blurred slices


def test_unknown_weighting_and_target_are_refused(head_classes):
    mr = synthesis.render_mr(head_classes, np.random.default_rng(4), "t1")
    with pytest.raises(synthesis.HeadRegError, match="weighting"):
        synthesis.classes_from_mr(mr, "flair")   # rendered, but not a source whose tissues are found
    with pytest.raises(synthesis.HeadRegError, match="target modality"):
        synthesis.synthesise(mr, "pet", np.random.default_rng(0))


def test_cormack_units_to_hounsfield():
    cormack = sitk.GetImageFromArray(np.array([[[0.0, 900.0, 1900.0, 2900.0, 3900.0]]], dtype=np.float32))
    hu = sitk.GetArrayFromImage(synthesis.hounsfield_from_cormack(cormack)).ravel()
    np.testing.assert_allclose(hu, [-1000, -100, 0, 100, 1100])


def test_two_peak_calibration_recovers_hounsfield_units(head_classes):
    ct = synthesis.render_ct(head_classes, np.random.default_rng(5), head_rest=False)
    hu = sitk.GetArrayFromImage(ct).astype(np.float32)
    stored = sitk.GetImageFromArray(np.round((hu + 1024) / 12).astype(np.uint8))   # like a rescaled uint8 CT
    calibrated = sitk.GetArrayFromImage(synthesis.hounsfield_from_two_peaks(stored))
    core = sitk.GetArrayFromImage(sitk.BinaryErode(head_classes == tissues.WHITE, [2] * 3)).astype(bool)
    assert abs(np.median(calibrated[core]) - np.median(hu[core])) < 40
    assert np.median(calibrated[hu < -990]) < -950


def test_real_mr_gives_its_brain_and_a_ct_with_its_skull():
    """The Seg3D patient: the brain found in the MR against the sample's own brain mask, and
    the synthesised CT's bone against its skull mask."""
    mr = dataset.at_working_spacing(sitk.ReadImage(str(shared_file("seg3d_epilepsy/MR.nii.gz")), sitk.sitkFloat32))
    skull = sitk.ReadImage(str(shared_file("seg3d_epilepsy/Skull.nrrd")))
    brain = sitk.ReadImage(str(shared_file("seg3d_epilepsy/Brain.nrrd")))
    on_mr = [sitk.GetArrayFromImage(sitk.Resample(mask, mr, sitk.Transform(), sitk.sitkNearestNeighbor)).astype(bool)
             for mask in (skull, brain)]
    classes = sitk.GetArrayFromImage(synthesis.classes_from_mr(mr, "t1", skull))
    assert _dice(np.isin(classes, (tissues.GREY, tissues.WHITE, tissues.CSF)), on_mr[1]) > 0.8
    ct = synthesis.synthesise(mr, "ct", np.random.default_rng(0), "t1", skull=skull)
    assert _dice(sitk.GetArrayFromImage(ct) > tissues.BONE_HU, on_mr[0]) > 0.7


def test_template_carried_onto_another_head_puts_bone_on_its_skull():
    """Colin27 lies in MNI space: the scct template carried onto it by the affine MR-to-MR
    registration must match the template simply resampled there."""
    templates = dataset.read_templates(shared_file("templates").parent)
    colin = dataset.at_working_spacing(sitk.ReadImage(str(shared_file("templates/ch2.nii.gz")), sitk.sitkFloat32))
    carried = sitk.GetArrayFromImage(synthesis.carry_template(colin, *templates))
    direct = sitk.GetArrayFromImage(sitk.Resample(templates[1], colin, sitk.Transform(), sitk.sitkLinear, -1000.0))
    assert _dice(carried > tissues.BONE_HU, direct > tissues.BONE_HU) > 0.6


def test_synth_command_writes_the_partner_on_the_source_grid(tmp_path, head_classes, capsys):
    source = tmp_path / "mr.nii.gz"
    sitk.WriteImage(synthesis.render_mr(head_classes, np.random.default_rng(6), "t1"), str(source))
    assert cli.main(["synth", str(source), "--to", "ct", "-o", str(tmp_path / "ct.nii.gz"), "--no-template",
                     "--qa", str(tmp_path / "qa.png"), "--seed", "3"]) == 0
    ct = sitk.ReadImage(str(tmp_path / "ct.nii.gz"))
    assert ct.GetSize() == head_classes.GetSize() and (tmp_path / "qa.png").stat().st_size > 10000
    assert "a CT of the anatomy of mr.nii.gz" in capsys.readouterr().out
    assert cli.main(["synth", str(tmp_path / "ct.nii.gz"), "--to", "mr", "-o", str(tmp_path / "mr2.nii.gz")]) == 0
    assert sitk.ReadImage(str(tmp_path / "mr2.nii.gz")).GetSize() == ct.GetSize()


def test_synth_command_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["synth", str(tmp_path / "missing.nii.gz"), "--to", "ct", "-o", str(tmp_path / "x.nii.gz")]) == 1
    assert cli.main(["synth", str(tmp_path / "a.nii.gz"), "--to", "ct", "-o", str(tmp_path / "no" / "x.nii.gz")]) == 1
    flat = tmp_path / "flat.nii.gz"
    sitk.WriteImage(sitk.Image([20, 20, 20], sitk.sitkInt16), str(flat))
    assert cli.main(["synth", str(flat), "--to", "ct", "-o", str(flat)]) == 1
    assert cli.main(["synth", str(flat), "--to", "ct", "-o", str(tmp_path / "x.nii.gz")]) == 1
    positive = tmp_path / "positive.nii.gz"
    sitk.WriteImage(sitk.Cast(sitk.GaussianSource(sitk.sitkFloat32, [20] * 3, [5.0] * 3, [10.0] * 3, 200), sitk.sitkUInt8),
                    str(positive))
    assert cli.main(["synth", str(positive), "--to", "mr", "-o", str(tmp_path / "x.nii.gz")]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert "--ct-units" in errors[-1]
    assert len(errors) == 5 and all(line.startswith("headreg synth: error:") for line in errors)
    assert not (tmp_path / "x.nii.gz").exists()
