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
``HeadRegistrationSlicer``. The engine is ``HeadRegistrationLib`` (no Slicer).
"""
