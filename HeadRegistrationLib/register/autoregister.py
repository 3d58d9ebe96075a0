"""Automatic registration of two head volumes given in any order (paper: "Complete
registration process"; DESIGN.md, "Data flow of one registration").

1. Frames: the head mask and PCA symmetry frame of each volume (symmetry.py).
2. Roles: the learned classifier weighed with rule-based evidence (classifier.py) decides
   which volume is the MR (fixed) and which the CT (moving).
3. The search (search.py): starts over all orientations placed by the head masks, the
   learned correction, screening, the mirror alternatives, refinement; one metric that
   knows both fields of view.
4. Quality (quality.py): measures that need no ground truth, and a confidence.
"""

from __future__ import annotations

import functools
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import SimpleITK as sitk

from .. import __version__
from ..core import geometry, volume_io
from . import modality, preprocessing, quality, symmetry
from ..core.errors import Cancelled, HeadRegError
from ..core.resources import torch_device

HEAD_ML = (200, 15000)    # volume of the head mask: a thin slab of a head to a head and neck
MIN_ROLE_ODDS = 4.0       # the two role orders must differ by this much to register at all...
CONFIDENT_ROLE_ODDS = 30.0   # ...and by this much for the roles to count as certain
MASK_SPACING_MM = 4.0     # head masks: for the frames, the starts and the quality check
# The fraction of the work done when each stage begins (progress bars), from the median
# stage times of the benchmark's report set (docs/BENCHMARKS.md, "The search").
STAGE_FRACTIONS = {"head masks and symmetry frames": 0.0, "loading the models": 0.10, "modality": 0.10,
                   "starts": 0.12, "learned correction": 0.25, "screening": 0.29, "fine search": 0.42,
                   "refinement": 0.63, "quality check": 0.99}


def overall_fraction(stage: str, done: float = 0.0) -> float:
    """The fraction of a registration done when ``stage`` is ``done`` (0-1) through, from
    ``STAGE_FRACTIONS`` (a stage runs up to where the next begins)."""
    names = list(STAGE_FRACTIONS)
    start = STAGE_FRACTIONS[stage]
    end = STAGE_FRACTIONS[names[names.index(stage) + 1]] if stage != names[-1] else 1.0
    return start + min(max(done, 0.0), 1.0) * (end - start)


@dataclass
class AutoRegistration:
    matrix: np.ndarray                       # fixed -> moving, LPS mm
    fixed_index: int                         # 0: the first image is the fixed MR, 1: the second
    modalities: tuple                        # per input, in input order: dict(modality, probability, ...)
    quality: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    seconds: dict = field(default_factory=dict)      # per stage
    candidates: list = field(default_factory=list)   # the search's last candidates: kind, metric per stage
    learned: bool = False                            # whether the learned models took part

    @property
    def confident(self) -> bool:
        return bool(self.quality.get("confident"))


def assign_roles(ct_probabilities, reasons=("", "")) -> tuple[int, list[str]]:
    """Index of the MR (fixed) input, and warnings, from each input's probability of being
    the CT: the order whose odds are higher wins (a clear CT beside an MR that also looks
    a little like one is still a pair), refused when the two orders are too close to call
    (two CTs, two MRs, two of a kind unknown)."""
    p = [min(max(float(v), 1e-6), 1 - 1e-6) for v in ct_probabilities]
    odds = p[0] * (1 - p[1]) / ((1 - p[0]) * p[1])   # first is the CT against second is the CT
    ct_index = 0 if odds >= 1 else 1
    strength = max(odds, 1 / odds)
    if strength < MIN_ROLE_ODDS:
        both = "CT" if min(p) >= 0.5 else "MR" if max(p) < 0.5 else None
        why = "; ".join(r for r in reasons if r)
        if both:
            raise HeadRegError(f"both volumes look like {both} ({why}): give one CT and one MR")
        raise HeadRegError(f"cannot tell which volume is the CT and which the MR ({why})")
    warnings = []
    if strength < CONFIDENT_ROLE_ODDS:
        warnings.append(f"LOW CONFIDENCE: the roles are uncertain (odds {strength:.0f}:1 that the "
                        f"{('first', 'second')[ct_index]} volume is the CT): check which is which")
    return 1 - ct_index, warnings


def load_models(model_folder=None, device: str = "auto"):
    """(modality classifier, learned registration), the shipped ones or those of
    ``model_folder``, on ``device``."""
    from . import classifier, prediction
    where = torch_device(device)
    model = classifier.load_model(model_folder).to(where)
    learned = prediction.load_learned(model_folder)
    learned.network.to(where)
    return model, learned


