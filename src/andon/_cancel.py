"""The cancellation vocabulary: reasons, stop methods, the token and the exception.

Words used the same way everywhere in andon:

* a **cancel point** is a call where a handler may observe a cancel (``ctx.check()``,
  ``ctx.sleep()``, ``ctx.wait()``, ``ctx.run()``); a **checkpoint** is something else: the
  state a handler stores with ``ctx.checkpoint(state)`` so that a later attempt can go on
  from it;

* a cancel is **requested** (someone asked; :class:`CancelReason` says why),
* the work **acknowledges** it (a cancel point saw the request), and
* the work has **stopped** (the handler returned, or was stopped by force;
  :class:`StopMethod` says which step stopped it).

A :class:`CancelToken` is level-triggered: once requested it stays requested, and every
cancel point after that raises :class:`Cancelled` again, so a handler cannot miss a cancel by
catching it once in some inner loop.
"""

from __future__ import annotations

import enum
import math
import threading
from collections.abc import Callable
from typing import final

from andon._clock import SYSTEM_CLOCK, Clock

__all__ = ["CancelReason", "CancelToken", "Cancelled", "StopMethod"]


class CancelReason(enum.StrEnum):
    """Why a cancel was requested. Stored in databases and sent over the API: values are stable."""

    USER = "user"
    """Someone asked (CLI, API, dashboard, library call)."""
    TIMEOUT = "timeout"
    """The job ran past its timeout."""
    SHUTDOWN = "shutdown"
    """The worker is shutting down; the job goes back to the queue."""
    DELETED = "deleted"
    """The job is being deleted."""
    FORCED = "forced"
    """Force-fail: stop the work and record the job as failed."""
    LEASE_LOST = "lease_lost"
    """The worker could not renew its lease and stopped its own work (fencing)."""
    WORKER_LOST = "worker_lost"
    """The worker running the job disappeared; its lease expired."""
    PAUSED = "paused"
    """Its kind was paused with ``--now``: the job goes back to the queue and resumes from its
    last checkpoint once the kind is unpaused."""
    PARENT_CANCELLED = "parent_cancelled"
    """An ancestor was cancelled, timed out, force-failed or deleted: its whole tree stops
    (the cancel record's ``origin`` names the job whose cancel reached this one)."""
    PARENT_ENDED = "parent_ended"
    """Its parent ended without waiting for it, and it was not submitted ``detached``."""
    CHILD_FAILED = "child_failed"
    """One of its children failed and was submitted to fail fast: the job fails (never
    retried), and its other children are cancelled with it."""
    SUPERSEDED = "superseded"
    """A newer job with the same kind and key was submitted with ``on_conflict="supersede"``."""


class StopMethod(enum.StrEnum):
    """Which step actually stopped the work. Values are stable (stored and sent)."""

    WITHDRAWN = "withdrawn"
    """The job was still queued: it never started."""
    COOPERATIVE = "cooperative"
    """The handler saw the request at a cancel point (``ctx.check()``, ``ctx.sleep()``...)."""
    ASYNC = "async"
    """The asyncio task was cancelled at its current ``await``."""
    INJECTED = "injected"
    """``Cancelled`` was raised inside the handler's thread after the grace period."""
    TERMINATED = "terminated"
    """The handler's process stopped on SIGTERM."""
    KILLED = "killed"
    """The handler's process was killed with SIGKILL."""
    ABANDONED = "abandoned"
    """The thread could not be stopped (blocked in C code); andon stopped waiting for it."""
    WORKER_LOST = "worker_lost"
    """The worker running the job disappeared (killed, cut off) while the stop was under way;
    andon settled the job when that worker's lease ran out. Nothing of it runs any more:
    a worker that cannot renew its lease stops its own work first (reason ``lease_lost``)."""


