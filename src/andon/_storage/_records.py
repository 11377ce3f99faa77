"""The values the storage port takes and gives: jobs to create, filters and pages, the
answers of cancels, pauses, limits, statistics, sessions and prunes. Plain frozen records;
the rules that fill them live in ``andon._jobs`` and the stores.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from andon._access import TokenRecord
from andon._cancel import CancelReason, StopMethod
from andon._jobs import CancelOutcome, Job, JobStatus

__all__ = [
    "FORCED_STOP_METHODS",
    "NEEDS_FORCE_MIN_STOPS",
    "PAGE_MAX_BYTES",
    "ROW_OVERHEAD_BYTES",
    "ActiveJobs",
    "BulkCancel",
    "CancelNotice",
    "CancelResult",
    "IdempotencyKey",
    "JobFilter",
    "KindLimit",
    "KindLimitUse",
    "KindStats",
    "MetricsSnapshot",
    "NewJob",
    "OffsetPage",
    "Page",
    "PauseResult",
    "PausedKind",
    "PruneResult",
    "SchedulerLease",
    "SessionRecord",
    "StopStats",
    "StopTimes",
    "Submission",
]


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to create; ``params`` are already validated."""

    id: str
    kind: str
    params: dict[str, Any]  # Any: JSON values
    max_attempts: int = 1
    retry_backoff_s: float = 0.0
    timeout_s: float | None = None
    priority: int = 0
    retry_of: str | None = None
    owner: str | None = None
    retry_resume: bool = False
    parent_id: str | None = None
    """The job whose handler submits it (``ctx.submit``); the store checks that this parent
    is running and held by the submitting attempt, in the same transaction."""
    root_id: str | None = None
    detached: bool = False
    """Left running when its parent ends (the default is to cancel it then)."""
    fail_parent: bool = False
    """Its failure (no retry left) stops its parent as failed, and so its siblings."""
    key: str | None = None
    """A business key: at most one active job of this kind with it (see ``on_conflict``)."""
    schedule: str | None = None
    """The schedule whose tick makes it."""
    available_at: float | None = None
    """When it may start (``run_at``, unix seconds); ``None``: see ``delay_s``."""
    delay_s: float | None = None
    """Seconds after its submit (by the store's clock) when it may start; ``None``: at once."""


@dataclass(frozen=True, slots=True)
class JobFilter:
    """Which jobs a listing or a bulk operation applies to; empty means all."""

    statuses: Collection[JobStatus] = ()
    kinds: Collection[str] = ()
    ids: Collection[str] = ()
    owners: Collection[str] = ()
    parents: Collection[str] = ()
    """Direct children of these jobs."""
    roots: Collection[str] = ()
    """Every descendant of these jobs that started a tree (not the roots themselves)."""
    scheduled: bool | None = None
    """``True``: only queued jobs not due yet (scheduled for later, or a retry waiting out
    its backoff); ``False``: every job but those; ``None``: either."""


T = TypeVar("T")

PAGE_MAX_BYTES: Final = 4 * 1024 * 1024
"""How many bytes of stored values (JSON and text, plus :data:`ROW_OVERHEAD_BYTES` a row) one
page that a client or the API reads may hold. A page ends at its ``limit`` or at this budget,
whichever comes first, and says where to go on; it always holds at least one row, so a
reader makes progress whatever the sizes (one row is at most a few MiB: see ``_sizes``)."""

