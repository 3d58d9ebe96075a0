"""`headreg register`: the pipeline end to end on the embedded phantom, its report and
outputs, order independence (bad input: test_bad_input.py)."""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from HeadRegistrationLib import cli
from HeadRegistrationLib.core import geometry, transform_io
from HeadRegistrationLib.data import phantom, synthesis
from HeadRegistrationLib.register import autoregister, preprocessing, symmetry
from HeadRegistrationLib.core.errors import HeadRegError

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pair")
    phantom.write_phantom(folder, 0, None, None, phantom.CT_GRID, phantom.MR_GRID, False, False)
    return folder


@pytest.fixture(scope="module")
def registered(pair_files, tmp_path_factory):
    """The CLI run with the CT first, every output asked for."""
    out = tmp_path_factory.mktemp("out")
    code = cli.main(["register", str(pair_files / "ct.nii.gz"), str(pair_files / "mr.nii.gz"), "-o",
                     str(out / "t.tfm"), "--report", str(out / "r.json"), "--qa", str(out / "qa.png"),
                     "--resampled", str(out / "ct_on_mr.nii.gz")])
    return code, out


def test_register_finds_the_truth_and_writes_every_output(registered, pair_files):
    code, out = registered
    assert code == 0
    found = transform_io.read_transform(out / "t.tfm")
    truth = transform_io.read_transform(pair_files / "truth.tfm")
    mr = sitk.ReadImage(str(pair_files / "mr.nii.gz"))
    assert geometry.mean_displacement_in_mask(found, truth, symmetry.head_mask(mr)) < 2.0
    report = json.loads((out / "r.json").read_text())
    assert report["fixed"]["path"].endswith("mr.nii.gz") and report["fixed"]["modality"] == "MR"
    assert report["moving"]["path"].endswith("ct.nii.gz") and report["moving"]["input"] == 1
    np.testing.assert_allclose(report["matrix_fixed_to_moving_lps"], found, atol=1e-6)
    assert {"frames", "roles", "starts", "learned correction", "screening", "fine search", "refinement",
            "quality", "reading", "writing", "total"} <= set(report["seconds"])
    assert report["quality"]["confident"] and report["quality"]["head_dice"] > 0.85
    assert report["learned_models"] and {c["kind"] for c in report["candidates"]} <= {
        "symmetry", "axis turn", "sampled", "header", "learned", "mirror"}
    resampled = sitk.ReadImage(str(out / "ct_on_mr.nii.gz"))
    assert resampled.GetSize() == mr.GetSize() and (out / "qa.png").stat().st_size > 10_000


def test_the_other_order_and_a_second_run_give_the_same_transform(registered, pair_files):
    _, out = registered
    mr, ct = (sitk.ReadImage(str(pair_files / name)) for name in ("mr.nii.gz", "ct.nii.gz"))
    result = autoregister.register_volumes(mr, ct)
    assert result.fixed_index == 0
    np.testing.assert_allclose(result.matrix, transform_io.read_transform(out / "t.tfm"), atol=1e-6)


def test_no_refine_stops_after_the_screening(pair_files):
    mr, ct = (sitk.ReadImage(str(pair_files / name)) for name in ("mr.nii.gz", "ct.nii.gz"))
    result = autoregister.register_volumes(ct, mr, refine=False)
    assert "refinement" not in result.seconds
    truth = transform_io.read_transform(pair_files / "truth.tfm")
    assert geometry.mean_displacement_in_mask(result.matrix, truth, symmetry.head_mask(mr)) < 10.0


# ---------------------------------------------------------------- bad inputs (the rest: test_bad_input.py)

def _image(array, spacing=(2.0, 2.0, 2.0)):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    return image


def _run(capsys, *argv):
    code = cli.main(["register", *map(str, argv)])
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a CUDA GPU")
def test_asking_for_a_gpu_that_is_not_there_is_an_error(pair_files, tmp_path, capsys):
    code, err = _run(capsys, pair_files / "mr.nii.gz", pair_files / "ct.nii.gz", "-o", tmp_path / "t.tfm",
                     "--device", "cuda")
    assert code == 1 and "no CUDA GPU" in err


