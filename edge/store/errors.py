"""The store's errors."""

from __future__ import annotations


class StoreError(Exception):
    """The store cannot be used (damaged, foreign, or a newer schema)."""


class SyncGap(StoreError):
    """A delta's base version is ahead of this edge: it needs a snapshot."""
