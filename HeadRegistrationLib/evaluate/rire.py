"""RIRE gold standards (Retrospective Image Registration Evaluation, West et al.,
J Comput Assist Tomogr 1997): ``.standard`` files and target registration error.

A ``.standard`` file lists the 8 corners of the "From" volume (CT) in its physical
space (origin at the first voxel centre, axes along the image axes) and where the
fiducial-based gold standard maps them in the "To" volume (MR). In this project's
convention the To image is fixed and the From image moving, so the gold transform
is the least-squares rigid fit of To points onto From points.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..core import geometry
from ..core.errors import HeadRegError


@dataclass(frozen=True)
class RireStandard:
    from_name: str          # the moving image, e.g. "CT"
    to_name: str            # the fixed image, e.g. "mr_T1"
    from_points: np.ndarray  # (8, 3) corners of the From volume, mm
    to_points: np.ndarray    # (8, 3) where the gold standard puts them in the To volume, mm

    @property
    def matrix(self) -> np.ndarray:
        """Fixed (To) to moving (From) 4x4 matrix: least-squares rigid fit of the corners."""
        return fit_rigid(self.to_points, self.from_points)

    @property
    def fit_residual_mm(self) -> float:
        """Largest distance between a corner and its rigid fit: how rigid the standard is."""
        fitted = geometry.transform_points(self.matrix, self.to_points)
        return float(np.linalg.norm(fitted - self.from_points, axis=1).max())

    def target_registration_errors(self, candidate, from_points=None) -> np.ndarray:
        """RIRE's error, per point, in mm in the To (fixed) space: where the candidate
        fixed-to-moving matrix sends each From point back, against where the gold standard
        sends it. Without ``from_points`` the 8 corners and their listed targets are used."""
        inverse = geometry.invert(candidate)
        if from_points is None:
            return np.linalg.norm(geometry.transform_points(inverse, self.from_points) - self.to_points, axis=1)
        points = np.asarray(from_points, dtype=float).reshape(-1, 3)
        gold = geometry.transform_points(geometry.invert(self.matrix), points)
        return np.linalg.norm(geometry.transform_points(inverse, points) - gold, axis=1)


def fit_rigid(source_points, target_points) -> np.ndarray:
    """Least-squares rigid 4x4 matrix mapping ``source_points`` onto ``target_points``
    (both (N, 3), N >= 3 not collinear), by SimpleITK's landmark initializer."""
    source = np.asarray(source_points, dtype=float)
    target = np.asarray(target_points, dtype=float)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 3 or len(source) < 3:
        raise HeadRegError("a rigid fit needs two matching (N, 3) point sets with N >= 3")
    transform = sitk.LandmarkBasedTransformInitializer(
        sitk.VersorRigid3DTransform(), source.ravel().tolist(), target.ravel().tolist())
    return geometry.matrix_from_sitk(transform)


_ROW = re.compile(r"^\s*(\d+)" + r"\s+(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)" * 6 + r"\s*$")


def read_standard(path) -> RireStandard:
    """Parse a RIRE ``.standard`` file."""
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        raise HeadRegError(f"{path}: cannot read ({error.strerror})") from None
    names = dict(re.findall(r"^\s*(From|To):\s*(\S+)", text, flags=re.MULTILINE))
    rows = sorted((int(m.group(1)), [float(v) for v in m.groups()[1:]])
                  for m in map(_ROW.match, text.splitlines()) if m)
    if "From" not in names or "To" not in names or [n for n, _ in rows] != list(range(1, 9)):
        raise HeadRegError(f"{path}: not a RIRE .standard file (expected From:, To: and points 1 to 8)")
    values = np.array([v for _, v in rows])
    return RireStandard(names["From"], names["To"], values[:, :3], values[:, 3:])
