"""The learned prediction (paper: "Registration of multi-modal images"): the trained DCNN
reads the fixed MR and the moving CT on the network grid, and the ANN on its 2 x 128
features (or the DCNN's own head) gives the six parameters of the fixed -> moving transform.

The shipped model is ``HeadRegistrationLib/models/registration.pt`` (a state dict, read with
``weights_only=True``), ``registration-ann.npz`` (the ANN's arrays, read without pickle)
and ``registration.json``, the model card: network shape, input grid, data, training
settings, metrics and date. Loading checks all three against each other.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from .. import __version__
from ..core import geometry
from ..core.resources import models_folder
from . import network, preprocessing
from .ann import BayesianANN
from ..core.errors import HeadRegError
from ..core.files import write_atomically

MODEL_NAME = "registration"
FORMAT = 1


@dataclass
class LearnedRegistration:
    network: network.RegistrationNet
    ann: BayesianANN | None
    card: dict

    @property
    def grid(self) -> dict:
        return self.card["input"]


def network_pair(fixed_mr: sitk.Image, moving_ct_hu: sitk.Image, center, grid: dict,
                 start=None) -> torch.Tensor:
    """(1, 2, z, y, x) network input: the MR and the CT (in HU, seen through ``start``, a
    fixed -> moving 4x4) on the network grid centred on ``center``, normalised and pooled
    as the training set was (``dataset.make_copy``)."""
    image_grid = preprocessing.network_grid(center, grid["grid_size"], grid["grid_spacing_mm"])
    fixed = preprocessing.normalise_mr(preprocessing.on_grid(fixed_mr, image_grid, background=0.0))
    moving = preprocessing.normalise_ct(preprocessing.on_grid(moving_ct_hu, image_grid, start, background=-1000.0))
    pair = torch.from_numpy(np.stack([fixed, moving]))[None]
    return torch.nn.functional.avg_pool3d(pair, grid["pool"]) if grid["pool"] > 1 else pair


@torch.no_grad()
def predict_parameters(learned: LearnedRegistration, pair: torch.Tensor, regressor: str = "ann") -> np.ndarray:
    """The six parameters (degrees, mm; ``geometry.PARAMETER_NAMES``) for each pair of a batch."""
    learned.network.eval()
    weights = next(learned.network.parameters())
    pair = pair.to(weights.device, weights.dtype)
    if regressor == "head":
        return learned.network(pair).cpu().numpy() * np.array(network.PARAMETER_SCALE)
    if regressor != "ann":
        raise HeadRegError(f"unknown regressor {regressor!r}: choose ann or head")
    if learned.ann is None:
        raise HeadRegError("this model has no ANN: use the DCNN's head (regressor 'head')")
    return learned.ann.predict(learned.network.features(pair).cpu().numpy())


def predict_transform(learned: LearnedRegistration, fixed_mr: sitk.Image, moving_ct_hu: sitk.Image, center,
                      start=None, passes: int = 1, regressor: str = "ann") -> np.ndarray:
    """Fixed -> moving 4x4 from the learned prediction alone. Each pass samples the CT
    through the transform found so far and adds the correction the network reads from
    what is left (T = T_start . T_1 . T_2 ...); the rotations are about ``center``."""
    if passes < 1:
        raise HeadRegError(f"at least one pass is needed, got {passes}")
    transform = np.eye(4) if start is None else geometry.as_matrix(start)
    for _ in range(passes):
        pair = network_pair(fixed_mr, moving_ct_hu, center, learned.grid, transform)
        correction = predict_parameters(learned, pair, regressor)[0]
        transform = geometry.compose(transform, geometry.matrix_from_parameters(correction, center))
    return transform


# ---------------------------------------------------------------- shipping and loading

def save_learned(model: network.RegistrationNet, ann: BayesianANN | None, card: dict, folder=None,
                 name: str = MODEL_NAME) -> None:
    """Weights, ANN arrays and the model card ``card`` (which must hold ``input``: grid_size,
    grid_spacing_mm, pool) into ``folder`` (the shipped models when None)."""
    folder = models_folder() if folder is None else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / f"{name}.pt")
    if ann is not None:
        np.savez(folder / f"{name}-ann.npz", **ann.to_arrays())
    full = {"model": "RegistrationNet", "format": FORMAT, "headregistration": __version__,
            "widths": [block[0].out_channels for block in model.trunk.blocks],
            "hidden": model.head[0].out_features,
            "parameters": list(geometry.PARAMETER_NAMES), "parameter_scale": list(network.PARAMETER_SCALE),
            "ann": None if ann is None else {"file": f"{name}-ann.npz", "hidden": ann.hidden,
                                             "alpha": ann.alpha, "beta": ann.beta,
                                             "effective_parameters": ann.effective_parameters},
            "date": datetime.date.today().isoformat(), **card}
    write_atomically(folder / f"{name}.json", lambda path: Path(path).write_text(json.dumps(full, indent=2)))


def load_learned(folder=None, name: str = MODEL_NAME) -> LearnedRegistration:
    """The registration model in ``folder`` (the shipped one when None); a clear error when
    a file is missing, of another format, or does not fit the network its card describes."""
    folder = models_folder() if folder is None else Path(folder)
    card_path, weights_path = folder / f"{name}.json", folder / f"{name}.pt"
    if not (card_path.exists() and weights_path.exists()):
        raise HeadRegError(f"the registration model is missing: expected {weights_path} and {card_path}")
    try:
        card = json.loads(card_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise HeadRegError(f"{card_path} is not a model card: {error}") from None
    if card.get("model") != "RegistrationNet" or card.get("format") != FORMAT:
        raise HeadRegError(f"{card_path} describes another model or format ({card.get('model')}, "
                           f"format {card.get('format')}); this HeadRegistration reads format {FORMAT}")
    missing = [key for key in ("widths", "hidden", "input") if key not in card]
    if missing:
        raise HeadRegError(f"{card_path} lacks {', '.join(missing)}")
    if card.get("parameter_scale") != list(network.PARAMETER_SCALE):
        raise HeadRegError(f"{card_path} was trained with parameter scale {card.get('parameter_scale')}, "
                           f"this HeadRegistration uses {list(network.PARAMETER_SCALE)}")
    model = network.load_weights(network.RegistrationNet(tuple(card["widths"]), card["hidden"]), weights_path)
    ann = None
    if card.get("ann"):
        ann_path = folder / card["ann"]["file"]
        if not ann_path.exists():
            raise HeadRegError(f"the registration model's ANN is missing: expected {ann_path}")
        try:
            with np.load(ann_path, allow_pickle=False) as arrays:
                ann = BayesianANN.from_arrays(dict(arrays))
        except (ValueError, OSError) as error:
            raise HeadRegError(f"{ann_path} is not an ANN archive: {error}") from None
        if ann.to_arrays()["x_min"].size != 2 * model.trunk.features:
            raise HeadRegError(f"{ann_path} reads {ann.to_arrays()['x_min'].size} features, the network gives "
                               f"{2 * model.trunk.features}")
    return LearnedRegistration(model, ann, card)
