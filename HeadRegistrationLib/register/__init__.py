"""Registration of a CT and an MR given in any order (the paper's "Complete registration"):
head masks and symmetry frames, CT/MR roles (rules and the classifier), starts, the learned
prediction (DCNN + ANN at inference), the batched MI search and refinement, quality. What
``headreg register`` and Slicer's Auto-register need, and nothing of training or data."""