@functools.lru_cache(maxsize=2)
def shared_models(model_folder: str | None = None, device: str = "auto"):
    """``load_models``, once per process: a batch worker registers all its pairs with them."""
    return load_models(model_folder, device)


def decide_modalities(images, classifier_model, centers, masks) -> list[dict]:
    """CT or MR for each image (head centred at ``centers``, ``masks`` its head masks),
    with its probability and any warning."""
    from . import classifier
    decisions = []
    for image, center, mask in zip(images, centers, masks):
        decision = classifier.decide(image, classifier_model, center, mask)
        decisions.append({"modality": decision.modality, "probability": decision.probability,
                          "ct_probability": decision.probability if decision.modality == "CT"
                          else 1 - decision.probability,
                          "learned_ct_probability": decision.learned_ct_probability, "reason": decision.rule.reason,
                          "warnings": decision.warnings})
    return decisions


def same_image(a: sitk.Image, b: sitk.Image) -> bool:
    """Whether two images have the same grid and the same voxels."""
    geometry_of = (sitk.Image.GetSpacing, sitk.Image.GetOrigin, sitk.Image.GetDirection)
    if a.GetSize() != b.GetSize() or a.GetPixelID() != b.GetPixelID() or not all(
            np.allclose(get(a), get(b)) for get in geometry_of):
        return False
    return bool(np.array_equal(sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b)))


def check_head(image: sitk.Image, head: sitk.Image, name: str) -> None:
    """Refuse what is not a head: an object far smaller or larger than one (``HEAD_ML``),
    noise, or a uniform object (``modality.head_problem``)."""
    millilitres = float(sitk.GetArrayViewFromImage(head).sum()) * np.prod(head.GetSpacing()) / 1000.0
    if not HEAD_ML[0] <= millilitres <= HEAD_ML[1]:
        raise HeadRegError(f"{name} does not look like a head: its largest object is {millilitres:.0f} ml "
                           f"(a head, or a slab of one, is {HEAD_ML[0]}-{HEAD_ML[1]} ml)")
    problem = modality.head_problem(image, head)
    if problem:
        raise HeadRegError(f"{name} does not look like a head scan: {problem}")


def _with_torch(models, model_folder, device):
    """The torch device and the models (``load_models`` when ``models`` is None). PyTorch's
    import (a second or two) happens here, in a thread beside ``_heads``."""
    return torch_device(device), models if models is not None else load_models(model_folder, device)


def _heads(images, names, stage_begins) -> tuple[list, list, list, list[str]]:
    """Both inputs checked (``volume_io.check_volume_content``, not one image twice), a
    CT's padding taken as air, a very large one averaged down, each head mask checked
    (``check_head``) and its symmetry frame: (masks, frames, working images, warnings)."""
    for name, image in zip(names, images):
        volume_io.check_volume_content(image, name)
    if same_image(*images):
        raise HeadRegError(f"{names[0]} and {names[1]} are the same image: give one CT and one MR of the head")
    working, warnings = [], []
    for name, image in zip(names, images):
        copy, padded = preprocessing.without_padding(image)
        if padded:
            warnings.append(f"{name}: {padded}")
        copy, factors = preprocessing.working_copy(copy)
        if factors != [1, 1, 1]:
            warnings.append(f"{name} has {np.prod(image.GetSize()):.3g} voxels: registered on a copy averaged "
                            f"down by {'x'.join(map(str, factors))}")
        working.append(copy)
    stage_begins("head masks and symmetry frames")
    masks = [symmetry.head_mask(image, MASK_SPACING_MM) for image in working]
    for name, image, mask in zip(names, working, masks):
        check_head(image, mask, name)
    frames = [symmetry.symmetry_frame(image, mask) for image, mask in zip(working, masks)]
    return masks, frames, working, warnings


