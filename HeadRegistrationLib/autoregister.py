"""Automatic registration of two head volumes given in any order (paper: "Complete
registration process"; DESIGN.md, "Data flow of one registration").

1. Modality: the learned classifier weighed with rule-based evidence (classifier.py)
   decides which volume is the MR (fixed) and which the CT (moving).
2. Symmetry frames of both heads (symmetry.py) give 24 frame alignments; 24 turns of the
   image axes about the two head centres and the images as they lie are added, so that a
   start exists even where PCA is misled (a slab, a cut-off head).
3. The learned prediction (prediction.py) corrects the best-ranked starts: the network
   was trained on misalignments of up to 15 degrees, so it refines a start, it does not
   find one.
4. Every start is ranked by Mattes MI on 6 mm copies; the best few get a short coarse
   gradient descent, the best one or two of those a multi-resolution refinement, and the
   final MI at full resolution picks the result. No single stage is trusted alone.
5. Quality (quality.py): measures that need no ground truth, and a confidence.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import SimpleITK as sitk

from . import __version__, geometry, modality, preprocessing, quality, registration, symmetry, volume_io
from .errors import HeadRegError

HEAD_ML = (200, 15000)    # volume of the head mask: a thin slab of a head to a head and neck
MASK_SPACING_MM = 4.0     # head masks: for the frames, the metric and the quality check
SCREEN_SPACING_MM = 6.0   # grid of the ranking and of the short optimisations
CROP_MARGIN_MM = 15.0     # the refinement works on each image cropped to its head mask's box grown by this
SCREENED = 6              # best-ranked starts that get a short optimisation
NETWORK_STARTS = 3        # best-ranked starts the learned prediction corrects
REFINED = 2               # distinct screened results that get the full refinement...
REFINE_MARGIN = 0.05      # ...when within this relative MI of the best
SCREEN_STAGE = {   # gradient descent on every voxel of the 6 mm copies, at 12 then 6 mm (no sampling: thread-safe)
    "optimizer": "gradient_descent", "spacing_mm": None, "shrink_factors": [2, 1], "smoothing_mm": [6.0, 0.0],
    "iterations": 200, "learning_rate": 8.0, "minimum_step": 0.01, "relaxation": 0.7, "spatial_samples": None,
    "histogram_bins": 32}
REFINE_STAGE = {   # gradient descent on the fixed image itself, from 4x shrunk to full (50 000 samples)
    **registration.PRESETS["accurate"]["stages"][1], "shrink_factors": [4, 2, 1], "smoothing_mm": [2.0, 1.0, 0.0]}


@dataclass
class AutoRegistration:
    matrix: np.ndarray                       # fixed -> moving, LPS mm
    fixed_index: int                         # 0: the first image is the fixed MR, 1: the second
    modalities: tuple                        # per input, in input order: dict(modality, probability, ...)
    quality: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    seconds: dict = field(default_factory=dict)  # per stage
    starts: list = field(default_factory=list)   # the screened starts: kind, MI before and after

    @property
    def confident(self) -> bool:
        return bool(self.quality.get("confident"))


def assign_roles(kind_a: str | None, kind_b: str | None, reasons=("", "")) -> int:
    """Index of the MR (fixed) input; refuses two volumes of the same or unknown modality."""
    kinds = (kind_a, kind_b)
    if kinds == ("MR", "CT"):
        return 0
    if kinds == ("CT", "MR"):
        return 1
    if kinds[0] == kinds[1] and kinds[0] is not None:
        raise HeadRegError(f"both volumes look like {kinds[0]} ({'; '.join(r for r in reasons if r)}): "
                           "give one CT and one MR")
    unknown = 0 if kinds[0] is None else 1
    raise HeadRegError(f"cannot tell whether the {('first', 'second')[unknown]} volume is CT or MR: "
                       f"{reasons[unknown]}")


def _torch_device(device: str):
    import torch
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise HeadRegError("--device cuda was asked for, but PyTorch sees no CUDA GPU")
    return torch.device(device)


def load_models(model_folder=None, device: str = "auto"):
    """(modality classifier, learned registration, torch device), or (None, None, None)
    with the reason when PyTorch is not installed."""
    try:
        from . import classifier, prediction
    except ImportError as missing:
        return None, None, f"PyTorch is not installed ({missing})"
    where = _torch_device(device)
    folder = prediction.MODELS if model_folder is None else model_folder
    model = classifier.load_model(folder).to(where)
    learned = prediction.load_learned(folder)
    learned.network.to(where)
    return model, learned, None


def decide_modalities(images, classifier_model, centers) -> list[dict]:
    """CT or MR for each image (head centred at ``centers``), with its probability and any warning."""
    decisions = []
    for image, center in zip(images, centers):
        if classifier_model is None:
            rule = modality.rule_based_modality(image)
            decisions.append({"modality": rule.modality, "probability": rule.confidence, "learned_ct_probability": None,
                              "reason": rule.reason, "warnings": []})
            continue
        from . import classifier
        decision = classifier.decide(image, classifier_model, center)
        decisions.append({"modality": decision.modality, "probability": decision.probability,
                          "learned_ct_probability": decision.learned_ct_probability, "reason": decision.rule.reason,
                          "warnings": decision.warnings})
    return decisions


def check_head_size(head: sitk.Image, name: str) -> None:
    """Refuse an object far smaller or larger than a head (``HEAD_ML``): the wrong image."""
    millilitres = float(sitk.GetArrayViewFromImage(head).sum()) * np.prod(head.GetSpacing()) / 1000.0
    if not HEAD_ML[0] <= millilitres <= HEAD_ML[1]:
        raise HeadRegError(f"the {name} does not look like a head: its largest object is {millilitres:.0f} ml "
                           f"(a head, or a slab of one, is {HEAD_ML[0]}-{HEAD_ML[1]} ml)")


def axis_turns(fixed_center, moving_center) -> list[np.ndarray]:
    """The 24 turns of the image axes by multiples of 90 degrees about the fixed head
    centre, each carrying that centre onto the moving head centre (fixed -> moving)."""
    offset = np.asarray(moving_center) - np.asarray(fixed_center)
    return [geometry.rigid_matrix(p, offset, fixed_center) for p in symmetry.AXIS_PERMUTATIONS]


class Pool:
    """Runs independent ITK work (one MI, one optimisation) side by side on ``workers``
    Python threads; SimpleITK releases the GIL while ITK runs. Each task runs ITK on one
    thread, and results come back in the order of the items, so the outcome does not depend
    on the number of workers (unlike ITK's own multi-threaded sums). Only for work without
    metric sampling: sampled registrations side by side crashed and gave other results on
    a repeat (most likely ITK's global generator of sample points, shared by the threads)."""

    def __init__(self, workers: int):
        self.workers = max(1, int(workers))

    def map(self, function, items) -> list:
        items = list(items)
        if self.workers == 1 or len(items) < 2:
            return [function(item) for item in items]
        with ThreadPoolExecutor(min(self.workers, len(items))) as executor:
            return list(executor.map(function, items))


@dataclass
class Level:
    """Both images at one resolution, with the fixed head's metric mask on that grid."""
    fixed: sitk.Image
    moving: sitk.Image
    mask: sitk.Image

    @classmethod
    def of(cls, fixed: sitk.Image, moving: sitk.Image, fixed_head: sitk.Image, spacing_mm: float | None):
        if spacing_mm:
            fixed, moving = (registration.coarse_copy(image, spacing_mm) for image in (fixed, moving))
        return cls(fixed, moving, registration.metric_mask(fixed, fixed_head))

    def mi(self, matrix) -> float:
        return registration.mutual_information(self.fixed, self.moving, matrix, prepared_mask=self.mask)

    def optimise(self, matrix, center, stage: dict) -> registration.RegistrationResult:
        return registration.run_stage(self.fixed, self.moving, matrix, center, stage, prepared_mask=self.mask)


def register_volumes(image_a: sitk.Image, image_b: sitk.Image, refine: bool = True, device: str = "auto",
                     model_folder=None, progress: Callable[[str], None] | None = None,
                     models=None) -> AutoRegistration:
    """Find which image is the MR and register the CT onto it (module docstring). ITK
    runs on one thread meanwhile (``registration.one_thread``), so that a second run and
    the other input order give the same transform.

    ``models`` (from ``load_models``) saves loading them again for each pair of a batch.
    """
    workers = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()   # ITK's thread count: the cores
    with registration.one_thread():
        return _register(image_a, image_b, refine, device, model_folder, progress, models, Pool(workers))


def _register(image_a, image_b, refine, device, model_folder, progress, models, pool) -> AutoRegistration:
    if device not in ("auto", "cpu", "cuda"):
        raise HeadRegError(f"device must be auto, cpu or cuda, not {device!r}")
    report = progress or (lambda stage: None)
    seconds, warnings = {}, []
    clock = time.perf_counter()

    def lap(stage):
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = seconds.get(stage, 0.0) + now - clock
        clock = now

    for name, image in (("first volume", image_a), ("second volume", image_b)):
        volume_io.check_volume_content(image, name)
    working = []
    for name, image in (("first volume", image_a), ("second volume", image_b)):
        copy, factors = preprocessing.working_copy(image)
        if factors != [1, 1, 1]:
            warnings.append(f"the {name} has {np.prod(image.GetSize()):.3g} voxels: registered on a copy averaged "
                            f"down by {'x'.join(map(str, factors))}")
        working.append(copy)
    image_a, image_b = working
    with ThreadPoolExecutor(1) as loader:   # PyTorch loads while ITK works on the images (ITK frees the GIL)
        loading = loader.submit(load_models, model_folder, device) if models is None else None
        report("symmetry frames and screening copies")
        masks = pool.map(lambda image: symmetry.head_mask(image, MASK_SPACING_MM), (image_a, image_b))
        for name, mask in zip(("first volume", "second volume"), masks):
            check_head_size(mask, name)
        frames = pool.map(lambda pair: symmetry.symmetry_frame(*pair), zip((image_a, image_b), masks))
        coarse = pool.map(lambda image: registration.coarse_copy(image, SCREEN_SPACING_MM), (image_a, image_b))
        lap("symmetry frames")
        report("loading the models")
        classifier_model, learned, missing_torch = models if loading is None else loading.result()
    if missing_torch:
        warnings.append(f"{missing_torch}: CT/MR roles from rules alone and no learned prediction "
                        "(install the 'learn' extra)")
    lap("models")   # the wait for them, beyond the frames

    report("modality")
    decisions = decide_modalities((image_a, image_b), classifier_model, [f.center for f in frames])
    fixed_index = assign_roles(decisions[0]["modality"], decisions[1]["modality"],
                               (decisions[0]["reason"], decisions[1]["reason"]))
    for name, decision in zip(("first volume", "second volume"), decisions):
        warnings += [f"{name}: {w}" for w in decision["warnings"]]
    order = (0, 1) if fixed_index == 0 else (1, 0)
    (fixed, moving), (fixed_mask, moving_mask) = [(image_a, image_b)[i] for i in order], [masks[i] for i in order]
    fixed_frame, moving_frame = frames[order[0]], frames[order[1]]
    lap("modality")

    report("ranking the starts")
    center = fixed_frame.center
    starts = [("symmetry", m) for m in symmetry.candidate_alignments(fixed_frame, moving_frame)]
    starts += [("axis turn", m) for m in axis_turns(center, moving_frame.center)]
    starts.append(("as they lie", np.eye(4)))
    screen = Level(coarse[order[0]], coarse[order[1]], registration.metric_mask(coarse[order[0]], fixed_mask))
    ranked = sorted(zip(pool.map(screen.mi, [m for _, m in starts]), range(len(starts))))
    lap("ranking")

    if learned is not None:
        report("learned prediction")
        from . import prediction
        corrected = [("learned", prediction.predict_transform(learned, fixed, moving, center, start=starts[k][1]))
                     for _, k in ranked[:NETWORK_STARTS]]
        ranked = sorted(ranked + list(zip(pool.map(screen.mi, [m for _, m in corrected]),
                                          range(len(starts), len(starts) + len(corrected)))))
        starts += corrected
        lap("learned prediction")

    report("screening the starts")
    def screen_start(start):
        try:
            return screen.optimise(start, center, SCREEN_STAGE)
        except HeadRegError:   # this start leaves no overlap: not a candidate
            return None

    chosen = ranked[:SCREENED]
    screened = [{"kind": starts[k][0], "start_mi": start_mi, "screened_mi": result.metric, "matrix": result.matrix}
                for (start_mi, k), result in zip(chosen, pool.map(screen_start, [starts[k][1] for _, k in chosen]))
                if result is not None]
    if not screened:
        raise HeadRegError("no start overlaps the two heads: are both volumes of the same head?")
    screened.sort(key=lambda s: s["screened_mi"])
    lap("screening")

    best = screened[0]
    matrix = best["matrix"]
    if refine:
        report("refinement")
        # The moving image no finer than the fixed grid (no_finer_than), and both cropped to
        # their heads: as accurate, and faster.
        full = Level.of(preprocessing.crop_to_head(fixed, fixed_mask, CROP_MARGIN_MM),
                        preprocessing.crop_to_head(preprocessing.no_finer_than(moving, fixed)[0], moving_mask,
                                                   CROP_MARGIN_MM), fixed_mask, None)
        margin = REFINE_MARGIN * abs(best["screened_mi"])
        candidates = [c for c in _distinct(screened, fixed_mask)[:REFINED]
                      if c["screened_mi"] - best["screened_mi"] <= margin]

        def refine_candidate(candidate):
            refined = full.optimise(candidate["matrix"], center, REFINE_STAGE).matrix
            return refined, full.mi(refined)

        # One after the other: sampled registrations side by side crashed or differed from
        # run to run (see Pool). Only unsampled work goes to the pool.
        for candidate, (refined, final_mi) in zip(candidates, map(refine_candidate, candidates)):
            candidate["refined"], candidate["final_mi"] = refined, final_mi
        best = min(candidates, key=lambda c: c["final_mi"])
        matrix = best["refined"]
        lap("refinement")

    report("quality check")
    measures = quality.measure(matrix, fixed_mask, moving_mask, screened, best)
    warnings += measures.pop("warnings")
    lap("quality")
    records = [{k: v for k, v in c.items() if k not in ("matrix", "refined")} for c in screened]
    return AutoRegistration(matrix, fixed_index, tuple(decisions), measures, warnings, seconds, records)


def _distinct(screened: list[dict], fixed_mask) -> list[dict]:
    """The screened results, best first, leaving out any within ``quality.SAME_SOLUTION_MM``
    of a better one."""
    kept = []
    for candidate in screened:
        if all(geometry.mean_displacement_in_mask(candidate["matrix"], other["matrix"], fixed_mask, 5000)
               > quality.SAME_SOLUTION_MM for other in kept):
            kept.append(candidate)
    return kept


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
            "quality": result.quality, "warnings": result.warnings, "starts": result.starts, "settings": settings}
