"""The async client: the operations of :class:`~andon.Client` as coroutines, for asyncio
services, and :meth:`AsyncClient.watch`.

Design. Every rule (validation, access checks, how a job is built, keys, schedules) lives
once, in :class:`~andon.Client` and the storage engine; an :class:`AsyncClient` holds a
``Client`` and runs its short blocking operations on a small pool of threads of its own,
so the event loop only ever awaits them. What may take long is never a blocking call on a
thread: a wait (``cancel(wait=True)``, :meth:`AsyncClient.wait_finished`,
:meth:`AsyncClient.watch`) awaits the store's change feed on the loop (PostgreSQL:
``LISTEN`` on a psycopg async connection; SQLite: its ``data_version`` watcher on one
thread), and one *lookout* task reads every awaited job in one query per change, however
many coroutines wait, so a hundred waits cost what one does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime
import enum
import functools
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection, Generator, Iterable, Iterator, Mapping
from typing import Any, Final, ParamSpec, TypeVar, final

from andon._access import IssuedToken, Principal, Role, TokenRecord
from andon._cancel import CancelReason
from andon._client import Client
from andon._errors import JobFinished, JobNotFound, LifecycleError, StorageError, UsageError, WaitTimeout
from andon._family import due_time
from andon._jobs import TERMINAL_STATUSES, Job, JobEvent, JobStatus, ResultItem, life_stage
from andon._keys import OnConflict
from andon._registry import DEFAULT, App, _Default
from andon._schedules import CatchUp, Schedule, Tick
from andon._storage import (
    PAGE_MAX_BYTES,
    BulkCancel,
    CancelResult,
    Change,
    JobFilter,
    KindLimitUse,
    KindStats,
    MetricsSnapshot,
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
from andon._storage._async_watch import AsyncChanges
from andon._storage._ops._retention import DEFAULT_PRUNE_BATCH
from andon._workers import WorkerInfo

__all__ = ["AsyncClient", "connect_async"]

log = logging.getLogger("andon.client")

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_THREADS: Final = 2
"""Threads per client for the store's blocking operations. A few are enough: each
operation is one short transaction, and waits never hold a thread."""
_FALLBACK_POLL_S: Final = 0.5
"""How often awaited jobs are read even without a change (as :meth:`Client.wait_finished`
does): a claim sends no notification, and a notification can be lost with a connection."""
_READ_CHUNK: Final = 1000
_MAX_PAGE_ROWS: Final = 1000


class _State(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


_GONE: Final = None
"""What the lookout hands a waiter whose job no longer exists (it was deleted)."""


@final
class _Inbox:
    """The snapshots of one job for one waiter, in life-stage order, without repeats: a
    snapshot older than one already taken, or the same again, is dropped on arrival."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Job | None] = asyncio.Queue()
        self._last: tuple[int, object] | None = None

    def offer(self, job: Job | None) -> None:
        if job is None:
            self._queue.put_nowait(_GONE)
            return
        key = (life_stage(job), (job.progress_done, job.progress_total, job.progress_message, job.items_count))
        last = self._last
        if last is not None and (key[0] < last[0] or key == last):
            return
        self._last = key
        self._queue.put_nowait(job)

    async def next(self, job_id: str) -> Job:
        job = await self._queue.get()
        if job is None:
            raise JobNotFound(job_id)
        return job


_Read = tuple[dict[str, Job | None], dict[str, tuple[object, ...]]]
"""What one read of the lookout found: the jobs that moved (``None``: gone), and where each is."""


