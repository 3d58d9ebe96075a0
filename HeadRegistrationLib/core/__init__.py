"""Conventions and plumbing every stage uses: geometry (the 4x4 convention, DESIGN.md),
errors, volume and transform files, Slicer's IJK-to-RAS, outputs written all or none,
batches of pairs, QA pictures, the models folder and the compute device."""
