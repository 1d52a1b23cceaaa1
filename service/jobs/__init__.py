"""Tuning jobs: the spec, submission, listing, cancellation, and the worker claim."""