@final
class _Lookout:
    """Reads every job that someone awaits, once per change of the store, in one query,
    and hands each waiter its job's snapshot."""

    def __init__(self, store: Store, run: Callable[[Callable[[], _Read]], asyncio.Future[_Read]]):
        self._store = store
        self._run = run
        self._inboxes: dict[str, set[_Inbox]] = {}
        self._changes: AsyncChanges | None = None
        self._starting: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start watching on the running loop (once; every waiter awaits the same start)."""
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start())
        # A waiter cancelled meanwhile must not cancel the start the others await.
        await asyncio.shield(self._starting)

    async def _start(self) -> None:
        changes = self._store.watch_async({Change.CANCEL, Change.ENDED})
        await changes.start()
        self._changes = changes
        self._task = asyncio.create_task(self._watch(changes), name="andon-async-lookout")

    @contextlib.contextmanager
    def subscription(self, job_id: str) -> Iterator[_Inbox]:
        inbox = _Inbox()
        self._inboxes.setdefault(job_id, set()).add(inbox)
        try:
            yield inbox
        finally:
            inboxes = self._inboxes.get(job_id)
            if inboxes is not None:
                inboxes.discard(inbox)
                if not inboxes:
                    del self._inboxes[job_id]

    async def _watch(self, changes: AsyncChanges) -> None:
        seen = changes.generation
        known: dict[str, tuple[object, ...]] = {}
        while True:
            seen = await changes.wait(seen, _FALLBACK_POLL_S)
            ids = list(self._inboxes)
            for job_id in list(known):
                if job_id not in self._inboxes:
                    del known[job_id]
            if not ids:
                continue
            try:
                found, known = await self._run(functools.partial(self._read, ids, known))
            except StorageError as exc:  # the store retried already; the waits go on
                log.warning("cannot read the awaited jobs (%s); trying again", exc)
                continue
            for job_id, job in found.items():
                for inbox in list(self._inboxes.get(job_id, ())):
                    inbox.offer(job)

    def _read(self, ids: list[str], known: dict[str, tuple[object, ...]]) -> _Read:
        """The awaited jobs that moved since ``known`` (a cheap read of where each is first,
        then whole snapshots of those that moved only: every change of the store wakes the
        lookout, and most are of other jobs), ``None`` for one that is gone; and where each is."""
        stages = self._store.stages(ids)
        moved = [job_id for job_id in ids if job_id in stages and stages[job_id] != known.get(job_id)]
        found: dict[str, Job | None] = {job_id: None for job_id in ids if job_id not in stages}
        for start in range(0, len(moved), _READ_CHUNK):
            chunk = moved[start : start + _READ_CHUNK]
            page = self._store.list_jobs(JobFilter(ids=chunk), len(chunk), None, None)
            found.update((job.id, job) for job in page.items)
        return found, stages

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
        changes, self._changes = self._changes, None
        if changes is not None:
            await changes.aclose()


@final
class _Plumbing:
    """What the clients on one store share whoever they act for: threads and the lookout."""

    def __init__(self, store: Store, threads: int, owns_store: bool) -> None:
        self.store = store
        self.owns_store = owns_store
        self.executor = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="andon-async")
        self.lookout = _Lookout(store, self.run)
        self.state = _State.OPEN

    def run(self, function: Callable[[], T]) -> asyncio.Future[T]:
        if self.state is _State.CLOSED:
            raise LifecycleError("this async client is closed; open a new one (andon.connect_async)")
        return asyncio.get_running_loop().run_in_executor(self.executor, function)

    async def close(self) -> None:
        if self.state is _State.CLOSED:
            return
        await self.lookout.close()
        self.state = _State.CLOSED
        loop = asyncio.get_running_loop()
        if self.owns_store:
            await loop.run_in_executor(self.executor, self.store.close)
        # The threads end once idle; waiting for them would block the loop.
        self.executor.shutdown(wait=False)


@final
class AsyncClient:
    """The operations of :class:`~andon.Client`, under the same names and with the same
    arguments, as coroutines; none of them blocks the event loop.

    Blocking store calls run on a few threads of the client's own (``threads``); waits
    (``cancel(wait=True)``, :meth:`wait_finished`, :meth:`watch`) await the store's
    notifications on the loop. Open one with :func:`connect_async`, or over a store you
    already have (``AsyncClient(store, app)``, which leaves the store open when closed);
    use it from one event loop, and close it (``await client.close()``, or ``async with``).

    Cancelling a coroutine of this client while it awaits a store operation stops the
    await, not the operation: a submit or cancel already handed to the store completes.
    Cancelling a wait just ends the wait.

    Args:
        store: an open store.
        app: the job kinds, needed to submit (params are validated against them).
        actor: who is acting, recorded in job history.
        principal: the caller, when it is known (see :meth:`acting_as`).
        threads: threads for the store's blocking operations.
    """

    def __init__(
        self,
        store: Store,
        app: App | None = None,
        *,
        actor: str | None = None,
        principal: Principal | None = None,
        threads: int = DEFAULT_THREADS,
        owns_store: bool = False,
    ) -> None:
        self._sync = Client(store, app, actor=actor, principal=principal)
        self._plumbing = _Plumbing(store, threads, owns_store)
        self._owns_plumbing = True

    @classmethod
    def _sharing(cls, sync: Client, plumbing: _Plumbing) -> AsyncClient:
        client = cls.__new__(cls)
        client._sync = sync
        client._plumbing = plumbing
        client._owns_plumbing = False
        return client

    @property
    def store(self) -> Store:
        return self._sync.store

    @property
    def app(self) -> App | None:
        return self._sync.app

    @property
    def actor(self) -> str | None:
        return self._sync.actor

    @property
    def principal(self) -> Principal | None:
        return self._sync.principal

    @property
    def sync(self) -> Client:
        """The synchronous client this one runs (the same store, app and principal)."""
        return self._sync

    def acting_as(self, principal: Principal | None) -> AsyncClient:
        """A client on the same store, threads and watch, acting for ``principal``
        (see :meth:`Client.acting_as`); closing it closes nothing."""
        if principal is None:
            return self
        return AsyncClient._sharing(self._sync.acting_as(principal), self._plumbing)

    async def close(self) -> None:
        """Stop watching, let the threads go, and close the store if this client opened it.
        (A client made by :meth:`acting_as` leaves all that to the one it came from.)"""
        if self._owns_plumbing:
            await self._plumbing.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def _call(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._plumbing.run(functools.partial(function, *args, **kwargs))

    # -- submitting -----------------------------------------------------------

    async def submit(
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
        """:meth:`Client.submit`: validate params and queue one job (``run_at``/``delay``
        schedule it; ``key``/``on_conflict`` as there).

        ``connection`` (PostgreSQL): your open ``psycopg.AsyncConnection``; the job is
        inserted in its transaction, on the loop, and not committed: it exists, and workers
        hear of it, only if you commit. Not with a ``key`` (use :class:`Client` with a
        ``psycopg.Connection`` for that); SQLite refuses it.
        """
        if connection is not None:
            if key is not None:
                raise UsageError(
                    "AsyncClient.submit(connection=...) takes no key: use Client with a psycopg.Connection"
                )
            return (await self._submit_in(connection, kind, [params or {}], timeout, priority, run_at, delay))[0]
        return await self._call(
            self._sync.submit,
            kind,
            params,
            timeout=timeout,
            priority=priority,
            key=key,
            on_conflict=on_conflict,
            run_at=run_at,
            delay=delay,
        )

    async def submit_once(
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
        """:meth:`Client.submit_once`: submit, answering whether the job was created.
        ``connection`` as for :meth:`submit` (without ``key`` or ``idempotency_key``)."""
        if connection is not None:
            if key is not None or idempotency_key is not None:
                raise UsageError(
                    "AsyncClient.submit_once(connection=...) takes no key or idempotency key:"
                    " use Client with a psycopg.Connection"
                )
            (job,) = await self._submit_in(connection, kind, [params or {}], timeout, priority, run_at, delay)
            return Submission(job, True)
        return await self._call(
            self._sync.submit_once,
            kind,
            params,
            timeout=timeout,
            priority=priority,
            key=key,
            on_conflict=on_conflict,
            idempotency_key=idempotency_key,
            run_at=run_at,
            delay=delay,
        )

    async def submit_many(
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
        """:meth:`Client.submit_many`: many jobs of one kind in one transaction, all or none
        (with ``connection``, in yours: see :meth:`submit`)."""
        params = list(params_list)  # a lazy iterable is read here, not on a thread
        if connection is not None:
            return await self._submit_in(connection, kind, params, timeout, priority, run_at, delay)
        return await self._call(
            self._sync.submit_many, kind, params, timeout=timeout, priority=priority, run_at=run_at, delay=delay
        )

    async def _submit_in(
        self,
        connection: object,
        kind: str,
        params_list: list[Mapping[str, Any]],
        timeout: float | _Default | None,
        priority: int,
        run_at: datetime.datetime | float | None,
        delay: float | None,
    ) -> list[Job]:
        """New jobs, built by the sync client's rules, inserted on the caller's async connection."""
        new = self._sync._new_jobs(kind, params_list, timeout, priority, None, due_time(run_at, delay))
        return await self._sync.store.submit_async(connection, new, self._sync.actor)

    async def retry(self, job_id: str) -> Job:
        """:meth:`Client.retry`: a new job with the params of a failed or cancelled one."""
        return await self._call(self._sync.retry, job_id)

    # -- reading --------------------------------------------------------------

    async def get(self, job_id: str) -> Job:
        """Raises :class:`~andon.JobNotFound` (also for another user's job)."""
        return await self._call(self._sync.get, job_id)

    async def list_jobs(
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
        """:meth:`Client.list_jobs`: one page of history, newest first."""
        return await self._call(
            self._sync.list_jobs,
            statuses=statuses,
            kinds=kinds,
            limit=limit,
            cursor=cursor,
            max_bytes=max_bytes,
            parent=parent,
            root=root,
            scheduled=scheduled,
        )

    async def children(
        self,
        job_id: str,
        *,
        statuses: Collection[JobStatus | str] = (),
        limit: int = 50,
        cursor: str | None = None,
        max_bytes: int | None = PAGE_MAX_BYTES,
    ) -> Page:
        """:meth:`Client.children`: one page of the job's direct children."""
        return await self._call(
            self._sync.children, job_id, statuses=statuses, limit=limit, cursor=cursor, max_bytes=max_bytes
        )

    async def descendants(self, job_id: str, *, limit: int = 1000) -> list[Job]:
        """:meth:`Client.descendants`: the job's descendants, nearest first."""
        return await self._call(self._sync.descendants, job_id, limit=limit)

    async def child_counts(self, job_ids: Collection[str]) -> dict[str, dict[JobStatus, int]]:
        """:meth:`Client.child_counts`: direct children by status, per job."""
        return await self._call(self._sync.child_counts, list(job_ids))

    async def descendant_counts(self, job_id: str) -> dict[JobStatus, int]:
        """:meth:`Client.descendant_counts`: descendants by status."""
        return await self._call(self._sync.descendant_counts, job_id)

    async def events(self, job_id: str) -> list[JobEvent]:
        """:meth:`Client.events`: the job's whole history, oldest first."""
        return await self._call(self._sync.events, job_id)

    async def events_page(
        self, job_id: str, offset: int = 0, limit: int = _MAX_PAGE_ROWS, *, max_bytes: int = PAGE_MAX_BYTES
    ) -> OffsetPage[JobEvent]:
        """:meth:`Client.events_page`: one bounded page of the job's history."""
        return await self._call(self._sync.events_page, job_id, offset, limit, max_bytes=max_bytes)

    async def results(self, job_id: str, offset: int = 0, limit: int | None = None) -> list[ResultItem]:
        """:meth:`Client.results`: partial results in emit order."""
        return await self._call(self._sync.results, job_id, offset, limit)

    async def results_page(
        self, job_id: str, offset: int = 0, limit: int = 100, *, max_bytes: int = PAGE_MAX_BYTES
    ) -> OffsetPage[ResultItem]:
        """:meth:`Client.results_page`: one bounded page of partial results."""
        return await self._call(self._sync.results_page, job_id, offset, limit, max_bytes=max_bytes)

    async def result_pages(
        self, job_id: str, offset: int = 0, limit: int | None = None
    ) -> AsyncIterator[list[ResultItem]]:
        """:meth:`Client.result_pages`: the items from ``offset`` on, one bounded page at a time."""
        left = limit
        while left is None or left > 0:
            size = _MAX_PAGE_ROWS if left is None else min(left, _MAX_PAGE_ROWS)
            page = await self.results_page(job_id, offset, size)
            yield page.items
            if page.next_offset is None:
                return
            offset = page.next_offset
            left = None if left is None else left - len(page.items)

    async def kind_stats(self) -> list[KindStats]:
        return await self._call(self._sync.kind_stats)

    async def stop_stats(self) -> list[StopStats]:
        """:meth:`Client.stop_stats`: how the jobs of each kind stopped when asked."""
        return await self._call(self._sync.stop_stats)

    async def kind_limits(self) -> list[KindLimitUse]:
        """:meth:`Client.kind_limits`: the limits per kind the store enforces, with their use now."""
        return await self._call(self._sync.kind_limits)

    async def workers(self) -> list[WorkerInfo]:
        """:meth:`Client.workers`: every worker in the registry, with its status and the jobs it holds."""
        return await self._call(self._sync.workers)

    async def metrics(self) -> MetricsSnapshot:
        """:meth:`Client.metrics`: the figures ``GET /metrics`` reports."""
        return await self._call(self._sync.metrics)

    # -- waiting --------------------------------------------------------------

    async def wait_finished(self, job_id: str, timeout: float | None = None) -> Job:
        """Wait until the job is in a terminal state; returns it. It awaits the store's
        notifications (no thread is held); cancelling it just ends the wait.

        Raises:
            JobNotFound: unknown id, or the job was deleted meanwhile.
            WaitTimeout: ``timeout`` seconds passed first.
        """
        return await self._wait(job_id, timeout, lambda job: job.is_terminal)

    async def wait_stopped(self, job_id: str, timeout: float | None = None) -> Job:
        """Wait until no attempt of the job is running: it is terminal, or queued again.
        As :meth:`wait_finished` otherwise."""
        return await self._wait(job_id, timeout, lambda job: not job.status.is_underway)

    async def _wait(self, job_id: str, timeout: float | None, done: Callable[[Job], bool]) -> Job:
        last: Job | None = None
        try:
            async with asyncio.timeout(timeout):
                async with contextlib.aclosing(self._snapshots(job_id)) as snapshots:
                    async for job in snapshots:
                        last = job
                        if done(job):
                            return job
        except TimeoutError:
            assert timeout is not None
            raise WaitTimeout(job_id, "unknown" if last is None else last.status.value, timeout) from None
        raise AssertionError("a job's snapshots never end")  # pragma: no cover

    async def watch(self, job_id: str) -> AsyncIterator[Job]:
        """The job's changes as they happen: its snapshot now, then one each time it
        changes (its state, a stop request, progress), in life-stage order
        (:func:`~andon.life_stage`) and never the same twice, ending after the snapshot in
        which the job is terminal (at once if it is already).

        A change is seen when the store reports it (a notification on PostgreSQL, a commit
        on SQLite) or at the latest half a second later; snapshots are read, not logged, so
        a state that lasted less than one read may be passed over (the job's history,
        :meth:`events`, has every step). Leaving the loop early stops the watch.

        Raises:
            JobNotFound: unknown id (also another user's job), or the job was deleted.
        """
        async with contextlib.aclosing(self._snapshots(job_id)) as snapshots:
            async for job in snapshots:
                yield job
                if job.is_terminal:
                    return

    async def _snapshots(self, job_id: str) -> AsyncGenerator[Job, None]:
        await self._plumbing.lookout.start()
        with self._plumbing.lookout.subscription(job_id) as inbox:
            # Subscribed first, read second: a change committed after this read reaches the inbox.
            inbox.offer(await self.get(job_id))
            while True:
                yield await inbox.next(job_id)

    # -- stopping -------------------------------------------------------------

    async def cancel(
        self,
        job_id: str,
        *,
        reason: CancelReason = CancelReason.USER,
        message: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
        grace: float | None = None,
    ) -> CancelResult:
        """:meth:`Client.cancel`: a queued job never starts; a running one is stopped. With
        ``wait=True`` it then awaits the stop (notifications, no thread held) and returns
        the job in its terminal state. ``grace=0`` stops it at once.

        Raises:
            JobNotFound: unknown id.
            JobFinished: the job already succeeded or failed.
            WaitTimeout: ``wait=True`` and the job did not stop within ``timeout``.
            ValueError: ``grace`` is negative or not finite (``TypeError``: not a number).
        """
        return await self._stop(job_id, reason, message, retry=True, wait=wait, timeout=timeout, grace=grace)

    async def fail(
        self,
        job_id: str,
        *,
        retry: bool = True,
        message: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> CancelResult:
        """:meth:`Client.fail`: force-fail (reason ``forced``); ``wait=True`` awaits the stop."""
        return await self._stop(job_id, CancelReason.FORCED, message, retry=retry, wait=wait, timeout=timeout)

    async def _stop(
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
        # The request through the sync client (its checks, the local workers told at once);
        # the wait here, on the loop.
        result = await self._call(
            self._sync._stop, job_id, reason, message, retry=retry, wait=False, timeout=None, grace=grace
        )
        if wait and not result.job.is_terminal:
            return CancelResult(await self.wait_stopped(job_id, timeout), result.outcome)
        return result

    async def cancel_many(
        self,
        *,
        ids: Collection[str] = (),
        statuses: Collection[JobStatus | str] = (),
        kinds: Collection[str] = (),
        message: str | None = None,
        grace: float | None = None,
    ) -> BulkCancel:
        """:meth:`Client.cancel_many`: cancel every active job matching the filter."""
        return await self._call(
            self._sync.cancel_many, ids=ids, statuses=statuses, kinds=kinds, message=message, grace=grace
        )

    async def delete(self, job_id: str, *, timeout: float | None = 60.0) -> None:
        """:meth:`Client.delete`: cancel the job if it is active (reason ``deleted``), await
        its stop, and delete it with its history and results.

        Raises:
            JobNotFound: unknown id.
            WaitTimeout: the work did not stop within ``timeout``.
        """
        job = await self.get(job_id)
        if job.status.is_active:
            with contextlib.suppress(JobFinished):  # it finished on its own meanwhile
                await self._stop(job_id, CancelReason.DELETED, None, retry=False, wait=True, timeout=timeout)
        await self._call(self._sync.store.delete, job_id)

    # -- resume and pause ------------------------------------------------------

    async def resume(self, job_id: str) -> Job:
        """:meth:`Client.resume`: queue the same job again from its last checkpoint."""
        return await self._call(self._sync.resume, job_id)

    async def pause(self, kind: str, *, now: bool = False, message: str | None = None) -> PauseResult:
        """:meth:`Client.pause`: stop claiming jobs of ``kind`` (admin only)."""
        return await self._call(self._sync.pause, kind, now=now, message=message)

    async def unpause(self, kind: str) -> bool:
        """:meth:`Client.unpause`: let workers claim ``kind`` again."""
        return await self._call(self._sync.unpause, kind)

    async def paused_kinds(self) -> list[PausedKind]:
        return await self._call(self._sync.paused_kinds)

    # -- retention (admin only) -----------------------------------------------

    async def prune(
        self,
        older_than_s: float,
        *,
        statuses: Collection[JobStatus | str] = TERMINAL_STATUSES,
        kinds: Collection[str] = (),
        purge: bool = False,
        dry_run: bool = False,
        batch: int = DEFAULT_PRUNE_BATCH,
    ) -> PruneResult:
        """:meth:`Client.prune`, on one of the client's threads (it runs in short batches)."""
        return await self._call(
            self._sync.prune, older_than_s, statuses=statuses, kinds=kinds, purge=purge, dry_run=dry_run, batch=batch
        )

    # -- schedules (periodic jobs) --------------------------------------------

    async def list_schedules(self, *, ticks: int = 5) -> list[Schedule]:
        return await self._call(self._sync.list_schedules, ticks=ticks)

    async def get_schedule(self, name: str, *, ticks: int = 5) -> Schedule:
        return await self._call(self._sync.get_schedule, name, ticks=ticks)

    async def schedule_ticks(self, name: str, *, limit: int = 100) -> list[Tick]:
        return await self._call(self._sync.schedule_ticks, name, limit=limit)

    async def scheduler_lease(self) -> SchedulerLease | None:
        return await self._call(self._sync.scheduler_lease)

    async def add_schedule(
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
        """:meth:`Client.add_schedule`."""
        return await self._call(
            self._sync.add_schedule,
            name,
            kind,
            params,
            cron=cron,
            every=every,
            timezone=timezone,
            overlap=overlap,
            catch_up=catch_up,
            priority=priority,
            timeout=timeout,
        )

    async def remove_schedule(self, name: str) -> None:
        await self._call(self._sync.remove_schedule, name)

    async def pause_schedule(self, name: str) -> Schedule:
        return await self._call(self._sync.pause_schedule, name)

    async def resume_schedule(self, name: str) -> Schedule:
        return await self._call(self._sync.resume_schedule, name)

    async def trigger_schedule(self, name: str) -> Tick:
        return await self._call(self._sync.trigger_schedule, name)

    # -- tokens (admin only) --------------------------------------------------

    async def create_token(self, name: str, role: Role | str) -> IssuedToken:
        return await self._call(self._sync.create_token, name, role)

    async def list_tokens(self) -> list[TokenRecord]:
        return await self._call(self._sync.list_tokens)

    async def revoke_token(self, name: str) -> TokenRecord:
        return await self._call(self._sync.revoke_token, name)


@final
class _Opening:
    """What :func:`connect_async` returns: await it for the client, or enter it with
    ``async with`` to have the client closed at the end of the block."""

    def __init__(self, url: str | None, app: App | None, actor: str | None, threads: int) -> None:
        self._url = url
        self._app = app
        self._actor = actor
        self._threads = threads
        self._client: AsyncClient | None = None

    async def _open(self) -> AsyncClient:
        loop = asyncio.get_running_loop()
        # Opening a store connects (and for SQLite may create the schema): not on the loop.
        store = await loop.run_in_executor(None, open_store, self._url)
        return AsyncClient(store, self._app, actor=self._actor, threads=self._threads, owns_store=True)

    def __await__(self) -> Generator[Any, None, AsyncClient]:  # Any: what asyncio's futures yield
        return self._open().__await__()

    async def __aenter__(self) -> AsyncClient:
        self._client = await self._open()
        return self._client

    async def __aexit__(self, *_exc: object) -> None:
        if self._client is not None:
            await self._client.close()


def connect_async(
    url: str | None = None, app: App | None = None, *, actor: str | None = None, threads: int = DEFAULT_THREADS
) -> _Opening:
    """Open the store ``url`` names (as :func:`~andon.connect` does) without blocking the
    loop, and return an :class:`AsyncClient` that closes it when closed:
    ``client = await andon.connect_async(url, app)``, or
    ``async with andon.connect_async(url, app) as client: ...``.

    Raises:
        StorageUnavailable: the database cannot be reached.
        ConfigurationError: a bad URL, or a schema at another version.
    """
    return _Opening(url, app, actor, threads)