def test_a_large_volume_is_averaged_down_in_the_same_physical_space():
    image = _image(np.arange(40 * 50 * 60, dtype=np.float32).reshape(40, 50, 60), spacing=(0.5, 1.0, 3.0))
    image.SetOrigin((10.0, -5.0, 2.0))
    copy, factors = preprocessing.working_copy(image, max_voxels=20_000)
    assert np.prod(copy.GetSize()) <= 20_000 and factors[2] == 1 and factors[0] >= factors[1]
    corner = image.TransformContinuousIndexToPhysicalPoint((-0.5, -0.5, -0.5))
    assert np.allclose(copy.TransformContinuousIndexToPhysicalPoint((-0.5, -0.5, -0.5)), corner)
    same, factors = preprocessing.working_copy(image)
    assert same is image and factors == [1, 1, 1]


def test_a_ct_padding_value_is_taken_as_air_and_nothing_else_is():
    rng = np.random.default_rng(0)
    hu = np.full((12, 40, 40), -1000.0) + rng.normal(0, 5, (12, 40, 40))
    hu[:, 12:28, 12:28] = 40.0
    hu[:, 18:22, 18:22] = 1500.0
    for padding in (-3024, -2048):
        image = synthesis.outside_reconstruction_circle(_image(np.clip(hu, -1024, None).astype(np.int16)), padding)
        cleaned, padded = preprocessing.without_padding(image)
        values = sitk.GetArrayViewFromImage(cleaned)
        assert f"padding value {padding}" in padded and -1024 <= values.min() < -990 and values.max() == 1500
        assert sitk.GetArrayViewFromImage(image).min() == padding   # the input is not modified
    kept = (_image(np.clip(hu, -1024, None).astype(np.int16)),   # clipped air beside noisy air
            synthesis.outside_reconstruction_circle(_image(np.clip(hu + 1000, 0, None).astype(np.float32)), 0))
    for image in kept:   # the second: an MR's zero background
        assert preprocessing.without_padding(image) == (image, "")


def test_a_ct_with_its_reconstruction_circle_padded_registers_confidently(pair_files):
    """The -3024 outside the circle is not the darkest tissue: without taking it as air the
    Otsu head mask is the circle and the right result is flagged LOW CONFIDENCE."""
    padded = synthesis.outside_reconstruction_circle(sitk.ReadImage(str(pair_files / "ct.nii.gz")), -3024)
    mr = sitk.ReadImage(str(pair_files / "mr.nii.gz"))
    result = autoregister.register_volumes(padded, mr)
    assert result.confident and any("padding value -3024" in w for w in result.warnings)
    truth = transform_io.read_transform(pair_files / "truth.tfm")
    assert geometry.mean_displacement_in_mask(result.matrix, truth, symmetry.head_mask(mr)) < 0.5


def test_cropping_to_the_head_keeps_the_head_box_and_every_voxel_where_it_was():
    values = np.random.default_rng(0).random((30, 40, 50)).astype(np.float32)
    image = _image(values, spacing=(1.0, 2.0, 3.0))
    image.SetDirection(geometry.rotation_about_axis([1, 2, 3], 30).ravel().tolist())   # oblique axes
    mask = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    mask.CopyInformation(image)
    mask[10:20, 15:25, 5:9] = 1
    cropped = preprocessing.crop_to_head(image, mask, margin_mm=4.0)
    size = np.array(cropped.GetSize())
    assert np.all(size < image.GetSize()) and np.all(size >= [10 + 8, 10 + 4, 4 + 2])
    for index in ((10, 15, 5), (19, 24, 8)):   # corners of the head box: the same point, the same value
        point = mask.TransformIndexToPhysicalPoint(index)
        inside = cropped.TransformPhysicalPointToIndex(point)
        assert cropped[inside] == image[index]
    assert preprocessing.crop_to_head(image, mask * 0, 4.0) is image   # no head: nothing to crop to


