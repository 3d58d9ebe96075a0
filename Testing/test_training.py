"""The 3D DCNN and its training loop: shapes, checkpoints, resume, refusals."""

import numpy as np
import pytest
import torch

from HeadRegistrationLib import dataset, network, training
from HeadRegistrationLib.errors import HeadRegError

TINY = {"copies": 4, "seed": 0, "grid_size": [16, 16, 16], "grid_spacing_mm": 16.0, "max_angle_deg": 15.0,
        "max_shift_mm": 5.0, "center_jitter_mm": 5.0}


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    dataset.build(folder, dataset.phantom_subjects(3), TINY)
    return folder


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
    runs = [training.train_registration(tiny_set, tmp_path / str(k), epochs=1, batch_size=4, widths=(4, 8),
                                        progress=False) for k in range(2)]
    assert runs[0] == runs[1]


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
    assert training.pick_device("cpu").type == "cpu"
    with pytest.raises(HeadRegError):
        training.pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(HeadRegError, match="no GPU"):
            training.pick_device("cuda")
