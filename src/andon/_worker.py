"""The worker: claim -> run -> record, with cancel delivery, timeouts, escalation and shutdown.

Threads of one worker:

* ``slot-N`` (``concurrency`` of them): claim a job, run it in its runtime, settle it.
* ``control``: wakes on every commit to the store (``Store.watch``: at once when a
  writer of this machine pokes it, see ``_storage/_wake.py``) and on its own schedule;
  delivers cancel requests to running attempts and fires timeouts. A stop the store names
  without a read (PostgreSQL's signed notification) is delivered on the store's listener
  thread at once (:meth:`Worker._heard`); the control thread reads the notices all the same.
* ``lease``: renews the leases of the running attempts every third of ``lease_s`` (sooner
  after a failure) and recovers jobs whose worker was lost.
* ``monitor``: never touches the store, so a store that hangs or is gone cannot hold it up:
  escalates stops that were ignored, abandons threads that cannot be stopped, and fences
  (see below).
* ``flusher``: writes buffered results and progress in batches.
* ``scheduler`` (unless ``scheduler=False``): fires the ticks of periodic schedules while
  this worker leads (``andon._scheduler``).
* ``lookout``: every half second, looks for workers of this machine whose process is gone
  and recovers their jobs at once (``andon._workers``), rather than one lease later.

The worker writes its row in the store's workers registry as it starts, refreshes it with
every renewal of its leases (the heartbeat rides in the renewal's transaction) and marks it
stopped at the end of :meth:`Worker.stop`.

Every attempt is settled exactly once, either by its slot when the handler returns or by
the monitor when it abandons the attempt (``Attempt.take_settlement`` decides); the store
then decides the one terminal state (``andon._jobs.decide_settlement``).

Fencing: an attempt whose lease could not be renewed for two thirds of ``lease_s`` is
stopped with reason ``lease_lost`` (escalating as any stop does) before the lease ends and
another worker may recover the job, so one job never runs in two places at once. An
attempt the store says this worker no longer holds is stopped the same way at once. Store
failures in every loop are retried with backoff; the worker goes on serving once the
store is back.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import enum
import functools
import logging
import os
import random
import socket
import tempfile
import threading
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Final, final

from andon._attempt import Attempt, AttemptState
from andon._cancel import CancelReason, StopMethod
from andon._clock import SYSTEM_CLOCK, Clock
from andon._errors import AndonError, InvalidTransition, JobFinished, LifecycleError, StorageError
from andon._family import Family
from andon._hub import join, leave
from andon._jobs import ErrorInfo, Job, JobStatus, Outcome, OutcomeKind
from andon._output import AttemptEnd, ProgressUpdate
from andon._registry import App, Isolation
from andon._runtimes import close_slot_loop, execution_for
from andon._scheduler import DEFAULT_SCHEDULER_LEASE_S, Scheduler
from andon._stop import Due, Execution, Step, due, ended_now, failure, stopped
from andon._storage import CancelNotice, Change, ChangeWatcher, KindLimit, Store
from andon._tracing import AttemptTrace, attempt_tracer
from andon._workers import LOOKOUT_EVERY_S, Lookout, WorkerRegistration, this_process

__all__ = ["Worker", "WorkerState"]

_jitter: Final = random.Random()
"""Jitter for backoffs and start-up spreads: a generator of andon's own, so the process-wide
``random`` state of the app andon runs in is never touched (nor read by a seeded test)."""

log = logging.getLogger("andon.worker")

_CONTROL_TICK_S: Final = 0.25
_MAX_BACKOFF_S: Final = 5.0
_MAX_CLAIM_BATCH: Final = 32
RETENTION_EVERY_S: Final = 300.0
"""How often a worker with ``retention_s`` prunes old history."""
RETENTION_BATCH: Final = 1000
"""Jobs per transaction of the worker's prune: a claim waits for at most one such batch."""
RETENTION_PASS_JOBS: Final = 20_000
"""Jobs one pass prunes at most, so a stop never waits for a long backlog to be pruned."""
RETENTION_BACKLOG_PAUSE_S: Final = 1.0


