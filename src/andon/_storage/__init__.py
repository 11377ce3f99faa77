"""Storage: the port the core is written against, and its adapters."""

from __future__ import annotations

from andon._storage._port import (
    ALL_CHANGES,
    BulkCancel,
    CancelNotice,
    CancelResult,
    Change,
    ChangeWatcher,
    JobFilter,
    KindStats,
    NewJob,
    Page,
    ProgressUpdate,
    Settlement,
    Store,
)
from andon._storage._url import SchemaUpgrade, open_store, upgrade_database

__all__ = [
    "ALL_CHANGES",
    "BulkCancel",
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
    "Settlement",
    "Store",
    "open_store",
    "upgrade_database",
]
