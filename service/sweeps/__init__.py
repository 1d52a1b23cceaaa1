"""Sweeps: one submission that expands into many jobs, grouped under one id."""
