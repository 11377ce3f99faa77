"""Live events: one broadcaster per app turns store changes into Server-Sent Events.

* The broadcaster task waits for the store's change watcher (a blocking wait, run on the
  broadcaster's own thread) for at most ``interval_s``, then looks at the jobs worth
  watching: every running or cancelling job, the newest queued ones and the newest jobs
  in any state (:meth:`Broadcaster._look`).
* It compares that snapshot with the previous one (:func:`changes`) and publishes
  ``job.created``, ``job.status``, ``job.progress``, ``job.items`` and ``job.deleted``
  events. Each carries the job's summary, so a client can simply replace what it shows.
* Every stream has a bounded queue. When a client is too slow to keep up, its queue is
  replaced by a single ``resync`` event (refetch everything), so memory stays flat
  whatever the client does. A client that (re)connects gets ``hello`` first and should
  fetch the state it shows *after* it: every later change is then in the stream.

The broadcaster diffs snapshots instead of reading a change log, so it needs nothing from
the store but :meth:`andon.Store.watch` and ordinary reads, and works the same over every
store and across processes (a worker elsewhere writes; this server sees the commits).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import enum
import json
import logging
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Final, Protocol, final

import andon
from andon._aio import wait_event
from andon.api._schemas import JobSummary

__all__ = ["Broadcaster", "JobChange", "ServerEvent", "Subscription", "changes"]

log = logging.getLogger("andon.api")

_HELD: Final = (andon.JobStatus.RUNNING, andon.JobStatus.CANCELLING)
_HELD_LIMIT: Final = 1000
_QUEUED_LIMIT: Final = 500
_RECENT_LIMIT: Final = 100
_MIN_GAP_S: Final = 0.1
"""Fewest seconds between two snapshots, however often the store changes (progress is
written every 50 ms while jobs run)."""
_FULL_LOOK_S: Final = 2.0
"""Look anyway this often, even when the watcher saw no change (belt and braces)."""
_ERROR_BACKOFF_S: Final = 1.0


@dataclass(frozen=True, slots=True)
class JobChange:
    """One event about one job: ``job`` is ``None`` for ``job.deleted``."""

    type: str
    job_id: str
    job: andon.Job | None


def changes(
    previous: Mapping[str, andon.Job],
    current: Mapping[str, andon.Job],
    deleted: Collection[str] = (),
) -> list[JobChange]:
    """What happened between two snapshots (``{id: job}``), oldest job first.

    A job not seen before is ``job.created`` when it is newer than every job of the
    previous snapshot (ids sort by creation time), and ``job.status`` otherwise (it came
    into view because its state changed, e.g. an old queued job was claimed). One job may
    give several events: a cancelled counter gives ``job.status`` and ``job.items``.
    """
    newest = max(previous, default=None)
    found: list[JobChange] = []
    for job_id in sorted(current):
        job = current[job_id]
        old = previous.get(job_id)
        if old is None:
            kind = "job.created" if newest is None or job_id > newest else "job.status"
            found.append(JobChange(kind, job_id, job))
            continue
        if (old.status, old.attempt, old.cancel, old.error, old.awaiting) != (
            job.status,
            job.attempt,
            job.cancel,
            job.error,
            job.awaiting,
        ):
            found.append(JobChange("job.status", job_id, job))
        if (old.progress_done, old.progress_total, old.progress_message) != (
            job.progress_done,
            job.progress_total,
            job.progress_message,
        ):
            found.append(JobChange("job.progress", job_id, job))
        if old.items_count != job.items_count:
            found.append(JobChange("job.items", job_id, job))
    found.extend(JobChange("job.deleted", job_id, None) for job_id in sorted(deleted))
    return found


@dataclass(frozen=True, slots=True)
class ServerEvent:
    """One SSE message, encoded once and shared by every stream.

    ``scoped`` events are about one job, owned by ``owner``: a stream limited to one owner
    gets only that owner's (see :class:`Subscription`).
    """

    data: bytes
    scoped: bool = False
    owner: str | None = None

    @classmethod
    def of(
        cls, event_id: int | None, name: str, data: str, *, scoped: bool = False, owner: str | None = None
    ) -> ServerEvent:
        """``data`` is one line of JSON."""
        lines = [] if event_id is None else [f"id: {event_id}"]
        lines += [f"event: {name}", f"data: {data}"]
        return cls(("\n".join(lines) + "\n\n").encode(), scoped, owner)


RESYNC: Final = ServerEvent.of(None, "resync", '{"type":"resync"}')
KEEP_ALIVE: Final = ServerEvent(b": keep-alive\n\n")


@final
class Subscription:
    """One stream's bounded queue. Used on the event loop's thread only.

    With an ``owner``, only events about that owner's jobs are queued (a ``user``'s stream).
    """

    def __init__(self, size: int, owner: str | None = None) -> None:
        self._size = size
        self.owner = owner
        self._queue: collections.deque[ServerEvent] = collections.deque()
        self._ready = asyncio.Event()
        self.closed = False
        self.resyncs = 0

    def offer(self, event: ServerEvent) -> None:
        """Queue ``event``; a full queue is replaced by one ``resync`` (the client refetches)."""
        if self.closed or (self.owner is not None and event.scoped and event.owner != self.owner):
            return
        if len(self._queue) >= self._size:
            self._queue.clear()
            self._queue.append(RESYNC)
            self.resyncs += 1
        else:
            self._queue.append(event)
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def next(self, keepalive_s: float) -> ServerEvent | None:
        """The next event; :data:`KEEP_ALIVE` after ``keepalive_s`` idle seconds; ``None`` once closed."""
        while not self._queue:
            if self.closed:
                return None
            self._ready.clear()
            if not await wait_event(self._ready, keepalive_s):
                return KEEP_ALIVE
        if self.closed:
            return None
        return self._queue.popleft()


class _Watcher(Protocol):
    def wait(self, timeout: float) -> bool: ...

    def close(self) -> None: ...


class BroadcasterState(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


@final
class Broadcaster:
    """Publishes job changes to every open event stream of one app.

    Args:
        client: reads the jobs (its store's ``watch()`` wakes the broadcaster).
        interval_s: longest wait for the watcher before looking anyway.
        queue_size: events a stream may fall behind before it gets ``resync``.
    """

    def __init__(self, client: andon.Client, *, interval_s: float = 0.25, queue_size: int = 256) -> None:
        self._client = client
        self._interval_s = interval_s
        self._queue_size = queue_size
        self._subscriptions: set[Subscription] = set()
        self._jobs: dict[str, andon.Job] = {}
        self._baseline = False
        self._last_look = 0.0
        self._last_id = 0
        self._thread: concurrent.futures.ThreadPoolExecutor | None = None
        self._watcher: _Watcher | None = None
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.state = BroadcasterState.NEW

    @property
    def last_id(self) -> int:
        return self._last_id

    @property
    def subscriptions(self) -> int:
        return len(self._subscriptions)

    # -- lifecycle (event loop thread) ----------------------------------------

    async def start(self) -> None:
        if self.state is not BroadcasterState.NEW:
            raise andon.LifecycleError(f"this broadcaster is {self.state.value}; it starts once")
        self.state = BroadcasterState.RUNNING
        # One thread of its own: the watcher's blocking wait and the snapshots never take a
        # thread from the request pool, and the store keeps one connection for them.
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="andon-events")
        loop = asyncio.get_running_loop()
        self._watcher = await loop.run_in_executor(self._thread, self._client.store.watch)
        # The first look is the baseline, taken before the app serves: a stream's `hello`
        # then means "every change from now on will be sent".
        await loop.run_in_executor(self._thread, self._poll)
        self._task = asyncio.create_task(self._run(), name="andon-events")

    async def stop(self) -> None:
        """End every stream and the task; waits for the thread's current look to end."""
        if self.state is not BroadcasterState.RUNNING:
            self.state = BroadcasterState.CLOSED
            return
        self.state = BroadcasterState.CLOSED
        self.close_streams()
        if self._watcher is not None:
            self._watcher.close()  # wakes a wait in progress at once
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._thread is not None:
            await asyncio.to_thread(self._thread.shutdown, wait=True)

    def close_streams(self) -> None:
        """End every open stream (the server is stopping); new streams end at once too."""
        self._closing = True
        for subscription in list(self._subscriptions):
            subscription.close()
        self._subscriptions.clear()

    def subscribe(self, owner: str | None = None) -> Subscription:
        """A new stream's queue; with ``owner``, it gets only events about that owner's jobs."""
        subscription = Subscription(self._queue_size, owner)
        if self.state is not BroadcasterState.RUNNING or self._closing:
            subscription.close()
        else:
            self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscription.close()
        self._subscriptions.discard(subscription)

    # -- the loop -------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._thread is not None
        while True:
            started = loop.time()
            try:
                found = await loop.run_in_executor(self._thread, self._poll)
            except Exception:  # a storage hiccup must not end live updates for good
                log.warning("event stream: reading jobs failed; retrying", exc_info=True)
                await asyncio.sleep(_ERROR_BACKOFF_S)
                continue
            for name, data, owner in found:
                self._last_id += 1
                self._publish(ServerEvent.of(self._last_id, name, data, scoped=True, owner=owner))
            await asyncio.sleep(max(0.0, _MIN_GAP_S - (loop.time() - started)))

    def _publish(self, event: ServerEvent) -> None:
        for subscription in list(self._subscriptions):
            subscription.offer(event)

    def _poll(self) -> list[tuple[str, str, str | None]]:
        """Wait for a change, look, and return the events as ``(name, JSON data, job owner)``
        (broadcaster thread)."""
        assert self._watcher is not None
        changed = self._watcher.wait(self._interval_s) if self._baseline else True
        if self.state is not BroadcasterState.RUNNING:
            return []
        if not changed and self._baseline and time.monotonic() - self._last_look < _FULL_LOOK_S:
            return []
        self._last_look = time.monotonic()
        current, deleted = self._look()
        found = changes(self._jobs, current, deleted) if self._baseline else []
        previous = self._jobs
        self._jobs, self._baseline = current, True
        return [(change.type, _encode(change), _owner(change, previous)) for change in found]

    def _look(self) -> tuple[dict[str, andon.Job], list[str]]:
        """The jobs to watch now, and the ids of watched jobs that were deleted."""
        client = self._client
        # Whole lists, not pages bounded in bytes: the floor below needs all _RECENT_LIMIT.
        held = client.list_jobs(statuses=_HELD, limit=_HELD_LIMIT, max_bytes=None).items
        queued = client.list_jobs(statuses=[andon.JobStatus.QUEUED], limit=_QUEUED_LIMIT, max_bytes=None).items
        recent = client.list_jobs(limit=_RECENT_LIMIT, max_bytes=None).items
        current = {job.id: job for job in (*held, *queued, *recent)}
        # The newest jobs are all listed down to this id, so a job above it that is missing now is gone.
        floor = recent[-1].id if len(recent) == _RECENT_LIMIT else None
        deleted: list[str] = []
        for job_id, old in self._jobs.items():
            if job_id in current:
                continue
            if old.status.is_active:
                try:
                    current[job_id] = client.get(job_id)  # it ended, or scrolled out of the lists
                except andon.JobNotFound:
                    deleted.append(job_id)
            elif floor is None or job_id >= floor:
                deleted.append(job_id)
        return current, deleted


def _owner(change: JobChange, previous: Mapping[str, andon.Job]) -> str | None:
    """The owner of the job a change is about (a deleted job's, from the snapshot before)."""
    job = change.job or previous.get(change.job_id)
    return job.owner if job is not None else None


def _encode(change: JobChange) -> str:
    """``{"type", "id", "job"}`` on one line (pydantic writes NaN as null, so it is always JSON)."""
    job = JobSummary.of(change.job).model_dump_json() if change.job is not None else "null"
    return f'{{"type":{json.dumps(change.type)},"id":{json.dumps(change.job_id)},"job":{job}}}'
