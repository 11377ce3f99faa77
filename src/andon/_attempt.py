"""One running attempt of a job inside a worker: its token, output buffer and context."""

from __future__ import annotations

import dataclasses
import enum
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, final

from andon._cancel import Cancelled, CancelReason, CancelToken, StopMethod
from andon._context import Context, encode_output
from andon._jobs import ErrorInfo, Job, Outcome, OutcomeKind
from andon._registry import JobKind
from andon._sizes import MAX_RESULT_BYTES
from andon._storage import ProgressUpdate

__all__ = [
    "Attempt",
    "AttemptState",
    "OutputBuffer",
    "error_outcome",
    "failure",
    "stopped",
    "succeeded",
]

FLUSH_AT_ITEMS = 1000


@final
class OutputBuffer:
    """Items and progress a running attempt produced and the store has not seen yet.

    The worker's flusher writes it out in batches. Closing it (when the attempt settles)
    waits for a flush in progress, so every item reaches the store before the final state
    and nothing can be added after it: a job never emits after it ended.
    """

    def __init__(self, job_id: str, attempt: int, start_seq: int, wake_flusher: Callable[[], None]) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self._next_seq = start_seq
        self._items: list[tuple[int, float, str]] = []
        self._progress: tuple[float, float | None, str | None] | None = None
        self._lock = threading.Lock()
        self.flush_lock = threading.Lock()
        self._closed = False
        self._wake_flusher = wake_flusher

    def emit(self, at: float, encoded: str) -> None:
        with self._lock:
            if self._closed:
                raise Cancelled(None, "this job already ended; nothing more can be emitted")
            self._items.append((self._next_seq, at, encoded))
            self._next_seq += 1
            full = len(self._items) >= FLUSH_AT_ITEMS
        if full:
            self._wake_flusher()

    def progress(self, done: float, total: float | None, message: str | None) -> None:
        with self._lock:
            if not self._closed:
                self._progress = (done, total, message)

    def child_started(self, pid: int) -> None:
        """Child processes are tracked by the context itself; nothing to store."""

    def take(self, acknowledged_at: float | None) -> ProgressUpdate:
        """What is pending, as one update (call with :attr:`flush_lock` held)."""
        with self._lock:
            items, self._items = self._items, []
            progress, self._progress = self._progress, None
        return ProgressUpdate(self.job_id, self.attempt, items, progress, acknowledged_at)

    def restore(self, update: ProgressUpdate) -> None:
        """Put back what a failed flush took, ahead of anything emitted since."""
        with self._lock:
            self._items[:0] = update.items
            if self._progress is None:
                self._progress = update.progress

    def close(self, acknowledged_at: float | None) -> ProgressUpdate:
        """Refuse further output and return the rest, after any flush in progress."""
        with self.flush_lock:
            with self._lock:
                self._closed = True
            return self.take(acknowledged_at)


class AttemptState(enum.Enum):
    RUNNING = "running"
    SETTLING = "settling"
    ABANDONED = "abandoned"


@final
class Attempt:
    """The worker's view of one running attempt."""

    def __init__(self, job: Job, spec: JobKind, wake_flusher: Callable[[], None]) -> None:
        self.job = job
        self.spec = spec
        self.token = CancelToken()
        self.buffer = OutputBuffer(job.id, job.attempt, job.items_count, wake_flusher)
        self.deadline = time.monotonic() + job.timeout_s if job.timeout_s is not None else None
        self.stop_requested_at: float | None = None
        """``time.monotonic()`` of the first stop request, for escalation."""
        self.escalations = 0
        self.refused_items = 0
        """Items the store refused because this attempt no longer held the job."""
        self.unflushable = False
        """The store refused this attempt's output with an error that is not an outage."""
        self.state = AttemptState.RUNNING
        self._lock = threading.Lock()

    def context(self) -> Context:
        return Context(
            job_id=self.job.id,
            kind=self.job.kind,
            attempt=self.job.attempt,
            params=self.job.params,
            token=self.token,
            sink=self.buffer,
            child_grace_s=max(self.spec.grace_s, 0.5),
        )

    def request_stop(self, reason: CancelReason, message: str | None) -> bool:
        """Set the token; ``True`` if this was the first request (the caller delivers it).

        Also ``True`` the first time the worker hears of a stop the work started itself (a
        checkpoint past the vouch): its escalation starts now.
        """
        first = self.token.request(reason, message)
        if self.stop_requested_at is None and self.token.requested:
            self.stop_requested_at = time.monotonic()
            return True
        return first

    def vouch(self, until: float) -> None:
        """The worker vouches that this attempt holds its job until ``until`` (monotonic)."""
        self.token.vouched_until = until

    def take_settlement(self, state: AttemptState) -> bool:
        """Whoever calls this first (the slot settling, or the worker abandoning) settles."""
        with self._lock:
            if self.state is not AttemptState.RUNNING:
                return False
            self.state = state
            return True


def ended_now(outcome: Outcome) -> Outcome:
    """Stamp the moment the work was entirely over (handler, cleanups, children, process)."""
    return dataclasses.replace(outcome, stopped_at=time.time())


def succeeded(result: Any) -> Outcome:  # Any: the handler's JSON result
    """The handler returned ``result``; a failure instead if the store could not keep it.

    A result that is not JSON (a set, NaN) or takes more than ``MAX_RESULT_BYTES`` fails
    the job with a message saying so, and nothing of it is stored: left to the store, it
    would break the final write (the job stuck ``running``) or every later read of it.
    """
    try:
        encode_output(result, "the job's result", MAX_RESULT_BYTES)
    except (TypeError, ValueError, RecursionError) as exc:  # ResultTooLarge is a ValueError
        error = ErrorInfo(type(exc).__qualname__, str(exc) or repr(exc), None)
        return Outcome(OutcomeKind.FAILED, error=error, stopped_at=time.time())
    return Outcome(OutcomeKind.SUCCEEDED, result=result, stopped_at=time.time())


def stopped(token: CancelToken, method: StopMethod) -> Outcome:
    token.acknowledge()
    return Outcome(
        OutcomeKind.STOPPED,
        stop_method=method,
        stop_reason=token.reason,
        acknowledged_at=token.acknowledged_at,
        stopped_at=time.time(),
    )


def failure(exc: BaseException, token: CancelToken) -> Outcome:
    text = "".join(traceback.format_exception(exc))
    error = ErrorInfo(type(exc).__qualname__, str(exc) or repr(exc), text)
    return Outcome(
        OutcomeKind.FAILED,
        error=error,
        acknowledged_at=token.acknowledged_at,
        stopped_at=time.time(),
    )


def error_outcome(error: ErrorInfo, token: CancelToken) -> Outcome:
    return Outcome(
        OutcomeKind.FAILED,
        error=error,
        acknowledged_at=token.acknowledged_at,
        stopped_at=time.time(),
    )
