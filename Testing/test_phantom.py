"""The digital head phantom: anatomy, CT and MR realism, truth, determinism."""

import numpy as np
import pytest
import SimpleITK as sitk

from HeadRegistrationLib.core import geometry
from HeadRegistrationLib.data import phantom, tissues
from HeadRegistrationLib.core.errors import HeadRegError


@pytest.fixture(scope="module")
def head_labels():
    return sitk.GetArrayFromImage(phantom.paint_head(seed=5))  # z, y, x; head centre at index of 0 mm


def agreement(a, b):
    inside = (a > 0) | (b > 0)
    return float(np.mean(a[inside] == b[inside]))


def test_head_has_every_tissue(head_labels):
    present = set(np.unique(head_labels))
    assert set(phantom.LABEL.values()) <= present


def test_head_is_left_right_symmetric_but_not_front_back_or_top_bottom():
    image = phantom.paint_head(seed=5)
    labels = sitk.GetArrayFromImage(image)
    # The painting box is symmetric in x about 0 mm, so flipping the x axis mirrors left/right.
    assert image.GetOrigin()[0] == -(image.GetSize()[0] - 1) * image.GetSpacing()[0] / 2
    assert agreement(labels, labels[:, :, ::-1]) > 0.9   # only the folding differs
    head = labels > 0
    zs, ys = np.nonzero(head.any(axis=2))
    box = labels[zs.min():zs.max() + 1, ys.min():ys.max() + 1]
    assert agreement(box, box[:, ::-1]) < 0.8       # front/back
    assert agreement(box, box[::-1]) < 0.8          # top/bottom


def test_ct_and_mr_look_like_scans(phantom_pair):
    ct, mr = phantom_pair.ct, phantom_pair.mr
    assert ct.GetSize() == (512, 512, 29) and ct.GetSpacing() == pytest.approx((0.653595, 0.653595, 4.0))
    assert mr.GetSize() == (256, 256, 26) and mr.GetSpacing() == pytest.approx((1.25, 1.25, 4.0))
    assert ct.GetPixelID() == sitk.sitkInt16 and mr.GetPixelID() == sitk.sitkInt16
    hu = sitk.GetArrayFromImage(ct)
    ct_labels = sitk.GetArrayFromImage(phantom_pair.ct_labels)
    brain = np.isin(ct_labels, [phantom.LABEL["grey_matter"], phantom.LABEL["white_matter"]])
    assert 20 < np.median(hu[brain]) < 50
    assert np.median(hu[ct_labels == phantom.LABEL["cortical_bone"]]) > 700
    assert np.median(hu[ct_labels == phantom.LABEL["fat"]]) < 0
    background = hu[:40, :40]
    assert abs(np.median(background) + 1000) < 30 and 3 < background.std() < 40   # air with noise
    assert np.sum((hu > 100) & (ct_labels == 0)) > 1000                              # table / head holder
    t1 = sitk.GetArrayFromImage(mr).astype(float)
    mr_labels = sitk.GetArrayFromImage(phantom_pair.mr_labels)
    white, grey, csf = (np.median(t1[mr_labels == phantom.LABEL[n]]) for n in ("white_matter", "grey_matter", "csf"))
    assert white > grey > csf
    air = t1[mr_labels == 0]
    assert air.min() >= 0 and 0 < air.mean() < 0.1 * white   # Rician: positive noise floor


def test_phantom_shows_its_tissues_as_the_synthesis_table_says():
    """One tissue table (data.tissues): on a noise-free render, each large tissue of the
    phantom has the value of its synthesis class (middle of the class's CT range, the
    class's T1 signal scaled to white matter = 700)."""
    labels = phantom.paint_head(seed=0)
    grid = phantom.clinical_grid((128, 128, 48), (2.0, 2.0, 2.0), origin=(-126.0, -126.0, -60.0))
    ct = sitk.GetArrayFromImage(phantom.render_ct(labels, grid, np.eye(4), np.random.default_rng(0), noise_hu=0))
    mr = sitk.GetArrayFromImage(phantom.render_mr(labels, grid, np.eye(4), np.random.default_rng(0),
                                                  noise_fraction=0, bias_strength=0))
    on_grid = sitk.Resample(labels, grid, sitk.Transform(), sitk.sitkNearestNeighbor)
    for name in ("white_matter", "grey_matter", "csf", "cortical_bone"):
        label, tissue_class, _ = tissues.PHANTOM_TISSUES[name]
        where = sitk.GetArrayFromImage(sitk.BinaryErode(on_grid == label, [1, 1, 0])).astype(bool)  # no partial volume
        assert where.sum() > 50, name
        assert np.median(ct[where]) == pytest.approx(sum(tissues.CT_HU[tissue_class]) / 2, abs=15), name
        expected = 700 * tissues.MR_SIGNAL["t1"][tissue_class] / tissues.MR_SIGNAL["t1"][tissues.WHITE]
        assert np.median(mr[where]) == pytest.approx(expected, rel=0.15), name