class Cancelled(BaseException):
    """Raised at a cancel point when the job has been asked to stop.

    It derives from ``BaseException`` so that a handler's ``except Exception:`` cannot
    swallow it by accident. Handlers may catch it to clean up, but must re-raise it.

    It can be created without arguments, because CPython's thread injection
    instantiates the class itself.
    """

    def __init__(self, reason: CancelReason | None = None, message: str | None = None) -> None:
        self.reason = reason
        self.message = message
        text = f"job cancelled ({reason.value})" if reason else "job cancelled"
        super().__init__(f"{text}: {message}" if message else text)


@final
class CancelToken:
    """A thread-safe, level-triggered cancel flag with wake-ups and callbacks.

    Reading :attr:`requested` is a plain attribute read (cheap enough to call in a tight
    loop). :meth:`request` is idempotent: the first call wins and fixes the reason. Time
    (the moment of acknowledgement, the vouch, waits) is read from ``clock``.
    """

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[CancelReason], None]] = []
        self.requested = False
        self.reason: CancelReason | None = None
        self.message: str | None = None
        self.acknowledged_at: float | None = None
        self.listening = False
        """The work has shown it listens for a stop in this attempt (it reached a cancel point
        or read ``ctx.cancelled``), so it may stop by itself: the stop path gives it the grace
        period (``andon._stop.first_grace``). Set once, by the work's own thread."""
        self.vouched_until = math.inf
        """The moment (``clock.monotonic()``) after which the work must not go on: past it, its worker can
        no longer vouch that it still holds the job (a lease it could not renew, or a
        process paused past its lease), and the next cancel point stops it, reason
        ``lease_lost``, before it takes another step. Extended on every lease renewal."""

    def request(self, reason: CancelReason, message: str | None = None) -> bool:
        """Ask the work to stop. Returns ``True`` if this call was the first request."""
        with self._lock:
            if self.requested:
                return False
            self.reason = reason
            self.message = message
            self.requested = True
            callbacks, self._callbacks = self._callbacks, []
        self._event.set()
        for callback in callbacks:
            callback(reason)
        return True

    def listen(self) -> None:
        """Note that the work listens for a stop (see :attr:`listening`)."""
        self.listening = True

    def acknowledge(self) -> None:
        """Note the first moment the work observed the request."""
        if self.acknowledged_at is None:
            self.acknowledged_at = self.clock.now()

    def raise_if_requested(self) -> None:
        """Raise :class:`Cancelled` if a cancel was requested (a cancel point)."""
        if self.requested:
            self.acknowledge()
            raise Cancelled(self.reason, self.message)

    def raise_if_stopped(self) -> None:
        """A checkpoint: raise :class:`Cancelled` if a stop was requested or the vouch ran out."""
        self.raise_if_unvouched()
        self.raise_if_requested()

    def raise_if_unvouched(self) -> None:
        """Stop the work (reason ``lease_lost``) if its worker can no longer vouch for it.

        Judged here, on the token's clock, not by a worker thread: after a
        pause (SIGSTOP, a VM freeze) the work may run again before any other thread does.
        """
        if self.clock.monotonic() >= self.vouched_until:
            self.request(
                CancelReason.LEASE_LOST,
                "its worker could not vouch for the lease any more (paused or cut off past it)",
            )
            self.raise_if_requested()

    def remaining(self, seconds: float | None) -> float | None:
        """``seconds`` cut short to end at :attr:`vouched_until` (a wait never outlives it)."""
        left = self.vouched_until - self.clock.monotonic()
        if left == math.inf:
            return seconds
        return max(0.0, left if seconds is None else min(seconds, left))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a cancel is requested or ``timeout`` seconds pass; ``True`` if requested."""
        return self.clock.wait(self._event, timeout)

    def on_request(self, callback: Callable[[CancelReason], None]) -> Callable[[], None]:
        """Call ``callback(reason)`` once a cancel is requested (at once if it already was).

        Returns a function that removes the callback again.
        """
        with self._lock:
            if not self.requested:
                self._callbacks.append(callback)
                return lambda: self._remove(callback)
        assert self.reason is not None
        callback(self.reason)
        return lambda: None

    def _remove(self, callback: Callable[[CancelReason], None]) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)
