"""The compared networks of the paper's Tables 1-3 (learn.backbones, learn.compared), at a
tiny width: each gives outputs of the right shape and learns (its loss falls on a small
batch); the comparison runs every method end to end on a small set."""

import numpy as np
import pytest
import torch

from HeadRegistrationLib.core import geometry
from HeadRegistrationLib.evaluate import comparison
from HeadRegistrationLib.learn import backbones, compared
from HeadRegistrationLib.register import network

STEPS = 20


def _batch():
    """Eight 32^3 volumes; the CT-like ones have a bright shell (bone) around a dim core."""
    generator = torch.Generator().manual_seed(0)
    volumes = 0.1 * torch.rand(8, 1, 32, 32, 32, generator=generator)
    z, y, x = torch.meshgrid(*[torch.arange(32.0) - 15.5] * 3, indexing="ij")
    shell = ((x ** 2 + y ** 2 + z ** 2).sqrt() - 11).abs() < 2
    labels = torch.tensor([0, 1] * 4)
    volumes[labels == 1, 0] += shell.float()
    volumes[labels == 0, 0] += 0.4 * (~shell).float() * ((x ** 2 + y ** 2 + z ** 2).sqrt() < 13).float()
    return volumes, labels


@pytest.mark.parametrize("name", backbones.NAMES)
def test_backbone_gives_two_logits_and_learns(name):
    torch.manual_seed(0)
    model = backbones.classifier(name, 1.0 if name == "dcnn" else 0.0625)
    volumes, labels = _batch()
    with torch.no_grad():
        assert model.eval()(volumes[:3]).shape == (3, 2)
    assert_loss_falls(model, lambda: torch.nn.functional.cross_entropy(model(volumes), labels))


def assert_loss_falls(model, loss_of_batch):
    """Adam on one batch, in training mode: the last losses well under the first."""
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(STEPS):
        loss = loss_of_batch()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-3:]) / 3 < 0.7 * losses[0], losses


def test_classifiers_keep_their_published_shape():
    """At width 1 each has its published depth and classifier (checked by counting)."""
    def count(model, kind):
        return sum(isinstance(m, kind) for m in model.modules())
    assert count(backbones.classifier("alexnet"), torch.nn.Conv3d) == 5
    assert count(backbones.classifier("alexnet"), torch.nn.Linear) == 3
    assert count(backbones.classifier("vgg19", 0.125), torch.nn.Conv3d) == 16
    assert count(backbones.classifier("vgg19", 0.125), torch.nn.Linear) == 3
    assert count(backbones.classifier("squeezenet"), backbones.Fire) == 8
    assert count(backbones.classifier("googlenet", 0.125), backbones.Inception) == 9
    resnet = backbones.classifier("resnet101", 0.125)
    assert count(resnet, torch.nn.Conv3d) == 1 + 3 * 33 + 4   # stem, three per bottleneck, four shortcuts
    assert isinstance(backbones.classifier("dcnn"), network.ModalityNet)
    with pytest.raises(ValueError, match="unknown backbone"):
        backbones.classifier("lenet")


def _pairs():
    """Four (fixed, moving) pairs 32^3 whose moving copy is the fixed one shifted by a
    known amount along x, the target."""
    generator = torch.Generator().manual_seed(0)
    base = torch.nn.functional.avg_pool3d(torch.rand(4, 1, 40, 40, 40, generator=generator), 5, 1, 2)[..., 4:36, 4:36, 4:36]
    base = (base - base.mean()) / base.std()
    shifts = [-2, -1, 1, 2]
    pairs = torch.cat([base, torch.stack([torch.roll(b, s, dims=3) for b, s in zip(base, shifts)])], 1)
    targets = torch.zeros(4, 6)
    targets[:, 3] = torch.tensor(shifts, dtype=torch.float32) / 2
    return pairs, targets


