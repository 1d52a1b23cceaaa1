"""Tuning jobs and their studies: submission, listing, cancellation, and the worker claim."""
