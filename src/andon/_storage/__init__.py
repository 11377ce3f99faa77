"""Storage: the port the core is written against, and its adapters."""

from __future__ import annotations

from andon._storage._port import (
    ALL_CHANGES,
    CancelNotice,
    CancelResult,
    Change,
    ChangeWatcher,
    JobFilter,
    KindStats,
    NewJob,
    Page,
    ProgressUpdate,
    Store,
)
from andon._storage._url import SchemaUpgrade, open_store, upgrade_database

__all__ = [
    "ALL_CHANGES",
    "CancelNotice",
    "CancelResult",
    "Change",
    "ChangeWatcher",
    "JobFilter",
    "KindStats",
    "NewJob",
    "Page",
    "ProgressUpdate",
    "SchemaUpgrade",
    "Store",
    "open_store",
    "upgrade_database",
]