ROW_OVERHEAD_BYTES: Final = 256
"""What a row costs in a page besides its stored text: ids, numbers, field names."""


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing, newest first; pass ``next_cursor`` to get the next page.

    A page ends at its ``limit`` or, when the reader gave one, at its byte budget: fewer
    items than asked for do not mean the end, ``next_cursor is None`` does.
    """

    items: list[Job]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class OffsetPage(Generic[T]):
    """One page of a job's items or events, in order; ``next_offset`` is where the next one
    starts (the first row this page left out), ``None`` when this page reached the end of
    what is stored now (a running job may add more later)."""

    items: list[T]
    next_offset: int | None


@dataclass(frozen=True, slots=True)
class CancelResult:
    """What a cancel request did and the job as it is after it."""

    job: Job
    outcome: CancelOutcome

    @property
    def changed(self) -> bool:
        return self.outcome is not CancelOutcome.ALREADY


@dataclass(frozen=True, slots=True)
class Submission:
    """What a submit with a key or an idempotency key did: ``created`` is false when it
    answered a job that was already there (``skip``, ``queue``, or an idempotency key sent
    again after a submit that found one), true when ``job`` is new (or was made by the
    first request of an idempotency key sent again)."""

    job: Job
    created: bool
    superseded: tuple[Job, ...] = ()
    """The jobs this submit stopped (``supersede``), as they were right after the stop."""


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """A submit's idempotency key: ``key`` from the caller ``scope`` (a token's name, ``""``
    without tokens), for the request whose fingerprint is ``request_hash``."""

    scope: str
    key: str
    request_hash: str


@dataclass(frozen=True, slots=True)
class BulkCancel:
    """What one cancel by filter did.

    Queued jobs are answered by id only: a filter can match millions of them, and building
    a snapshot of each would cost more than withdrawing them. Running jobs (at most the
    workers' slots) come with their snapshots, to wait on.
    """

    withdrawn: list[str]
    """Ids of the queued jobs it ended; none of them will ever start."""
    stopping: list[CancelResult]
    """The running (or cancelling, for a force-fail) jobs it asked to stop, as they are now."""

    @property
    def ids(self) -> list[str]:
        """Every job it changed: the withdrawn ones, then the stopping ones."""
        return [*self.withdrawn, *(result.job.id for result in self.stopping)]

    def __len__(self) -> int:
        return len(self.withdrawn) + len(self.stopping)


@dataclass(frozen=True, slots=True)
class CancelNotice:
    """A cancel request for a job a worker holds."""

    job_id: str
    attempt: int
    reason: CancelReason
    message: str | None
    grace_s: float | None = None
    """The shortest grace its requests asked for (``cancel(..., grace=0)``), or ``None``."""


@dataclass(frozen=True, slots=True)
class PausedKind:
    """A kind no worker claims until it is unpaused."""

    kind: str
    paused_at: float
    by: str | None
    message: str | None


@dataclass(frozen=True, slots=True)
class SchedulerLease:
    """Which scheduler leads (fires the ticks of every schedule) and for how long yet."""

    holder: str
    since: float
    expires_in_s: float


@dataclass(frozen=True, slots=True)
class PauseResult:
    """What pausing a kind did."""

    kind: str
    changed: bool
    """``False``: the kind was paused already."""
    stopping: list[Job]
    """Its running jobs asked to stop (``--now``; reason ``paused``): each goes back to the
    queue once its work has stopped."""


@dataclass(frozen=True, slots=True)
class KindLimit:
    """How much of one kind may run at once, across all workers of a store.

    Workers write their app's limits to the store as they start (``@app.job(max_running=,
    rate=)``); each claim reads them there, so the store enforces them, not each worker.
    """

    kind: str
    max_running: int | None = None
    """At most this many jobs of the kind running or cancelling at once."""
    rate: tuple[int, float] | None = None
    """At most ``rate[0]`` starts (attempts) of the kind within any ``rate[1]`` seconds: a
    start at time t counts against the starts before t + rate[1]."""

    @property
    def is_limited(self) -> bool:
        return self.max_running is not None or self.rate is not None


@dataclass(frozen=True, slots=True)
class KindLimitUse:
    """A kind's stored limit and how much of it is in use now."""

    limit: KindLimit
    running_now: int
    """Jobs of the kind running or cancelling (what ``max_running`` counts)."""
    starts_in_window: int | None
    """Starts within the last ``rate[1]`` seconds; ``None`` without a rate."""


FORCED_STOP_METHODS: Final = frozenset(
    {StopMethod.INJECTED, StopMethod.TERMINATED, StopMethod.KILLED, StopMethod.ABANDONED}
)
"""Stop methods that mean the handler did not stop by itself when asked (``worker_lost`` is
left out: a lost worker says nothing about the handler)."""
NEEDS_FORCE_MIN_STOPS: Final = 3
"""How many stops a kind needs before :attr:`KindStats.needs_force` may call it: one slow
stop (a handler inside a long C call, say) is not a habit."""


