"""The head's tissues and what CT and MR show of them: the one table behind the digital
phantom (:mod:`.phantom`) and the cross-modal synthesis (:mod:`.synthesis`, paper:
"Data augmentation").

Synthesis works with eight tissue classes. A synthesised CT draws each class's value
from its Hounsfield range; a synthesised MR gives each class its signal for the chosen
weighting (relative to the brightest tissue), jittered. The phantom paints fifteen finer
tissues, each one of the classes and shown as its class's middle value (the middle of the
CT range, the T1 signal), except where a tissue is unlike the rest of its class (lens and
cartilage denser than soft tissue, enamel denser than bone).
"""

from __future__ import annotations

CLASSES = ("air", "soft_tissue", "fat", "cortical_bone", "marrow", "csf", "grey_matter", "white_matter")
AIR, SOFT, FAT, BONE, MARROW, CSF, GREY, WHITE = range(len(CLASSES))

# Hounsfield units of each class: (low, high) of the value drawn per synthesised CT.
CT_HU = {AIR: (-1000, -1000), SOFT: (35, 55), FAT: (-120, -80), BONE: (1100, 1800), MARROW: (350, 700),
         CSF: (0, 15), GREY: (34, 44), WHITE: (22, 32)}
# MR signal of each class relative to the brightest tissue, per weighting.
MR_SIGNAL = {
    "t1": {AIR: 0.0, SOFT: 0.45, FAT: 1.05, BONE: 0.04, MARROW: 0.75, CSF: 0.15, GREY: 0.6, WHITE: 0.95},
    "t2": {AIR: 0.0, SOFT: 0.35, FAT: 0.7, BONE: 0.04, MARROW: 0.5, CSF: 1.0, GREY: 0.62, WHITE: 0.45},
    "pd": {AIR: 0.0, SOFT: 0.6, FAT: 0.85, BONE: 0.05, MARROW: 0.7, CSF: 0.9, GREY: 0.85, WHITE: 0.72},
    "flair": {AIR: 0.0, SOFT: 0.45, FAT: 0.75, BONE: 0.04, MARROW: 0.55, CSF: 0.08, GREY: 0.8, WHITE: 0.62},
}
RENDERED = tuple(MR_SIGNAL)   # the weightings an MR can be rendered in
BONE_HU = 250.0               # above this a CT voxel is bone

# The phantom's tissues: (label value, class, values where the tissue is unlike its class).
PHANTOM_TISSUES = {
    "air": (0, AIR, {}),
    "skin": (1, SOFT, {}),
    "fat": (2, FAT, {}),
    "muscle": (3, SOFT, {}),
    "cortical_bone": (4, BONE, {}),
    "diploe": (5, MARROW, {}),
    "csf": (6, CSF, {}),
    "grey_matter": (7, GREY, {}),
    "white_matter": (8, WHITE, {}),
    "eye": (9, CSF, {}),
    "lens": (10, SOFT, {"ct": 90.0}),
    "orbital_fat": (11, FAT, {}),
    "cartilage": (12, SOFT, {"ct": 110.0, "t1": 0.33}),
    "teeth": (13, BONE, {"ct": 2500.0, "t1": 0.02}),
    "sinus_air": (14, AIR, {}),
}


def phantom_value(tissue: str, shown_as: str) -> float:
    """What the phantom shows of ``tissue``: its CT value in HU (``shown_as`` "ct") or
    its T1 signal relative to the brightest tissue ("t1")."""
    _, tissue_class, own = PHANTOM_TISSUES[tissue]
    if shown_as in own:
        return own[shown_as]
    if shown_as == "ct":
        return sum(CT_HU[tissue_class]) / 2
    return MR_SIGNAL[shown_as][tissue_class]
