"""Ground truth for a pair (the paper's "Generation of ground truth"): symmetry frames and
the registration search at its exhaustive setting, one pair or a batch."""
