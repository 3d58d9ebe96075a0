"""HeadRegistration: automatic rigid registration of head CT and MRI.

The engine of the HeadRegistration 3D Slicer extension: pure Python on
SimpleITK and numpy, importable without Slicer. Method after Islam,
Wijewickrema and O'Leary, Scientific Reports 11:1860 (2021).
"""

from .errors import HeadRegError

__version__ = "0.1.0"
__all__ = ["HeadRegError", "__version__"]
