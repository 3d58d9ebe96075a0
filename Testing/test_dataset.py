"""Rigid augmentation, subject splits and the training-set builder (`headreg dataset`)."""

import json

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import SHARED_DATA

from HeadRegistrationLib import cli
from HeadRegistrationLib.core import geometry, resources, transform_io
from HeadRegistrationLib.data import augmentation, dataset
from HeadRegistrationLib.register import registration
from HeadRegistrationLib.core.errors import HeadRegError

SMALL = {"copies": 2, "seed": 0, "grid_size": [48, 48, 48], "grid_spacing_mm": 5.0, "max_angle_deg": 15.0,
         "max_shift_mm": 5.0, "center_jitter_mm": 5.0}


def test_random_pose_stays_in_range():
    rng = np.random.default_rng(0)
    center = np.array([10.0, -20.0, 30.0])
    for _ in range(200):
        pose = augmentation.random_pose(rng, center, 15.0, 5.0)
        assert geometry.rotation_error_deg(pose, np.eye(4)) <= 15.0 + 1e-9
        shift = geometry.transform_points(pose, center[None])[0] - center
        assert np.all(np.abs(shift) <= 5.0 + 1e-9)
    angles = [geometry.rotation_error_deg(augmentation.random_pose(rng, center, 180.0, 0.0), np.eye(4))
              for _ in range(200)]
    assert max(angles) > 150     # any orientation when asked
    with pytest.raises(HeadRegError):
        augmentation.random_pose(rng, center, 200.0, 5.0)


def test_copy_seeds_depend_on_subject_and_copy_only():
    assert augmentation.copy_seed(0, "a", 3) == augmentation.copy_seed(0, "a", 3)
    assert augmentation.copy_seed(0, "a", 3) != augmentation.copy_seed(0, "b", 3)
    assert augmentation.copy_seed(0, "a", 3) != augmentation.copy_seed(1, "a", 3)


def test_split_is_by_subject_and_reproducible():
    subjects = [f"s{k}" for k in range(10)]
    split = augmentation.split_subjects(subjects, seed=4, fixed={"s0": "test"})
    assert split == augmentation.split_subjects(list(reversed(subjects)), seed=4, fixed={"s0": "test"})
    assert set(split) == set(subjects) and split["s0"] == "test"
    assert {name: list(split.values()).count(name) for name in augmentation.SPLITS} == \
        {"train": 6, "validation": 2, "test": 2}
    assert set(augmentation.split_subjects(["a", "b", "c"]).values()) == set(augmentation.SPLITS)


def grid_image(array: np.ndarray, record: dict, spacing: float) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.SetSpacing([spacing] * 3)
    image.SetOrigin(record["grid_origin"])
    return image


def assert_copies_land(out, settings):
    """Every copy: the moving volume resampled through the stored truth lands on the fixed
    one: its Mattes MI is better than as it lies, than through the truth turned by 10
    degrees about the grid centre, and than through the truth shifted by two voxels."""
    rows = dataset.TrainingSet(out, "train").rows + dataset.TrainingSet(out, "validation").rows \
        + dataset.TrainingSet(out, "test").rows
    assert rows
    for row in rows:
        paths = dataset.copy_paths(out, row["subject"], int(row["copy"]))
        record = json.loads(paths["json"].read_text())
        volumes = np.load(paths["npy"]).astype(np.float32)
        truth = transform_io.read_transform(paths["tfm"])
        np.testing.assert_allclose(truth, record["matrix"], atol=1e-6)
        np.testing.assert_allclose(geometry.matrix_from_parameters(record["parameters"], record["grid_center"]),
                                   truth, atol=1e-6)
        turned = geometry.compose(truth, geometry.rigid_matrix(geometry.rotation_about_axis((1, 1, 0), 10.0), (0, 0, 0),
                                                               record["grid_center"]))
        shifted = geometry.compose(truth, geometry.translation_matrix([2 * settings["grid_spacing_mm"], 0, 0]))
        fixed, moving = (grid_image(v, record, settings["grid_spacing_mm"]) for v in volumes)
        scores = {name: registration.mutual_information(fixed, moving, matrix, bins=32)   # lower is better
                  for name, matrix in (("truth", truth), ("identity", np.eye(4)), ("turned", turned),
                                       ("shifted", shifted))}
        assert all(scores["truth"] < score - 0.005 for name, score in scores.items() if name != "truth"), \
            (row["subject"], scores)


@pytest.fixture(scope="module")
def phantom_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("set")
    settings = dict(SMALL, max_angle_deg=30.0)
    manifest = dataset.build(out, dataset.phantom_subjects(3), settings)
    return out, settings, manifest


def test_phantom_copies_land_on_their_fixed_volume(phantom_set):
    out, settings, manifest = phantom_set
    assert manifest["examples"] == 6 and not manifest["failed"]
    assert_copies_land(out, settings)


def test_no_subject_is_in_two_splits(phantom_set):
    out, _, manifest = phantom_set
    where = {}
    for split in augmentation.SPLITS:
        for subject in dataset.TrainingSet(out, split).subjects:
            assert subject not in where, f"{subject} in {where.get(subject)} and {split}"
            where[subject] = split
            assert manifest["subjects"][subject]["split"] == split
    assert len(where) == 3


def test_reading_back_gives_arrays_and_labels(phantom_set):
    out, settings, _ = phantom_set
    train = dataset.TrainingSet(out, "train")
    assert len(train) == train.parameters.shape[0] > 0
    volumes = train.volumes(0)
    assert volumes.shape == (2, 48, 48, 48) and volumes.dtype == np.float32
    assert 0 <= volumes.min() and volumes.max() <= 3.0
    assert (out / "qa" / "phantom-0.png").stat().st_size > 10000


