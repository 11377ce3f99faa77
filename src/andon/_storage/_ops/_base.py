"""What every group of store operations shares: the connector, the clock, and the history.

The operations themselves are grouped by who calls them (``_jobs``: submit and read;
``_cancels``: cancel and force-fail; ``_work``: what workers call; ``_tokens``: access
tokens; ``_sessions``: the dashboard's sessions) and put together as one
:class:`~andon._storage._engine.Engine`. A new group (schedules, workers, job trees) is a
new module here and one more base of the engine.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from andon._clock import Clock
from andon._jobs import Job, JobStatus
from andon._storage._connector import Connector, Tx

__all__ = ["C", "Operations"]

C = TypeVar("C", bound=Connector)


class Operations(Generic[C]):
    """The state each group of operations works with: the database's connector and the clock."""

    def __init__(self, connector: C, clock: Clock) -> None:
        self._db = connector
        self._clock = clock

    def _event(
        self,
        tx: Tx,
        job: Job,
        type_: str,
        from_status: JobStatus,
        to_status: JobStatus,
        actor: str | None,
        reason: str | None,
        message: str | None,
        at: float,
    ) -> None:
        args = {
            "job_id": job.id,
            "at": at,
            "type": type_,
            "from_status": from_status.value,
            "to_status": to_status.value,
            "actor": actor,
            "reason": reason,
            "message": message,
            "attempt": job.attempt,
        }
        tx.one("add_event", args)
