"""The projections package's errors: a shallow hierarchy under :class:`ProjectionError`."""

from __future__ import annotations

__all__ = ["ProjectionError", "ProjectionStoreError"]


class ProjectionError(Exception):
    """Base class of every error the projections raise."""


class ProjectionStoreError(ProjectionError):
    """Raised when DuckDB fails: the file cannot be opened, or a statement failed (the
    transaction it was in is rolled back), or the store was closed."""
