"""The client: submit, inspect, cancel, retry and delete jobs. Every shell calls this."""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import json
import math
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any, final

from andon._access import IssuedToken, Principal, Role, TokenRecord, check_token_name, hash_token, new_token
from andon._cancel import CancelReason
from andon._errors import (
    ConfigurationError,
    InvalidCursor,
    InvalidTransition,
    JobFinished,
    JobNotFound,
    JobPruned,
    NotAllowed,
    UsageError,
    WaitTimeout,
)
from andon._export import ResultsExport, ResultsFormat, export_results
from andon._family import NOW, Due, due_time, new_jobs
from andon._hub import deliver_here, wake_here
from andon._ids import is_job_id, new_job_id
from andon._jobs import RETRYABLE_STATUSES, TERMINAL_STATUSES, Job, JobEvent, JobStatus, ResultItem
from andon._keys import OnConflict, check_key, on_conflict_of
from andon._registry import DEFAULT, App, _Default
from andon._scheduler import job_of_tick
from andon._schedules import CatchUp, Schedule, ScheduleSpec, Tick
from andon._storage import (
    PAGE_MAX_BYTES,
    BulkCancel,
    CancelResult,
    Change,
    IdempotencyKey,
    JobFilter,
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
    StopStats,
    Store,
    Submission,
    open_store,
)
from andon._storage._ops._retention import DEFAULT_PRUNE_BATCH
from andon._workers import WorkerInfo

__all__ = ["Client", "connect"]

_MAX_DB_INT = 2**63 - 1
_MAX_PAGE_ROWS = 1000


