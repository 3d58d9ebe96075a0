"""A built wheel carries the shipped models (issue 18): installed apart from this checkout,
`headreg register` runs with the learned models."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_installs_the_models_and_registers_with_them(tmp_path):
    from HeadRegistrationLib.data import phantom
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                            "-w", str(tmp_path / "wheel"), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next((tmp_path / "wheel").glob("headregistration-*.whl"))
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                              str(tmp_path / "site"), str(wheel)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "site" / "HeadRegistrationLib" / "models").iterdir()) == [
        "modality.json", "modality.pt", "registration-ann.npz", "registration.json", "registration.pt"]
    phantom.write_phantom(tmp_path / "pair", 2, None, None, phantom.CT_GRID, phantom.MR_GRID, False, False)
    # Run from elsewhere, the installed copy first on the path (before this checkout's editable install).
    environment = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    script = ("import sys, HeadRegistrationLib, HeadRegistrationLib.cli as c; print(HeadRegistrationLib.__file__);"
              "sys.exit(c.main(sys.argv[1:]))")
    run = subprocess.run([sys.executable, "-c", script, "register", "pair/ct.nii.gz", "pair/mr.nii.gz", "-o", "t.tfm",
                          "--report", "r.json"], cwd=tmp_path, env=environment, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.splitlines()[0].startswith(str(tmp_path / "site"))
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["learned_models"] and report["fixed"]["learned_ct_probability"] is not None
