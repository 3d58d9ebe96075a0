"""Evidence about an image's modality that needs no learning (paper, "Identification
of image modality", is the learned part; this is what the final decision weighs with it):
the DICOM Modality tag, and Hounsfield units (air at -1000, bone far above soft tissue)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

DICOM_MODALITY_TAG = "0008|0060"


@dataclass(frozen=True)
class ModalityEvidence:
    modality: str | None   # "CT", "MR" or None when the evidence says nothing
    confidence: float      # 0.5 (no idea) to 1.0
    reason: str
    from_dicom_tag: bool = False   # the tag, when present, settles the question


def rule_based_modality(image: sitk.Image, max_samples: int = 1_000_000) -> ModalityEvidence:
    """CT or MR from the DICOM tag when present, else from the intensity distribution:
    a CT in Hounsfield units has much air near -1000 and bone above +300; an image with
    no negative values is not in Hounsfield units (an MR, or a CT stored in other units)."""
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
    lowest = values.min()
    if lowest <= -900 and air >= 0.05:
        if bone >= 0.002:
            return ModalityEvidence("CT", 0.95, f"Hounsfield units: {air:.0%} of voxels near -1000 (air), "
                                                f"{bone:.1%} above +300 (bone)")
        return ModalityEvidence("CT", 0.75, f"Hounsfield-like air ({air:.0%} near -1000) but little bone")
    if lowest >= 0:
        return ModalityEvidence("MR", 0.6, "no negative values, so not Hounsfield units: "
                                           "an MR, or a CT stored in other units")
    return ModalityEvidence(None, 0.5, "negative values but no Hounsfield air peak near -1000")
