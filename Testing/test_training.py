"""The 3D DCNN and its training loop: shapes, checkpoints, resume, refusals."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from HeadRegistrationLib.core import resources
from HeadRegistrationLib.learn import training
from HeadRegistrationLib.register import network
from HeadRegistrationLib.core.errors import HeadRegError

def test_networks_have_the_papers_shapes():
    pair = torch.zeros(2, 2, 32, 32, 32)
    net = network.RegistrationNet()
    assert net(pair).shape == (2, 6)
    assert net.features(pair).shape == (2, 256)         # 128 features per image, as in the paper
    assert network.ModalityNet()(pair[:, :1]).shape == (2, 2)
    leaky = [m for m in net.modules() if isinstance(m, torch.nn.LeakyReLU)]
    assert leaky and all(m.negative_slope == 0.1 for m in leaky)


def test_training_checkpoints_and_resumes(tiny_set, tmp_path):
    history = training.train_registration(tiny_set, tmp_path, epochs=2, batch_size=4, widths=(4, 8),
                                          drop_epoch=1, progress=False)
    assert [h["epoch"] for h in history] == [0, 1]
    assert [h["learning_rate"] for h in history] == [1e-3, 1e-4]
    assert all(np.isfinite(h["train_loss"]) and np.isfinite(h["validation_loss"]) for h in history)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert saved["epoch"] == 1
    resumed = training.train_registration(tiny_set, tmp_path, epochs=3, batch_size=4, widths=(4, 8),
                                          drop_epoch=1, progress=False)
    assert [h["epoch"] for h in resumed] == [0, 1, 2] and resumed[:2] == history
    with pytest.raises(HeadRegError, match="other settings"):
        training.train_registration(tiny_set, tmp_path, epochs=4, batch_size=2, widths=(4, 8), progress=False)


def test_training_is_reproducible_from_its_seed(tiny_set, tmp_path):
    """The same history again, also with worker processes reading the examples."""
    runs = [training.train_registration(tiny_set, tmp_path / str(k), epochs=1, batch_size=4, widths=(4, 8),
                                        progress=False, workers=workers) for k, workers in enumerate((0, 2))]
    assert runs[0] == runs[1]


TORCHRUN_SCRIPT = """
import json, os, sys
from unittest import mock
import torch
from HeadRegistrationLib.learn import training
from HeadRegistrationLib.register import network
made = []
def keep(*args, **kwargs):
    made.append(network_class(*args, **kwargs))
    return made[-1]
network_class = network.RegistrationNet
with mock.patch.object(network, "RegistrationNet", keep):   # to read each process's trained weights
    history = training.train_registration(sys.argv[1], sys.argv[2], epochs=1, batch_size=2, widths=(4, 8),
                                          device="cpu", progress=False)
training.load_registration(os.path.join(sys.argv[2], "model.pt"))   # written before any process returns
torch.save(dict(made[0].named_parameters()), os.path.join(sys.argv[3], f"weights{os.environ['RANK']}.pt"))
with open(os.path.join(sys.argv[3], f"history{os.environ['RANK']}.json"), "w") as f:   # not stdout: the
    json.dump(history, f)                                                                 # two would interleave
"""


def test_training_runs_data_parallel_under_torchrun(tiny_set, tmp_path):
    """Two processes (gloo on the CPU, as NCCL would on GPUs), the call unchanged."""
    script = tmp_path / "train.py"
    script.write_text(TORCHRUN_SCRIPT)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
                           str(script), str(tiny_set), str(tmp_path / "run"), str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=Path(training.__file__).parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    histories = [json.loads((tmp_path / f"history{rank}.json").read_text()) for rank in (0, 1)]
    assert all(len(history) == 1 for history in histories)
    # each process trained on half of the batches with the gradients averaged: the same
    # weights in both (batch-norm running statistics stay each process's own; the first's are saved)
    weights = [torch.load(tmp_path / f"weights{rank}.pt", weights_only=True) for rank in (0, 1)]
    assert all(torch.allclose(weights[0][n], weights[1][n], atol=1e-6) for n in weights[0])
    torch.manual_seed(0)
    start = network.RegistrationNet((4, 8)).state_dict()   # as train_registration draws it (seed 0)
    assert any(not torch.allclose(weights[0][n], start[n]) for n in weights[0])   # and they trained


def test_prediction_is_in_degrees_and_millimetres(tiny_set):
    examples = training.PairExamples(tiny_set, "train")
    model = network.RegistrationNet((4, 8))
    predicted = training.predict(model, examples, torch.device("cpu"))
    assert predicted.shape == (len(examples), 6)
    features = training.predict(model, examples, torch.device("cpu"), features=True)
    assert features.shape == (len(examples), 16)
    np.testing.assert_allclose(examples.targets * np.array(network.PARAMETER_SCALE), examples.examples.parameters,
                               rtol=1e-5, atol=1e-5)


def test_devices():
    assert resources.torch_device("cpu").type == "cpu"
    with pytest.raises(HeadRegError):
        resources.torch_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(HeadRegError, match="no CUDA GPU"):
            resources.torch_device("cuda")
