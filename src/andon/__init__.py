"""Andon: background jobs that really stop when you press Cancel.

The public API. Everything else in the package is private and may change.
"""

from __future__ import annotations

from andon._access import IssuedToken, Principal, Role, TokenRecord
from andon._async_client import AsyncClient, connect_async
from andon._cancel import Cancelled, CancelReason, CancelToken, StopMethod
from andon._client import Client, connect
from andon._clock import Clock, ManualClock, SystemClock
from andon._context import Context
from andon._errors import (
    AndonError,
    CommandFailed,
    ConfigurationError,
    IdempotencyKeyReused,
    InvalidCursor,
    InvalidKey,
    InvalidParams,
    InvalidSchedule,
    InvalidTransition,
    ItemsNotFlat,
    JobFinished,
    JobNotFound,
    JobPruned,
    LifecycleError,
    NotAllowed,
    ParamsTooLarge,
    ResultTooLarge,
    ScheduleExists,
    ScheduleFromApp,
    ScheduleNotFound,
    StorageBusy,
    StorageError,
    StorageUnavailable,
    UnknownKind,
    UsageError,
    WaitTimeout,
)
from andon._export import ResultsExport, ResultsFormat
from andon._jobs import (
    Action,
    CancelInfo,
    CancelOutcome,
    Checkpoint,
    ErrorInfo,
    Job,
    JobEvent,
    JobStatus,
    ResultItem,
    allowed_actions,
    life_stage,
)
from andon._keys import IDEMPOTENCY_WINDOW_S, MAX_KEY_CHARS, OnConflict
from andon._registry import DEFAULT, App, Isolation, JobKind, Limits, Retry
from andon._schedules import CatchUp, Schedule, ScheduleSource, ScheduleSpec, Tick, TickOutcome
from andon._storage import (
    ActiveJobs,
    BulkCancel,
    CancelResult,
    JobFilter,
    KindLimit,
    KindLimitUse,
    KindStats,
    MetricsSnapshot,
    OffsetPage,
    Page,
    PausedKind,
    PauseResult,
    PruneResult,
    SchedulerLease,
    SchemaUpgrade,
    StopTimes,
    Store,
    Submission,
    open_store,
    upgrade_database,
)
from andon._storage._ops._retention import DEFAULT_PRUNE_BATCH
from andon._storage._sqlite import SqliteStore
from andon._storage._url import DEFAULT_DATABASE_URL, database_url
from andon._worker import Worker, WorkerState

__version__ = "0.1.0"

__all__ = [
    "DEFAULT",
    "DEFAULT_DATABASE_URL",
    "DEFAULT_PRUNE_BATCH",
    "IDEMPOTENCY_WINDOW_S",
    "MAX_KEY_CHARS",
    "Action",
    "ActiveJobs",
    "AndonError",
    "App",
    "AsyncClient",
    "BulkCancel",
    "CancelInfo",
    "CancelOutcome",
    "CancelReason",
    "CancelResult",
    "CancelToken",
    "Cancelled",
    "CatchUp",
    "Checkpoint",
    "Client",
    "Clock",
    "CommandFailed",
    "ConfigurationError",
    "Context",
    "ErrorInfo",
    "IdempotencyKeyReused",
    "InvalidCursor",
    "InvalidKey",
    "InvalidParams",
    "InvalidSchedule",
    "InvalidTransition",
    "Isolation",
    "IssuedToken",
    "ItemsNotFlat",
    "Job",
    "JobEvent",
    "JobFilter",
    "JobFinished",
    "JobKind",
    "JobNotFound",
    "JobPruned",
    "JobStatus",
    "KindLimit",
    "KindLimitUse",
    "KindStats",
    "LifecycleError",
    "Limits",
    "ManualClock",
    "MetricsSnapshot",
    "NotAllowed",
    "OffsetPage",
    "OnConflict",
    "Page",
    "ParamsTooLarge",
    "PauseResult",
    "PausedKind",
    "Principal",
    "PruneResult",
    "ResultItem",
    "ResultTooLarge",
    "ResultsExport",
    "ResultsFormat",
    "Retry",
    "Role",
    "Schedule",
    "ScheduleExists",
    "ScheduleFromApp",
    "ScheduleNotFound",
    "ScheduleSource",
    "ScheduleSpec",
    "SchedulerLease",
    "SchemaUpgrade",
    "SqliteStore",
    "StopMethod",
    "StopTimes",
    "StorageBusy",
    "StorageError",
    "StorageUnavailable",
    "Store",
    "Submission",
    "SystemClock",
    "Tick",
    "TickOutcome",
    "TokenRecord",
    "UnknownKind",
    "UsageError",
    "WaitTimeout",
    "Worker",
    "WorkerState",
    "__version__",
    "allowed_actions",
    "connect",
    "connect_async",
    "database_url",
    "life_stage",
    "open_store",
    "upgrade_database",
]

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) and _obj.__module__.startswith("andon."):
        _obj.__module__ = "andon"
del _name, _obj
