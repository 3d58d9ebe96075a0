"""The headreg command line: outputs, truth, messages and exit codes."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from HeadRegistrationLib.core import geometry
from HeadRegistrationLib.data import phantom
from HeadRegistrationLib.cli import main

SMALL = ["--ct-size", "160", "160", "40", "--ct-spacing", "1.6", "1.6", "3",
         "--mr-size", "128", "128", "30", "--mr-spacing", "2", "2", "4"]


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def dice(a, b):
    return 2 * np.sum(a & b) / (np.sum(a) + np.sum(b))


def head_mask_dice(outdir, matrix):
    """Dice of the CT head (largest part above -400 HU, so without the table) carried onto
    the MR through ``matrix``, against the MR head (above a quarter of white matter)."""
    mr = sitk.ReadImage(str(outdir / "mr.nii.gz"))
    ct = sitk.ReadImage(str(outdir / "ct.nii.gz"))
    head = sitk.RelabelComponent(sitk.ConnectedComponent(ct > -400)) == 1
    carried = sitk.Resample(head, mr, geometry.sitk_from_matrix(matrix), sitk.sitkNearestNeighbor, 2)
    ct_head = sitk.GetArrayFromImage(carried)
    covered = ct_head != 2
    mr_head = sitk.GetArrayFromImage(sitk.BinaryFillhole(mr > 175)) > 0
    return dice((ct_head == 1) & covered, mr_head & covered)


def test_help_lists_the_commands():
    result = subprocess.run([sys.executable, "-m", "HeadRegistrationLib.cli", "--help"],
                            capture_output=True, text=True, check=True)
    for command in ("phantom", "info", "demo"):
        assert command in result.stdout


def test_phantom_writes_a_pair_whose_truth_aligns_the_heads(tmp_path, capsys):
    code, out, err = run(capsys, "phantom", tmp_path / "pair", "--seed", 4, "--rotation", 20, "--translation", 15)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "pair").iterdir()) == ["ct.nii.gz", "mr.nii.gz", "truth.tfm"]
    assert "20.0 deg" in out
    truth = geometry.matrix_from_sitk(sitk.ReadTransform(str(tmp_path / "pair" / "truth.tfm")))
    aligned = head_mask_dice(tmp_path / "pair", truth)
    assert aligned > 0.9
    assert head_mask_dice(tmp_path / "pair", np.eye(4)) < aligned - 0.05


def test_phantom_skull_lands_on_skull_with_thin_slices(tmp_path, capsys):
    args = ["--ct-size", 200, 200, 110, "--ct-spacing", 1, 1, 1, "--mr-size", 200, 200, 100,
            "--mr-spacing", 1, 1, 1]
    code, _, err = run(capsys, "phantom", tmp_path, "--seed", 8, "--rotation", 30, "--labels", *args)
    assert code == 0, err
    ct = sitk.ReadImage(str(tmp_path / "ct.nii.gz"))
    mr_labels = sitk.ReadImage(str(tmp_path / "mr_labels.nii.gz"))
    truth = geometry.matrix_from_sitk(sitk.ReadTransform(str(tmp_path / "truth.tfm")))
    assert phantom.bone_dice(ct, mr_labels, truth) > 0.8
    assert phantom.bone_dice(ct, mr_labels, np.eye(4)) < 0.4


def test_phantom_keeps_existing_files_unless_told(tmp_path, capsys):
    assert run(capsys, "phantom", tmp_path, *SMALL)[0] == 0
    before = (tmp_path / "ct.nii.gz").read_bytes()
    code, out, err = run(capsys, "phantom", tmp_path, "--seed", 1, *SMALL)
    assert code != 0 and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "ct.nii.gz").read_bytes() == before
    assert run(capsys, "phantom", tmp_path, "--seed", 1, "--overwrite", *SMALL)[0] == 0
    assert (tmp_path / "ct.nii.gz").read_bytes() != before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("args, message", [
    (["--ct-size", "0", "10", "10"], "at least 2"),
    (["--mr-spacing", "1", "-1", "1"], "positive"),
    (["--ct-size", "4000", "4000", "4000"], "too large"),
    (["--translation", "-2"], "distance"),
    (["--rotation", "nan"], "finite"),
])
def test_phantom_bad_arguments(tmp_path, capsys, args, message):
    code, out, err = run(capsys, "phantom", tmp_path / "out", *args)
    assert code != 0 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_info_describes_and_guesses(tmp_path, capsys):
    assert run(capsys, "phantom", tmp_path, *SMALL)[0] == 0
    code, out, _ = run(capsys, "info", tmp_path / "ct.nii.gz")
    assert code == 0 and "160 x 160 x 40" in out and "modality:     CT" in out
    code, out, _ = run(capsys, "info", tmp_path / "mr.nii.gz", "--json")
    report = json.loads(out)
    assert code == 0 and report["size"] == [128, 128, 30] and report["modality_guess"]["modality"] == "MR"


def test_info_bad_inputs_give_one_line(tmp_path, capsys):
    flat = tmp_path / "flat.nii.gz"
    sitk.WriteImage(sitk.Image([10, 10], sitk.sitkUInt8), str(flat))
    garbage = tmp_path / "garbage.nii.gz"
    garbage.write_bytes(b"\x00not an image" * 10)
    for path in (tmp_path / "missing.nii.gz", flat, garbage):
        code, out, err = run(capsys, "info", path)
        assert code != 0 and out == "" and len(err.strip().splitlines()) == 1 and str(path) in err


def test_bad_input_prints_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "HeadRegistrationLib.cli", "info", str(tmp_path / "nothing")],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.startswith("headreg info: error:")


def test_demo_registers_the_pair_and_reports_its_error(tmp_path, capsys):
    code, out, err = run(capsys, "demo", "--out", tmp_path / "demo")
    assert code == 0, err
    assert {"mr.nii.gz", "ct.nii.gz", "truth.tfm", "registered.tfm", "report.json", "qa.png"} <= {
        p.name for p in (tmp_path / "demo").iterdir()}
    error_mm = float(re.search(r"error against the truth ([0-9.]+) mm", out).group(1))
    assert error_mm < 1.0
