"""Trials (one training run each) and their per-epoch curves."""
