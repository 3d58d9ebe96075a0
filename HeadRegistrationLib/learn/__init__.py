"""Training the learned models (the paper's DCNN + ANN and the CT/MR classifier) and
shipping them as model files with their cards (``headreg train``)."""
