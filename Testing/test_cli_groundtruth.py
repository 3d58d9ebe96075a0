"""headreg groundtruth: one pair, batches (progress, failures, resume, workers), bad input."""

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

from HeadRegistrationLib import cli
from HeadRegistrationLib.core import geometry, transform_io
from HeadRegistrationLib.register import symmetry
from HeadRegistrationLib.cli import main

# Small grids that cover the whole head: fast, and symmetry alignment has the whole head.
WHOLE_HEAD_SMALL = ["--ct-size", "128", "128", "60", "--ct-spacing", "2", "2", "4",
                    "--mr-size", "120", "120", "60", "--mr-spacing", "2.2", "2.2", "4"]
FAST = ["--preset", "paper", "--no-symmetry"]  # batch mechanics, not accuracy


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """Two phantom pairs on disk: (folder, seed, rotation)."""
    root = tmp_path_factory.mktemp("pairs")
    made = []
    for seed, rotation in ((11, 50.0), (12, 5.0)):
        assert main(["phantom", str(root / f"p{seed}"), "--seed", str(seed), "--rotation", str(rotation),
                     "--translation", "15", *WHOLE_HEAD_SMALL]) == 0
        made.append(root / f"p{seed}")
    return made


def mean_tre(folder, found):
    truth = transform_io.read_transform(folder / "truth.tfm")
    mask = symmetry.head_mask(sitk.ReadImage(str(folder / "mr.nii.gz")))
    return geometry.mean_displacement_in_mask(found, truth, mask)


def test_one_pair_recovers_the_truth_and_writes_record_and_picture(pairs, tmp_path, capsys):
    folder = pairs[0]
    code, out, err = run(capsys, "groundtruth", folder / "mr.nii.gz", folder / "ct.nii.gz", "-o", tmp_path / "gt.tfm",
                         "--record", tmp_path / "gt.json", "--qa", tmp_path / "gt.png")
    assert code == 0, err
    assert mean_tre(folder, transform_io.read_transform(tmp_path / "gt.tfm")) < 1.0
    record = json.loads((tmp_path / "gt.json").read_text())
    assert record["preset"] == "accurate" and record["symmetry_alignment"] is True
    assert np.allclose(record["matrix_fixed_to_moving_lps"], transform_io.read_transform(tmp_path / "gt.tfm"))
    assert (tmp_path / "gt.png").read_bytes()[:4] == b"\x89PNG"
    assert "MI " in out and "confident" in out


def write_pairs_csv(path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["fixed", "moving", "id"])
        writer.writerows(rows)


def test_batch_survives_a_broken_pair_and_resumes(pairs, tmp_path, capsys):
    (tmp_path / "broken.nii.gz").write_text("not an image")
    rows = [[str(f / "mr.nii.gz"), str(f / "ct.nii.gz"), f.name] for f in pairs]
    rows.insert(1, [str(pairs[0] / "mr.nii.gz"), "broken.nii.gz", "broken"])  # relative to the CSV
    write_pairs_csv(tmp_path / "pairs.csv", rows)
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, "groundtruth", "--pairs", tmp_path / "pairs.csv", "--out", out_dir,
                         "--workers", 2, *FAST)
    assert code == 1 and "2 pairs registered (0 done before), 1 failed" in out
    assert "failed: broken:" in err and "Traceback" not in err
    for f in pairs:
        record = json.loads((out_dir / f"{f.name}.json").read_text())
        assert record["status"] == "ok" and record["symmetry_alignment"] is False
        assert (out_dir / f"{f.name}.tfm").exists() and (out_dir / f"{f.name}.png").exists()
    broken = json.loads((out_dir / "broken.json").read_text())
    assert broken["status"] == "failed" and "broken.nii.gz" in broken["error"]
    assert not (out_dir / "broken.tfm").exists()
    with open(out_dir / "summary.csv") as handle:
        summary = {row["id"]: row for row in csv.DictReader(handle)}
    assert summary["broken"]["status"] == "failed" and summary[pairs[1].name]["status"] == "ok"
    # 5 degrees and 15 mm from the truth: the paper preset without symmetry closes most of it.
    found = transform_io.read_transform(out_dir / f"{pairs[1].name}.tfm")
    assert mean_tre(pairs[1], found) < mean_tre(pairs[1], np.eye(4)) / 3

    # An interrupted batch: one pair's outputs lost, plus a partial file left by the interruption.
    stamp = (out_dir / f"{pairs[0].name}.json").stat().st_mtime_ns
    (out_dir / f"{pairs[1].name}.json").unlink()
    (out_dir / f".123.partial.{pairs[1].name}.tfm").write_text("half")
    broken_stamp = (out_dir / "broken.json").stat().st_mtime_ns
    code, out, err = run(capsys, "groundtruth", "--pairs", tmp_path / "pairs.csv", "--out", out_dir, *FAST)
    assert code == 1 and "2 pairs registered (2 done before), 1 failed" in out and "--retry-failed" in err
    assert (out_dir / f"{pairs[0].name}.json").stat().st_mtime_ns == stamp   # not redone
    assert (out_dir / "broken.json").stat().st_mtime_ns == broken_stamp   # a recorded failure is not retried...
    assert json.loads((out_dir / f"{pairs[1].name}.json").read_text())["status"] == "ok"
    code, out, err = run(capsys, "groundtruth", "--pairs", tmp_path / "pairs.csv", "--out", out_dir, *FAST,
                         "--retry-failed")
    assert code == 1 and (out_dir / "broken.json").stat().st_mtime_ns != broken_stamp   # ...unless asked


@pytest.mark.parametrize("args, message", [
    (["a.nii.gz", "b.nii.gz"], "-o OUT.tfm"),
    (["--pairs", "p.csv"], "--out DIR"),
    (["a.nii.gz", "b.nii.gz", "-o", "x.tfm", "--pairs", "p.csv", "--out", "d"], "not both"),
    ([], "FIXED MOVING"),
    (["a.nii.gz", "b.nii.gz", "-o", "no/such/folder/x.tfm"], "does not exist"),
])
def test_groundtruth_usage_errors(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "groundtruth", *args)
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("content, message", [
    ("", "no pairs"),
    ("a,b\nx,y\n", "columns fixed,moving"),
    ("fixed,moving,id\nx,y,bad/id\n", "letters, digits"),
    ("fixed,moving,id\nx,y,same\nx,y,same\n", "used twice"),
    ("fixed,moving\nx,\n", "moving column is empty"),
])
def test_bad_pairs_files_are_refused_before_any_work(tmp_path, capsys, content, message):
    (tmp_path / "pairs.csv").write_text(content)
    code, _, err = run(capsys, "groundtruth", "--pairs", tmp_path / "pairs.csv", "--out", tmp_path / "out")
    assert code == 1 and message in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("preset", ["accurate", "paper"])
def test_every_preset_can_be_named(preset):
    args = cli.build_parser().parse_args(["groundtruth", "a.nii.gz", "b.nii.gz", "-o", "t.tfm", "--preset", preset])
    assert args.preset == preset