@final
class Client:
    """Operations on jobs, against one store.

    Args:
        store: an open store.
        app: the job kinds, needed to submit (params are validated against them).
        actor: who is acting, recorded in job history (e.g. ``"cli"``, ``"user:alice"``).
        principal: the caller, when it is known (see :meth:`acting_as`); ``None`` has full
            access, as a process with the database's URL has anyway.
    """

    def __init__(
        self,
        store: Store,
        app: App | None = None,
        *,
        actor: str | None = None,
        owns_store: bool = False,
        principal: Principal | None = None,
    ) -> None:
        self.store = store
        self.app = app
        self.actor = actor
        self.principal = principal
        self._owns_store = owns_store

    def acting_as(self, principal: Principal | None) -> Client:
        """A client on the same store that acts for ``principal`` (it does not own the store).

        A ``user`` principal owns the jobs it submits and sees only those: another user's
        job raises :class:`~andon.JobNotFound` in every method that takes a job id, and
        listings and bulk cancels leave it out. An ``admin`` sees every job.
        """
        if principal is None:
            return self
        return Client(self.store, self.app, actor=principal.actor, principal=principal)

    def close(self) -> None:
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- submitting -----------------------------------------------------------

    def submit(
        self,
        kind: str,
        params: Mapping[str, Any] | None = None,  # Any: JSON values
        *,
        timeout: float | _Default | None = DEFAULT,
        priority: int = 0,
        key: str | None = None,
        on_conflict: OnConflict | str = OnConflict.SKIP,
        run_at: datetime.datetime | float | None = None,
        delay: float | None = None,
        connection: object | None = None,
    ) -> Job:
        """Validate params and queue one job.

        ``connection`` (PostgreSQL): your own open psycopg connection. The job is inserted in
        its transaction and not committed: it exists, and no worker can claim it, until you
        commit; if you roll back it never existed. Workers hear of it at your commit. On
        SQLite it is refused with :class:`~andon.UsageError` (see the README).

        ``run_at`` (an aware ``datetime``, or unix seconds) or ``delay`` (seconds from now)
        schedule it: it stays ``queued`` and no worker starts it before then
        (:attr:`Job.due_at`); a cancel before then withdraws it, and it never starts.

        With a ``key``, at most one job of ``kind`` with that key is active at a time, and
        ``on_conflict`` says what happens while one is (``skip``: answer it; ``queue``: one
        job waits behind it; ``supersede``: stop it and queue this one, which starts once it
        has stopped). The answer may then be a job that was already there: use
        :meth:`submit_once` to be told.

        Raises:
            UnknownKind: no handler for ``kind``.
            InvalidParams: the params do not fit the handler (nothing is created).
            InvalidKey: ``key`` is empty, over 256 characters, or holds control characters.
            NotAllowed: the key is held by a job of another owner this client cannot see.
        """
        if key is None:
            return self.submit_many(
                kind,
                [params or {}],
                timeout=timeout,
                priority=priority,
                run_at=run_at,
                delay=delay,
                connection=connection,
            )[0]
        return self.submit_once(
            kind,
            params,
            timeout=timeout,
            priority=priority,
            key=key,
            on_conflict=on_conflict,
            run_at=run_at,
            delay=delay,
            connection=connection,
        ).job

    def submit_once(
        self,
        kind: str,
        params: Mapping[str, Any] | None = None,  # Any: JSON values
        *,
        timeout: float | _Default | None = DEFAULT,
        priority: int = 0,
        key: str | None = None,
        on_conflict: OnConflict | str = OnConflict.SKIP,
        idempotency_key: str | None = None,
        run_at: datetime.datetime | float | None = None,
        delay: float | None = None,
        connection: object | None = None,
    ) -> Submission:
        """:meth:`submit`, answering whether the job was created (``Submission.created``) or
        was there already, and which jobs it superseded.

        ``idempotency_key`` makes the submit safe to send again: within 24 hours
        (``andon._keys.IDEMPOTENCY_WINDOW_S``) of the first submit with it by the same
        principal, the same submit answers what the first did and creates nothing.

        Raises:
            IdempotencyKeyReused: ``idempotency_key`` was first sent with another submit.
            JobNotFound: the job the first submit with ``idempotency_key`` answered was deleted.
            UsageError: ``on_conflict`` is not one of skip, queue, supersede.
            (and what :meth:`submit` raises)
        """
        policy = on_conflict_of(on_conflict)
        (new,) = self._new_jobs(
            kind, [params or {}], timeout, priority, None if key is None else check_key(key), due_time(run_at, delay)
        )
        idempotency = None
        if idempotency_key is not None:
            check_key(idempotency_key, "idempotency key")
            idempotency = IdempotencyKey(self._owner or "", idempotency_key, _fingerprint(new, policy))
        submission = self.store.submit_one(
            new,
            self.actor,
            on_conflict=policy,
            visible_owner=next(iter(self._owners), None),
            idempotency=idempotency,
            connection=connection,
        )
        if connection is not None:
            return submission  # nothing is committed yet: workers hear of it at the caller's commit
        for old in submission.superseded:
            if old.status is JobStatus.CANCELLING and old.cancel is not None:
                deliver_here(old.id, old.cancel.reason, old.cancel.message)
        if submission.created:
            wake_here()
        return submission

    def submit_many(
        self,
        kind: str,
        params_list: Iterable[Mapping[str, Any]],
        *,
        timeout: float | _Default | None = DEFAULT,
        priority: int = 0,
        run_at: datetime.datetime | float | None = None,
        delay: float | None = None,
        connection: object | None = None,
    ) -> list[Job]:
        """Queue many jobs of one kind in one transaction: all are created or none.
        (Keyed jobs are submitted one at a time: :meth:`submit` with ``key``.) With
        ``connection``, in that transaction of yours (see :meth:`submit`)."""
        due = due_time(run_at, delay)
        new = self._new_jobs(kind, params_list, timeout, priority, None, due)
        if connection is not None:
            return self.store.submit(new, self.actor, connection=connection)
        jobs = self.store.submit(new, self.actor)
        wake_here()
        return jobs

    def _new_jobs(
        self,
        kind: str,
        params_list: Iterable[Mapping[str, Any]],
        timeout: float | _Default | None,
        priority: int,
        key: str | None = None,
        due: Due = NOW,
    ) -> list[NewJob]:
        spec = self._app().get(kind)
        timeout_s = spec.timeout_s if timeout is DEFAULT else timeout
        return new_jobs(
            spec,
            params_list,
            timeout_s=timeout_s,
            priority=priority,
            owner=self._owner,
            key=key,
            due=due,
        )

    @property
    def _owner(self) -> str | None:
        return self.principal.name if self.principal is not None else None

    @property
    def _owners(self) -> list[str]:
        """The owners a listing is limited to: none (all) unless a ``user`` is acting."""
        principal = self.principal
        return [] if principal is None or principal.is_admin else [principal.name]

    def _require_visible(self, job_id: str) -> Job:
        """The job, if the caller may see it; another user's job is *not found* (no leak)."""
        job = self.store.get(_checked(job_id))
        if self.principal is not None and not self.principal.may_see(job.owner):
            raise JobNotFound(job_id)
        return job

    def retry(self, job_id: str) -> Job:
        """Queue a new job with the same kind and params as a failed or cancelled one.

        Raises:
            JobNotFound: unknown id.
            InvalidTransition: the job is still active, or it succeeded.
            JobPruned: its params were pruned (``andon prune``).
        """
        old = self.get(job_id)
        if old.pruned_at is not None and old.status in RETRYABLE_STATUSES:
            raise JobPruned(job_id, old.status.value, "retry", old.pruned_at)
        if old.status not in RETRYABLE_STATUSES:
            raise InvalidTransition(
                job_id,
                old.status.value,
                "retry",
                f"cannot retry job {job_id}: it is {old.status.value} (only failed or cancelled jobs can be retried)",
            )
        spec = self._app().get(old.kind)
        new = NewJob(
            id=new_job_id(),
            kind=old.kind,
            params=spec.validate(old.params),
            max_attempts=spec.retry.max_attempts,
            retry_backoff_s=spec.retry.backoff_s,
            timeout_s=old.timeout_s,
            priority=old.priority,
            retry_of=old.id,
            owner=self._owner if self.principal is not None else old.owner,
            retry_resume=spec.retry.resume,
        )
        job = self.store.submit([new], self.actor)[0]
        wake_here()
        return job

    def _app(self) -> App:
        if self.app is None:
            raise ConfigurationError("this client has no app; pass app= to submit or retry jobs")
        return self.app

    # -- reading --------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        """Raises :class:`~andon.JobNotFound` (also for another user's job)."""
        return self._require_visible(job_id)

    def list_jobs(
        self,
        *,
        statuses: Collection[JobStatus | str] = (),
        kinds: Collection[str] = (),
        limit: int = 50,
        cursor: str | None = None,
        max_bytes: int | None = PAGE_MAX_BYTES,
        parent: str | None = None,
        root: str | None = None,
        scheduled: bool | None = None,
    ) -> Page:
        """History, newest first, one page: at most ``limit`` jobs (1 to 1,000) and
        ``max_bytes`` of stored values (at least one job; ``None``: no bound in bytes).

        A page may end before ``limit`` jobs; ``next_cursor`` is where the next one starts,
        ``None`` at the end. ``parent`` keeps the direct children of that job, ``root`` every
        job of the tree it started (not the root itself); an id no job has gives no jobs.
        ``scheduled=True`` keeps the queued jobs that are not due yet (:attr:`Job.due_at`),
        ``False`` leaves them out.

        Raises:
            InvalidCursor: ``cursor`` is not one a page gave (a job id).
            UsageError: ``parent`` or ``root`` is not a job id.
        """
        if cursor is not None and not is_job_id(cursor):
            raise InvalidCursor(cursor)
        where = JobFilter(
            statuses=[JobStatus(s) for s in statuses],
            kinds=list(kinds),
            owners=self._owners,
            parents=[] if parent is None else [_filter_id("parent", parent)],
            roots=[] if root is None else [_filter_id("root", root)],
            scheduled=scheduled,
        )
        return self.store.list_jobs(where, _rows(limit), cursor, None if max_bytes is None else max(1, max_bytes))

    def children(
        self,
        job_id: str,
        *,
        statuses: Collection[JobStatus | str] = (),
        limit: int = 50,
        cursor: str | None = None,
        max_bytes: int | None = PAGE_MAX_BYTES,
    ) -> Page:
        """One page of the job's direct children, newest first, paged as :meth:`list_jobs`.

        A ``user`` sees only the children it owns (children submitted by a handler are
        owned as the handler's job says; see ``ctx.submit``).

        Raises:
            JobNotFound: unknown id (also another user's job).
            InvalidCursor: ``cursor`` is not one a page gave.
        """
        self._require_visible(job_id)
        return self.list_jobs(statuses=statuses, limit=limit, cursor=cursor, max_bytes=max_bytes, parent=job_id)

    def descendants(self, job_id: str, *, limit: int = 1000) -> list[Job]:
        """The job's descendants, nearest first: its children, then theirs..., at most ``limit``
        (a whole level is read before the next; within one, newest parent's children first).

        Reads one query per level per 1,000 jobs, so a deep tree costs its depth, a wide one
        its size / 1,000; ``limit`` bounds both. Compare with :meth:`descendant_counts` to
        tell how many were left out.

        Raises:
            JobNotFound: unknown id (also another user's job).
        """
        self._require_visible(job_id)
        found: list[Job] = []
        level = [job_id]
        while level and len(found) < limit:
            below: list[Job] = []
            for start in range(0, len(level), _MAX_PAGE_ROWS):
                below += self._children_of(level[start : start + _MAX_PAGE_ROWS], limit - len(found) - len(below))
            found += below
            level = [job.id for job in below]
        return found[:limit]

    def _children_of(self, parents: list[str], limit: int) -> list[Job]:
        where = JobFilter(parents=parents, owners=self._owners)
        jobs: list[Job] = []
        cursor = None
        while len(jobs) < limit:
            page = self.store.list_jobs(where, _rows(limit - len(jobs)), cursor, PAGE_MAX_BYTES)
            jobs += page.items
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        return jobs

    def child_counts(self, job_ids: Collection[str]) -> dict[str, dict[JobStatus, int]]:
        """How many direct children each of ``job_ids`` has, by status, in one read; jobs
        without children (and ids that are not job ids) are left out.

        For listings (one grouped read per page, at most 1,000 ids). A ``user`` gets counts
        only for its own jobs: its ids are checked in one more read.

        Raises:
            UsageError: more than 1,000 ids.
        """
        if len(job_ids) > _MAX_PAGE_ROWS:
            raise UsageError(f"child counts of at most {_MAX_PAGE_ROWS} jobs at once (a page's worth)")
        ids = [i for i in job_ids if is_job_id(i)]
        if ids and self._owners:
            where = JobFilter(ids=ids, owners=self._owners)
            ids = [job.id for job in self.store.list_jobs(where, len(ids), None, None).items]
        return self.store.child_counts(ids) if ids else {}

    def descendant_counts(self, job_id: str) -> dict[JobStatus, int]:
        """How many descendants (children, their children...) the job has, by status.

        Raises:
            JobNotFound: unknown id (also another user's job).
        """
        self._require_visible(job_id)
        return self.store.descendant_counts(job_id)

    def events(self, job_id: str) -> list[JobEvent]:
        """The job's whole history, oldest first (see :meth:`events_page` for a bounded read)."""
        if self.principal is not None:
            self._require_visible(job_id)
        return self.store.events(_checked(job_id))

    def events_page(
        self, job_id: str, offset: int = 0, limit: int = _MAX_PAGE_ROWS, *, max_bytes: int = PAGE_MAX_BYTES
    ) -> OffsetPage[JobEvent]:
        """One page of the job's history: the events after the first ``offset``, at most
        ``limit`` (1 to 1,000) and ``max_bytes`` of stored text (at least one event).
        ``next_offset`` is where the next page starts, ``None`` at the end."""
        if self.principal is not None:
            self._require_visible(job_id)
        return self.store.events_page(_checked(job_id), _clamp(offset), _rows(limit), max(1, max_bytes))

    def results(self, job_id: str, offset: int = 0, limit: int | None = None) -> list[ResultItem]:
        """Partial results in emit order, readable while the job runs and after it ends.

        ``offset`` and ``limit`` are clamped to what a database can count (0 to 2**63-1);
        ``limit=None`` reads to the end.
        """
        if self.principal is not None:
            self._require_visible(job_id)
        bounded = None if limit is None else _clamp(limit)
        return self.store.items(_checked(job_id), _clamp(offset), bounded)

    def results_page(
        self, job_id: str, offset: int = 0, limit: int = 100, *, max_bytes: int = PAGE_MAX_BYTES
    ) -> OffsetPage[ResultItem]:
        """One page of partial results: the items after the first ``offset``, at most
        ``limit`` (1 to 1,000) and ``max_bytes`` of stored JSON (at least one item), and
        only those are read. ``next_offset`` is where the next page starts, ``None`` when
        this one reached the last item stored so far."""
        if self.principal is not None:
            self._require_visible(job_id)
        return self.store.items_page(_checked(job_id), _clamp(offset), _rows(limit), max(1, max_bytes))

    def result_pages(self, job_id: str, offset: int = 0, limit: int | None = None) -> Iterator[list[ResultItem]]:
        """The items from ``offset`` on, at most ``limit`` (``None``: to the end), one bounded
        page at a time (:meth:`results_page`), so gigabytes of output are read in the memory
        of one page."""
        left = limit
        while left is None or left > 0:
            page = self.results_page(job_id, offset, _MAX_PAGE_ROWS if left is None else min(left, _MAX_PAGE_ROWS))
            yield page.items
            if page.next_offset is None:
                return
            offset = page.next_offset
            left = None if left is None else left - len(page.items)

    def export_results(self, job_id: str, format: ResultsFormat | str = ResultsFormat.JSONL) -> ResultsExport:
        """A job's items as a file to take away, in any state: iterate the answer for its text,
        a page at a time. JSON Lines holds each item's data on a line; CSV (only when every
        item is a JSON object of scalars) a header of the keys, then a row per item. The file
        holds the items stored when this is called.

        Raises:
            JobNotFound: unknown id.
            ItemsNotFlat: CSV was asked for and an item is not a flat object (this is
                checked here, before any of the file is written).
            UsageError: an unknown format.
        """
        if format not in tuple(ResultsFormat):
            raise UsageError(f"unknown format {format!r}: use one of {', '.join(ResultsFormat)}")
        job = self.get(job_id)
        if job.pruned_at is not None:
            raise JobPruned(job_id, job.status.value, "export the results of", job.pruned_at)
        return export_results(
            job, ResultsFormat(format), lambda offset, limit: self.result_pages(job.id, offset, limit)
        )

    def kind_stats(self) -> list[KindStats]:
        """Figures per kind: how its jobs ended, how fast they stopped when cancelled, and
        its limits (``max_running``, ``rate``) as the store enforces them, with their use."""
        return self.store.kind_stats()

    def stop_stats(self) -> list[StopStats]:
        """How the jobs of each kind stopped when asked: how many, median, p99 and slowest
        time from the request to the stop, by which method, and whether the kind usually needs
        force (:attr:`StopStats.needs_force`); a cheap read (only stopped jobs)."""
        return self.store.stop_stats()

    def kind_limits(self) -> list[KindLimitUse]:
        """The limits per kind the store enforces (written by workers as they start from
        ``@app.job(max_running=, rate=)``), each with its use now; a cheap read."""
        return self.store.kind_limits()

    def workers(self) -> list[WorkerInfo]:
        """Every worker in the store's registry, newest first: where it runs, what it claims,
        its slots, and what it is now (alive, silent for N s, stopped, dead: ``status``,
        decided from its heartbeat and how it ended), with the jobs it holds now. A ``user``
        sees every worker and how many jobs each runs, but only the ids of its own jobs.
        Rows of workers gone for a day are pruned. A cheap read."""
        owners = self._owners
        return self.store.workers(visible_owner=owners[0] if owners else None)

    def metrics(self) -> MetricsSnapshot:
        """The figures ``GET /metrics`` reports, for every job whoever owns it: active jobs by
        kind and state, what ended, and stop times (see :class:`MetricsSnapshot`). A cheap
        read at any history size."""
        return self.store.metrics()

    def wait_finished(self, job_id: str, timeout: float | None = None) -> Job:
        """Block until the job is in a terminal state; returns it.

        Raises:
            WaitTimeout: ``timeout`` seconds passed first.
        """
        return self._wait(job_id, timeout, lambda job: job.is_terminal)

    def wait_stopped(self, job_id: str, timeout: float | None = None) -> Job:
        """Block until no attempt of the job is running: it is terminal, or queued again
        (a force-fail or failure its retry policy re-queued). Returns the job.

        Raises:
            WaitTimeout: ``timeout`` seconds passed first.
        """
        return self._wait(job_id, timeout, lambda job: not job.status.is_underway)

    def _wait(self, job_id: str, timeout: float | None, done: Callable[[Job], bool]) -> Job:
        deadline = None if timeout is None else time.monotonic() + timeout
        watcher = self.store.watch({Change.ENDED})
        try:
            while True:
                job = self.get(job_id)
                if done(job):
                    return job
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    assert timeout is not None
                    raise WaitTimeout(job_id, job.status.value, timeout)
                watcher.wait(0.5 if remaining is None else min(0.5, remaining))
        finally:
            watcher.close()

    # -- stopping -------------------------------------------------------------

    def cancel(
        self,
        job_id: str,
        *,
        reason: CancelReason = CancelReason.USER,
        message: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
        grace: float | None = None,
    ) -> CancelResult:
        """Cancel a job: a queued job never starts; a running one is stopped.

        A second cancel is a no-op reporting the current state, unless it asks for less
        grace. With ``wait=True`` this blocks until the work has stopped (a cancel point for
        nothing: it just waits) and returns the job in its terminal state.

        Args:
            grace: at most this many seconds for the work to stop by itself before andon
                stops it by force; ``0`` stops it at once (``andon cancel --now``). ``None``:
                the kind's rule (its grace for a handler that listens, none for one that
                does not). It can shorten a stop already under way, never lengthen it.

        Raises:
            JobNotFound: unknown id.
            JobFinished: the job already succeeded or failed.
            WaitTimeout: ``wait=True`` and the job did not stop within ``timeout``.
            ValueError: ``grace`` is negative or not finite (``TypeError``: not a number).
        """
        return self._stop(job_id, reason, message, retry=True, wait=wait, timeout=timeout, grace=grace)

    def fail(
        self,
        job_id: str,
        *,
        retry: bool = True,
        message: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> CancelResult:
        """Force-fail: stop the work and record the job ``failed`` (reason ``forced``).

        It counts as a failure, so the kind's retry policy applies unless ``retry=False``.
        With ``wait=True`` this blocks until the attempt has stopped: the job is then
        ``failed``, or ``queued`` again for its next attempt.
        """
        return self._stop(job_id, CancelReason.FORCED, message, retry=retry, wait=wait, timeout=timeout)

    def _stop(
        self,
        job_id: str,
        reason: CancelReason,
        message: str | None,
        *,
        retry: bool,
        wait: bool,
        timeout: float | None,
        grace: float | None = None,
    ) -> CancelResult:
        grace = checked_grace(grace)
        if self.principal is not None:
            self._require_visible(job_id)  # an owner never changes, so checking first is safe
        result = self.store.request_cancel(_checked(job_id), reason, self.actor, message, retry, grace)
        cancel = result.job.cancel
        if result.job.status is JobStatus.CANCELLING and cancel is not None:
            deliver_here(job_id, cancel.reason, cancel.message, cancel.grace_s)
        if wait and not result.job.is_terminal:
            return CancelResult(self.wait_stopped(job_id, timeout), result.outcome)
        return result

    def cancel_many(
        self,
        *,
        ids: Collection[str] = (),
        statuses: Collection[JobStatus | str] = (),
        kinds: Collection[str] = (),
        message: str | None = None,
        grace: float | None = None,
    ) -> BulkCancel:
        """Cancel every active job matching the filter (all active jobs if it is empty).

        Queued jobs are withdrawn (answered by id); running ones are asked to stop
        (answered with their snapshots): wait on those with :meth:`wait_finished`.
        ``grace`` as for :meth:`cancel` (``0``: stop them all at once).
        """
        grace = checked_grace(grace)
        where = JobFilter(
            statuses=[JobStatus(s) for s in statuses],
            kinds=list(kinds),
            ids=[_checked(i) for i in ids],
            owners=self._owners,
        )
        done = self.store.request_cancel_many(where, CancelReason.USER, self.actor, message, grace)
        for result in done.stopping:
            cancel = result.job.cancel
            if result.job.status is JobStatus.CANCELLING and cancel is not None:
                deliver_here(result.job.id, cancel.reason, cancel.message, cancel.grace_s)
        return done

    def delete(self, job_id: str, *, timeout: float | None = 60.0) -> None:
        """Cancel the job if it is active (reason ``deleted``), wait until it stopped, and
        delete it with its history and results.

        Raises:
            JobNotFound: unknown id.
            WaitTimeout: the work did not stop within ``timeout``.
        """
        job = self.get(job_id)
        if job.status.is_active:
            with contextlib.suppress(JobFinished):  # it finished on its own meanwhile
                self._stop(job_id, CancelReason.DELETED, None, retry=False, wait=True, timeout=timeout)
        self.store.delete(job_id)

    # -- resume and pause ------------------------------------------------------

    def resume(self, job_id: str) -> Job:
        """Go on where a cancelled or failed job left off: the same job is queued again as a
        new attempt that starts from its last checkpoint (``ctx.resumed``); what it emitted
        after that checkpoint is dropped, and its history records who resumed it, from which
        checkpoint. Unlike :meth:`retry`, no new job is made and nothing is done twice.

        Raises:
            JobNotFound: unknown id.
            InvalidTransition: the job is not cancelled or failed, or has no checkpoint.
            JobPruned: its checkpoint was pruned (``andon prune``).
        """
        found = self._require_visible(job_id)
        if found.pruned_at is not None:
            raise JobPruned(job_id, found.status.value, "resume", found.pruned_at)
        job = self.store.resume(_checked(job_id), self.actor)
        wake_here()
        return job

    def pause(self, kind: str, *, now: bool = False, message: str | None = None) -> PauseResult:
        """Stop claiming jobs of ``kind``: its queued jobs wait (each with the pause in its
        history). With ``now=True`` its running jobs are also stopped (reason ``paused``) and
        go back to the queue, to resume from their checkpoints once the kind is unpaused.

        Raises:
            NotAllowed: the caller is not an admin (a pause holds everyone's jobs).
            UnknownKind: the client's app has no such kind.
        """
        self._require_admin("pause a kind")
        if self.app is not None:
            self.app.get(kind)
        result = self.store.pause_kind(kind, self.actor, message, now)
        for job in result.stopping:
            deliver_here(job.id, CancelReason.PAUSED, message)
        return result

    def unpause(self, kind: str) -> bool:
        """Let workers claim ``kind`` again; ``False`` if it was not paused."""
        self._require_admin("unpause a kind")
        removed = self.store.unpause_kind(kind, self.actor)
        wake_here()
        return removed

    def paused_kinds(self) -> list[PausedKind]:
        """The kinds no worker claims now, with who paused each and when."""
        return self.store.paused_kinds()

    # -- retention (admin only) -----------------------------------------------

    def prune(
        self,
        older_than_s: float,
        *,
        statuses: Collection[JobStatus | str] = TERMINAL_STATUSES,
        kinds: Collection[str] = (),
        purge: bool = False,
        dry_run: bool = False,
        batch: int = DEFAULT_PRUNE_BATCH,
    ) -> PruneResult:
        """Prune the history of jobs that finished more than ``older_than_s`` seconds ago:
        their params, result, traceback, progress, checkpoint, items and events go, and a
        tombstone of each stays (id, kind, final state, times, owner, tree and the cancel
        record: who, why, how it stopped). With ``purge`` the jobs are deleted outright.

        It runs in transactions of at most ``batch`` jobs, so other writers (claims,
        submits) go on between them; a job whose tree still has an active job is left
        alone. It blocks until done and is not a checkpoint.

        Args:
            older_than_s: how long ago a job must have finished, in seconds.
            statuses: only jobs that ended so (any of succeeded, failed, cancelled).
            kinds: only jobs of these kinds (all kinds if empty).
            purge: delete the jobs, tombstones included, instead of leaving tombstones.
            dry_run: change nothing; say what would be removed.
            batch: jobs per transaction (1 to 10,000).

        Raises:
            NotAllowed: the caller is not an admin (a prune removes everyone's history).
            UsageError: a negative age, a status that is not final or unknown, a bad batch.
        """
        self._require_admin("prune history")
        return self.store.prune(
            older_than_s,
            statuses=[_status(s) for s in statuses],
            kinds=list(kinds),
            purge=purge,
            batch=batch,
            dry_run=dry_run,
        )

    # -- schedules (periodic jobs) --------------------------------------------

    def list_schedules(self, *, ticks: int = 5) -> list[Schedule]:
        """Every schedule, by name, with its next tick and its latest ``ticks`` (newest first)."""
        return self.store.list_schedules(ticks=_clamp(ticks))

    def get_schedule(self, name: str, *, ticks: int = 5) -> Schedule:
        """Raises :class:`~andon.ScheduleNotFound`."""
        return self.store.get_schedule(name, ticks=_clamp(ticks))

    def schedule_ticks(self, name: str, *, limit: int = 100) -> list[Tick]:
        """What became of the schedule's ticks, newest first: the job each made, or why it
        made none (``skipped`` naming the active job, ``missed`` while no scheduler ran).
        Also for a removed schedule. Raises :class:`~andon.ScheduleNotFound` for a name
        that never ticked and does not exist."""
        return self.store.schedule_ticks(name, limit=_rows(limit))

    def scheduler_lease(self) -> SchedulerLease | None:
        """Which worker's scheduler leads now; ``None`` if none does (no worker runs one)."""
        return self.store.scheduler_lease()

    def add_schedule(
        self,
        name: str,
        kind: str,
        params: Mapping[str, Any] | None = None,  # Any: JSON values
        *,
        cron: str | None = None,
        every: float | None = None,
        timezone: str = "UTC",
        overlap: OnConflict | str = OnConflict.SKIP,
        catch_up: CatchUp | str = CatchUp.LATEST,
        priority: int = 0,
        timeout: float | None = None,
    ) -> Schedule:
        """Add a runtime schedule (as ``@app.periodic`` declares one; see there for the
        arguments). It ticks from the first tick after now, fired by whichever worker leads.

        Raises:
            NotAllowed: the caller is not an admin.
            InvalidSchedule: a bad name, cron expression, interval, time zone or policy.
            UnknownKind, InvalidParams: the kind or params do not fit the client's app.
            ScheduleExists: the name is taken.
        """
        self._require_admin("add schedules")
        kind_spec = self._app().get(kind)
        clean = kind_spec.validate(params or {})
        spec = ScheduleSpec(
            name=name,
            kind=kind,
            params=clean,
            cron=cron,
            every_s=every,
            timezone=timezone,
            overlap=overlap,  # type: ignore[arg-type]  # a word: ScheduleSpec checks and converts it
            catch_up=catch_up,  # type: ignore[arg-type]  # the same
            priority=priority,
            timeout_s=timeout,
        )
        return self.store.add_schedule(spec, self.actor)

    def remove_schedule(self, name: str) -> None:
        """Remove a runtime schedule; its ticks stay in history, its jobs go on.

        Raises:
            NotAllowed: the caller is not an admin.
            ScheduleNotFound: no such schedule.
            ScheduleFromApp: the app declares it (remove it from the code, or pause it).
        """
        self._require_admin("remove schedules")
        self.store.remove_schedule(name, self.actor)

    def pause_schedule(self, name: str) -> Schedule:
        """Stop the schedule's ticks (a job it made goes on). Idempotent; a worker's start
        keeps the pause of an app schedule. Raises NotAllowed, ScheduleNotFound."""
        self._require_admin("pause schedules")
        return self.store.pause_schedule(name, self.actor)

    def resume_schedule(self, name: str) -> Schedule:
        """Tick again from the first tick after now (the ticks of the pause are not made up).
        Idempotent. Raises NotAllowed, ScheduleNotFound."""
        self._require_admin("resume schedules")
        return self.store.resume_schedule(name, self.actor)

    def trigger_schedule(self, name: str) -> Tick:
        """Make the schedule's job now, through its overlap policy (with ``skip`` while its
        job is active, nothing is made and the trace says so). Raises NotAllowed,
        ScheduleNotFound."""
        self._require_admin("trigger schedules")
        tick = self.store.trigger_schedule(name, self.actor, functools.partial(job_of_tick, self.app))
        wake_here()
        return tick

    # -- tokens (admin only) --------------------------------------------------

    def create_token(self, name: str, role: Role | str) -> IssuedToken:
        """Create an API token; the returned secret is shown once and only its hash is stored.

        Raises:
            NotAllowed: the caller is not an admin.
            UsageError: a bad or taken name.
        """
        self._require_admin("create tokens")
        token = new_token()
        if role not in tuple(Role):
            raise UsageError(f"unknown role {role!r}: use one of {', '.join(Role)}")
        record = self.store.create_token(check_token_name(name), Role(role), hash_token(token))
        return IssuedToken(token, record)

    def list_tokens(self) -> list[TokenRecord]:
        """Every token (never a secret or hash), revoked ones too, oldest first."""
        self._require_admin("list tokens")
        return self.store.list_tokens()

    def revoke_token(self, name: str) -> TokenRecord:
        """Revoke a token: requests carrying it are refused from then on."""
        self._require_admin("revoke tokens")
        return self.store.revoke_token(name)

    def _require_admin(self, operation: str) -> None:
        if self.principal is not None and not self.principal.is_admin:
            raise NotAllowed(operation)


def _status(value: JobStatus | str) -> JobStatus:
    try:
        return JobStatus(value)
    except ValueError:
        raise UsageError(f"unknown status {value!r}: use succeeded, failed or cancelled") from None


def _fingerprint(job: NewJob, on_conflict: OnConflict) -> str:
    """What makes two submits the same request, for an idempotency key: the job as it would
    be made (params validated, the kind's defaults applied) and what to do on a conflict."""
    request = {
        "kind": job.kind,
        "params": job.params,
        "timeout_s": job.timeout_s,
        "priority": job.priority,
        "key": job.key,
        "on_conflict": on_conflict.value if job.key is not None else None,
    }
    return hashlib.sha256(json.dumps(request, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _clamp(number: int) -> int:
    """``number`` within 0..2**63-1, the range of the stores' integers."""
    return max(0, min(number, _MAX_DB_INT))


def _rows(limit: int) -> int:
    """A page's row count within 1.._MAX_PAGE_ROWS."""
    return max(1, min(limit, _MAX_PAGE_ROWS))


def _filter_id(name: str, job_id: str) -> str:
    if not is_job_id(job_id):
        raise UsageError(f"{name}: {job_id[:100]!r} is not a job id")
    return job_id


def _checked(job_id: str) -> str:
    """Reject what cannot be a job id before it reaches the store."""
    if not is_job_id(job_id):
        raise JobNotFound(job_id)
    return job_id


def connect(url: str | None = None, app: App | None = None, *, actor: str | None = None) -> Client:
    """Open the store ``url`` names (default: ``$ANDON_DATABASE_URL`` or ``sqlite:///andon.db``)
    and return a client that closes it when closed."""
    return Client(open_store(url), app, actor=actor, owns_store=True)


def checked_grace(grace: object) -> float | None:
    """A cancel's ``grace`` as seconds (``None``: the kind's rule), or the caller's error.

    Raises:
        TypeError: not a number.
        ValueError: negative, NaN or infinite.
    """
    if grace is None:
        return None
    if isinstance(grace, bool) or not isinstance(grace, int | float):
        raise TypeError(f"a cancel's grace must be a number of seconds, not {type(grace).__name__}")
    seconds = float(grace)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a cancel's grace must be 0 or more seconds, not {grace!r}")
    return seconds
