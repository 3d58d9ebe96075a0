"""Evidence about an image's modality that needs no learning (paper, "Identification
of image modality", is the learned part; this is what the final decision weighs with it).

In the order they are tried:

1. The DICOM Modality tag, when present, settles the question.
2. Hounsfield units: much air near -1000 and bone above +300.
3. The Hounsfield *scale* in any offset (HU + 1024 as many CTs are stored, an unsigned
   export): inside the head, soft tissue forms one narrow peak about 1000 units above the
   air outside it (water is 1000 HU above air by definition), whatever the zero.
4. The spread of the tissue values, in any units: in a CT nearly all soft tissue (brain,
   muscle, scalp) lies within a few per cent of the air-to-tissue step of one peak; in an
   MR (T1, T2, PD, FLAIR, with or without contrast) grey and white matter, CSF and fat
   differ by tens of per cent, and a bias field spreads them further.
5. No negative values: not Hounsfield units (an MR, or a CT stored in other units), weak.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from . import symmetry
from ..core.errors import HeadRegError

DICOM_MODALITY_TAG = "0008|0060"
WATER_ABOVE_AIR = (950.0, 1100.0)   # soft-tissue peak minus air, in any Hounsfield offset (water: 1000)
PEAK_WINDOW = 0.03                  # "within a few per cent": of the air-to-tissue step
CT_PEAK = 0.35                      # fraction of the head within the window: a CT above, an MR below
MR_SPREAD = 0.22                    # ...and an MR's spread tissue below this
UNIFORM_PEAK = 0.9                  # a head is never this uniform without bone: CT bone, MR tissue contrast
MIN_BONE = 0.005                    # fraction of the head well above its tissue peak (CT skull: 1-20 %)
MAX_FILL, MIN_CONTRAST = 0.75, 0.8  # noise: the "head" fills the view (heads 0.1-0.6) with a contrast of inner
                                    # median minus outer over the inner interquartile range below this (heads 1.6-84)


@dataclass(frozen=True)
class ModalityEvidence:
    modality: str | None   # "CT", "MR" or None when the evidence says nothing
    confidence: float      # 0.5 (no idea) to 1.0
    reason: str
    from_dicom_tag: bool = False   # the tag, when present, settles the question

    @property
    def ct_probability(self) -> float:
        return self.confidence if self.modality == "CT" else 1 - self.confidence if self.modality else 0.5


@dataclass(frozen=True)
class TissuePeak:
    """The intensity structure of a head (module docstring, items 3 and 4)."""
    air: float        # median value outside the head
    tissue: float     # the main peak of the values well inside the head
    in_peak: float    # fraction of the inner head within PEAK_WINDOW of the air-to-tissue step

    @property
    def step(self) -> float:
        return self.tissue - self.air


def tissue_peak(image: sitk.Image, head_mask: sitk.Image) -> TissuePeak | None:
    """The head's tissue peak, from ``image`` sampled at the voxels of ``head_mask``'s grid
    (the mask eroded by 8 mm: away from the skin's partial volume); None when the head
    is too small to tell or its main peak is not well above the air (e.g. a hollow
    plastic skull)."""
    values = sitk.GetArrayFromImage(sitk.Resample(sitk.Cast(image, sitk.sitkFloat32), head_mask, sitk.Transform(),
                                                  sitk.sitkLinear, np.nan, sitk.sitkFloat32))
    head = sitk.GetArrayFromImage(head_mask) > 0
    radius = max(1, round(8.0 / head_mask.GetSpacing()[0]))
    inner = sitk.GetArrayFromImage(sitk.BinaryErode(head_mask, [radius] * 3)) > 0
    outside, inner_values = values[~head & np.isfinite(values)], values[inner & np.isfinite(values)]
    if inner_values.size < 200 or outside.size < 200:
        return None
    air = float(np.median(outside))
    low, high = np.percentile(inner_values, [0.5, 99.5])
    if not high > low:
        return None
    counts, edges = np.histogram(inner_values, 200, (low, high))
    peak = int(np.argmax(counts))
    tissue = float((edges[peak] + edges[peak + 1]) / 2)
    if not tissue - air > 0.2 * (high - air):
        return None
    return TissuePeak(air, tissue, float(np.mean(np.abs(inner_values - tissue) < PEAK_WINDOW * (tissue - air))))


def head_problem(image: sitk.Image, head_mask: sitk.Image) -> str | None:
    """Why ``image`` cannot be a head scan (CT or MR, any units), or None: an "object"
    that fills the field of view and barely stands out of what is left (noise), or one
    uniform object with neither the bone of a CT nor the tissue contrast of an MR (a
    phantom sphere)."""
    values = sitk.GetArrayFromImage(sitk.Resample(sitk.Cast(image, sitk.sitkFloat32), head_mask, sitk.Transform(),
                                                  sitk.sitkLinear, np.nan, sitk.sitkFloat32))
    finite = np.isfinite(values)
    head = (sitk.GetArrayViewFromImage(head_mask) > 0) & finite
    inner = values[(sitk.GetArrayViewFromImage(sitk.BinaryErode(head_mask, [2] * 3)) > 0) & finite]
    outside = values[~head & finite]
    fill = float(head.sum() / max(1, finite.sum()))
    if inner.size and outside.size and fill >= MAX_FILL:
        low, high = np.percentile(inner, [25, 75])
        contrast = (np.median(inner) - np.median(outside)) / max(float(high - low), 1e-9)
        if contrast < MIN_CONTRAST:
            return (f"its object fills {fill:.0%} of the field of view and barely stands out of the rest "
                    f"(contrast {contrast:.2f}): noise, not a head")
    peak = tissue_peak(image, head_mask)
    if peak is None:
        return None
    bone = float(np.mean(values[head] > peak.tissue + 0.4 * peak.step))
    if peak.in_peak >= UNIFORM_PEAK and bone < MIN_BONE:
        return (f"it is one uniform object ({peak.in_peak:.0%} of it within {PEAK_WINDOW:.0%} of one value) "
                "with neither the bone of a CT nor the tissue contrast of an MR")
    return None


def rule_based_modality(image: sitk.Image, head_mask: sitk.Image | None = None,
                        max_samples: int = 1_000_000) -> ModalityEvidence:
    """CT or MR from the evidence of the module docstring; ``head_mask`` (symmetry.head_mask)
    enables items 3 and 4 (computed here when not given)."""
    if image.HasMetaDataKey(DICOM_MODALITY_TAG):
        tag = image.GetMetaData(DICOM_MODALITY_TAG).strip().upper()
        if tag in ("CT", "MR"):
            return ModalityEvidence(tag, 0.99, f"DICOM Modality tag is {tag}", from_dicom_tag=True)
    values = sitk.GetArrayViewFromImage(image).ravel()
    if values.size > max_samples:
        values = values[:: values.size // max_samples]
    values = values[np.isfinite(values)].astype(np.float64)
    if values.size == 0:
        return ModalityEvidence(None, 0.5, "no finite voxel values")
    air = np.mean((values >= -1100) & (values <= -900))
    bone = np.mean(values >= 300)
    if values.min() <= -900 and air >= 0.05 and bone >= 0.002:
        return ModalityEvidence("CT", 0.99, f"Hounsfield units: {air:.0%} of voxels near -1000 (air), "
                                            f"{bone:.1%} above +300 (bone)")
    if head_mask is None:
        try:
            head_mask = symmetry.head_mask(image, 4.0)
        except HeadRegError:   # no head to look into: items 3 and 4 say nothing
            head_mask = None
    peak = None if head_mask is None else tissue_peak(image, head_mask)
    if peak is not None:
        spread = f"{peak.in_peak:.0%} of the head within {PEAK_WINDOW:.0%} of the air-to-tissue step"
        if WATER_ABOVE_AIR[0] <= peak.step <= WATER_ABOVE_AIR[1] and peak.in_peak >= CT_PEAK:
            return ModalityEvidence("CT", 0.97, f"the Hounsfield scale with an offset: soft tissue {peak.step:.0f} "
                                                f"above air, {spread}")
        if peak.in_peak >= 0.6:
            return ModalityEvidence("CT", 0.8, f"one narrow soft-tissue peak, as in a CT: {spread}")
        if peak.in_peak <= MR_SPREAD:
            return ModalityEvidence("MR", 0.85, f"tissue values spread as in an MR: only {spread}")
    if air >= 0.05 and values.min() <= -900:
        return ModalityEvidence("CT", 0.75, f"Hounsfield-like air ({air:.0%} near -1000) but little bone")
    if values.min() >= 0:
        return ModalityEvidence("MR", 0.6, "no negative values, so not Hounsfield units: "
                                           "an MR, or a CT stored in other units")
    return ModalityEvidence(None, 0.5, "negative values but no Hounsfield air peak near -1000")
