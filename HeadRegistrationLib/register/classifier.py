"""CT or MR: the learned modality classifier and the final decision (paper: "Identification
of image modality").

The classifier is the DCNN trunk with a softmax head (``network.ModalityNet``), trained with
cross-entropy on the single volumes of a built set. Its input is the volume on the network
grid (64^3 at 4 mm around the head, average-pooled to 32^3 at 8 mm) with a normalisation that
does not depend on the modality (0.5th to 99.5th percentile to 0..1), so that it must tell
the modality from the anatomy's appearance, not from units. The final decision weighs it
with evidence that needs no learning (``modality.rule_based_modality``: the DICOM tag,
Hounsfield air and bone); disagreement is reported as a warning.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from .. import __version__
from ..core.resources import models_folder
from . import modality, network, preprocessing, symmetry
from ..core.errors import HeadRegError

LABELS = ("MR", "CT")
POOL = 2
GRID_SIZE, GRID_SPACING_MM = (64, 64, 64), 4.0
MODEL_NAME = "modality"


def normalise_any(volume: np.ndarray) -> np.ndarray:
    """0..1 between the 0.5th and 99.5th percentile of the volume (clipped at 1.5)."""
    low, high = np.percentile(volume, [0.5, 99.5])
    return np.clip((volume - low) / max(float(high - low), 1e-6), 0.0, 1.5).astype(np.float32)


def pooled(volume: np.ndarray) -> torch.Tensor:
    """A grid volume average-pooled by POOL, with a channel axis."""
    return torch.nn.functional.avg_pool3d(torch.from_numpy(np.ascontiguousarray(volume))[None, None], POOL)[0]


def classifier_input(image: sitk.Image, center=None) -> torch.Tensor:
    """A volume as the classifier sees it: (1, 32, 32, 32) float32 around the head
    (``center``: the head's centre, from its symmetry frame when not given)."""
    center = symmetry.symmetry_frame(image).center if center is None else center
    grid = preprocessing.network_grid(center, GRID_SIZE, GRID_SPACING_MM)
    return pooled(normalise_any(preprocessing.on_grid(image, grid)))


# ---------------------------------------------------------------- shipped weights

def save_model(model: network.ModalityNet, widths, card: dict, folder=None, name: str = MODEL_NAME) -> None:
    """``<name>.pt`` (a state dict, loadable with ``weights_only=True``) and ``<name>.json``
    (the model card: format, widths, data, settings, metrics, date) into ``folder`` (the
    shipped models when None)."""
    folder = models_folder() if folder is None else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / f"{name}.pt")
    card = {"model": "ModalityNet", "format": 1, "headregistration": __version__, "widths": list(widths),
            "labels": list(LABELS), "input": {"grid_size": list(GRID_SIZE), "grid_spacing_mm": GRID_SPACING_MM,
                                              "pool": POOL, "normalisation": "0.5-99.5 percentile to 0..1"},
            "date": datetime.date.today().isoformat(), **card}
    (folder / f"{name}.json").write_text(json.dumps(card, indent=2))


def load_model(folder=None, name: str = MODEL_NAME) -> network.ModalityNet:
    """The classifier in ``folder`` (the shipped one when None); a clear error when it is
    missing, of another format, or its weights do not fit the network the card describes."""
    folder = models_folder() if folder is None else Path(folder)
    card_path, weights_path = folder / f"{name}.json", folder / f"{name}.pt"
    if not (card_path.exists() and weights_path.exists()):
        raise HeadRegError(f"the modality model is missing: expected {weights_path} and {card_path}")
    card = json.loads(card_path.read_text())
    if card.get("model") != "ModalityNet" or card.get("format") != 1:
        raise HeadRegError(f"{card_path} describes another model or format ({card.get('model')}, "
                           f"format {card.get('format')})")
    return network.load_weights(network.ModalityNet(tuple(card["widths"])), weights_path)


# ---------------------------------------------------------------- the decision

@dataclass
class ModalityDecision:
    modality: str
    probability: float                 # of the decided modality
    learned_ct_probability: float
    rule: modality.ModalityEvidence
    warnings: list[str] = field(default_factory=list)


NETWORK_CAP = 0.98   # the network's odds are capped: outside what it was trained on it can be confidently wrong


@torch.no_grad()
def decide(image: sitk.Image, model: network.ModalityNet, center=None,
           head_mask: sitk.Image | None = None) -> ModalityDecision:
    """CT or MR, weighing the classifier with the rule-based evidence: a DICOM tag decides;
    otherwise the two are combined as independent odds (the network's capped at
    ``NETWORK_CAP``), and disagreement is a warning. ``center`` and ``head_mask``: the
    head's centre and mask (symmetry.head_mask) when the caller already has them."""
    model.eval()
    weights = next(model.parameters())
    volume = classifier_input(image, center)[None].to(weights.device, weights.dtype)
    p_ct = float(torch.softmax(model(volume), dim=1)[0, 1])
    rule = modality.rule_based_modality(image, head_mask)
    if rule.from_dicom_tag:
        combined = rule.ct_probability
    else:
        capped = min(max(p_ct, 1 - NETWORK_CAP), NETWORK_CAP)
        odds = capped / (1 - capped) * rule.ct_probability / (1 - rule.ct_probability)
        combined = odds / (1 + odds)
    warnings = []
    if rule.modality is not None and (p_ct >= 0.5) != (rule.modality == "CT") and rule.confidence >= 0.75:
        warnings.append(f"the classifier says {'CT' if p_ct >= 0.5 else 'MR'} ({max(p_ct, 1 - p_ct):.2f}) "
                        f"but {rule.reason}")
    label = "CT" if combined >= 0.5 else "MR"
    return ModalityDecision(label, combined if label == "CT" else 1 - combined, p_ct, rule, warnings)
