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
source checkout, from where it is imported by its path (``sys.path`` is left alone).
"""

import importlib
import importlib.util
import os
import sys

HELPERS = ("mrml", "panel", "dependencies", "sampleData", "reviewPanel")  # an order that reloads


def _importLibraryFromCheckout() -> None:
    """Import ``HeadRegistrationLib`` from the repository top when it is not importable
    otherwise (a source checkout added to Slicer's module paths)."""
    try:
        import HeadRegistrationLib  # noqa: F401
    except ModuleNotFoundError as error:
        here = os.path.dirname(os.path.abspath(__file__))
        package = os.path.join(os.path.dirname(os.path.dirname(here)), "HeadRegistrationLib")
        if error.name != "HeadRegistrationLib" or not os.path.isfile(os.path.join(package, "__init__.py")):
            raise
        spec = importlib.util.spec_from_file_location("HeadRegistrationLib", os.path.join(package, "__init__.py"),
                                                      submodule_search_locations=[package])
        module = importlib.util.module_from_spec(spec)
        sys.modules["HeadRegistrationLib"] = module
        spec.loader.exec_module(module)


def reload() -> None:
    """Reload the helpers (the module's Reload button; the engine stays loaded, so its
    exception classes keep matching)."""
    for name in HELPERS:
        if f"{__name__}.{name}" in sys.modules:
            importlib.reload(sys.modules[f"{__name__}.{name}"])


_importLibraryFromCheckout()
