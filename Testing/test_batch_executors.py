"""One executor for every batch (core.batch.run_tasks): ``headreg batch register`` gives the
same transforms in this process, in local worker processes and on a Dask LocalCluster,
records a bad pair without stopping, and resumes."""

import csv
import json

import numpy as np
import pytest

pytest.importorskip("torch")

from HeadRegistrationLib import cli  # noqa: E402
from HeadRegistrationLib.core import transform_io  # noqa: E402
from HeadRegistrationLib.data import phantom  # noqa: E402

SMALL = {"ct_grid": {"size": (128, 128, 40), "spacing": (2.0, 2.0, 4.0)},
         "mr_grid": {"size": (96, 96, 36), "spacing": (2.5, 2.5, 4.5)}}


@pytest.fixture(scope="module")
def pairs_csv(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pairs")
    for seed, angle in ((1, 20.0), (2, 50.0)):
        phantom.write_phantom(folder / f"p{seed}", seed, angle, 10.0, **SMALL)
    (folder / "pairs.csv").write_text("a,b,id\np1/ct.nii.gz,p1/mr.nii.gz,one\np2/mr.nii.gz,p2/ct.nii.gz,two\n"
                                      "p1/ct.nii.gz,missing.nii.gz,broken\n")
    return folder / "pairs.csv"


def run_batch(pairs_csv, out, *executor):
    return cli.main(["batch", "register", str(pairs_csv), "--out", str(out), *executor])


def test_the_three_executors_give_the_same_transforms(pairs_csv, tmp_path, capsys):
    outs = {"serial": tmp_path / "serial", "workers": tmp_path / "workers", "dask": tmp_path / "dask"}
    from HeadRegistrationLib.register import autoregister
    autoregister.shared_models.cache_clear()
    assert run_batch(pairs_csv, outs["serial"]) == 1   # one pair fails, the others are done
    assert autoregister.shared_models.cache_info().misses == 1   # the models loaded once for the batch
    assert run_batch(pairs_csv, outs["workers"], "--workers", "2") == 1
    assert run_batch(pairs_csv, outs["dask"], "--scheduler", "local", "--workers", "2") == 1
    assert "failed: broken:" in capsys.readouterr().err
    for pair in ("one", "two"):
        found = [transform_io.read_transform(out / f"{pair}.tfm") for out in outs.values()]
        for other in found[1:]:
            np.testing.assert_allclose(other, found[0], atol=1e-6)
    for out in outs.values():
        rows = {r["id"]: r for r in csv.DictReader(open(out / "summary.csv"))}
        assert [rows[k]["status"] for k in ("one", "two", "broken")] == ["ok", "ok", "failed"]
        assert rows["one"]["fixed"].endswith("mr.nii.gz") and rows["two"]["moving"].endswith("ct.nii.gz")
        assert rows["one"]["exit_status"] in ("0", "3") and rows["broken"]["exit_status"] == "1"
        assert json.loads((out / "one.report.json").read_text())["learned_models"]
        assert not (out / "broken.tfm").exists()


def test_a_rerun_skips_what_is_recorded_and_a_bad_scheduler_is_one_line(pairs_csv, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_batch(pairs_csv, out) == 1
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")}
    assert run_batch(pairs_csv, out) == 1
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")} == stamps   # nothing redone
    assert "--retry-failed" in capsys.readouterr().err
    assert cli.main(["batch", "register", str(pairs_csv), "--out", str(tmp_path / "x"), "--scheduler",
                     "tcp://127.0.0.1:9"]) == 1
    assert "cannot reach the Dask scheduler tcp://127.0.0.1:9" in capsys.readouterr().err
