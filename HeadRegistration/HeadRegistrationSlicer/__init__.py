"""The Slicer side of the HeadRegistration module, beside ``HeadRegistration.py``.

``HeadRegistration.py`` (Module, parameter node, Widget, Logic, Test after Slicer's
template) stays thin; what it needs from MRML and Qt beyond the template lives here, one
idea per file:

- ``mrml``: volume nodes to SimpleITK images, the result into a linear transform node,
  the overlay in the slice views;
- ``panel``: the Widget's rules as plain functions (button states, progress, outcome text,
  the registration on a worker thread);
- ``reviewPanel``: the blind ground-truth review (the paper's radiologist study);
- ``dependencies``: PyTorch and other packages, installed the Slicer way;
- ``sampleData``: the embedded head phantom in Slicer's Sample Data module.

Slicer puts the module's folder on ``sys.path``, so this package imports as
``HeadRegistrationSlicer``. The engine is ``HeadRegistrationLib`` (no Slicer): beside the
module's folder in a built extension (CMake copies it there), at the repository top in a
source checkout, which is then added to ``sys.path`` once, here.
"""

import importlib
import os
import sys

HELPERS = ("mrml", "panel", "dependencies", "sampleData", "reviewPanel")  # an order that reloads


def _makeLibraryImportable() -> None:
    try:
        import HeadRegistrationLib  # noqa: F401
    except ModuleNotFoundError as error:
        here = os.path.dirname(os.path.abspath(__file__))
        root = os.path.dirname(os.path.dirname(here))
        if error.name != "HeadRegistrationLib" or not os.path.isdir(os.path.join(root, "HeadRegistrationLib")):
            raise
        sys.path.insert(0, root)


def reload() -> None:
    """Reload the helpers (the module's Reload button; the engine stays loaded, so its
    exception classes keep matching)."""
    for name in HELPERS:
        if f"{__name__}.{name}" in sys.modules:
            importlib.reload(sys.modules[f"{__name__}.{name}"])


_makeLibraryImportable()