def test_roles_go_to_the_order_with_the_higher_odds_and_are_refused_when_too_close():
    assert autoregister.assign_roles([0.999, 0.9]) == (1, [])          # a clear CT beside a CT-ish MR
    assert autoregister.assign_roles([0.02, 0.98]) == (0, [])
    fixed, warnings = autoregister.assign_roles([0.9, 0.4])             # 13:1: registered, but flagged
    assert fixed == 1 and "LOW CONFIDENCE" in warnings[0]
    with pytest.raises(HeadRegError, match="both volumes look like CT"):
        autoregister.assign_roles([0.999, 0.998], ("first: air", "second: bone"))
    with pytest.raises(HeadRegError, match="both volumes look like MR"):
        autoregister.assign_roles([0.01, 0.02])
    with pytest.raises(HeadRegError, match="cannot tell"):
        autoregister.assign_roles([0.6, 0.4])


def test_quality_flags_a_poor_overlap_and_a_close_runner_up(pair_files):
    from HeadRegistrationLib.register import quality, search
    mr = sitk.ReadImage(str(pair_files / "mr.nii.gz"))
    head = symmetry.head_mask(mr, 4.0)
    assert quality.head_dice(head, head, np.eye(4)) == pytest.approx(1.0)
    shifted = geometry.translation_matrix((0.0, 40.0, 0.0))
    assert quality.head_dice(head, head, shifted) < quality.MIN_HEAD_DICE
    flipped = geometry.rigid_matrix(geometry.rotation_about_axis((0, 0, 1), 180), (0, 0, 0), geometry.grid_center(mr))

    def candidate(matrix, fine):
        return search.Candidate("symmetry", matrix, {"fine": fine, "result at fine": fine}, {"fine": 1.0},
                                {"fine": matrix})
    chosen = candidate(np.eye(4), -0.50)
    measured = quality.measure(search.SearchResult(chosen, [], {}, candidate(flipped, -0.49)), head, head)
    assert measured["runner_up_mi_gap"] == pytest.approx(0.02) and not measured["confident"]
    assert any("different alignment" in w for w in measured["warnings"])
    alone = quality.measure(search.SearchResult(chosen, [], {}, None), head, head)
    assert alone["runner_up_mi_gap"] is None and alone["confident"] and not alone["warnings"]
    poor = quality.measure(search.SearchResult(candidate(shifted, -0.5), [], {}, None), head, head)
    assert not poor["confident"] and any("overlap poorly" in w for w in poor["warnings"])


def test_cancel_stops_inside_an_optimisation_within_a_second(pair_files):
    """The Cancel hook is asked at every stage and optimiser iteration: asked to stop in
    the middle of the refinement, the work ends at once with Cancelled."""
    from HeadRegistrationLib.core.errors import Cancelled
    from HeadRegistrationLib.core.volume_io import read_volume
    images = [read_volume(pair_files / name) for name in ("ct.nii.gz", "mr.nii.gz")]
    stages, asked, stopped_at = [], [0], []

    def cancelled():
        if stages and stages[-1] == "refinement":
            asked[0] += 1
            if asked[0] == 3:   # the third question inside the refinement: its second iteration
                stopped_at.append(__import__("time").perf_counter())
                return True
        return False
    fractions = []

    def progress(stage, fraction):
        stages.append(stage)
        fractions.append(fraction)
    with pytest.raises(Cancelled, match="cancelled"):
        autoregister.register_volumes(*images, progress=progress, cancelled=cancelled)
    assert __import__("time").perf_counter() - stopped_at[0] < 1.0
    assert stages[-1] == "refinement" and set(stages) <= set(autoregister.STAGE_FRACTIONS)
    # The fraction done never goes back, and moves inside the optimisations (not only between stages).
    assert fractions == sorted(fractions) and 0.0 <= fractions[0] and fractions[-1] < 1.0
    screening = [f for s, f in zip(stages, fractions) if s == "screening"]
    assert len(set(screening)) > 10 and screening[-1] < autoregister.STAGE_FRACTIONS["fine search"]