def test_build_resumes_and_refuses_other_settings(phantom_set):
    out, settings, manifest = phantom_set
    stamp = dataset.copy_paths(out, "phantom-1", 1)["npy"].stat().st_mtime_ns
    again = dataset.build(out, dataset.phantom_subjects(3), settings)
    assert again["examples"] == manifest["examples"]
    assert dataset.copy_paths(out, "phantom-1", 1)["npy"].stat().st_mtime_ns == stamp
    with pytest.raises(HeadRegError, match="other settings"):
        dataset.build(out, dataset.phantom_subjects(3), dict(settings, max_shift_mm=9.0))


def test_new_subjects_leave_the_old_ones_in_their_split(tmp_path):
    settings = dict(SMALL, copies=1, grid_size=[16, 16, 16], grid_spacing_mm=16.0)
    first = dataset.build(tmp_path, dataset.phantom_subjects(3), settings)
    grown = dataset.build(tmp_path, dataset.phantom_subjects(6), settings)
    assert all(grown["subjects"][s]["split"] == first["subjects"][s]["split"] for s in first["subjects"])
    assert grown["examples"] == 6


def test_shared_subjects_land_too(tmp_path):
    """A real MR with its skull mask, a real CT made MR, and the real template pair."""
    subjects = [s for s in dataset.shared_subjects(SHARED_DATA)
                if s["id"] in ("seg3d-epilepsy", "ct-pitch-phantom", "mni152")]
    if len(subjects) < 3:
        pytest.skip(f"shared data not available: {SHARED_DATA}")
    settings = dict(SMALL, copies=1)
    manifest = dataset.build(tmp_path, subjects, settings)
    assert manifest["examples"] == 3 and not manifest["failed"]
    assert all(len(manifest["subjects"][s["id"]]["files"]) >= 1 for s in subjects)   # with checksums
    assert_copies_land(tmp_path, settings)


def test_dataset_sweep_command_writes_nested_subsets(tmp_path, capsys):
    out = tmp_path / "sweep"
    code = cli.main(["dataset", "sweep", "--out", str(out), "--counts", "1:3:2", "--phantoms", "2", "--no-shared",
                     "--grid-size", "16", "16", "16", "--grid-spacing", "16"])
    assert code == 0, capsys.readouterr().err
    for n in (1, 3):
        lines = (out / f"index-n{n:03d}.csv").read_text().strip().splitlines()
        assert len(lines) == 1 + 2 * n
        assert json.loads((out / f"manifest-n{n:03d}.json").read_text())["copies_per_subject"] == n
    first = (out / "index-n001.csv").read_text().splitlines()[1]
    assert first in (out / "index-n003.csv").read_text()      # n=1 is the start of n=3


def test_dataset_command_keeps_the_splits_of_another_set(tmp_path, capsys):
    """--splits-from: the subjects of an earlier set keep their split; with --fractions 1,0,0
    every new subject trains (a bigger set scored on the same held-out subjects)."""
    tiny = ["--copies", "1", "--no-shared", "--grid-size", "16", "16", "16", "--grid-spacing", "16"]
    assert cli.main(["dataset", "build", "--out", str(tmp_path / "small"), "--phantoms", "3", *tiny]) == 0
    before = json.loads((tmp_path / "small" / "manifest.json").read_text())["subjects"]
    assert {v["split"] for v in before.values()} == {"train", "validation", "test"}
    assert cli.main(["dataset", "build", "--out", str(tmp_path / "big"), "--phantoms", "6", "--fractions", "1,0,0",
                     "--splits-from", str(tmp_path / "small" / "manifest.json"), *tiny]) == 0, capsys.readouterr().err
    after = json.loads((tmp_path / "big" / "manifest.json").read_text())["subjects"]
    assert {s: after[s]["split"] for s in before} == {s: v["split"] for s, v in before.items()}
    assert all(after[f"phantom-{k}"]["split"] == "train" for k in range(3, 6))
    card = resources.models_folder() / "registration.json"
    assert cli.main(["dataset", "build", "--out", str(tmp_path / "as-shipped"), "--phantoms", "7",
                     "--splits-from", str(card), *tiny]) == 0     # the held-out subjects of the shipped model
    shipped = json.loads((tmp_path / "as-shipped" / "manifest.json").read_text())["subjects"]
    assert (shipped["phantom-4"]["split"], shipped["phantom-6"]["split"]) == ("validation", "test")


def test_dataset_command_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "not-a-manifest.json").write_text("[1, 2]")
    for arguments in (["--counts", "a:b"], ["--phantoms", "0", "--no-shared"], ["--grid-size", "2", "2", "2"],
                      ["--max-angle", "270"], ["--subjects", "nobody"], ["--fractions", "1,0"],
                      ["--splits-from", str(tmp_path / "missing.json")],
                      ["--splits-from", str(tmp_path / "not-a-manifest.json")]):
        assert cli.main(["dataset", "sweep", "--out", str(tmp_path / "x"), "--no-shared", "--phantoms", "1",
                         *arguments]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 8 and all(line.startswith("headreg dataset: error:") for line in errors)
    assert not (tmp_path / "x").exists()


def test_default_data_dir_is_beside_the_checkout(monkeypatch):
    """``../shared/data`` beside the repository (the README's and CI's layout), or $HEADREG_DATA."""
    from pathlib import Path
    monkeypatch.delenv("HEADREG_DATA", raising=False)
    assert dataset.default_data_dir().resolve() == (Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()
    monkeypatch.setenv("HEADREG_DATA", "/somewhere/else")
    assert dataset.default_data_dir() == Path("/somewhere/else")
