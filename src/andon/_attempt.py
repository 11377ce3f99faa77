"""One running attempt of a job inside a worker: its token, output buffer, context and
place on the stop path."""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, final

from andon._cancel import CancelReason, CancelToken
from andon._clock import SYSTEM_CLOCK, Clock
from andon._context import Context
from andon._family import FamilyCalls
from andon._jobs import Job
from andon._output import OutputBuffer
from andon._registry import JobKind
from andon._stop import LADDERS, StopState

__all__ = ["Attempt", "AttemptState"]


class AttemptState(enum.Enum):
    RUNNING = "running"
    SETTLING = "settling"
    ABANDONED = "abandoned"


@final
class Attempt:
    """The worker's view of one running attempt: its token, output, and place on the stop path."""

    def __init__(
        self,
        job: Job,
        spec: JobKind,
        wake_flusher: Callable[[], None],
        spool_dir: Path | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        claimed_at: float | None = None,
        family: FamilyCalls | None = None,
    ) -> None:
        self.job = job
        self.family = family
        """Where the handler's child jobs go (``None``: it may not submit any)."""
        self.spec = spec
        self.clock = clock
        self.token = CancelToken(clock)
        self.buffer = OutputBuffer(job.id, job.attempt, job.items_count, wake_flusher, spool_dir=spool_dir)
        now = clock.monotonic()
        self.stop = StopState(
            ladder=LADDERS[spec.isolation],
            grace_s=spec.grace_s,
            timeout_at=now + job.timeout_s if job.timeout_s is not None else None,
            lease_ok_at=now if claimed_at is None else claimed_at,
            token=self.token,
            grace_always=spec.grace_always,
        )
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
            resumed=self.resumed,
            family=self.family,
        )

    @property
    def resumed(self) -> Any:  # Any: the JSON state of a checkpoint
        """The state this attempt starts from (the job's checkpoint, if it resumes), else ``None``."""
        checkpoint = self.job.checkpoint
        return checkpoint.state if self.job.resume and checkpoint is not None else None

    def request_stop(self, reason: CancelReason, message: str | None) -> bool:
        """Set the token; ``True`` if this was the first request (the caller delivers it).

        Also ``True`` the first time the worker hears of a stop the work started itself (a
        cancel point past the vouch): its escalation starts now.
        """
        first = self.token.request(reason, message)
        if self.stop.requested_at is None and self.token.requested:
            self.stop.requested_at = self.clock.monotonic()
            return True
        return first

    def vouch(self, until: float) -> None:
        """The worker vouches that this attempt holds its job until ``until`` (its clock's monotonic)."""
        self.token.vouched_until = until

    def take_settlement(self, state: AttemptState) -> bool:
        """Whoever calls this first (the slot settling, or the worker abandoning) settles."""
        with self._lock:
            if self.state is not AttemptState.RUNNING:
                return False
            self.state = state
            return True
