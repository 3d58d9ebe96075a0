"""What `register_volumes` needs and nothing more (issue 18): inference runs where tqdm,
scikit-learn and matplotlib cannot be imported (as in Slicer's Python), with the learned
models, and never imports the training or data stack."""

import json
import subprocess
import sys

import pytest

pytest.importorskip("torch")

SCRIPT = r"""
import importlib.abc, json, sys

BLOCKED = ("tqdm", "sklearn", "matplotlib")


class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked in this test")
        return None


sys.meta_path.insert(0, Blocker())
from HeadRegistrationLib.core import volume_io
from HeadRegistrationLib.register import autoregister

folder = sys.argv[1]
result = autoregister.register_volumes(volume_io.read_volume(folder + "/ct.nii.gz"),
                                       volume_io.read_volume(folder + "/mr.nii.gz"))
loaded = sorted(m for m in sys.modules if m.startswith("HeadRegistrationLib."))
print(json.dumps({"learned": result.learned, "classifier": [d["learned_ct_probability"] for d in result.modalities],
                  "kinds": sorted({c["kind"] for c in result.candidates}), "fixed": result.fixed_index,
                  "modules": loaded}))
"""


def test_registration_with_tqdm_sklearn_matplotlib_blocked_uses_the_learned_models(tmp_path):
    from HeadRegistrationLib.data import phantom
    phantom.write_phantom(tmp_path, 1, None, None, phantom.CT_GRID, phantom.MR_GRID, False, False)
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    outcome = json.loads(run.stdout.strip().splitlines()[-1])
    assert outcome["learned"] and outcome["fixed"] == 1
    assert all(p is not None for p in outcome["classifier"])   # the network classified both
    for stack in ("learn", "data", "evaluate", "groundtruth", "cli", "core.batch", "core.qa"):
        assert not any(m.startswith(f"HeadRegistrationLib.{stack}") for m in outcome["modules"]), stack


def test_register_starts_without_pytorch_and_imports_it_beside_the_head_masks():
    """`headreg register` and `autoregister` import no PyTorch before the registration
    begins: it is imported in a thread while the volumes are checked and their heads found."""
    script = ("import sys; from HeadRegistrationLib.cli import build_parser; build_parser('register'); "
              "from HeadRegistrationLib.register import autoregister; print('torch' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "False", run.stderr[-2000:]
