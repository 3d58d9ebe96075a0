"""Bad input as a user's script meets it (issue 17): every kind is refused before the work
with the exit code of the contract (1 refused, 2 usage), one line on stderr that names the
input, no output left behind and the inputs unchanged."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from HeadRegistrationLib import cli
from HeadRegistrationLib.data import phantom

pytest.importorskip("torch")


def _image(array, spacing=(1.0, 1.0, 1.0)) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    return image


def _ball(value_inside, value_outside, noise, rng, radius=70.0):
    z, y, x = np.indices((120, 160, 160), dtype=np.float32)
    inside = (x - 80) ** 2 + (y - 80) ** 2 + (z - 60) ** 2 < radius ** 2
    values = np.where(inside, value_inside, value_outside) + rng.normal(0, noise, inside.shape)
    return _image(values.astype(np.float32))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A good phantom pair and one file of every bad kind, in one folder."""
    folder = tmp_path_factory.mktemp("bad")
    phantom.write_phantom(folder, 0, None, None, phantom.CT_GRID, phantom.MR_GRID, True, False)
    rng = np.random.default_rng(0)
    mr = sitk.ReadImage(str(folder / "mr.nii.gz"), sitk.sitkFloat32)
    data = (folder / "ct.nii.gz").read_bytes()
    (folder / "truncated.nii.gz").write_bytes(data[: len(data) // 2])
    sitk.WriteImage(mr, str(folder / "mr_plain.nii"), False)
    plain = (folder / "mr_plain.nii").read_bytes()
    (folder / "truncated.nii").write_bytes(plain[: len(plain) * 2 // 3])
    sitk.WriteImage(mr, str(folder / "mr.nrrd"), True)
    nrrd = (folder / "mr.nrrd").read_bytes()
    (folder / "truncated.nrrd").write_bytes(nrrd[: len(nrrd) // 2])
    values = sitk.GetArrayFromImage(mr)
    for name, fraction, bad in (("nan_all", 1.0, np.nan), ("nan_some", 0.01, np.nan), ("inf_some", 0.1, np.inf)):
        spoiled = np.where(rng.random(values.shape) < fraction, bad, values).astype(np.float32)
        image = _image(spoiled, mr.GetSpacing())
        sitk.WriteImage(image, str(folder / f"{name}.nii.gz"))
        sitk.WriteImage(image, str(folder / f"{name}.nrrd"))
    sitk.WriteImage(_image(values[:3].copy(), mr.GetSpacing()), str(folder / "three_slices.nii.gz"))
    sitk.WriteImage(_image(values[10].copy(), mr.GetSpacing()[:2]), str(folder / "flat.nii.gz"))
    sitk.WriteImage(_image(np.zeros((20, 20, 20), np.int16)), str(folder / "zero.nii.gz"))
    sitk.WriteImage(_image(np.full((20, 20, 20), 7, np.int16)), str(folder / "constant.nii.gz"))
    sitk.WriteImage(sitk.Cast(sitk.ReadImage(str(folder / "mr_labels.nii.gz")) > 0, sitk.sitkUInt8),
                    str(folder / "mask.nii.gz"))
    sitk.WriteImage(_image(rng.normal(100, 30, (120, 160, 160)).astype(np.float32)), str(folder / "noise.nii.gz"))
    sitk.WriteImage(_ball(40.0, -1000.0, 10.0, rng), str(folder / "soft_sphere_ct.nii.gz"))
    sitk.WriteImage(_ball(300.0, 5.0, 8.0, rng), str(folder / "sphere_mr.nii.gz"))
    sitk.WriteImage(sitk.Compose([mr, mr, mr]), str(folder / "rgb.nii.gz"))
    sitk.WriteImage(sitk.JoinSeries([mr, mr]), str(folder / "two_volumes.nii.gz"))
    (folder / "garbage.nii.gz").write_bytes(b"hello, this is not an image")
    (folder / "empty.nii.gz").write_bytes(b"")
    (folder / "huge.mha").write_text("ObjectType = Image\nNDims = 3\nDimSize = 4096 4096 4096\n"
                                     "ElementType = MET_SHORT\nElementDataFile = huge.raw\n")
    shutil.copy(folder / "mr.nii.gz", folder / "mr_copy.nii.gz")
    os.symlink(folder / "loop_b.nii.gz", folder / "loop_a.nii.gz")
    os.symlink(folder / "loop_a.nii.gz", folder / "loop_b.nii.gz")
    (folder / "no_dicom").mkdir()
    (folder / "no_dicom" / "notes.txt").write_text("no images\n")
    (folder / "readonly").mkdir()
    (folder / "readonly").chmod(0o555)
    (folder / "labels.nii.gz").write_bytes((folder / "mr_labels.nii.gz").read_bytes())
    yield folder
    (folder / "readonly").chmod(0o755)


def _snapshot(folder: Path) -> dict:
    return {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}


# (command line with {f} for the files' folder and {o} for an empty output folder, exit code,
#  words of the one-line message, the input the message must name)
REGISTER = ["register", "{f}/mr.nii.gz"]
CASES = {
    "missing file": (REGISTER + ["{f}/nothing.nii.gz", "-o", "{o}/t.tfm"], 1, ["no such file"], "nothing.nii.gz"),
    "symlink loop": (REGISTER + ["{f}/loop_a.nii.gz", "-o", "{o}/t.tfm"], 1, ["cannot be opened"], "loop_a"),
    "truncated .nii.gz": (REGISTER + ["{f}/truncated.nii.gz", "-o", "{o}/t.tfm"], 1, ["truncated"],
                          "truncated.nii.gz"),
    "truncated .nii": (REGISTER + ["{f}/truncated.nii", "-o", "{o}/t.tfm"], 1, ["truncated"], "truncated.nii"),
    "truncated .nrrd": (REGISTER + ["{f}/truncated.nrrd", "-o", "{o}/t.tfm"], 1, ["truncated"], "truncated.nrrd"),
    "NIfTI all NaN": (REGISTER + ["{f}/nan_all.nii.gz", "-o", "{o}/t.tfm"], 1, ["NaN"], "nan_all.nii.gz"),
    "NIfTI 1 % NaN": (REGISTER + ["{f}/nan_some.nii.gz", "-o", "{o}/t.tfm"], 1, ["NaN"], "nan_some.nii.gz"),
    "NIfTI infinite": (REGISTER + ["{f}/inf_some.nii.gz", "-o", "{o}/t.tfm"], 1, ["infinite"], "inf_some.nii.gz"),
    "NRRD NaN": (REGISTER + ["{f}/nan_some.nrrd", "-o", "{o}/t.tfm"], 1, ["NaN"], "nan_some.nrrd"),
    "3 slices": (REGISTER + ["{f}/three_slices.nii.gz", "-o", "{o}/t.tfm"], 1, ["at least 8"], "three_slices"),
    "2D image": (REGISTER + ["{f}/flat.nii.gz", "-o", "{o}/t.tfm"], 1, ["2D"], "flat.nii.gz"),
    "garbage bytes": (REGISTER + ["{f}/garbage.nii.gz", "-o", "{o}/t.tfm"], 1, ["cannot read"], "garbage"),
    "empty file": (REGISTER + ["{f}/empty.nii.gz", "-o", "{o}/t.tfm"], 1, ["cannot read"], "empty.nii.gz"),
    "all zero": (REGISTER + ["{f}/zero.nii.gz", "-o", "{o}/t.tfm"], 1, ["all zero"], "zero.nii.gz"),
    "constant": (REGISTER + ["{f}/constant.nii.gz", "-o", "{o}/t.tfm"], 1, ["constant"], "constant.nii.gz"),
    "label map": (REGISTER + ["{f}/labels.nii.gz", "-o", "{o}/t.tfm"], 1, ["label map"], "labels.nii.gz"),
    "binary mask": (REGISTER + ["{f}/mask.nii.gz", "-o", "{o}/t.tfm"], 1, ["label map"], "mask.nii.gz"),
    "noise as the CT": (REGISTER + ["{f}/noise.nii.gz", "-o", "{o}/t.tfm"], 1, ["noise"], "noise.nii.gz"),
    "noise as the MR": (["register", "{f}/ct.nii.gz", "{f}/noise.nii.gz", "-o", "{o}/t.tfm"], 1, ["noise"],
                        "noise.nii.gz"),
    "soft-tissue sphere as the CT": (REGISTER + ["{f}/soft_sphere_ct.nii.gz", "-o", "{o}/t.tfm"], 1,
                                     ["uniform object"], "soft_sphere_ct"),
    "sphere as the MR": (["register", "{f}/ct.nii.gz", "{f}/sphere_mr.nii.gz", "-o", "{o}/t.tfm"], 1,
                         ["uniform object"], "sphere_mr"),
    "the same file twice": (REGISTER + ["{f}/mr.nii.gz", "-o", "{o}/t.tfm"], 1, ["same image"], "mr.nii.gz"),
    "the same image in two files": (REGISTER + ["{f}/mr_copy.nii.gz", "-o", "{o}/t.tfm"], 1, ["same image"],
                                    "mr_copy.nii.gz"),
    "too large": (REGISTER + ["{f}/huge.mha", "-o", "{o}/t.tfm"], 1, ["too large"], "huge.mha"),
    "RGB pixels": (REGISTER + ["{f}/rgb.nii.gz", "-o", "{o}/t.tfm"], 1, ["component"], "rgb.nii.gz"),
    "several volumes (4D)": (REGISTER + ["{f}/two_volumes.nii.gz", "-o", "{o}/t.tfm"], 1, ["4D"], "two_volumes"),
    "folder without DICOM": (REGISTER + ["{f}/no_dicom", "-o", "{o}/t.tfm"], 1, ["no DICOM series"], "no_dicom"),
    "output is an input": (REGISTER + ["{f}/ct.nii.gz", "--resampled", "{f}/ct.nii.gz", "-o", "{o}/t.tfm"], 1,
                           ["is an input"], "ct.nii.gz"),
    "output folder missing": (REGISTER + ["{f}/ct.nii.gz", "-o", "{o}/missing/t.tfm"], 1, ["does not exist"],
                              "missing"),
    "output folder not writable": (REGISTER + ["{f}/ct.nii.gz", "-o", "{f}/readonly/t.tfm"], 1, ["not writable"],
                                   "readonly"),
    "unknown --resampled extension": (REGISTER + ["{f}/ct.nii.gz", "-o", "{o}/t.tfm", "--resampled", "{o}/r.xyz"],
                                      1, ["must end in"], "r.xyz"),
    "--qa not a PNG": (REGISTER + ["{f}/ct.nii.gz", "-o", "{o}/t.tfm", "--qa", "{o}/qa.jpg"], 1, ["must end in"],
                       "qa.jpg"),
    "transform with an image's extension": (REGISTER + ["{f}/ct.nii.gz", "-o", "{o}/t.nii"], 1, ["must end in"],
                                            "t.nii"),
    "--report folder missing": (REGISTER + ["{f}/ct.nii.gz", "-o", "{o}/t.tfm", "--report", "{o}/no/r.json"], 1,
                                ["does not exist"], "r.json"),
    "groundtruth -o extension": (["groundtruth", "{f}/mr.nii.gz", "{f}/ct.nii.gz", "-o", "{o}/t.png"], 1,
                                 ["must end in"], "t.png"),
    "groundtruth --qa folder missing": (["groundtruth", "{f}/mr.nii.gz", "{f}/ct.nii.gz", "-o", "{o}/t.tfm",
                                         "--qa", "{o}/no/q.png"], 1, ["does not exist"], "q.png"),
    "groundtruth 3 slices": (["groundtruth", "{f}/mr.nii.gz", "{f}/three_slices.nii.gz", "-o", "{o}/t.tfm"], 1,
                             ["at least 8"], "three_slices"),
    "synth --to ct given a CT": (["synth", "{f}/ct.nii.gz", "--to", "ct", "-o", "{o}/s.nii.gz", "--no-template"], 1,
                                 ["already looks like CT"], "ct.nii.gz"),
    "synth --skull a label map": (["synth", "{f}/mr.nii.gz", "--to", "ct", "-o", "{o}/s.nii.gz", "--skull",
                                   "{f}/labels.nii.gz"], 1, ["distinct values"], "labels.nii.gz"),
    "synth over its source": (["synth", "{f}/mr.nii.gz", "--to", "ct", "-o", "{f}/mr.nii.gz"], 1, ["is an input"],
                              "mr.nii.gz"),
    "dataset --data nowhere": (["dataset", "build", "--out", "{o}/set", "--data", "{f}/nowhere"], 1,
                               ["no such folder"], "nowhere"),
    "evaluate --phantoms 0": (["evaluate", "--phantoms", "0", "--out", "{o}/ev"], 1, ["at least 1"], "--phantoms"),
    "info on all-NaN NRRD": (["info", "{f}/nan_all.nrrd"], 1, ["NaN"], "nan_all.nrrd"),
    "modality of noise": (["modality", "{f}/noise.nii.gz"], 1, ["noise"], "noise.nii.gz"),
    "modality of a label map": (["modality", "{f}/labels.nii.gz"], 1, ["label map"], "labels.nii.gz"),
    "unknown option": (REGISTER + ["{f}/ct.nii.gz", "-o", "{o}/t.tfm", "--fast"], 2, ["unrecognized"], "--fast"),
    "no output given": (REGISTER + ["{f}/ct.nii.gz"], 2, ["-o"], "-o"),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_refused_in_one_line_naming_the_input_leaving_nothing(kind, files, tmp_path, capsys):
    if kind == "output folder not writable" and os.geteuid() == 0:
        pytest.skip("root writes everywhere")
    argv, expected_code, words, named = CASES[kind]
    argv = [a.format(f=files, o=tmp_path) for a in argv]
    before = _snapshot(files)
    capsys.readouterr()
    try:
        code = cli.main(argv)
    except SystemExit as exit_:   # argparse's usage errors
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code == expected_code, (kind, err)
    lines = [line for line in err.splitlines() if line.startswith("headreg")]   # argparse adds its usage
    assert len(err.splitlines()) == 1 or expected_code == 2, (kind, err)
    assert len(lines) == 1 and "Traceback" not in err, (kind, err)
    for word in words:
        assert word in lines[0], (kind, err)
    assert named in lines[0], (kind, err)
    assert list(tmp_path.rglob("*")) == [], (kind, list(tmp_path.rglob("*")))
    assert _snapshot(files) == before, kind


def test_at_least_35_kinds():
    assert len(CASES) >= 35


def test_modality_of_several_files_names_the_bad_one_and_goes_on(files, capsys):
    code = cli.main(["modality", str(files / "constant.nii.gz"), str(files / "ct.nii.gz")])
    out, err = capsys.readouterr()
    assert code == 1
    assert "constant.nii.gz" in err and len(err.strip().splitlines()) == 1
    assert out.startswith(f"{files / 'ct.nii.gz'} CT")


def test_an_outputs_failure_leaves_none_of_the_others(files, tmp_path, monkeypatch, capsys):
    """The outputs of one command appear all or none: a failing QA picture takes the
    transform and the report with it."""
    from HeadRegistrationLib.core import qa

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")
    monkeypatch.setattr(qa, "overlay_figure", broken)
    code = cli.main(["register", str(files / "ct.nii.gz"), str(files / "mr.nii.gz"), "-o", str(tmp_path / "t.tfm"),
                     "--report", str(tmp_path / "r.json"), "--qa", str(tmp_path / "q.png")])
    err = capsys.readouterr().err
    assert code == 1 and "disk full" in err and "partial" not in err
    assert list(tmp_path.iterdir()) == []
