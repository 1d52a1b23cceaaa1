"""Alembic environment and versions (a package so that installed copies ship it)."""
