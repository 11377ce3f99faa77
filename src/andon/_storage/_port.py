"""The storage port: the only storage type the core sees.

Every method is one atomic operation; the rules for what a state change means live in
``andon._jobs`` and are applied by each store inside its own transaction. Methods block
(they are plain function calls); callers that must not block run them in a thread. The
records the methods take and give are in ``_records.py``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Final, Protocol

from andon._access import Role, TokenRecord
from andon._cancel import CancelReason
from andon._errors import InvalidTransition, JobNotFound
from andon._jobs import Job, JobEvent, JobStatus, Outcome, ResultItem
from andon._keys import OnConflict
from andon._output import AttemptEnd, ProgressUpdate
from andon._schedules import Schedule, ScheduleSpec, Tick
from andon._storage._records import (
    BulkCancel,
    CancelNotice,
    CancelResult,
    IdempotencyKey,
    JobFilter,
    KindLimit,
    KindLimitUse,
    KindStats,
    MetricsSnapshot,
    NewJob,
    OffsetPage,
    Page,
    PausedKind,
    PauseResult,
    PruneResult,
    SchedulerLease,
    SessionRecord,
    StopStats,
    Submission,
)
from andon._workers import WORKER_ROWS_KEPT_S, Machine, ProcessId, WorkerInfo, WorkerRegistration

if TYPE_CHECKING:
    from andon._storage._async_watch import AsyncChanges

__all__ = [
    "ALL_CHANGES",
    "Change",
    "ChangeWatcher",
    "Store",
]


class Change(enum.StrEnum):
    """A kind of change a watcher can wait for."""

    WORK = "work"
    """A job may have become claimable: submitted, or back in the queue."""
    CANCEL = "cancel"
    """A cancel or force-fail of a running job was requested."""
    ENDED = "ended"
    """An attempt ended or a queued job was withdrawn: the job is terminal or queued again."""


ALL_CHANGES: Final = frozenset(Change)


class ChangeWatcher(Protocol):
    """Wakes a waiter when the store may have changed (a commit by anyone, anywhere)."""

    cancels_named: bool
    """After a :meth:`wait` that returned ``True``: every cancel it saw named its stops to the
    watcher's ``on_stop`` (:meth:`Store.watch`), so nothing about them is left to read."""

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds; ``True`` if something may have changed."""
        ...

    def close(self) -> None: ...


class Store(Protocol):
    """A job store. Implementations: ``SqliteStore`` and ``PostgresStore``."""

    @property
    def url(self) -> str: ...

    def open(self) -> None:
        """Connect and check the schema. Idempotent.

        SQLite creates its schema here. PostgreSQL, shared by many machines, only checks that
        its schema is at the version this andon needs: migrations run on request
        (``andon db upgrade``, :func:`andon.upgrade_database`).

        Raises:
            StorageUnavailable: the database cannot be reached.
            ConfigurationError: the schema is missing or at another version.
        """
        ...

    def close(self) -> None: ...

    # -- clients --------------------------------------------------------------

    def submit(self, jobs: Sequence[NewJob], actor: str | None, *, connection: object | None = None) -> list[Job]:
        """Create jobs, all or none, in the ``queued`` state.

        ``connection``: the caller's own open PostgreSQL connection (psycopg); the jobs are
        inserted in its transaction, which is not committed here: they exist, and workers hear
        of them, if and only if the caller commits.

        Raises:
            UsageError: a job has a key (those go one at a time through :meth:`submit_one`);
                ``connection`` on a store that cannot join it (SQLite), or a connection in
                autocommit, in a failed transaction, or to another database.
        """
        ...

    async def submit_async(self, connection: object, jobs: Sequence[NewJob], actor: str | None) -> list[Job]:
        """:meth:`submit` with ``connection`` for an asyncio program: the jobs are inserted in
        the open transaction of the caller's psycopg ``AsyncConnection`` (PostgreSQL), not
        committed. Raises UsageError as :meth:`submit` does, and for keyed jobs."""
        ...

    def submit_one(
        self,
        job: NewJob,
        actor: str | None,
        *,
        on_conflict: OnConflict = OnConflict.SKIP,
        visible_owner: str | None = None,
        idempotency: IdempotencyKey | None = None,
        parent: tuple[str, str | None, int | None] | None = None,
        connection: object | None = None,
    ) -> Submission:
        """Create ``job``, or answer the one its key or idempotency key names, in one
        transaction (see ``andon._keys`` for the rules). ``visible_owner``: the caller sees
        only that owner's jobs, and may neither be answered nor supersede another's.
        ``parent``: (parent id, worker id, attempt) to create it as a child, checked as by
        :meth:`submit_children` (which raises ``ParentStopping``).

        Raises:
            NotAllowed: an active job with the key belongs to another owner than ``visible_owner``.
            IdempotencyKeyReused: the idempotency key was used for another request.
            JobNotFound: the job the idempotency key's first request answered was deleted.
        """
        ...

    def submit_children(
        self, parent_id: str, worker_id: str | None, attempt: int | None, jobs: Sequence[NewJob], actor: str | None
    ) -> list[Job]:
        """Create jobs, all or none, as children of ``parent_id``: only while it is running
        (and held by ``worker_id``'s ``attempt``, when given), checked in the same transaction.

        Raises:
            JobNotFound: no such parent.
            ParentStopping: the parent is not running (a stop has committed), or that attempt
                no longer holds it. No child was created.
        """
        ...

    def get(self, job_id: str) -> Job:
        """Raises :class:`~andon.JobNotFound`."""
        ...

    def list_jobs(self, where: JobFilter, limit: int, cursor: str | None = None, max_bytes: int | None = None) -> Page:
        """Up to ``limit`` jobs older than the job ``cursor`` names, newest first, and within
        ``max_bytes`` of stored values (at least one job) when it is given; only the jobs
        on the page are read in full."""
        ...

    def stages(self, job_ids: Collection[str]) -> dict[str, tuple[object, ...]]:
        """Where each job is now, cheaply: its life stage, items and progress (an equal tuple
        means an equal snapshot as far as waiters go); gone jobs are left out."""
        ...

    def child_counts(self, job_ids: Collection[str]) -> dict[str, dict[JobStatus, int]]:
        """How many direct children each of ``job_ids`` has, by status; jobs without
        children are left out."""
        ...

    def descendant_counts(self, job_id: str) -> dict[JobStatus, int]:
        """How many descendants (children, their children...) the job has, by status."""
        ...

    def events(self, job_id: str) -> list[JobEvent]:
        """The job's history, oldest first. Raises :class:`~andon.JobNotFound`."""
        ...

    def events_page(self, job_id: str, offset: int, limit: int, max_bytes: int) -> OffsetPage[JobEvent]:
        """Up to ``limit`` events after the first ``offset``, within ``max_bytes`` (at least
        one event). Raises :class:`~andon.JobNotFound`."""
        ...

    def items(self, job_id: str, offset: int = 0, limit: int | None = None) -> list[ResultItem]:
        """Partial results in emit order. Raises :class:`~andon.JobNotFound`."""
        ...

    def items_page(self, job_id: str, offset: int, limit: int, max_bytes: int) -> OffsetPage[ResultItem]:
        """Up to ``limit`` items after the first ``offset``, within ``max_bytes`` (at least
        one item); only the items on the page are read in full. Raises
        :class:`~andon.JobNotFound`."""
        ...

    def request_cancel(
        self,
        job_id: str,
        reason: CancelReason,
        by: str | None,
        message: str | None = None,
        retry: bool = True,
        grace_s: float | None = None,
    ) -> CancelResult:
        """Atomically apply :func:`andon._jobs.decide_cancel`.

        ``grace_s``: the most grace the request allows the work (``None``: the kind's); it is
        stored with the stop (``CancelInfo.grace_s``) and reaches the worker with its notice.

        Raises:
            JobNotFound: unknown id.
            JobFinished: the job already succeeded or failed.
        """
        ...

    def request_cancel_many(
        self,
        where: JobFilter,
        reason: CancelReason,
        by: str | None,
        message: str | None = None,
        grace_s: float | None = None,
    ) -> BulkCancel:
        """Cancel every active job matching ``where``, by the rule of
        :func:`andon._jobs.decide_cancel`, in one transaction (queued ones in one statement);
        ``grace_s`` as for :meth:`request_cancel` (stops under way that would wait longer are
        brought forward)."""
        ...

    def delete(self, job_id: str) -> None:
        """Delete a finished job with its events and results.

        Raises:
            JobNotFound: unknown id.
            InvalidTransition: the job is still active (cancel it and wait first).
        """
        ...

    def resume(self, job_id: str, by: str | None) -> Job:
        """Queue a cancelled or failed job again as a new attempt that starts from its last
        checkpoint (what it emitted after the checkpoint is dropped), with its record.

        Raises:
            JobNotFound: unknown id.
            InvalidTransition: the job is not cancelled or failed, or has no checkpoint.
        """
        ...

    def pause_kind(self, kind: str, by: str | None, message: str | None, now: bool) -> PauseResult:
        """Stop claiming jobs of ``kind`` (its queued jobs wait, each with the pause in its
        history); ``now``: also ask its running jobs to stop (reason ``paused``), each to go
        back to the queue and resume from its checkpoint once the kind is unpaused."""
        ...

    def unpause_kind(self, kind: str, by: str | None) -> bool:
        """Let workers claim ``kind`` again; ``False`` if it was not paused."""
        ...

    def paused_kinds(self) -> list[PausedKind]: ...

    def kind_stats(self) -> list[KindStats]:
        """Figures per kind with jobs or a limit, with the limits in force and their use."""
        ...

    def stop_stats(self) -> list[StopStats]:
        """How the jobs of each kind stopped when asked, by kind (kinds without a stop left
        out); it reads only stopped jobs, so it stays cheap beside a long history."""
        ...

    def kind_limits(self) -> list[KindLimitUse]:
        """Every stored limit with its use now, by kind."""
        ...

    def metrics(self) -> MetricsSnapshot:
        """The figures of ``GET /metrics``: active jobs counted now, ended jobs and stop times
        as counted when they ended (cheap however many jobs the store holds)."""
        ...

    def sync_kind_limits(self, limits: Sequence[KindLimit], by: str | None) -> None:
        """Store the limits of an app's kinds (a worker's, as it starts): each limited one
        is written, and each one without a limit loses any it had. Kinds not in ``limits``
        are left alone (another app's). A limit applies to claims that begin after it is
        stored: jobs running already are not stopped."""
        ...

    def prune(
        self,
        older_than_s: float,
        *,
        statuses: Collection[JobStatus] = ...,
        kinds: Collection[str] = (),
        purge: bool = False,
        batch: int = ...,
        dry_run: bool = False,
        limit: int | None = None,
    ) -> PruneResult:
        """Remove the params, results, items and history of jobs that finished more than
        ``older_than_s`` seconds ago, leaving a tombstone of each (``Job.pruned_at``), or with
        ``purge`` delete them; in transactions of at most ``batch`` jobs, stopping after the
        batch that reaches ``limit`` jobs (the rest is left for the next call). A job whose tree
        still has an active job (its top-level job or any job under it) is left alone.

        Raises:
            UsageError: a negative age, a batch out of range, or a status that is not final.
        """
        ...

    def watch(
        self, changes: Collection[Change] = ALL_CHANGES, *, on_stop: Callable[[CancelNotice], None] | None = None
    ) -> ChangeWatcher:
        """A watcher for ``changes`` made by any process; the caller closes it.

        A store may wake it for other changes too (SQLite wakes it on every commit); it
        must not miss one of ``changes``. ``on_stop`` is called, on a thread of the store's,
        with stop requests the store learns of without reading them: only committed ones
        (PostgreSQL: named in the notification of the cancel's commit). The watcher still
        reports the change, so its owner reads the cancels as always; a store may never call it.
        """
        ...

    def watch_async(self, changes: Collection[Change] = ALL_CHANGES) -> AsyncChanges:
        """A feed of ``changes`` made by any process, for one event loop: started (and
        closed) by the caller on that loop, it never blocks the loop while it waits.
        PostgreSQL listens on an async connection; SQLite runs :meth:`watch` on a thread."""
        ...

    # -- workers --------------------------------------------------------------

    def next_due(self, kinds: Collection[str]) -> float | None:
        """When the next queued job of ``kinds`` that is not due yet falls due (wall-clock
        seconds), or ``None``: an idle worker sleeps until then, not a poll interval."""
        ...

    def claim_many(self, worker_id: str, kinds: Collection[str], lease_s: float, limit: int) -> list[Job]:
        """Atomically move up to ``limit`` available queued jobs of ``kinds`` to ``running``,
        in one transaction, in claim order: highest priority first, then oldest.

        Within the limits stored for a kind (:meth:`sync_kind_limits`): a kind at its limit
        is passed over (its jobs stay queued) and the others' jobs are claimed; concurrent
        claims of one limited kind take turns, so together they never exceed it.

        A worker asks for as many as it has idle slots, never more: a claimed job is held
        (its lease runs) and no other worker can take it.
        """
        ...

    def write_progress(self, updates: Sequence[ProgressUpdate]) -> list[str]:
        """Store partial results and progress of running attempts, all in one transaction.

        Returns the ids of the jobs whose update was refused because the attempt it names no
        longer holds the job (it was recovered, requeued or settled meanwhile): nothing of
        such an update is stored.
        """
        ...

    def settle_many(self, worker_id: str, ends: Sequence[AttemptEnd]) -> list[Job | InvalidTransition | JobNotFound]:
        """End attempts, in one transaction (a worker's group commit): for each, write its
        last output and the one state it ends in.

        Returns, in order, each job as settled or the error that refused it:
        :class:`~andon.InvalidTransition` (this worker no longer holds that attempt) or
        :class:`~andon.JobNotFound`; one refusal does not stop the others.
        """
        ...

    def settle_and_claim(
        self,
        worker_id: str,
        ends: Sequence[AttemptEnd],
        kinds: Collection[str],
        lease_s: float,
        limit: int,
    ) -> tuple[list[Job | InvalidTransition | JobNotFound], list[Job]]:
        """:meth:`settle_many`, then :meth:`claim_many` for the slots that just freed up.

        A worker's hot path: SQLite does both in one transaction; a store may also run them
        one after the other (each atomic on its own).
        """
        ...

    def cancel_notices(self, worker_id: str) -> list[CancelNotice]:
        """Cancel requests for the jobs ``worker_id`` holds."""
        ...

    def renew_leases(
        self,
        worker_id: str,
        lease_s: float,
        job_ids: Collection[str] | None = None,
        *,
        heartbeat: WorkerRegistration | None = None,
    ) -> list[str]:
        """Extend to ``lease_s`` from now the leases of the jobs ``worker_id`` holds: all of
        them, or only those in ``job_ids`` (a worker names the attempts it really runs, so a
        job it lost track of is left to expire and be recovered).

        ``heartbeat``: the worker's registration; its row in the workers registry is
        refreshed in the same transaction (upserted: a row pruned, or ended by mistake while
        the worker lives, is back).

        Returns the ids whose lease was extended; a named job missing from it is no longer
        held by this worker (it was recovered after its lease expired).
        """
        ...

    def recover_lost(self) -> list[Job]:
        """Settle attempts whose worker's lease expired (reason ``worker_lost``)."""
        ...

    def record_lost_attempt(self, job_id: str, attempt: int, worker_id: str, outcome: Outcome, lost_items: int) -> None:
        """Add to a job's history how an attempt that had lost the job ended.

        For a worker that was cut off past its lease while the job was recovered: the
        attempt's own stop (when, why, how) and how many items it emitted that the store
        refused (they cannot join the results: the next attempt continues the sequence).
        One event, no change of state.

        Raises:
            JobNotFound: no such job (it was deleted meanwhile).
        """
        ...

    # -- the workers registry (andon._workers; _ops/_workers.py) ---------------------

    def register_worker(self, worker: WorkerRegistration, keep_s: float = WORKER_ROWS_KEPT_S) -> None:
        """Write ``worker``'s row as it starts (alive, heartbeat now), and prune the rows of
        workers that stopped, died or went silent more than ``keep_s`` seconds ago."""
        ...

    def mark_worker_stopped(self, worker_id: str) -> None:
        """End the worker's row as stopped cleanly (its last act in :meth:`andon.Worker.stop`)."""
        ...

    def workers(self, visible_owner: str | None = None) -> list[WorkerInfo]:
        """Every worker's row, newest first, with its status decided now, the lease clock's
        age of its heartbeat and the jobs it holds (``visible_owner``: only that owner's ids
        are named; all are counted). A read of the registry and of the held-jobs index."""
        ...

    def workers_on(self, machine: Machine) -> list[tuple[ProcessId, str]]:
        """The process and id of every unended worker of ``machine`` (what a lookout there checks)."""
        ...

    def recover_dead_worker(self, worker_id: str, process: ProcessId, message: str) -> list[Job] | None:
        """Mark a worker whose ``process`` was found gone as ``dead`` and recover the jobs it
        holds (as an expired lease does, with ``message`` as their ``WorkerLost`` error), in
        one transaction.

        Returns the jobs as recovered, or ``None`` when the row had ended already (another
        lookout recovered it first, or it stopped) or names another process: nothing done.
        """
        ...

    # -- tokens ---------------------------------------------------------------

    def create_token(self, name: str, role: Role, token_hash: str) -> TokenRecord:
        """Store a token's hash under a new name (never the token itself).

        Raises:
            UsageError: a token (active or revoked) already has this name.
        """
        ...

    def find_token(self, token_hash: str) -> TokenRecord | None:
        """The token with this hash, revoked or not; ``None`` if there is none."""
        ...

    def list_tokens(self) -> list[TokenRecord]:
        """Every token, revoked ones too, oldest first."""
        ...

    def revoke_token(self, name: str) -> TokenRecord:
        """Revoke the token named ``name`` (a second revoke keeps the first time), and end
        the dashboard sessions made from it.

        Raises:
            UsageError: no token has this name.
        """
        ...

    # -- dashboard sessions (andon.api._auth; _ops/_sessions.py) ---------------------

    def open_session(
        self,
        session_hash: str,
        token_hash: str | None,
        own_token_mac: str | None,
        ttl_s: float,
        *,
        keep: int = ...,
    ) -> SessionRecord:
        """Store a new session under ``session_hash`` (a hash of its cookie, never the cookie),
        made from the stored token ``token_hash``, or (``None``) from a server's own token,
        which ``own_token_mac`` then proves; it lasts ``ttl_s`` seconds.

        Also drops expired sessions (a bounded batch), and the oldest sessions of the same
        token beyond the newest ``keep``: a caller with a valid token cannot fill the store.

        Raises:
            UsageError: ``ttl_s`` or ``keep`` is not positive, or not exactly one of
                ``token_hash`` and ``own_token_mac`` is given.
        """
        ...

    def find_session(self, session_hash: str) -> SessionRecord | None:
        """The unexpired session with this hash, and its token as it is now; ``None`` if none."""
        ...

    def close_session(self, session_hash: str) -> bool:
        """End a session; whether there was one. Every server refuses its cookie from then on."""
        ...

    # -- schedules (andon._schedules; _ops/_schedules.py) --------------------------

    def sync_schedules(self, specs: Sequence[ScheduleSpec], by: str | None) -> list[str]:
        """Make the store's app schedules those of ``specs``; returns the names removed."""
        ...

    def add_schedule(self, spec: ScheduleSpec, by: str | None) -> Schedule:
        """Add a runtime schedule. Raises :class:`~andon.ScheduleExists`."""
        ...

    def remove_schedule(self, name: str, by: str | None) -> None:
        """Remove a runtime schedule. Raises ScheduleNotFound, ScheduleFromApp."""
        ...

    def pause_schedule(self, name: str, by: str | None) -> Schedule: ...

    def resume_schedule(self, name: str, by: str | None) -> Schedule: ...

    def get_schedule(self, name: str, ticks: int = 5) -> Schedule: ...

    def list_schedules(self, ticks: int = 5) -> list[Schedule]: ...

    def schedule_ticks(self, name: str, limit: int = 100) -> list[Tick]: ...

    def trigger_schedule(self, name: str, by: str | None, make_job: Callable[[ScheduleSpec], NewJob] = ...) -> Tick: ...

    def take_scheduler_lease(self, holder: str, lease_s: float) -> bool: ...

    def release_scheduler_lease(self, holder: str) -> None: ...

    def scheduler_lease(self) -> SchedulerLease | None: ...

    def next_tick_at(self) -> float | None: ...

    def fire_due(self, now: float, holder: str, make_job: Callable[[ScheduleSpec], NewJob] = ...) -> list[Tick]: ...
