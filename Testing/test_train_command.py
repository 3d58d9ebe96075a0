"""``headreg train`` (the layout issue): a small model made end to end from a built set,
written as shipped (the same files and card fields), and used by ``headreg register``."""

import json

import pytest

pytest.importorskip("torch")

from HeadRegistrationLib import cli  # noqa: E402
from HeadRegistrationLib.core import resources  # noqa: E402
from HeadRegistrationLib.data import phantom  # noqa: E402
from HeadRegistrationLib.register import classifier, prediction  # noqa: E402


def card_fields(path):
    return set(json.loads(path.read_text()))


def test_train_writes_both_models_as_shipped_and_register_uses_them(tiny_set, tmp_path, capsys):
    out = tmp_path / "models"
    assert cli.main(["train", "registration", str(tiny_set), "--out", str(out), "--epochs", "2", "--widths", "4,8",
                     "--pool", "2", "--batch-size", "4", "--ann-epochs", "5", "--device", "cpu"]) == 0
    assert cli.main(["train", "modality", str(tiny_set), "--out", str(out), "--epochs", "1", "--widths", "4,8"]) == 0
    shipped = resources.models_folder()
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == sorted(p.name for p in shipped.iterdir())
    for card in ("registration.json", "modality.json"):
        assert card_fields(out / card) == card_fields(shipped / card), card
    registration_card = json.loads((out / "registration.json").read_text())
    assert registration_card["widths"] == [4, 8] and registration_card["input"]["grid_size"] == [16, 16, 16]
    assert {"validation ann", "test ann"} <= set(registration_card["metrics"])
    assert len(registration_card["training"]["history"]) == 2
    assert prediction.load_learned(out).ann is not None
    classifier.load_model(out)

    pair_folder = tmp_path / "pair"
    phantom.write_phantom(pair_folder, 1, None, None)
    report = tmp_path / "report.json"
    code = cli.main(["register", str(pair_folder / "ct.nii.gz"), str(pair_folder / "mr.nii.gz"), "-o",
                     str(tmp_path / "t.tfm"), "--model", str(out), "--report", str(report)])
    assert code in (0, 3), capsys.readouterr().err
    record = json.loads(report.read_text())
    assert record["settings"]["model"] == str(out) and record["learned_models"]


def test_train_refuses_what_is_not_a_set(tmp_path, capsys):
    assert cli.main(["train", "modality", str(tmp_path), "--out", str(tmp_path / "m")]) == 1
    assert "not a built training set" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
