"""Automatic registration of two head volumes given in any order (DESIGN.md, "Data flow").

Today's pipeline, before the learned stages exist: rule-based modality evidence decides
which volume is the MR (fixed) and which the CT (moving); symmetry frames and MI
registration (groundtruth.py, preset ``accurate``; without ``refine``, only the coarse
screening of the frame alignments) give the transform. The learned prediction and the
learned modality classifier (paper: "Registration of multi-modal images",
"Identification of image modality") will slot in here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import SimpleITK as sitk

from . import groundtruth, modality, registration, symmetry, volume_io
from .errors import HeadRegError


@dataclass
class AutoRegistration:
    matrix: np.ndarray                       # fixed -> moving, LPS mm
    fixed_index: int                         # 0: the first image is the fixed MR, 1: the second
    modalities: tuple                        # ModalityEvidence of each input, in input order
    quality: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    seconds: dict = field(default_factory=dict)  # per stage


def assign_roles(evidence_a: modality.ModalityEvidence, evidence_b: modality.ModalityEvidence) -> int:
    """Index of the MR (fixed) input; refuses two volumes of the same or unknown modality."""
    kinds = (evidence_a.modality, evidence_b.modality)
    if kinds == ("MR", "CT"):
        return 0
    if kinds == ("CT", "MR"):
        return 1
    if kinds[0] == kinds[1] and kinds[0] is not None:
        raise HeadRegError(f"both volumes look like {kinds[0]} ({evidence_a.reason}; {evidence_b.reason}): "
                           "give one CT and one MR")
    unknown = evidence_a if evidence_a.modality is None else evidence_b
    raise HeadRegError(f"cannot tell whether a volume is CT or MR: {unknown.reason}")


def register_volumes(image_a: sitk.Image, image_b: sitk.Image, refine: bool = True, device: str = "auto",
                     progress: Callable[[str], None] | None = None) -> AutoRegistration:
    """Find which image is the MR and register the CT onto it. ``device`` is accepted for
    the learned stage to come; nothing runs on a GPU yet."""
    if device not in ("auto", "cpu", "cuda"):
        raise HeadRegError(f"device must be auto, cpu or cuda, not {device!r}")
    report = progress or (lambda stage: None)
    seconds, warnings = {}, []
    began = time.perf_counter()
    for name, image in (("first volume", image_a), ("second volume", image_b)):
        volume_io.check_volume_content(image, name)
    report("modality")
    evidence = (modality.rule_based_modality(image_a), modality.rule_based_modality(image_b))
    fixed_index = assign_roles(*evidence)
    fixed, moving = (image_a, image_b) if fixed_index == 0 else (image_b, image_a)
    seconds["modality"] = time.perf_counter() - began

    report("symmetry frames and registration")
    began = time.perf_counter()
    if refine:
        truth = groundtruth.ground_truth(fixed, moving, "accurate", use_symmetry=True)
        matrix, mi, warnings = truth.matrix, truth.metric, list(truth.warnings)
    else:
        fixed_mask = symmetry.head_mask(fixed)
        fixed_frame = symmetry.symmetry_frame(fixed, fixed_mask)
        candidates = symmetry.candidate_alignments(fixed_frame, symmetry.symmetry_frame(moving))
        _, _, matrix = groundtruth.screen_starts(fixed, moving, candidates, fixed_frame.center, fixed_mask)[0]
        mi = registration.mutual_information(fixed, moving, matrix, fixed_mask)
    seconds["registration"] = time.perf_counter() - began
    return AutoRegistration(matrix, fixed_index, evidence, {"mattes_mi": mi}, warnings, seconds)
