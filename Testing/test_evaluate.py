"""`headreg evaluate` and the paper's metrics (equations 1-6) against known truth."""

import csv
import json

import numpy as np
import pytest

from HeadRegistrationLib import cli
from HeadRegistrationLib.core import geometry, transform_io
from HeadRegistrationLib.data import phantom
from HeadRegistrationLib.evaluate import cases, metrics
from HeadRegistrationLib.register import symmetry


@pytest.fixture(scope="module")
def pair():
    return phantom.make_phantom_pair(0)


def test_the_paper_metrics_are_one_at_the_truth_and_drop_off_it(pair):
    perfect = metrics.paper_metrics(pair.mr, pair.ct, pair.truth, pair.truth)
    assert all(value == pytest.approx(1.0) for value in perfect.values()), perfect
    shifted = pair.truth @ geometry.translation_matrix((10.0, 0.0, 0.0))
    off = metrics.paper_metrics(pair.mr, pair.ct, pair.truth, shifted)
    assert 0.5 < off["dsc"] < 0.99 and off["jsc"] < off["dsc"] and off["ssim"] < 0.99
    assert off["cms"] == pytest.approx(off["dsc"])   # CMS is DSC by its definition
    head = symmetry.head_mask(pair.mr)
    measured = metrics.errors(head, pair.truth, shifted, pair.rotation_center)
    assert measured["tre_mean_mm"] == pytest.approx(10.0) and measured["rotation_error_deg"] == pytest.approx(0.0)


def test_cases_fall_in_their_initial_rotation_bin():
    center = (0.0, 0.0, 0.0)
    for angle, expected in ((5, "0-15"), (15, "0-15"), (30, "15-45"), (60, "45-90"), (179, "90-180")):
        truth = geometry.rigid_matrix(geometry.rotation_about_axis((0, 0, 1), angle), (3, 0, 0), center)
        assert metrics.rotation_bin(truth) == expected


def test_evaluate_writes_tables_records_failures_and_resumes(tmp_path, capsys, monkeypatch):
    """A bad file and a bug in one case each become that case's record; the batch goes
    on, results.csv holds every case; a rerun skips what is recorded unless asked to
    retry the failures."""
    pytest.importorskip("torch")
    phantom.write_phantom(tmp_path / "p", 0, None, None, phantom.CT_GRID, phantom.MR_GRID, False, False)
    (tmp_path / "broken.nii.gz").write_bytes(b"not an image")
    (tmp_path / "cases.csv").write_text("a,b,truth,id\nbroken.nii.gz,p/mr.nii.gz,p/truth.tfm,bad\n"
                                        "p/mr.nii.gz,p/ct.nii.gz,p/truth.tfm,bug\n"
                                        "p/ct.nii.gz,p/mr.nii.gz,p/truth.tfm,good\n")
    evaluate_case = cases.evaluate_case

    def with_a_bug(case, *args):
        if case["id"] == "bug":
            return {}["a bug"]
        return evaluate_case(case, *args)
    monkeypatch.setattr(cases, "evaluate_case", with_a_bug)
    out = tmp_path / "out"
    assert cli.main(["evaluate", str(tmp_path / "cases.csv"), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "bad: error: cannot read" in captured.err and "bug: error: 'a bug'" in captured.err
    rows = {r["id"]: r for r in csv.DictReader(open(out / "results.csv"))}
    assert [rows[k]["status"] for k in ("bad", "bug", "good")] == ["failed", "failed", "ok"]
    assert "cannot read" in rows["bad"]["error"] and float(rows["good"]["tre_mean_mm"]) < 2.0
    assert rows["good"]["fixed"].endswith("mr.nii.gz") and float(rows["good"]["dsc"]) > 0.95
    assert "KeyError" in json.loads((out / "cases" / "bug.json").read_text())["traceback"]   # a bug keeps it
    assert "| headreg | 0-15 | 1/1 |" in (out / "summary.md").read_text()
    assert (out / "tre.png").stat().st_size > 5000 and (out / "summary.csv").exists()
    record = json.loads((out / "cases" / "good.json").read_text())
    assert record["moving"].endswith("ct.nii.gz") and not (out / "cases" / "bad.tfm").exists()
    np.testing.assert_allclose(transform_io.read_transform(out / "cases" / "good.tfm"),
                               record["matrix_fixed_to_moving_lps"], atol=1e-9)
    stamps = {k: (out / "cases" / f"{k}.json").stat().st_mtime_ns for k in ("bad", "bug", "good")}
    assert cli.main(["evaluate", str(tmp_path / "cases.csv"), "--out", str(out)]) == 1
    assert "--retry-failed" in capsys.readouterr().err
    assert all((out / "cases" / f"{k}.json").stat().st_mtime_ns == t for k, t in stamps.items())   # none redone
    monkeypatch.setattr(cases, "evaluate_case", evaluate_case)   # the bug fixed
    assert cli.main(["evaluate", str(tmp_path / "cases.csv"), "--out", str(out), "--retry-failed"]) == 1
    rows = {r["id"]: r for r in csv.DictReader(open(out / "results.csv"))}
    assert rows["bug"]["status"] == "ok" and rows["bad"]["status"] == "failed"
    assert (out / "cases" / "good.json").stat().st_mtime_ns == stamps["good"]
