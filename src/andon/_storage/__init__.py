"""Storage: the port the core is written against, and its adapters."""

from __future__ import annotations

from andon._storage._open import SchemaUpgrade, open_store, upgrade_database
from andon._storage._port import (
    ALL_CHANGES,
    PAGE_MAX_BYTES,
    BulkCancel,
    CancelNotice,
    CancelResult,
    Change,
    ChangeWatcher,
    IdempotencyKey,
    JobFilter,
    KindLimit,
    KindStats,
    NewJob,
    OffsetPage,
    Page,
    PausedKind,
    PauseResult,
    PruneResult,
    SchedulerLease,
    Store,
    Submission,
)

__all__ = [
    "ALL_CHANGES",
    "PAGE_MAX_BYTES",
    "BulkCancel",
    "CancelNotice",
    "CancelResult",
    "Change",
    "ChangeWatcher",
    "IdempotencyKey",
    "JobFilter",
    "KindLimit",
    "KindStats",
    "NewJob",
    "OffsetPage",
    "Page",
    "PauseResult",
    "PausedKind",
    "PruneResult",
    "SchedulerLease",
    "SchemaUpgrade",
    "Store",
    "Submission",
    "open_store",
    "upgrade_database",
]
