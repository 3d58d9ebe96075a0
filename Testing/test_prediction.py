"""The learned prediction: network input, passes, shipping and loading of the model."""

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from HeadRegistrationLib.core import geometry, resources
from HeadRegistrationLib.data import dataset, phantom
from HeadRegistrationLib.register import network, prediction, symmetry
from HeadRegistrationLib.register.ann import BayesianANN
from HeadRegistrationLib.core.errors import HeadRegError

GRID = {"grid_size": [32, 32, 32], "grid_spacing_mm": 8.0, "pool": 2}


@pytest.fixture(scope="module")
def pair():
    return phantom.make_phantom_pair(6, rotation_deg=10.0, translation_mm=4.0)


@pytest.fixture(scope="module")
def center(pair):
    return symmetry.symmetry_frame(pair.mr).center


def tiny_model(seed=0):
    torch.manual_seed(seed)
    model = network.RegistrationNet((4, 8), hidden=8).eval()
    features = np.random.default_rng(seed).normal(size=(40, 16))
    ann = BayesianANN(hidden=3, epochs=5).fit(features, features[:, :6] * 3.0)
    return model, ann


def test_network_pair_sees_the_moving_volume_through_start(pair, center):
    aligned = prediction.network_pair(pair.mr, pair.ct, center, GRID, start=pair.truth)
    assert aligned.shape == (1, 2, 16, 16, 16) and aligned.dtype == torch.float32
    assert 0.0 <= float(aligned.min()) and float(aligned.max()) <= 3.0
    # Seen through the truth, the CT's head lies where the MR's head lies; seen as it is, it does not.
    as_is = prediction.network_pair(pair.mr, pair.ct, center, GRID)
    head_mr = aligned[0, 0] > 0.2
    overlap = [float(((p[0, 1] > 0.5) & head_mr).sum() / ((p[0, 1] > 0.5) | head_mr).sum()) for p in (aligned, as_is)]
    assert overlap[0] > 0.8 and overlap[0] > overlap[1] + 0.02


def test_passes_compose_the_corrections(pair, center):
    model, ann = tiny_model()
    learned = prediction.LearnedRegistration(model, ann, {"input": GRID})
    one = prediction.predict_transform(learned, pair.mr, pair.ct, center)
    two = prediction.predict_transform(learned, pair.mr, pair.ct, center, passes=2)
    step = prediction.predict_parameters(learned, prediction.network_pair(pair.mr, pair.ct, center, GRID, one))[0]
    np.testing.assert_allclose(two, one @ geometry.matrix_from_parameters(step, center), atol=1e-6)
    head = prediction.predict_transform(learned, pair.mr, pair.ct, center, regressor="head")
    assert geometry.is_rigid(head) and not np.allclose(head, one)
    with pytest.raises(HeadRegError, match="regressor"):
        prediction.predict_transform(learned, pair.mr, pair.ct, center, regressor="svr")
    with pytest.raises(HeadRegError, match="pass"):
        prediction.predict_transform(learned, pair.mr, pair.ct, center, passes=0)


def test_saved_model_loads_and_predicts_the_same(tmp_path, pair, center):
    model, ann = tiny_model()
    prediction.save_learned(model, ann, {"input": GRID, "metrics": {}}, tmp_path)
    card = json.loads((tmp_path / "registration.json").read_text())
    assert card["widths"] == [4, 8] and card["ann"]["file"] == "registration-ann.npz" and card["date"]
    loaded = prediction.load_learned(tmp_path)
    original = prediction.LearnedRegistration(model, ann, card)
    for regressor in ("ann", "head"):
        np.testing.assert_allclose(prediction.predict_transform(loaded, pair.mr, pair.ct, center, regressor=regressor),
                                   prediction.predict_transform(original, pair.mr, pair.ct, center,
                                                                regressor=regressor), atol=1e-6)


def test_loading_refuses_what_does_not_fit(tmp_path):
    with pytest.raises(HeadRegError, match="missing"):
        prediction.load_learned(tmp_path)
    model, ann = tiny_model()
    prediction.save_learned(model, ann, {"input": GRID}, tmp_path)
    card_path = tmp_path / "registration.json"
    card = json.loads(card_path.read_text())

    def broken(**change):
        card_path.write_text(json.dumps({**card, **change}))
        with pytest.raises(HeadRegError) as raised:
            prediction.load_learned(tmp_path)
        return str(raised.value)

    assert "format" in broken(format=99)
    assert "parameter scale" in broken(parameter_scale=[1, 1, 1, 1, 1, 1])
    assert "does not fit" in broken(widths=[4, 16])
    card_path.write_text(json.dumps({k: v for k, v in card.items() if k != "hidden"}))
    with pytest.raises(HeadRegError, match="lacks hidden"):
        prediction.load_learned(tmp_path)
    card_path.write_text("{not json")
    with pytest.raises(HeadRegError, match="not a model card"):
        prediction.load_learned(tmp_path)
    card_path.write_text(json.dumps(card))
    other = BayesianANN(hidden=3, epochs=2).fit(np.random.default_rng(1).normal(size=(20, 5)), np.zeros((20, 6)))
    np.savez(tmp_path / "registration-ann.npz", **other.to_arrays())
    assert "features" in broken()
    (tmp_path / "registration-ann.npz").write_bytes(b"not an archive")
    assert "not an ANN archive" in broken()
    (tmp_path / "registration-ann.npz").unlink()
    assert "ANN is missing" in broken()


@pytest.mark.skipif(not (resources.models_folder() / "registration.json").exists(), reason="no shipped registration model")
def test_shipped_model_registers_a_held_out_phantom():
    """Fresh copies of phantom-6, a test subject of the shipped model's set (its card),
    drawn as the set drew its copies: the learned prediction alone, from the images."""
    learned = prediction.load_learned()
    assert learned.ann is not None and learned.card["data"]["subjects"]["phantom-6"]["split"] == "test"
    subject = dataset.phantom_subjects(7)[6]
    assert subject["id"] == "phantom-6"
    prepared = dataset.prepare_subject(subject, None)
    rotation, translation = [], []
    for k in range(6):
        copy = dataset.make_copy(prepared, [99, 6, 1000 + k], learned.card["data"]["settings"])
        truth, center = copy["truth"], geometry.grid_center(copy["grid"])
        moving = sitk.Resample(copy["ct"], copy["ct"], geometry.sitk_from_matrix(geometry.invert(truth)),
                               sitk.sitkLinear, -1000.0)
        found = prediction.predict_transform(learned, copy["mr"], moving, center)
        rotation.append((geometry.rotation_error_deg(np.eye(4), truth), geometry.rotation_error_deg(found, truth)))
        translation.append((geometry.translation_error_mm(np.eye(4), truth, center),
                            geometry.translation_error_mm(found, truth, center)))
    (rotation_before, rotation_after), (shift_before, shift_after) = np.median(rotation, 0), np.median(translation, 0)
    assert rotation_after < 3.0 and rotation_after < rotation_before / 2
    assert shift_after < 3.0 and shift_after < shift_before
