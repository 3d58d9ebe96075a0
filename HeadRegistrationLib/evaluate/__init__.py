"""Measuring results: the paper's metrics (eq. 1-6), TRE, success per rotation bin, RIRE
gold standards, evaluation cases with known truth, the blind A/B review."""
