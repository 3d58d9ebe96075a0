"""HeadRegistration: automatic rigid registration of head CT and MRI.

The engine of the HeadRegistration 3D Slicer extension: pure Python on
SimpleITK and numpy, importable without Slicer. Method after Islam,
Wijewickrema and O'Leary, Scientific Reports 11:1860 (2021).
"""

from pathlib import Path

from .errors import HeadRegError


def models_folder() -> Path:
    """The shipped models (weights and model cards): installed inside the package, so that
    a wheel, an editable install, a checkout and the Slicer extension all find them."""
    return Path(__file__).resolve().parent / "models"


__version__ = "0.1.0"
__all__ = ["HeadRegError", "__version__"]
