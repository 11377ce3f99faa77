"""Storage: the port the core is written against, and its adapters."""

from __future__ import annotations

from andon._storage._port import (
    CancelNotice,
    CancelResult,
    ChangeWatcher,
    JobFilter,
    KindStats,
    NewJob,
    Page,
    ProgressUpdate,
    Store,
)
from andon._storage._url import open_store

__all__ = [
    "CancelNotice",
    "CancelResult",
    "ChangeWatcher",
    "JobFilter",
    "KindStats",
    "NewJob",
    "Page",
    "ProgressUpdate",
    "Store",
    "open_store",
]