def register_volumes(image_a: sitk.Image, image_b: sitk.Image, refine: bool = True, device: str = "auto",
                     model_folder=None, progress: Callable[[str, float], None] | None = None,
                     models=None, effort: str = "fast",
                     names=("the first volume", "the second volume"),
                     cancelled: Callable[[], bool] | None = None) -> AutoRegistration:
    """Find which image is the MR and register the CT onto it (module docstring). The
    other input order and a second run give the same transform.

    ``models`` (from ``load_models``) saves loading them again for each pair of a batch;
    ``effort`` is the search's (``search.EFFORT``); ``names`` name the inputs in messages
    (e.g. their paths). ``cancelled`` is asked at every stage and optimiser iteration; when
    it says True the work stops with ``errors.Cancelled`` within a fraction of a second.
    ``progress(stage, fraction)`` gets each stage's name as it begins and again as its
    optimiser iterates, with the fraction of the whole registration done (``overall_fraction``).
    """
    def check():
        if cancelled is not None and cancelled():
            raise Cancelled()

    def stage_begins(stage, done=0.0):
        check()
        if progress is not None:
            progress(stage, overall_fraction(stage, done))
    seconds = {}
    clock = time.perf_counter()

    def lap(stage):
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = seconds.get(stage, 0.0) + now - clock
        clock = now

    with ThreadPoolExecutor(1) as loader:   # PyTorch is imported and the models loaded while ITK works
        loading = loader.submit(_with_torch, models, model_folder, device)
        masks, frames, (image_a, image_b), warnings = _heads((image_a, image_b), names, stage_begins)
        lap("frames")
        stage_begins("loading the models")
        where, (classifier_model, learned) = loading.result()
    lap("models")   # the wait for them, beyond the frames
    from . import search   # it runs on PyTorch, which the loader has imported by now

    stage_begins("modality")
    decisions = decide_modalities((image_a, image_b), classifier_model, [f.center for f in frames], masks)
    fixed_index, role_warnings = assign_roles([d["ct_probability"] for d in decisions],
                                              [f"{name}: {d['reason']}" for name, d in zip(names, decisions)])
    warnings += role_warnings
    for name, decision in zip(names, decisions):
        warnings += [f"{name}: {w}" for w in decision["warnings"]]
    order = (0, 1) if fixed_index == 0 else (1, 0)
    fixed, moving = [(image_a, image_b)[i] for i in order]
    fixed_mask, moving_mask = [masks[i] for i in order]
    fixed_frame, moving_frame = [frames[i] for i in order]
    lap("roles")

    from . import prediction

    def correct(start):
        return prediction.predict_transform(learned, fixed, moving, fixed_frame.center, start=start)

    found = search.search(fixed, moving, fixed_mask, moving_mask, fixed_frame, moving_frame, where, correct,
                          effort, refine, stage_begins, check=check)
    seconds.update(found.seconds)
    clock = time.perf_counter()

    stage_begins("quality check")
    measures = quality.measure(found, fixed_mask, moving_mask)
    warnings += measures.pop("warnings")
    measures["roles_certain"] = not role_warnings
    measures["confident"] = measures["confident"] and not role_warnings
    lap("quality")
    return AutoRegistration(found.chosen.matrix, fixed_index, tuple(decisions), measures, warnings, seconds,
                            [c.record() for c in found.candidates], learned=True)


def describe(result: AutoRegistration, names) -> list[str]:
    """The roles found, with their probabilities, and the quality, as lines for a person
    (``names`` name the inputs in their order; the CLI and the Slicer panel show these)."""
    lines = []
    for role, index in (("Fixed", result.fixed_index), ("Moving", 1 - result.fixed_index)):
        decision = result.modalities[index]
        lines.append(f"{role}: {names[index]}, {decision['modality']} (p = {decision['probability']:.3f})")
    if result.quality:
        lines.append(f"Quality: head Dice {result.quality['head_dice']:.3f}, "
                     f"{'confident' if result.quality['confident'] else 'LOW CONFIDENCE'}")
    return lines


def report(result: AutoRegistration, paths, settings: dict) -> dict:
    """The JSON report of one registration (DESIGN.md, "The command line")."""
    roles = []
    for index in (result.fixed_index, 1 - result.fixed_index):
        decision = result.modalities[index]
        roles.append({"path": str(paths[index]), "input": index + 1, **{k: v for k, v in decision.items()
                                                                         if k != "warnings"}})
    return {"headregistration": __version__, "fixed": roles[0], "moving": roles[1],
            "matrix_fixed_to_moving_lps": np.asarray(result.matrix).tolist(),
            "slicer_to_parent_ras": geometry.slicer_to_parent_ras(result.matrix).tolist(),
            "seconds": {**result.seconds, "total": sum(result.seconds.values())},
            "quality": result.quality, "learned_models": result.learned, "warnings": result.warnings,
            "candidates": result.candidates, "settings": settings}