def test_mr_bias_field_varies_smoothly():
    labels = phantom.paint_head(seed=0)
    grid = phantom.clinical_grid((64, 64, 8), (4.0, 4.0, 4.0), origin=(-126.0, -126.0, 0.0))
    flat = phantom.render_mr(labels, grid, np.eye(4), np.random.default_rng(0), noise_fraction=0, bias_strength=0)
    biased = phantom.render_mr(labels, grid, np.eye(4), np.random.default_rng(0), noise_fraction=0,
                               bias_strength=0.2)
    a, b = sitk.GetArrayFromImage(flat).astype(float), sitk.GetArrayFromImage(biased).astype(float)
    ratio = b[a > 300] / a[a > 300]
    assert 0.75 < ratio.min() and ratio.max() < 1.3 and ratio.std() > 0.02


def test_truth_has_the_requested_misalignment(phantom_pair):
    truth = phantom_pair.truth
    assert geometry.is_rigid(truth)
    assert geometry.rotation_error_deg(truth, np.eye(4)) == pytest.approx(12.0)
    # The translation on top of the move from the MR grid centre to the CT grid centre.
    ct_center = geometry.grid_center(phantom_pair.ct)
    shift = geometry.transform_points(truth, phantom_pair.rotation_center) - ct_center
    assert np.linalg.norm(shift) == pytest.approx(8.0)


def test_truth_puts_ct_anatomy_on_mr_anatomy(phantom_pair):
    labels = phantom_pair.ct_labels
    carried = sitk.Resample(labels, phantom_pair.mr_labels, geometry.sitk_from_matrix(phantom_pair.truth),
                            sitk.sitkNearestNeighbor, 255)
    a, b = sitk.GetArrayFromImage(carried), sitk.GetArrayFromImage(phantom_pair.mr_labels)
    covered = a != 255
    brain_a, brain_b = (np.isin(x, [phantom.LABEL["grey_matter"], phantom.LABEL["white_matter"]]) & covered
                        for x in (a, b))
    assert 2 * (brain_a & brain_b).sum() / (brain_a.sum() + brain_b.sum()) > 0.9
    assert phantom.bone_dice(phantom_pair.ct, phantom_pair.mr_labels, phantom_pair.truth) > 0.8
    assert phantom.bone_dice(phantom_pair.ct, phantom_pair.mr_labels, phantom_pair.truth) > \
        2 * phantom.bone_dice(phantom_pair.ct, phantom_pair.mr_labels, np.eye(4))


def test_same_seed_same_phantom_other_seed_other_subject():
    small = {"ct_grid": {"size": (96, 96, 20), "spacing": (2.5, 2.5, 5.0)},
             "mr_grid": {"size": (80, 80, 20), "spacing": (3.0, 3.0, 5.0)}}
    a = phantom.make_phantom_pair(seed=11, **small)
    b = phantom.make_phantom_pair(seed=11, **small)
    c = phantom.make_phantom_pair(seed=12, **small)
    assert np.array_equal(sitk.GetArrayFromImage(a.ct), sitk.GetArrayFromImage(b.ct))
    assert np.array_equal(sitk.GetArrayFromImage(a.mr), sitk.GetArrayFromImage(b.mr))
    np.testing.assert_array_equal(a.truth, b.truth)
    assert not np.allclose(a.truth, c.truth)
    head_a = (sitk.GetArrayFromImage(a.mr_labels) > 0).sum()
    head_c = (sitk.GetArrayFromImage(c.mr_labels) > 0).sum()
    assert head_a != head_c


def test_bad_requests_are_refused():
    with pytest.raises(HeadRegError, match="finite"):
        phantom.make_phantom_pair(rotation_deg=float("nan"))
    with pytest.raises(HeadRegError, match="distance"):
        phantom.make_phantom_pair(translation_mm=-3)