@dataclass(frozen=True, slots=True)
class StopStats:
    """How the running jobs of one kind stopped when they were asked to (withdrawn ones, which
    never ran, left out): how many, how long from the request to the stop, and how."""

    kind: str
    stops: int
    p50_s: float | None
    """Median time from the request to the stop (as PostgreSQL's ``percentile_cont(0.5)``)."""
    p99_s: float | None
    """99th percentile of the same (``percentile_cont(0.99)``: linear between two stops)."""
    max_s: float | None
    methods: dict[str, int]
    """How many of the stops each stop method made (``{"injected": 3, ...}``)."""

    @property
    def forced_stops(self) -> int:
        """Stops the handler did not make itself: injected, terminated, killed or abandoned."""
        return sum(n for method, n in self.methods.items() if method in FORCED_STOP_METHODS)

    @property
    def needs_force(self) -> bool:
        """The kind usually needs force to stop: more than half of its stops, of at least
        :data:`NEEDS_FORCE_MIN_STOPS`, were forced. Its handler ignores Cancel; calling
        ``ctx.check()`` (or ``ctx.sleep()``...) in its loop lets it stop by itself."""
        return self.stops >= NEEDS_FORCE_MIN_STOPS and 2 * self.forced_stops > self.stops


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A live dashboard session as stored (only a hash of its cookie is kept).

    It was made either from a stored token (``token_hash``, with that token's row as it is
    now in ``token``, revoked or not) or from a server's own token (``own_token_mac``, an
    HMAC of that token keyed by the cookie: only a server holding the same token and given
    the cookie can match it).
    """

    token_hash: str | None
    token: TokenRecord | None
    own_token_mac: str | None
    created_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class KindStats:
    """History figures for one kind, so a handler that ignores cancels is visible."""

    kind: str
    counts: dict[str, int]
    stops: int
    """How many running jobs of this kind were stopped by a cancel (withdrawn ones excluded)."""
    stop_p50_s: float | None
    stop_p99_s: float | None
    stop_max_s: float | None
    stop_methods: dict[str, int]
    """As in :class:`StopStats` (:attr:`stop_stats`)."""
    max_running: int | None = None
    """The kind's limit on jobs running or cancelling at once, as stored; ``None``: none."""
    rate: tuple[int, float] | None = None
    """The kind's limit on starts, ``(starts, seconds)``, as stored; ``None``: none."""
    starts_in_window: int | None = None
    """Starts of a rate-limited kind within the last ``rate[1]`` seconds."""

    @property
    def running_now(self) -> int:
        """Jobs of the kind running or cancelling now (what ``max_running`` counts)."""
        return self.counts.get(JobStatus.RUNNING.value, 0) + self.counts.get(JobStatus.CANCELLING.value, 0)

    @property
    def stop_stats(self) -> StopStats:
        """Its stop figures alone (what :meth:`Store.stop_stats` reads)."""
        return StopStats(self.kind, self.stops, self.stop_p50_s, self.stop_p99_s, self.stop_max_s, self.stop_methods)

    @property
    def forced_stops(self) -> int:
        """:attr:`StopStats.forced_stops`."""
        return self.stop_stats.forced_stops

    @property
    def needs_force(self) -> bool:
        """:attr:`StopStats.needs_force`."""
        return self.stop_stats.needs_force


@dataclass(frozen=True, slots=True)
class ActiveJobs:
    """The jobs of one kind in one active state now, as a scrape counts them."""

    kind: str
    status: JobStatus
    jobs: int
    scheduled: int
    """Of the queued ones, those not due yet (scheduled, or waiting out a retry backoff)."""
    oldest_due_at: float | None
    """The earliest moment a queued job that is due now became due (``available_at``)."""
    oldest_request_at: float | None
    """The earliest cancel request among them (a cancelling job's ``cancel_requested_at``)."""


@dataclass(frozen=True, slots=True)
class StopTimes:
    """Stops of one kind, method and reason whose time from request to stop fell in one
    bucket of the histogram (at most ``le`` seconds, more than the bound below it)."""

    kind: str
    method: str
    reason: str
    le: float
    stops: int
    seconds: float
    """Their stop times added up."""


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """What ``GET /metrics`` reports, read from the store in one go.

    Active jobs are counted at the time of reading, over the rows of active states only;
    ended jobs and stop times are counters that the store keeps as jobs end (a trigger in
    the transaction that ends each one), so reading them costs a few rows per kind however
    much history the store holds, and pruning history never lowers them.
    """

    at: float
    """When it was read (the store's clock)."""
    active: tuple[ActiveJobs, ...]
    ended: dict[tuple[str, str], int]
    """Times a job of a kind reached a terminal state: ``(kind, status)`` -> count."""
    stops: tuple[StopTimes, ...]
    """Every stop of a job that ended after a cancel request, withdrawn ones included."""
    bounds: tuple[float, ...]
    """The histogram's bucket bounds in seconds, ascending; the last is infinity."""


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What a prune did (or, with ``dry_run``, would do)."""

    jobs: int
    """Jobs pruned: tombstones left (or, with ``purged``, rows deleted)."""
    items: int
    """Result items removed."""
    events: int
    """History entries removed."""
    purged: bool = False
    """The jobs were deleted outright instead of left as tombstones."""
    dry_run: bool = False
    """Nothing was changed: the figures are what a prune would remove now."""
    batches: int = 0
    """Write transactions it took (each short: other writers run between them)."""
