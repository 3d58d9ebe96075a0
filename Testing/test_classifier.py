"""The CT/MR classifier: metrics, the shipped model, the decision, `headreg modality`."""

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from conftest import shared_file

from HeadRegistrationLib import cli
from HeadRegistrationLib.core import resources
from HeadRegistrationLib.learn import modality as modality_training
from HeadRegistrationLib.register import classifier, network
from HeadRegistrationLib.core.errors import HeadRegError

SHARED = {"rire_training_001/training_001_mr_T1.mha": "MR", "seg3d_epilepsy/MR.nii.gz": "MR",
          "templates/MNI152_T1_2mm.nii.gz": "MR", "templates/scct.nii.gz": "CT", "templates/ch2.nii.gz": "MR",
          "mr_small/HeadMRVolume.mhd": "MR", "ct_phantom/CT_pitch.nii.gz": "CT",
          "tcga_hnsc_ct/0002.nii.gz": "CT", "tcga_hnsc_ct/0003.nii.gz": "CT"}


def test_metrics_are_the_papers_table_3():
    truth = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    predicted = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    m = modality_training.table3_metrics(predicted, truth)
    assert m["accuracy"] == 0.75 and m["sensitivity"] == 0.75 and m["specificity"] == 0.75
    assert m["precision"] == 0.75 and m["f_measure"] == pytest.approx(0.75)
    assert m["g_mean"] == pytest.approx(0.75)


def test_normalisation_ignores_units():
    values = np.random.default_rng(0).normal(size=(8, 8, 8))
    np.testing.assert_allclose(classifier.normalise_any(values), classifier.normalise_any(values * 37 - 1000),
                               atol=1e-5)


@pytest.fixture(scope="module")
def model():
    return classifier.load_model()


def test_the_shipped_model_has_a_card_with_metrics(model):
    card = json.loads((resources.models_folder() / "modality.json").read_text())
    assert card["labels"] == ["MR", "CT"] and card["metrics"]["validation"]["accuracy"] >= 0.95
    assert (resources.models_folder() / "modality.pt").stat().st_size < 5 * 2 ** 20


def test_the_phantom_ct_and_mr_are_told_apart(model, phantom_pair):
    assert classifier.decide(phantom_pair.ct, model).modality == "CT"
    assert classifier.decide(phantom_pair.mr, model).modality == "MR"


@pytest.mark.parametrize("relative,truth", sorted(SHARED.items()))
def test_every_shared_volume_is_labelled_right(model, relative, truth):
    decision = classifier.decide(sitk.ReadImage(str(shared_file(relative))), model)
    assert decision.modality == truth, (decision.probability, decision.learned_ct_probability, decision.rule)


def test_the_rules_read_the_hounsfield_scale_in_any_offset_and_the_spread_of_mr_tissue(phantom_pair):
    from HeadRegistrationLib.register import modality
    stored = phantom_pair.ct + 1024   # as many CTs are stored: no negative values
    evidence = modality.rule_based_modality(sitk.Cast(stored, sitk.sitkInt16))
    assert evidence.modality == "CT" and evidence.confidence >= 0.95 and "offset" in evidence.reason
    real_mr = sitk.ReadImage(str(shared_file("rire_training_001/training_001_mr_T1.mha")))
    evidence = modality.rule_based_modality(real_mr)
    assert evidence.modality == "MR" and evidence.confidence >= 0.8 and "spread" in evidence.reason
    stored_ct = sitk.ReadImage(str(shared_file("tcga_hnsc_ct/0003.nii.gz")))   # a real CT as HU + 1024
    assert modality.rule_based_modality(stored_ct).modality == "CT"


def test_a_dicom_tag_decides_and_disagreement_is_a_warning(model, phantom_pair):
    tagged = sitk.Image(phantom_pair.mr)
    tagged.SetMetaData("0008|0060", "CT")
    decision = classifier.decide(tagged, model)
    assert decision.modality == "CT" and decision.warnings


def test_broken_weights_are_refused_clearly(tmp_path):
    shutil.copy(resources.models_folder() / "modality.json", tmp_path / "modality.json")
    torch.save(network.ModalityNet((4, 8)).state_dict(), tmp_path / "modality.pt")
    with pytest.raises(HeadRegError, match="does not fit"):
        classifier.load_model(tmp_path)
    (tmp_path / "modality.pt").write_bytes(b"not a model")
    with pytest.raises(HeadRegError, match="does not fit"):
        classifier.load_model(tmp_path)
    with pytest.raises(HeadRegError, match="missing"):
        classifier.load_model(tmp_path / "nowhere")


def test_modality_command_prints_one_line_per_input(tmp_path, phantom_pair, capsys):
    paths = [tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"]
    sitk.WriteImage(phantom_pair.ct, str(paths[0]))
    sitk.WriteImage(phantom_pair.mr, str(paths[1]))
    assert cli.main(["modality", *map(str, paths)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[:2] for line in lines] == [[str(paths[0]), "CT"], [str(paths[1]), "MR"]]
    assert all(0.5 <= float(line.split()[2]) <= 1.0 for line in lines)
    assert cli.main(["modality", str(tmp_path / "missing.nii.gz"), str(paths[0])]) == 1
    captured = capsys.readouterr()
    assert captured.out.strip().split()[1] == "CT"                      # the good file still gets its line
    assert captured.err.strip().startswith("headreg modality: error:")
