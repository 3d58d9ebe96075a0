"""Data for training and testing (the paper's "Synthetic data augmentation"): the digital
head phantom, cross-modal synthesis from real anatomy, rigid augmentation, training sets."""
