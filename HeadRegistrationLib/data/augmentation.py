"""Rigid augmentation and subject splits (paper: "Data augmentation").

Each copy of an original pair gets a random rigid misalignment: a rotation by a random
angle about a random axis and a random translation per axis, about a given centre. The
paper's ranges (up to 15 degrees, +-5 mm per axis, 99 copies) are the defaults; wider
ranges, up to any orientation (180 degrees), are a parameter. Copies never cross splits:
subjects are split, and every copy goes where its subject went.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..core import geometry
from ..core.errors import HeadRegError

PAPER_MAX_ANGLE_DEG = 15.0
PAPER_MAX_SHIFT_MM = 5.0
PAPER_COPIES = 99
SPLITS = ("train", "validation", "test")


def random_pose(rng: np.random.Generator, center, max_angle_deg: float = PAPER_MAX_ANGLE_DEG,
                max_shift_mm: float = PAPER_MAX_SHIFT_MM) -> np.ndarray:
    """Fixed -> moving 4x4: a turn by an angle uniform in [0, ``max_angle_deg``] about an
    axis uniform on the sphere through ``center``, then a shift uniform in
    +-``max_shift_mm`` along each axis."""
    if not 0 <= max_angle_deg <= 180:
        raise HeadRegError(f"the largest angle must lie in 0..180 degrees, got {max_angle_deg}")
    if not 0 <= max_shift_mm < 1000:
        raise HeadRegError(f"the largest shift must lie in 0..1000 mm, got {max_shift_mm}")
    axis = rng.normal(size=3)
    rotation = geometry.rotation_about_axis(axis, rng.uniform(0.0, max_angle_deg))
    return geometry.rigid_matrix(rotation, rng.uniform(-max_shift_mm, max_shift_mm, 3), center)


def copy_seed(base_seed: int, subject: str, copy: int) -> list[int]:
    """The random seed of one copy: fixed by the run's seed, the subject's name and the
    copy's number, so that copy k of a subject is the same in every set that holds it."""
    digest = int.from_bytes(hashlib.sha256(subject.encode()).digest()[:4], "little")
    return [int(base_seed), digest, int(copy)]


def split_subjects(subjects, fractions=(0.6, 0.2, 0.2), seed: int = 0,
                   fixed: dict[str, str] | None = None) -> dict[str, str]:
    """Subject -> split ("train", "validation", "test"). ``fixed`` assigns some subjects
    by hand; the rest are shuffled with ``seed`` and cut by ``fractions``, each split
    getting at least one subject while there are enough."""
    subjects = sorted(set(subjects))
    fixed = dict(fixed or {})
    for subject, split in fixed.items():
        if split not in SPLITS:
            raise HeadRegError(f"unknown split {split!r} for {subject}: choose one of {', '.join(SPLITS)}")
    free = [s for s in subjects if s not in fixed]
    order = np.random.default_rng(seed).permutation(len(free))
    free = [free[k] for k in order]
    # Aim at the fractions of all subjects, counting those assigned by hand; training gets
    # a subject first, then each held-out split one, while there are subjects to give.
    by_hand = np.array([list(fixed.values()).count(split) for split in SPLITS])
    target = np.round(np.asarray(fractions, dtype=float) / sum(fractions) * len(subjects)).astype(int)
    held = np.maximum(target[1:] - by_hand[1:], 0)
    held = np.where((held + by_hand[1:] == 0), 1, held)
    spare = len(free) - (1 if by_hand[0] == 0 and free else 0)
    while held.sum() > spare:
        held[1 if held[1] > 0 else 0] -= 1   # trim test first, then validation
    counts = [len(free) - held.sum(), *held]
    assignment = dict(fixed)
    start = 0
    for split, count in zip(SPLITS, counts):
        for subject in free[start:start + count]:
            assignment[subject] = split
        start += count
    return {s: assignment[s] for s in subjects}
