"""Recommended settings per (task, batch size, optimizer): measured, interpolated or the paper's."""
