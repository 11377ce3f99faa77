"""The scheduler: a thread of every worker that, while it leads, fires the ticks of every
schedule in the store.

Leading is holding the store's ``scheduler`` lease (``_storage/_ops/_schedules.py``) of
``lease_s`` seconds (5 by default). The leader renews it every fifth of that and fires only
while its last renewal is under two thirds of ``lease_s`` old; the others look at the lease
every second (reads only) and take it once it is free or expired. So when a leader dies
(``kill -9``, a lost machine) another worker leads within ``lease_s`` plus one second of its
last renewal: **at most about 6 s** with the defaults. A leader that stops cleanly gives the
lease up, and another takes over within a second. Each tick is handled once whatever the
overlap of two leaders (the tick's row is its proof); see ``andon._schedules`` for what a
tick does.

Between ticks the leader sleeps until the next one is due, at most one second (schedules
added meanwhile are seen within it). Every wait is on the worker's clock.
"""

from __future__ import annotations

import logging
import threading
from typing import Final, final

from andon._clock import Clock
from andon._errors import AndonError, InvalidParams
from andon._family import new_jobs
from andon._registry import App
from andon._schedules import ScheduleSpec
from andon._storage import NewJob, Store
from andon._storage._ops._schedules import plain_job

__all__ = ["DEFAULT_SCHEDULER_LEASE_S", "Scheduler", "job_of_tick"]

log = logging.getLogger("andon.scheduler")

DEFAULT_SCHEDULER_LEASE_S: Final = 5.0
_MAX_SLEEP_S: Final = 1.0
_MAX_BACKOFF_S: Final = 5.0


@final
class Scheduler:
    """Leads (or waits to lead) and fires due ticks; one per worker.

    Args:
        app: its declared schedules are synced into the store at start; its kinds' settings
            (retry, default timeout) apply to the jobs of ticks.
        store: an open store.
        holder: who leads, as recorded on ticks and the lease (the worker's id).
        clock: the worker's clock.
        lease_s: how long a lease lasts without renewal (the takeover bound is this plus 1 s).
    """

    def __init__(
        self, app: App, store: Store, holder: str, clock: Clock, lease_s: float = DEFAULT_SCHEDULER_LEASE_S
    ) -> None:
        self.app = app
        self.store = store
        self.holder = holder
        self.clock = clock
        self.lease_s = lease_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._leading = False
        self._renewed_at = float("-inf")

    @property
    def is_leader(self) -> bool:
        return self._leading

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="andon-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop firing and give the lease up. Blocks until the thread has ended."""
        self.stop_nowait()
        if self._thread is not None:
            self._thread.join()

    def stop_nowait(self) -> None:
        """Ask the thread to stop (it fires no tick after its current one); :meth:`stop` waits."""
        self._stop.set()
        self._wake.set()

    def wake(self) -> None:
        """Look at the schedules now (one was added or changed in this process)."""
        self._wake.set()

    def _loop(self) -> None:
        failures = 0
        synced = False
        while not self._stop.is_set():
            try:
                if not synced:
                    self._sync()
                    synced = True
                pause = self._step()
                if failures:
                    log.info("scheduler %s: the store answers again", self.holder)
                failures = 0
            except AndonError as exc:
                failures += 1
                self._leading = False
                (log.warning if failures == 1 else log.debug)("scheduler %s: %s", self.holder, exc)
                pause = min(_MAX_BACKOFF_S, 0.1 * 2**failures)
            except Exception:  # a bug: logged in full, and the scheduler goes on
                failures += 1
                self._leading = False
                log.exception("scheduler %s failed unexpectedly", self.holder)
                pause = min(_MAX_BACKOFF_S, 0.1 * 2**failures)
            self.clock.wait(self._wake, max(0.0, pause))
            self._wake.clear()
        if self._leading:
            try:
                self.store.release_scheduler_lease(self.holder)
            except AndonError as exc:
                log.info("scheduler %s: could not give the lease up (it expires): %s", self.holder, exc)

    def _sync(self) -> None:
        removed = self.store.sync_schedules(self.app.schedules, self.holder)
        if removed:
            log.info("scheduler %s: removed app schedules no longer declared: %s", self.holder, ", ".join(removed))

    def _step(self) -> float:
        """Lead or try to; fire what is due. Returns how long to sleep."""
        renew_every = self.lease_s / 5
        if self._leading and self.clock.monotonic() - self._renewed_at < renew_every:
            pass
        elif self._leading or self._lease_free():
            began = self.clock.monotonic()
            was_leading = self._leading
            self._leading = self.store.take_scheduler_lease(self.holder, self.lease_s)
            if self._leading:
                self._renewed_at = began
                if not was_leading:
                    log.info("scheduler %s leads: it fires the ticks of every schedule", self.holder)
            elif was_leading:
                log.warning("scheduler %s lost the lead", self.holder)
        if not self._leading:
            return _MAX_SLEEP_S
        # Fenced: a leader that could not renew for two thirds of its lease stops firing
        # before another may take over (the tick rows would refuse a double fire anyway).
        if self.clock.monotonic() - self._renewed_at >= self.lease_s * 2 / 3:
            return 0.0
        self.store.fire_due(self.clock.now(), self.holder, self._make_job)
        until_renewal = self._renewed_at + renew_every - self.clock.monotonic()
        next_at = self.store.next_tick_at()
        until_tick = _MAX_SLEEP_S if next_at is None else next_at - self.clock.now()
        return max(0.0, min(_MAX_SLEEP_S, until_renewal, until_tick))

    def _lease_free(self) -> bool:
        lease = self.store.scheduler_lease()
        return lease is None or lease.holder == self.holder

    def _make_job(self, spec: ScheduleSpec) -> NewJob:
        return job_of_tick(self.app, spec)


def job_of_tick(app: App | None, spec: ScheduleSpec) -> NewJob:
    """The job of one tick of ``spec``, with its kind's settings (retry, default timeout)
    when ``app`` knows the kind."""
    if app is None or spec.kind not in app:
        return plain_job(spec)
    kind = app.get(spec.kind)
    timeout = spec.timeout_s if spec.timeout_s is not None else kind.timeout_s
    try:
        (job,) = new_jobs(kind, [spec.params], timeout_s=timeout, priority=spec.priority, owner=None)
    except InvalidParams as exc:
        # The code changed under a stored schedule: the job is made as it stands and fails
        # visibly when it runs, rather than the tick vanishing.
        log.warning("schedule %s: %s", spec.name, exc)
        return plain_job(spec)
    return job