class WorkerState(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(slots=True)
class _Running:
    attempt: Attempt
    execution: Execution
    thread: threading.Thread | None
    """The slot thread running it; ``None`` while it waits (microseconds) for an idle slot."""
    trace: AttemptTrace | None = None
    """Its span, when OpenTelemetry is installed (``andon._tracing``)."""


@dataclass(slots=True)
class _PendingEnd:
    attempt: Attempt
    end: AttemptEnd
    trace: AttemptTrace | None = None
    done: bool = False


@final
class Worker:
    """Runs jobs of ``app`` from ``store`` on ``concurrency`` slots.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.

    Args:
        app: the handlers this worker can run; it claims only kinds ``app`` knows.
        store: an open store.
        concurrency: how many jobs run at once.
        lease_s: how long a claim stays valid without renewal; renewed every third of it.
            An attempt that could not be renewed for two thirds of it is stopped (reason
            ``lease_lost``): keep it well above twice the kinds' ``grace``.
        shutdown_grace_s: on :meth:`stop`, how long running jobs may go on before they
            are cancelled with reason ``shutdown`` and put back in the queue.
        flush_interval_s: how often buffered results and progress are written.
        kind_names: the names of the kinds to claim (of those ``app`` knows); all by default.
        spool_dir: where an attempt's output goes beyond its memory budget (8 MiB) while the
            store takes no writes; a temporary folder of this worker's by default.
        clock: where timeouts, grace periods, escalation, leases, fences and backoffs read
            the time (a :class:`~andon.ManualClock` in tests); give the store the same one.
        retention_s: prune the history of jobs that finished more than this many seconds
            ago (as :meth:`andon.Client.prune`, leaving tombstones), every
            ``retention_every_s``, in small batches between which claims go on. One worker
            with it is enough; several are harmless (each batch is checked in its
            transaction). ``None`` (the default): never.
        retention_every_s: how often a worker with ``retention_s`` prunes.
        scheduler: run a scheduler thread (``andon._scheduler``): it syncs ``app``'s
            periodic schedules into the store at start and, while it holds the store's
            scheduler lease, fires the ticks of every schedule. ``False``: neither.
        scheduler_lease_s: the scheduler's lease; a new leader takes over within this plus
            about a second after the old one dies.
        lookout_every_s: how often its :class:`~andon.Lookout` looks for workers of this
            machine whose process is gone (and recovers their jobs at once).
    """

    def __init__(
        self,
        app: App,
        store: Store,
        *,
        concurrency: int = 4,
        worker_id: str | None = None,
        lease_s: float = 30.0,
        shutdown_grace_s: float = 10.0,
        flush_interval_s: float = 0.05,
        idle_poll_s: float = 1.0,
        kind_names: Collection[str] | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        retention_s: float | None = None,
        retention_every_s: float = RETENTION_EVERY_S,
        scheduler: bool = True,
        scheduler_lease_s: float = DEFAULT_SCHEDULER_LEASE_S,
        lookout_every_s: float = LOOKOUT_EVERY_S,
    ) -> None:
        if concurrency < 1:
            raise LifecycleError("a worker needs concurrency >= 1")
        if retention_s is not None and not retention_s >= 0:
            raise LifecycleError(f"retention_s must be 0 or more seconds, not {retention_s!r}")
        if not retention_every_s > 0:
            raise LifecycleError(f"retention_every_s must be more than 0 seconds, not {retention_every_s!r}")
        self.retention_s = retention_s
        self.retention_every_s = retention_every_s
        self.app = app
        self.store = store
        self.concurrency = concurrency
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease_s = lease_s
        self.shutdown_grace_s = shutdown_grace_s
        self.flush_interval_s = flush_interval_s
        self.idle_poll_s = idle_poll_s
        self.clock = clock
        self._tracer = attempt_tracer()
        self.kind_names = list(kind_names) if kind_names is not None else [k.kind for k in app.kinds]
        # Where output the store does not take goes beyond each attempt's memory budget.
        safe_id = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.id)
        self.spool_dir = (
            Path(spool_dir) if spool_dir is not None else Path(tempfile.gettempdir(), "andon-spool", safe_id)
        )
        for kind in self.kind_names:
            app.get(kind)
        self.scheduler = Scheduler(app, store, self.id, clock, scheduler_lease_s) if scheduler else None
        self.lookout = Lookout(store, every_s=lookout_every_s, clock=clock)
        self.registration: WorkerRegistration | None = None
        """What this worker wrote about itself in the workers registry as it started."""
        self.state = WorkerState.NEW
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._generation = 0
        self._running: dict[str, _Running] = {}
        self._stopping = threading.Event()
        self._halt = threading.Event()
        self._flush_wake = threading.Event()
        self._monitor_wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watcher: ChangeWatcher | None = None
        self._unheard = False
        """A stop was named while a claim was in flight: the control thread reads the notices."""
        # Claimed jobs not yet taken by a slot (each is already in _running), and how many
        # slots a claim in progress is for: claims never take more jobs than idle slots.
        self._ready: collections.deque[_Running] = collections.deque()
        self._reserved = 0
        self._drained_generation = -1
        """The generation at which a claim last found fewer jobs than it asked for."""
        self._next_due: float | None = None
        """When the next queued job of this worker's kinds that is not due yet falls due."""
        # Group commit: slots that finish while a settlement is being written queue here
        # and the next writer records them all in one transaction.
        self._settle_lock = threading.Condition(threading.Lock())
        self._settle_queue: list[_PendingEnd] = []
        self._settling = False

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        if self.state is not WorkerState.NEW:
            raise LifecycleError(f"this worker is {self.state.value}; a worker starts once")
        # New work wakes idle slots; cancels are delivered. Jobs ending elsewhere do not
        # matter. Taken first: if the store cannot watch, the worker has not started.
        # A stop the store names without a read (PostgreSQL's notification) is flagged at once.
        self._watcher = self.store.watch({Change.WORK, Change.CANCEL}, on_stop=self._heard)
        # The app's limits per kind reach the store before any claim: claims enforce them there.
        try:
            self.store.sync_kind_limits([KindLimit(k.kind, k.max_running, k.rate) for k in self.app.kinds], self.id)
            specs = [self.app.get(kind) for kind in self.kind_names]
            process_kinds = [kind for kind in specs if kind.isolation is Isolation.PROCESS]
            if process_kinds:
                from andon._runtimes._process import preload_for

                preload_for(kind.handler for kind in process_kinds)
            # In the registry before the first claim: a job it holds always names a known worker.
            self.registration = self._registration()
            self.store.register_worker(self.registration)
        except BaseException:
            self._watcher.close()
            raise
        self.state = WorkerState.RUNNING
        self._spawn("control", self._control_loop)
        self._spawn("lease", self._lease_loop)
        self._spawn("monitor", self._monitor_loop)
        self._spawn("flusher", self._flush_loop)
        if self.retention_s is not None:
            self._spawn("retention", self._retention_loop)
        for index in range(self.concurrency):
            self._spawn(f"slot-{index}", self._slot_loop)
        if self.scheduler is not None:
            self.scheduler.start()
        self.lookout.start()
        join(self)
        log.info(
            "worker %s started: %d slots, kinds %s",
            self.id,
            self.concurrency,
            ", ".join(self.kind_names),
        )

    def stop(self, grace_s: float | None = None) -> None:
        """Graceful shutdown: stop claiming, let running jobs finish for ``grace_s``, then
        cancel them with reason ``shutdown`` (they go back to the queue) and wait for them.

        Blocks until every attempt is settled. Not a cancel point.
        """
        if self.state is not WorkerState.RUNNING:
            return
        self.state = WorkerState.STOPPING
        grace = self.shutdown_grace_s if grace_s is None else grace_s
        deadline = self.clock.monotonic() + grace
        if self.scheduler is not None:
            self.scheduler.stop_nowait()  # joined below, with the other threads
        self._stopping.set()
        self._notify()
        if not self._wait_idle(deadline):
            self.interrupt()
            self._wait_idle(None)
        self._halt.set()
        self._flush_wake.set()
        self._monitor_wake.set()
        if self._watcher is not None:
            self._watcher.close()  # wakes the control thread at once
        self._notify()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join()
        if self.scheduler is not None:
            self.scheduler.stop()
        self.lookout.stop()
        self._record_stop()
        leave(self)
        with contextlib.suppress(OSError):  # only if empty: a journal left behind says why
            self.spool_dir.rmdir()
        self.state = WorkerState.STOPPED
        log.info("worker %s stopped", self.id)

    def _registration(self) -> WorkerRegistration:
        from andon import __version__  # the package's, once it is imported (a worker runs after that)

        return WorkerRegistration(
            self.id, this_process(), __version__, tuple(self.kind_names), self.concurrency, self.lease_s
        )

    def _record_stop(self) -> None:
        """Mark this worker's row stopped (cleanly). If the store does not take it, the row
        goes silent, or (on this machine) is found dead once the process has exited."""
        try:
            self.store.mark_worker_stopped(self.id)
        except AndonError as exc:
            log.warning("worker %s: could not record its stop in the workers registry: %s", self.id, exc)

    def interrupt(self) -> None:
        """Stop every running job now with reason ``shutdown`` (they go back to the queue).

        What :meth:`stop` does once its grace period is over; call it from another thread
        (e.g. on a second Ctrl-C) to cut a graceful stop short. Does not block.
        """
        with self._lock:
            running = list(self._running)
        if running:
            log.info("worker %s: interrupting %d running job(s) for shutdown", self.id, len(running))
        for job_id in running:
            self.deliver(job_id, CancelReason.SHUTDOWN, "the worker is shutting down")

    def __enter__(self) -> Worker:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _spawn(self, name: str, target: object) -> threading.Thread:
        thread = threading.Thread(target=target, name=f"andon-{name}", daemon=True)  # type: ignore[arg-type]  # target is a bound method
        with self._lock:
            self._threads.append(thread)
        thread.start()
        return thread

    def _wait_idle(self, deadline: float | None) -> bool:
        with self._changed:
            # A claim in flight counts: its jobs are not in _running yet, and a slot would
            # start them after stop() had stopped waiting (nobody would then stop them).
            while self._running or self._reserved:
                remaining = None if deadline is None else deadline - self.clock.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(0.05 if remaining is None else min(0.05, remaining))
        return True

    @property
    def running_job_ids(self) -> list[str]:
        with self._lock:
            return list(self._running)

    # -- delivery -------------------------------------------------------------

    def deliver(self, job_id: str, reason: CancelReason, message: str | None, grace_s: float | None = None) -> bool:
        """Tell a running attempt to stop. ``True`` if it runs here and this was news to it.

        ``grace_s``: the request asked for at most this much grace (a second request for
        less, on a stop already under way, brings its next rung forward).
        """
        with self._lock:
            running = self._running.get(job_id)
        if running is None:
            return False
        # The grace first: the monitor must never see the request without it.
        if running.attempt.stop.ask_grace(grace_s):
            self._monitor_wake.set()
        if not running.attempt.request_stop(reason, message):
            return False
        if running.trace is not None:
            running.trace.cancel_requested(reason, message, self.clock.now())
        running.execution.deliver()
        self._monitor_wake.set()  # its escalation is now due at some point
        return True

    def _heard(self, notice: CancelNotice) -> None:
        """A committed stop request named by the store's notification (on the store's
        listener thread): deliver it now if it is for the attempt running here; the control
        thread reads the cancel notices all the same."""
        with self._lock:
            running = self._running.get(notice.job_id)
            if running is None and self._reserved:
                self._unheard = True  # a claim in flight may be taking it: read the notices
        if running is not None and running.attempt.job.attempt == notice.attempt:
            self.deliver(notice.job_id, notice.reason, notice.message, notice.grace_s)

    def wake(self) -> None:
        """Wake idle slots to claim (jobs were submitted in this process)."""
        self._notify()

    def _notify(self) -> None:
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    # -- slots ----------------------------------------------------------------

    def _slot_loop(self) -> None:
        try:
            while True:
                try:
                    self._claim_and_run()
                    return
                except Exception:  # a bug: the slot must not die of it (its job settles below)
                    log.exception("worker %s: a slot failed unexpectedly; it goes on", self.id)
                    self._halt.wait(0.05)
        finally:
            close_slot_loop()

    def _claim_and_run(self) -> None:
        failures = 0
        while True:
            with self._changed:
                running = self._ready.popleft() if self._ready else None
                generation = self._generation
                if running is None:
                    if self._stopping.is_set():
                        return
                    want = min(_MAX_CLAIM_BATCH, self.concurrency - len(self._running) - self._reserved)
                    if want <= 0 or generation == self._drained_generation:
                        # Another slot is claiming for this one, or the queue was empty at
                        # this generation: wait for its jobs, for news from the store, or
                        # for the next poll.
                        began = self.clock.monotonic()
                        wait = self.idle_poll_s
                        due = self._next_due
                        if due is not None:
                            # A scheduled job (or a retry's backoff) falls due before the poll.
                            wait = min(wait, max(0.0, due - self.clock.now()))
                        self._changed.wait(wait)
                        if due is not None and self.clock.now() >= due:
                            self._next_due = None
                            self._drained_generation = -1
                        elif self._generation == generation and self.clock.monotonic() - began >= self.idle_poll_s:
                            self._drained_generation = -1
                        continue
                    self._reserved += want
            if running is not None:
                if not self._run(running):
                    return  # this slot's thread was abandoned and replaced; it ends here
                continue
            claimed_at = self.clock.monotonic()
            jobs: list[Job] = []
            failed = False
            try:
                jobs = self.store.claim_many(self.id, self.kind_names, self.lease_s, want)
                if len(jobs) < want:
                    self._learn_next_due()
            except AndonError as exc:
                failed = True
                failures += 1
                (log.warning if failures == 1 else log.debug)("worker %s: claim failed: %s", self.id, exc)
            except Exception:  # a bug, not an outage: logged in full, and the slot goes on
                failed = True
                failures += 1
                log.exception("worker %s: claim failed unexpectedly", self.id)
            finally:
                with self._changed:
                    self._reserved -= want
                    self._hand_out(jobs, claimed_at)
                    if not failed and len(jobs) < want:
                        self._drained_generation = generation
                    self._changed.notify_all()
            if failed:
                self.clock.wait(self._stopping, _backoff(failures))
            elif failures:
                log.info("worker %s: claiming again after %d failed attempt(s)", self.id, failures)
                failures = 0

    def _run(self, running: _Running) -> bool:
        """Run one attempt; ``False`` if it was abandoned meanwhile (the thread must end)."""
        attempt = running.attempt
        running.thread = threading.current_thread()
        try:
            outcome = running.execution.run()
        except BaseException as exc:  # a runtime's own fault: the job fails, the slot goes on
            log.exception("job %s: its runtime failed", attempt.job.id)
            outcome = failure(exc, attempt.token)
        if outcome.stop_reason is CancelReason.LEASE_LOST and not attempt.stop.fenced:
            # The work judged its own vouch (a cancel point) before the monitor fenced it.
            attempt.stop.fenced = True
            log.warning(
                "job %s: lease not renewed for %.1f s (lease %.1f s); the work stopped itself "
                "before another worker may take it",
                attempt.job.id,
                self.clock.monotonic() - attempt.stop.lease_ok_at,
                self.lease_s,
            )
        if not attempt.take_settlement(AttemptState.SETTLING):
            return False
        self._settle(attempt, outcome)
        return True

    def _settle(self, attempt: Attempt, outcome: Outcome) -> None:
        """Record the end of ``attempt``; returns once it is recorded (or given up on).

        Group commit: the first caller writes; callers that arrive meanwhile queue, and
        one of them writes all of them in the next transaction.
        """
        job = attempt.job
        self._drain_journal(attempt)
        update = attempt.buffer.close(attempt.token.acknowledged_at)
        if outcome.stop_method is StopMethod.ABANDONED:
            outcome = ended_now(outcome, self.clock)  # the buffer is closed: nothing it emits now counts
        entry = self._running.get(job.id)
        trace = entry.trace if entry is not None else None
        mine = _PendingEnd(attempt, AttemptEnd(job.id, job.attempt, outcome, update), trace)
        with self._settle_lock:
            self._settle_queue.append(mine)
            while self._settling and not mine.done:
                self._settle_lock.wait()
            if mine.done:
                return
            self._settling = True
            batch, self._settle_queue = self._settle_queue, []
        # The slots of this batch are about to be free: claim their next jobs in the same
        # transaction (unless the worker is stopping or the queue was found empty).
        with self._changed:
            generation = self._generation
            want = 0
            if not self._stopping.is_set() and generation != self._drained_generation:
                free = self.concurrency - len(self._running) + len(batch) - self._reserved
                want = max(0, min(_MAX_CLAIM_BATCH, free))
            self._reserved += want
        claimed_at = self.clock.monotonic()
        jobs: list[Job] = []
        try:
            jobs = self._record(batch, want)
            if want and len(jobs) < want:
                self._learn_next_due()
        finally:
            with self._settle_lock:
                self._settling = False
                for pending in batch:
                    pending.done = True
                self._settle_lock.notify_all()
            with self._changed:
                for pending in batch:
                    self._running.pop(pending.attempt.job.id, None)
                self._reserved -= want
                self._hand_out(jobs, claimed_at)
                if want and len(jobs) < want:
                    self._drained_generation = generation
                self._changed.notify_all()

    def _learn_next_due(self) -> None:
        """After a claim found fewer jobs than it wanted: when the next one falls due, so that
        idle slots wake for it rather than at their next poll."""
        try:
            due = self.store.next_due(self.kind_names)
        except AndonError:
            due = None  # the poll still comes
        with self._changed:
            self._next_due = due

    def _drain_journal(self, attempt: Attempt) -> None:
        """Write what the attempt's journal holds, a chunk at a time, before its end is
        recorded: the end's own write then holds at most one memory budget of items."""
        failures = 0
        while attempt.buffer.journalled:
            with attempt.buffer.flush_lock:
                update = attempt.buffer.take(attempt.token.acknowledged_at)
                try:
                    if self.store.write_progress([update]):
                        attempt.refused_items += len(update.items)
                    failures = 0
                    continue
                except AndonError as exc:
                    attempt.buffer.restore(update)
                    failures += 1
                    (log.warning if failures == 1 else log.debug)(
                        "job %s: writing its journalled output failed (%s); retrying", attempt.job.id, exc
                    )
                except Exception:  # a bug: the end's own write takes the rest (and says so if it fails)
                    attempt.buffer.restore(update)
                    log.exception("job %s: writing its journalled output failed unexpectedly", attempt.job.id)
                    return
            self.clock.sleep(_backoff(failures))

    def _hand_out(self, jobs: list[Job], claimed_at: float) -> None:
        """Make claimed jobs ready for idle slots (call with ``_changed`` held)."""
        for job in jobs:
            spec = self.app.get(job.kind)
            attempt = Attempt(
                job,
                spec,
                self._flush_wake.set,
                self.spool_dir,
                clock=self.clock,
                claimed_at=claimed_at,
                family=Family(self.store, self.app, job, self.id),
            )
            attempt.vouch(attempt.stop.fence_at(self.lease_s))
            entry = _Running(attempt, execution_for(attempt), None)
            if self._tracer is not None:
                entry.trace = self._tracer.start(job, self.clock.now())
            self._running[job.id] = entry
            self._ready.append(entry)

    def _record(self, batch: list[_PendingEnd], want: int) -> list[Job]:
        """Settle ``batch`` and claim up to ``want`` jobs; retries while the store is away.

        A living worker never gives up an outcome: an outage of any length is waited out
        (the attempt's result and last items stay in memory meanwhile, its journal on disk). An error that is not a
        storage failure (a bug) is confined: the batch is settled one attempt at a time, and
        an attempt whose end the store still refuses is recorded as failed with that error.
        """
        try:
            results, jobs = self._store_ends([p.end for p in batch], want)
        except Exception:
            log.exception("worker %s: recording the end of %d job(s) failed unexpectedly", self.id, len(batch))
            for pending in batch:
                self._record_alone(pending)
            return []
        for pending, settled in zip(batch, results, strict=True):
            self._recorded(pending, settled)
            if isinstance(settled, InvalidTransition):
                self._record_lost_attempt(pending)
        return jobs

    def _record_lost_attempt(self, pending: _PendingEnd) -> None:
        """The job was recovered from this worker while the attempt went on (it was cut off
        past its lease): put the attempt's own end, and what of its output was refused, in
        the job's history, so the record tells what happened on this side too."""
        attempt, end = pending.attempt, pending.end
        lost = attempt.refused_items + (len(end.update.items) if end.update else 0)
        job = attempt.job
        try:
            self.store.record_lost_attempt(job.id, job.attempt, self.id, end.outcome, lost)
        except AndonError as exc:
            log.warning("job %s: could not record how its lost attempt %d ended: %s", job.id, job.attempt, exc)
            return
        log.warning(
            "job %s: attempt %d had lost the job; its end and %d refused item(s) are recorded",
            job.id,
            job.attempt,
            lost,
        )

    def _store_ends(self, ends: list[AttemptEnd], want: int) -> tuple[list[Job | AndonError], list[Job]]:
        failures = 0
        while True:
            try:
                if want:
                    results, jobs = self.store.settle_and_claim(self.id, ends, self.kind_names, self.lease_s, want)
                    return list(results), jobs
                return list(self.store.settle_many(self.id, ends)), []
            except AndonError as exc:
                failures += 1
                (log.warning if failures == 1 else log.debug)(
                    "worker %s: recording the end of %d job(s) failed (%s); keeping them, retrying",
                    self.id,
                    len(ends),
                    exc,
                )
                self.clock.sleep(_backoff(failures))

    def _record_alone(self, pending: _PendingEnd) -> None:
        """Settle one attempt of a batch that met a bug; if it is the cause, record that."""
        end = pending.end
        for _ in range(2):
            try:
                (settled,) = self._store_ends([end], 0)[0]
            except Exception as exc:
                log.exception("job %s: recording its end failed unexpectedly", end.job_id)
                end = _degraded(end, exc)
                continue
            self._recorded(pending, settled)
            return
        log.error("job %s: its end could not be recorded; its lease will expire", end.job_id)
        self._recorded(pending, None)

    def _recorded(self, pending: _PendingEnd, settled: Job | AndonError | None) -> None:
        """The store answered for an attempt's end (``None``: it never took it)."""
        if settled is not None:
            _log_settled(pending.attempt.job, settled)
        if pending.trace is not None:
            status = settled.status.value if isinstance(settled, Job) else None
            pending.trace.end(pending.end.outcome, status, self.clock.now())

    # -- control --------------------------------------------------------------

    def _control_loop(self) -> None:
        assert self._watcher is not None
        failures = 0
        while not self._halt.is_set():
            try:
                changed = self._watcher.wait(self._due().timeout_in)
                if changed:
                    self._notify()
                with self._lock:
                    busy = bool(self._running)
                if busy:
                    # Cancels the store named (and _heard delivered) need no read now; the
                    # next tick reads the notices all the same.
                    with self._lock:
                        unheard, self._unheard = self._unheard, False
                    if unheard or not (changed and self._watcher.cancels_named):
                        self._deliver_notices()
                    self._fire_timeouts()
                failures = 0
            except AndonError as exc:
                failures += 1
                (log.warning if failures == 1 else log.debug)("worker %s: control step failed: %s", self.id, exc)
                self.clock.wait(self._halt, min(_backoff(failures), 1.0))
            except Exception:  # a bug: logged in full; cancels keep being delivered
                failures += 1
                log.exception("worker %s: control step failed unexpectedly", self.id)
                self.clock.wait(self._halt, min(_backoff(failures), 1.0))

    def _due(self) -> Due[_Running]:
        """What the stop path says is due now (``andon._stop.due``)."""
        with self._lock:
            entries = [
                (r, r.attempt.stop, r.attempt.state is AttemptState.RUNNING, r.thread is not None)
                for r in self._running.values()
            ]
        return due(self.clock.monotonic(), entries, self.lease_s, _CONTROL_TICK_S)

    def _deliver_notices(self) -> None:
        for notice in self.store.cancel_notices(self.id):
            self.deliver(notice.job_id, notice.reason, notice.message, notice.grace_s)

    def _fire_timeouts(self) -> None:
        for running in self._due().timeouts:
            stop = running.attempt.stop
            stop.timeout_sent = True
            job = running.attempt.job
            try:
                result = self.store.request_cancel(
                    job.id,
                    CancelReason.TIMEOUT,
                    "andon",
                    f"ran longer than its timeout of {job.timeout_s:g} s",
                )
            except JobFinished:
                continue
            except StorageError:
                stop.timeout_sent = False  # not recorded: the next control step tries again
                raise
            if result.job.status is JobStatus.CANCELLING and result.job.cancel is not None:
                self.deliver(job.id, result.job.cancel.reason, result.job.cancel.message)

    def _climb(self, running: _Running) -> None:
        """Take the next rung of the attempt's ladder (``andon._stop.StopState.climb``)."""
        attempt = running.attempt
        for step in attempt.stop.climb(running.execution.apply, self.clock.monotonic()):
            log.info("job %s: escalation step %d: %s", attempt.job.id, attempt.stop.steps_taken, step.value)
            if step is Step.ABANDON:
                self._abandon(running)

    def _abandon(self, running: _Running) -> None:
        attempt = running.attempt
        if not attempt.take_settlement(AttemptState.ABANDONED):
            return
        # The stuck thread is no longer ours to wait for: stop() must not join it.
        thread = running.thread
        assert thread is not None  # only attempts a slot runs are escalated
        with self._lock:
            if thread in self._threads:
                self._threads.remove(thread)
        thread.name = f"andon-abandoned-{attempt.job.id}"
        log.warning(
            "job %s: its thread did not stop within %.1f s of the cancel; abandoning it",
            attempt.job.id,
            self.clock.monotonic() - (attempt.stop.requested_at or self.clock.monotonic()),
        )
        # The replacement thread records the end (the store may be slow or away; the
        # monitor must not wait for it), then serves as a slot unless the worker is stopping.
        outcome = stopped(attempt.token, StopMethod.ABANDONED)
        self._spawn("slot-replacement", functools.partial(self._settle_and_serve, attempt, outcome))

    def _settle_and_serve(self, attempt: Attempt, outcome: Outcome) -> None:
        self._settle(attempt, outcome)
        self._slot_loop()

    # -- leases -----------------------------------------------------------------

    def _lease_loop(self) -> None:
        failures = 0
        # Recovery of other workers' jobs waits until this worker's own store access has
        # been healthy for a whole lease: after an outage that blocked every writer, each
        # living worker renews its leases within a fraction of a lease, so only the jobs
        # of workers that really are gone still look expired by then.
        healthy_since = self.clock.monotonic() - self.lease_s
        while not self.clock.wait(
            self._halt, self.lease_s / 3 if not failures else min(self.lease_s / 12, _backoff(failures))
        ):
            try:
                began = self.clock.monotonic()
                self._renew()
                if failures or self.clock.monotonic() - began > self.lease_s / 6:
                    # Failed before, or slow now: a store that retried through an outage
                    # inside the call answers late, not with an error.
                    healthy_since = self.clock.monotonic()
                elif began - healthy_since >= self.lease_s:
                    for job in self.store.recover_lost():
                        log.warning("job %s: its worker was lost; now %s", job.id, job.status.value)
            except AndonError as exc:
                failures += 1
                (log.warning if failures == 1 else log.debug)("worker %s: renewing leases failed: %s", self.id, exc)
                continue
            except Exception:  # a bug: logged in full; the next renewal comes sooner
                failures += 1
                log.exception("worker %s: renewing leases failed unexpectedly", self.id)
                continue
            if failures:
                log.info("worker %s: leases renewed again after %d failed attempt(s)", self.id, failures)
            failures = 0

    def _renew(self) -> None:
        """Renew the leases of the attempts running here (with none, this still proves that
        the store takes writes: the lease loop judges its own health by it)."""
        with self._lock:
            held = list(self._running.values())
        began = self.clock.monotonic()
        ids = [r.attempt.job.id for r in held]
        # The renewal is this worker's heartbeat in the workers registry too (same transaction).
        renewed = set(self.store.renew_leases(self.id, self.lease_s, ids, heartbeat=self.registration))
        for running in held:
            stop = running.attempt.stop
            if running.attempt.job.id in renewed:
                stop.lease_ok_at = max(stop.lease_ok_at, began)
                # The work itself stops at the fence too, if no thread of ours gets there
                # first (a paused process runs its handler again before the monitor).
                running.attempt.vouch(stop.fence_at(self.lease_s))
                running.execution.vouched()
                continue
            with self._lock:
                current = self._running.get(running.attempt.job.id) is running
            if current and running.attempt.state is AttemptState.RUNNING:
                job_id = running.attempt.job.id
                log.warning("job %s: this worker no longer holds it (it was recovered); stopping it", job_id)
                stop.fenced = True
                self.deliver(job_id, CancelReason.LEASE_LOST, "the job was recovered from this worker")

    # -- retention ----------------------------------------------------------------

    def _retention_loop(self) -> None:
        assert self.retention_s is not None
        # The first pass comes at a random point of the first period, so workers started
        # together do not all prune at once (if they do, each batch still checks its jobs).
        wait_s = _jitter.uniform(0, self.retention_every_s)
        while not self.clock.wait(self._halt, wait_s):
            wait_s = self.retention_every_s
            try:
                done = self.store.prune(self.retention_s, batch=RETENTION_BATCH, limit=RETENTION_PASS_JOBS)
            except AndonError as exc:
                log.warning("worker %s: pruning history failed: %s", self.id, exc)
                continue
            except Exception:  # a bug: logged in full; the next pass tries again
                log.exception("worker %s: pruning history failed unexpectedly", self.id)
                continue
            if done.jobs:
                log.info(
                    "worker %s: pruned %d job(s), %d item(s), %d event(s)", self.id, done.jobs, done.items, done.events
                )
            if done.jobs >= RETENTION_PASS_JOBS:
                wait_s = RETENTION_BACKLOG_PAUSE_S  # a backlog: go on soon, but let a stop in between

    # -- monitor (never touches the store) ----------------------------------------

    def _monitor_loop(self) -> None:
        while not self._halt.is_set():
            try:
                self.clock.wait(self._monitor_wake, self._due().stop_in)
                self._monitor_wake.clear()
                if self._halt.is_set():
                    return
                self._monitor_step()
            except Exception:  # a bug: logged in full; stops keep escalating on the next pass
                log.exception("worker %s: monitor step failed unexpectedly", self.id)
                self._halt.wait(0.05)

    def _monitor_step(self) -> None:
        """Escalate the stops that are due and fence the attempts not vouched for."""
        now_due = self._due()
        for running in now_due.steps:
            self._climb(running)
        for running, silent in now_due.fences:
            running.attempt.stop.fenced = True
            log.warning(
                "job %s: lease not renewed for %.1f s (lease %.1f s); stopping it before another worker may take it",
                running.attempt.job.id,
                silent,
                self.lease_s,
            )
            self.deliver(
                running.attempt.job.id,
                CancelReason.LEASE_LOST,
                f"the worker could not renew its lease for {silent:.1f} s",
            )

    # -- flushing -------------------------------------------------------------

    def _flush_loop(self) -> None:
        while True:
            self._flush_wake.wait(self.flush_interval_s)
            self._flush_wake.clear()
            if self._halt.is_set():
                return
            try:
                self._flush_once()
            except Exception:  # a bug: say so, and keep flushing the other jobs' output
                log.exception("worker %s: flushing output failed unexpectedly", self.id)

    def _flush_once(self) -> None:
        with self._lock:
            attempts = [r.attempt for r in self._running.values() if not r.attempt.unflushable]
        held: list[Attempt] = []
        pending: list[tuple[Attempt, ProgressUpdate]] = []
        try:
            for attempt in attempts:
                attempt.buffer.flush_lock.acquire()
                held.append(attempt)
                update = attempt.buffer.take(attempt.token.acknowledged_at)
                if not update.is_empty:
                    pending.append((attempt, update))
            if pending:
                self._write_output(pending)
        finally:
            for attempt in held:
                attempt.buffer.flush_lock.release()

    def _write_output(self, pending: list[tuple[Attempt, ProgressUpdate]]) -> None:
        """Write ``pending`` in one transaction; what cannot be written now is kept.

        A storage failure keeps everything for the next try. Any other error is confined to
        the attempt that causes it: the batch is written one attempt at a time, and an
        attempt whose output the store refuses is no longer flushed; its output waits for
        its settlement (which records the error if the store still refuses it).
        """
        try:
            refused = set(self.store.write_progress([update for _, update in pending]))
            for attempt, update in pending:
                if attempt.job.id in refused:
                    attempt.refused_items += len(update.items)
            return
        except AndonError as exc:
            log.warning("worker %s: writing results failed (%s); keeping them for the next try", self.id, exc)
            for attempt, update in pending:
                attempt.buffer.restore(update)
            return
        except Exception:
            if len(pending) == 1:
                attempt, update = pending[0]
                log.exception("job %s: its output could not be written; keeping it for its end", attempt.job.id)
                attempt.unflushable = True
                attempt.buffer.restore(update)
                return
            log.exception("worker %s: writing results failed unexpectedly; writing each job apart", self.id)
        for one in pending:
            self._write_output([one])


def _log_settled(job: Job, settled: Job | AndonError) -> None:
    if isinstance(settled, AndonError):
        log.warning("job %s: not settled: %s", job.id, settled)
    else:
        log.info("job %s (%s) attempt %d: %s", job.id, job.kind, job.attempt, settled.status.value)


def _degraded(end: AttemptEnd, exc: BaseException) -> AttemptEnd:
    """``end`` as a failure caused by ``exc``, without the progress report.

    For an attempt whose end the store refused with a bug rather than an outage: its items
    are still written (each was checked when emitted); the record says what went wrong.
    """
    error = ErrorInfo("AndonInternalError", f"andon could not record how this attempt ended: {exc!r}")
    update = end.update
    if update is not None:
        update = dataclasses.replace(update, progress=None)
    outcome = Outcome(OutcomeKind.FAILED, error=error, stopped_at=end.outcome.stopped_at)
    return dataclasses.replace(end, outcome=outcome, update=update)


def _backoff(failures: int) -> float:
    """Seconds to wait after ``failures`` failures in a row: doubling, capped, jittered."""
    return min(_MAX_BACKOFF_S, 0.05 * 2.0 ** min(failures, 10)) * _jitter.uniform(0.5, 1.0)
