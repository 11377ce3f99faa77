"""What a handler's ``ctx.submit``, ``ctx.children`` and ``ctx.wait_children`` reach: the
store, on behalf of one running attempt of the parent.

:class:`Family` runs in the worker. A thread or asyncio handler's context calls it directly;
a process-isolated handler's context calls it through its pipe (``_runtimes/_process.py``
relays each call and its answer), so the rules are the same for every isolation: children
are created only while this attempt holds the parent and no stop of it has committed (the
store checks that in the transaction that inserts them; see ``_storage/_ops/_trees.py``).
"""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from andon._errors import InvalidParams, JobNotFound, UsageError
from andon._hub import deliver_here, wake_here
from andon._ids import new_job_id
from andon._jobs import Job, JobStatus, ResultItem
from andon._keys import check_key, on_conflict_of
from andon._storage._records import JobFilter, NewJob

if TYPE_CHECKING:
    from andon._registry import App, JobKind
    from andon._storage import Store

__all__ = ["MAX_DELAY_S", "NOW", "Due", "Family", "FamilyCalls", "due_time", "new_jobs"]

_PAGE = 500


MAX_DELAY_S: Final = 10 * 365 * 24 * 3600.0
"""The furthest ahead a job may be scheduled (ten years)."""


@dataclass(frozen=True, slots=True)
class Due:
    """When a job to submit may start: at a moment (``at``, unix seconds), after a delay from
    its submit as the store's clock has it (``delay_s``), or at once (neither)."""

    at: float | None = None
    delay_s: float | None = None


NOW: Final = Due()


def due_time(run_at: datetime.datetime | float | None, delay: float | None) -> Due:
    """``run_at`` / ``delay`` of a submit, checked.

    Raises:
        UsageError: both are given, ``run_at`` is a naive datetime (no time zone), or either
            is not a finite number within ten years.
    """
    if run_at is not None and delay is not None:
        raise UsageError("give run_at or delay, not both")
    if delay is not None:
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= MAX_DELAY_S:
            raise UsageError(
                f"delay must be a number of seconds from 0 to {MAX_DELAY_S:.0f} (ten years), not {delay!r}"
            )
        return Due(delay_s=float(delay))
    if run_at is None:
        return NOW
    if isinstance(run_at, datetime.datetime):
        if run_at.tzinfo is None or run_at.utcoffset() is None:
            raise UsageError(f"run_at {run_at.isoformat()} has no time zone: give one (e.g. +00:00)")
        at = run_at.timestamp()
    elif isinstance(run_at, bool) or not isinstance(run_at, (int, float)) or not math.isfinite(run_at):
        raise UsageError(f"run_at must be an aware datetime or unix seconds, not {run_at!r}")
    else:
        at = float(run_at)
    if at > time.time() + MAX_DELAY_S:
        raise UsageError("run_at is more than ten years ahead")
    return Due(at=at)


def new_jobs(
    spec: JobKind,
    params_list: Iterable[Mapping[str, Any]],  # Any: JSON params
    *,
    timeout_s: float | None,
    priority: int,
    owner: str | None,
    key: str | None = None,
    detached: bool = False,
    fail_parent: bool = False,
    due: Due = NOW,
) -> list[NewJob]:
    """Jobs of kind ``spec`` to create, their params validated and the kind's settings applied.

    Raises:
        InvalidParams: params that do not fit, or a timeout that is not a positive number.
    """
    if timeout_s is not None and (isinstance(timeout_s, bool) or not timeout_s > 0):
        raise InvalidParams(spec.kind, ["timeout: must be a positive number of seconds"])
    return [
        NewJob(
            id=new_job_id(),
            kind=spec.kind,
            params=spec.validate(params),
            max_attempts=spec.retry.max_attempts,
            retry_backoff_s=spec.retry.backoff_s,
            timeout_s=timeout_s,
            priority=priority,
            owner=owner,
            retry_resume=spec.retry.resume,
            key=key,
            detached=detached,
            fail_parent=fail_parent,
            available_at=due.at,
            delay_s=due.delay_s,
        )
        for params in params_list
    ]