@pytest.mark.parametrize("name", backbones.REGRESSORS)
def test_registration_network_gives_six_parameters_and_features_and_learns(name):
    torch.manual_seed(0)
    model = backbones.regressor(name, 1.0 if name == "dcnn" else 0.0625)
    pairs, targets = _pairs()
    with torch.no_grad():
        model.eval()
        assert model(pairs).shape == (4, 6) and model.features(pairs).shape[0] == 4
    assert_loss_falls(model, lambda: network.half_mse(model(pairs), targets))
    with pytest.raises(ValueError, match="unknown registration backbone"):
        backbones.regressor("voxelmorph")


def test_synthesis_network_learns_a_contrast():
    """Liu et al.'s network: maps a volume to its inverted contrast (as CT to MR)."""
    torch.manual_seed(0)
    model = compared.SynthesisNet(0.0625)
    ct = torch.rand(2, 1, 16, 16, 16)
    assert model(ct).shape == ct.shape
    assert_loss_falls(model, lambda: torch.sum((model(ct) - (1 - ct)) ** 2) / 2)


def test_ransac_recovers_a_rigid_transform_among_outliers():
    rng = np.random.default_rng(0)
    truth = geometry.matrix_from_parameters([10.0, -5.0, 20.0, 4.0, -3.0, 6.0])
    a = rng.uniform(-60, 60, (60, 3))
    b = a @ truth[:3, :3].T + truth[:3, 3]
    b[:25] = rng.uniform(-60, 60, (25, 3))   # 25 of 60 matches wrong
    found = compared.ransac_rigid(a, b, threshold_mm=2.0)
    np.testing.assert_allclose(found, truth, atol=1e-6)
    np.testing.assert_allclose(compared.ransac_rigid(a[:2], b[:2], 2.0), np.eye(4))


def test_tables_1_and_2_run_each_kind_of_method_end_to_end(compare_set, tmp_path):
    """A regressor, the synthesis method and the interest-point method (every network is
    built and trained above; these three cover the table's three code paths)."""
    methods = ("sloan-fcn", "liu", "zou")
    records = comparison.registration_table(compare_set, tmp_path, methods, width=0.0625, epochs=1, ann_epochs=2,
                                            test_pairs=2)
    assert [r["method"] for r in records] == ["none (identity)", "dcnn (shipped)", *methods]
    assert "with_ann" not in records[0] and records[0]["published"]["learned"]["translation_median_mm"] > 0
    for record in records[1:]:
        for table in ("published", "with_ann"):
            for stage in ("learned", "refined"):
                row = record[table][stage]
                assert len(row["r_squared"]) == 6 and 0 <= row["dsc"] <= 1 and row["rotation_median_deg"] >= 0
        assert record["parameters"] > 0 and record["published"]["cpu_ms"] > 0


def test_table_3_runs_end_to_end(compare_set, tmp_path):
    records = comparison.classifier_table(compare_set, ("dcnn", "squeezenet"), width=0.0625, epochs=1,
                                          data_dir=tmp_path)
    assert [r["method"] for r in records] == ["dcnn", "squeezenet"]
    for record in records:
        assert set(comparison.TABLE3) <= set(record["test"]) and record["shared_count"] == 2   # the phantom's CT, MR


def test_headreg_train_registration_with_a_compared_backbone(compare_set, tiny_set, tmp_path, capsys):
    from HeadRegistrationLib import cli
    out = tmp_path / "sloan"
    assert cli.main(["train", "registration", str(compare_set), "--out", str(out), "--backbone", "sloan-fcn",
                     "--width", "0.0625", "--epochs", "1", "--ann-epochs", "2", "--device", "cpu"]) == 0
    card = __import__("json").loads((out / "registration-sloan-fcn.json").read_text())
    assert card["model"] == "sloan-fcn" and card["training"]["backbone"] == "sloan-fcn"
    assert "test ann" in card["metrics"] and not (out / "registration.pt").exists()   # measured, not shipped
    capsys.readouterr()
    assert cli.main(["train", "registration", str(tiny_set), "--out", str(tmp_path / "t"), "--backbone", "miao",
                     "--epochs", "1", "--device", "cpu"]) == 1
    error = capsys.readouterr().err.strip()
    assert "32x32x32 grid" in error and len(error.splitlines()) == 1 and not (tmp_path / "t").exists()
