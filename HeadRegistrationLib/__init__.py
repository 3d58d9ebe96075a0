"""HeadRegistration: automatic rigid registration of head CT and MRI.

The engine of the HeadRegistration 3D Slicer extension: pure Python on SimpleITK, numpy
and PyTorch, importable without Slicer. Method after Islam, Wijewickrema and O'Leary,
Scientific Reports 11:1860 (2021). Packages by the paper's stages, each importing only
those above it in this list (README, "Layout"):

- ``core``: conventions and geometry, volume and transform files, outputs, batches, pictures;
- ``register``: two volumes in any order -> roles, frames, the search, the learned models
  at inference, refinement, quality (everything ``headreg register`` needs);
- ``groundtruth``: reference transforms (the paper's ground truth);
- ``data``: the digital phantom, cross-modal synthesis, augmentation, training sets;
- ``evaluate``: the paper's metrics, RIRE, the blind review, evaluation cases;
- ``learn``: training the networks and the ANN, shipping the models;
- ``cli``: the ``headreg`` command, one module per subcommand.
"""

from .core.errors import HeadRegError

__version__ = "0.1.0"
__all__ = ["HeadRegError", "__version__"]