class FamilyCalls(Protocol):
    """The calls a context makes for a handler's children (a :class:`Family`, or its
    stand-in at the other end of a job process's pipe)."""

    def submit(
        self,
        kind: str,
        params_list: Sequence[Mapping[str, Any]],  # Any: JSON params
        timeout: float | bool | None,
        priority: int,
        detached: bool,
        fail_fast: bool,
        key: str | None = None,
        on_conflict: str = "skip",
        due: Due = NOW,
    ) -> list[Job]: ...

    def children(self) -> list[Job]: ...

    def jobs(self, job_ids: Sequence[str]) -> list[Job]: ...

    def items(self, job_id: str) -> list[ResultItem]: ...

    def me(self) -> Job: ...


class Family:
    """The store, as seen by one attempt of ``parent``: its children and nothing else."""

    def __init__(self, store: Store, app: App, parent: Job, worker_id: str | None) -> None:
        self._store = store
        self._app = app
        self._parent = parent
        self._worker_id = worker_id

    def submit(
        self,
        kind: str,
        params_list: Sequence[Mapping[str, Any]],  # Any: JSON params
        timeout: float | bool | None,
        priority: int,
        detached: bool,
        fail_fast: bool,
        key: str | None = None,
        on_conflict: str = "skip",
        due: Due = NOW,
    ) -> list[Job]:
        """Create children (all or none). ``timeout``: seconds, ``None`` for none, ``True``
        for the kind's own. With a ``key`` (one job only), an active job of the kind with
        that key may answer instead (``on_conflict``, as for ``Client.submit``); it is not a
        child of this job.

        Raises:
            UnknownKind, InvalidParams, InvalidKey: the kind, params or key do not fit
                (nothing is created).
            ParentStopping: the parent is being stopped, or this attempt lost it.
        """
        spec = self._app.get(kind)
        timeout_s = spec.timeout_s if timeout is True else timeout
        if isinstance(timeout_s, bool):
            raise InvalidParams(kind, ["timeout: must be a positive number of seconds"])
        parent = self._parent
        jobs = new_jobs(
            spec,
            params_list,
            timeout_s=timeout_s,
            priority=priority,
            owner=parent.owner,  # whoever may see the parent may see its children
            key=None if key is None else check_key(key),
            detached=detached,
            fail_parent=fail_fast,
            due=due,
        )
        actor = f"job:{parent.id}"
        if key is None:
            created = self._store.submit_children(parent.id, self._worker_id, parent.attempt, jobs, actor)
        else:
            if len(jobs) != 1:
                raise InvalidParams(kind, ["key: a keyed child is submitted alone (ctx.submit), not with submit_many"])
            held = (parent.id, self._worker_id, parent.attempt)
            submission = self._store.submit_one(jobs[0], actor, on_conflict=on_conflict_of(on_conflict), parent=held)
            for old in submission.superseded:
                if old.status is JobStatus.CANCELLING and old.cancel is not None:
                    deliver_here(old.id, old.cancel.reason, old.cancel.message)
            created = [submission.job]
        wake_here()
        return created

    def children(self) -> list[Job]:
        """Every direct child, oldest first (from this attempt and earlier ones)."""
        found: list[Job] = []
        cursor = None
        while True:
            page = self._store.list_jobs(JobFilter(parents=[self._parent.id]), _PAGE, cursor)
            found.extend(page.items)
            if page.next_cursor is None:
                return found[::-1]
            cursor = page.next_cursor

    def jobs(self, job_ids: Sequence[str]) -> list[Job]:
        """The children named, as stored now, in the order given.

        Raises:
            JobNotFound: one is not a child of this job (or no longer exists).
        """
        found: dict[str, Job] = {}
        unique = list(dict.fromkeys(job_ids))
        for start in range(0, len(unique), _PAGE):
            chunk = unique[start : start + _PAGE]
            page = self._store.list_jobs(JobFilter(ids=chunk, parents=[self._parent.id]), len(chunk))
            found.update((job.id, job) for job in page.items)
        missing = [job_id for job_id in unique if job_id not in found]
        if missing:
            raise JobNotFound(missing[0])
        return [found[job_id] for job_id in job_ids]

    def items(self, job_id: str) -> list[ResultItem]:
        """A child's items. Raises :class:`~andon.JobNotFound` for a job that is not its child."""
        self.jobs([job_id])
        return self._store.items(job_id)

    def me(self) -> Job:
        """The parent itself, as stored now."""
        return self._store.get(self._parent.id)
