"""Schedules: declaring, managing and firing them, and the scheduler's lease.

Exactly one scheduler fires ticks at a time: the holder of the ``scheduler`` row of
``andon_leases``, taken when it is free or expired and renewed by its holder (on the
lease clock of the store: the database server's on PostgreSQL, ``CLOCK_BOOTTIME`` on
SQLite). Exactly-once does not rest on the lease alone: each tick is handled in one
transaction that first inserts its row in ``andon_ticks`` (primary key: schedule and tick
time) and, on PostgreSQL, locks the schedule's row, so two schedulers that overlap (an old
leader that has not noticed it lost the lease) cannot both fire a tick. The same
transaction submits the job through the keyed path (``JobOperations._submit_keyed``, key
``schedule:<name>``, ``on_conflict`` the schedule's overlap), records what became of the
tick and advances the schedule.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Sequence
from typing import Any, Final

from andon._errors import ScheduleExists, ScheduleFromApp, ScheduleNotFound
from andon._ids import new_job_id
from andon._keys import OnConflict
from andon._schedules import (
    MAX_CATCH_UP,
    CatchUp,
    Schedule,
    ScheduleSource,
    ScheduleSpec,
    Tick,
    TickOutcome,
    plan_ticks,
    schedule_key,
)
from andon._storage._connector import IfUnsure, Resolution, Tx
from andon._storage._ops._base import C
from andon._storage._ops._jobs import JobOperations
from andon._storage._records import NewJob, SchedulerLease, Submission
from andon._storage._rows import Row

__all__ = ["JobMaker", "ScheduleOperations"]

SCHEDULER_LEASE: Final = "scheduler"
_LAST_TICKS: Final = 5
_DUE_BATCH: Final = 50

JobMaker = Callable[[ScheduleSpec], NewJob]
"""Builds the job of one tick (the worker's scheduler applies the kind's settings)."""


def plain_job(spec: ScheduleSpec) -> NewJob:
    """The job of a tick with the schedule's own settings only (no kind settings known)."""
    return NewJob(
        id=new_job_id(),
        kind=spec.kind,
        params=dict(spec.params),
        timeout_s=spec.timeout_s,
        priority=spec.priority,
    )


class ScheduleOperations(JobOperations[C]):
    # -- declaring and managing ------------------------------------------------

    def sync_schedules(self, specs: Sequence[ScheduleSpec], by: str | None) -> list[str]:
        """Make the app schedules in the store those of ``specs``: each is added or updated
        (its next tick kept unless its timing changed; a pause kept), and app schedules
        not among them are removed (their ticks stay). Returns the names removed."""
        now = self._clock.now()
        names = self._db.array([spec.name for spec in specs])

        def body(tx: Tx) -> list[str]:
            for spec in specs:
                row = tx.one("schedule_for_update", {"name": spec.name})
                old = _schedule_from_row(row) if row is not None else None
                if old is not None and old.spec == spec and old.source is ScheduleSource.APP:
                    continue
                paused_at, paused_by = (old.paused_at, old.paused_by) if old is not None else (None, None)
                next_at = None
                if paused_at is None:
                    keep = old is not None and old.next_at is not None and old.spec.same_timing(spec)
                    next_at = old.next_at if keep and old is not None else spec.next_after(now)
                tx.one("put_schedule", _put_args(spec, ScheduleSource.APP, paused_at, paused_by, next_at, now))
            return [row["name"] for row in tx.all("drop_undeclared_schedules", {"names": names})]

        return self._db.write(body)

    def add_schedule(self, spec: ScheduleSpec, by: str | None) -> Schedule:
        """Add a runtime schedule. Raises :class:`~andon.ScheduleExists`."""
        now = self._clock.now()

        def body(tx: Tx) -> Schedule:
            if tx.one("schedule_for_update", {"name": spec.name}) is not None:
                raise ScheduleExists(spec.name)
            args = _put_args(spec, ScheduleSource.RUNTIME, None, None, spec.next_after(now), now)
            row = tx.one("put_schedule", args)
            assert row is not None, "an insert returns its row"
            return _schedule_from_row(row)

        def applied(tx: Tx) -> Schedule | Resolution:
            row = tx.one("schedule", {"name": spec.name})
            return Resolution.NOT_APPLIED if row is None else _schedule_from_row(row)

        return self._db.write(body, applied)

    def remove_schedule(self, name: str, by: str | None) -> None:
        """Remove a runtime schedule (its ticks stay in history).

        Raises:
            ScheduleNotFound: no such schedule.
            ScheduleFromApp: the app declares it.
        """

        def body(tx: Tx) -> None:
            schedule = _locked(tx, name)
            if schedule.source is ScheduleSource.APP:
                raise ScheduleFromApp(name)
            tx.one("delete_schedule", {"name": name})

        def applied(tx: Tx) -> Resolution | None:
            return Resolution.NOT_APPLIED if tx.one("schedule", {"name": name}) is not None else None

        self._db.write(body, applied)

    def pause_schedule(self, name: str, by: str | None) -> Schedule:
        """Stop the schedule's ticks until it is resumed (a running job goes on). Idempotent.
        Raises :class:`~andon.ScheduleNotFound`."""
        now = self._clock.now()

        def body(tx: Tx) -> Schedule:
            schedule = _locked(tx, name)
            if schedule.is_paused:
                return schedule
            row = tx.one("pause_schedule", {"name": name, "now": now, "by": by})
            assert row is not None, f"schedule {name} vanished inside its own transaction"
            return _schedule_from_row(row)

        return self._db.write(body, IfUnsure.RETRY)

    def resume_schedule(self, name: str, by: str | None) -> Schedule:
        """Tick again, from the first tick after now (ticks of the pause are not caught up).
        Idempotent. Raises :class:`~andon.ScheduleNotFound`."""
        now = self._clock.now()

        def body(tx: Tx) -> Schedule:
            schedule = _locked(tx, name)
            if not schedule.is_paused:
                return schedule
            args = {"name": name, "now": now, "next_at": schedule.spec.next_after(now)}
            row = tx.one("resume_schedule", args)
            assert row is not None, f"schedule {name} vanished inside its own transaction"
            return _schedule_from_row(row)

        return self._db.write(body, IfUnsure.RETRY)

    def get_schedule(self, name: str, ticks: int = _LAST_TICKS) -> Schedule:
        """The schedule with its latest ``ticks``. Raises :class:`~andon.ScheduleNotFound`."""

        def body(tx: Tx) -> Schedule | None:
            row = tx.one("schedule", {"name": name})
            return None if row is None else _with_ticks(tx, row, ticks)

        schedule = self._db.read(body)
        if schedule is None:
            raise ScheduleNotFound(name)
        return schedule

    def list_schedules(self, ticks: int = _LAST_TICKS) -> list[Schedule]:
        """Every schedule, by name, each with its latest ``ticks`` (newest first)."""
        return self._db.read(lambda tx: [_with_ticks(tx, row, ticks) for row in tx.all("schedules", {})])

    def schedule_ticks(self, name: str, limit: int = 100) -> list[Tick]:
        """The schedule's ticks, newest first (also of a removed schedule: history stays)."""
        rows = self._db.read(lambda tx: tx.all("ticks", {"schedule": name, "limit": limit}))
        if not rows:
            self.get_schedule(name, 0)  # raises ScheduleNotFound for a name never seen
        return [_tick_from_row(row) for row in rows]

    def trigger_schedule(self, name: str, by: str | None, make_job: JobMaker = plain_job) -> Tick:
        """Make the schedule's job now, outside its timing, through its overlap policy (a
        trigger while its job is active and the overlap is ``skip`` makes nothing, and says
        so). Its trace: ``triggered``, or ``skipped`` naming the active job. Works on a
        paused schedule too. Raises :class:`~andon.ScheduleNotFound`."""
        now = self._clock.now()

        def body(tx: Tx) -> Tick:
            schedule = _locked(tx, name)
            tick_at = now
            while tx.one("insert_tick", _tick_args(name, tick_at, now, TickOutcome.TRIGGERED, by)) is None:
                tick_at += 1e-6  # two triggers within one clock reading
            return self._submit_tick(tx, schedule.spec, tick_at, now, by, make_job, triggered=True)

        return self._db.write(body)

    # -- the lease -------------------------------------------------------------

    def take_scheduler_lease(self, holder: str, lease_s: float) -> bool:
        """Take or renew the scheduler's lease for ``lease_s``; ``False``: another holds it."""
        args = {
            "name": SCHEDULER_LEASE,
            "holder": holder,
            "lease_s": lease_s,
            "lease_base": self._db.lease_base(),
            "now": self._clock.now(),
        }
        return self._db.write(lambda tx: tx.one("take_lease", args) is not None, single=True)

    def release_scheduler_lease(self, holder: str) -> None:
        """Give the lease up (a clean stop), so another scheduler takes over at once."""
        args = {"name": SCHEDULER_LEASE, "holder": holder}
        self._db.write(lambda tx: tx.one("release_lease", args), single=True)

    def scheduler_lease(self) -> SchedulerLease | None:
        """Who leads now (``None``: nobody, or an expired lease's holder)."""
        args = {"name": SCHEDULER_LEASE, "lease_base": self._db.lease_base()}
        row = self._db.read(lambda tx: tx.one("lease", args))
        if row is None or row["expires_in"] <= 0:
            return None
        return SchedulerLease(row["holder"], row["since"], row["expires_in"])

    # -- firing ----------------------------------------------------------------

    def next_tick_at(self) -> float | None:
        """The earliest next tick of any schedule that is not paused."""
        row = self._db.read(lambda tx: tx.one("next_tick", {}))
        return None if row is None else row["next_at"]

    def fire_due(self, now: float, holder: str, make_job: JobMaker = plain_job) -> list[Tick]:
        """Handle every tick due at ``now``, one transaction per tick, while ``holder`` holds
        the scheduler's lease; returns their traces (missed ones included)."""
        traces: list[Tick] = []
        # Each round advances every due schedule past now, except one catching up with
        # catch_up="all" (one tick per transaction): bounded, the next call goes on.
        for _ in range(MAX_CATCH_UP):
            due = self._db.read(lambda tx: tx.all("due_schedules", {"now": now, "limit": _DUE_BATCH}))
            if not due:
                break
            for row in due:
                name = row["name"]
                handled = self._db.write(
                    functools.partial(self._fire_one, name=name, now=now, holder=holder, make_job=make_job)
                )
                if handled is None:
                    return traces  # the lease is gone: the new leader goes on
                traces.extend(handled)
        return traces

    def _fire_one(self, tx: Tx, *, name: str, now: float, holder: str, make_job: JobMaker) -> list[Tick] | None:
        """The next due tick of schedule ``name``; ``None`` if ``holder`` lost the lease."""
        lease = {"name": SCHEDULER_LEASE, "holder": holder, "lease_base": self._db.lease_base()}
        if tx.one("holds_lease", lease) is None:
            return None
        row = tx.one("schedule_for_update", {"name": name})
        if row is None:
            return []
        schedule = _schedule_from_row(row)
        if schedule.next_at is None or schedule.next_at > now:
            return []  # paused, removed or fired by another scheduler meanwhile
        plan = plan_ticks(schedule.spec, schedule.next_at, now)
        traces: list[Tick] = []
        if plan.missed is not None:
            first, count, last = plan.missed
            message = f"{count} tick(s) missed while no scheduler ran ({_when(first)} to {_when(last)} UTC)"
            if schedule.spec.catch_up is CatchUp.LATEST:
                message += "; catch_up='latest' fired only the latest"
            args = {**_tick_args(name, first, now, TickOutcome.MISSED, holder), "message": message}
            if tx.one("insert_tick", args) is not None:
                traces.append(_tick_from_args(args))
        if plan.fire is not None and tx.one("insert_tick", _tick_args(name, plan.fire, now, None, holder)) is not None:
            traces.append(self._submit_tick(tx, schedule.spec, plan.fire, now, holder, make_job, triggered=False))
        tx.one("advance_schedule", {"name": name, "next_at": plan.next_at})
        return traces

    def _submit_tick(
        self,
        tx: Tx,
        spec: ScheduleSpec,
        tick_at: float,
        now: float,
        by: str | None,
        make_job: JobMaker,
        *,
        triggered: bool,
    ) -> Tick:
        """Submit the tick's job through the keyed path and record what became of it on the
        tick's row (inserted by the caller in this transaction)."""
        job = dataclasses.replace(make_job(spec), key=schedule_key(spec.name), schedule=spec.name)
        key_args = {"kind": job.kind, "key": job.key}
        tx.one("lock_key", key_args)
        was_active = tx.one("active_with_key", key_args) is not None
        actor = by if triggered else f"schedule:{spec.name}"
        submission = self._submit_keyed(tx, job, actor, spec.overlap, None, now)
        outcome, job_id, message = _outcome(spec.overlap, submission, was_active, triggered, by)
        args = {**_tick_args(spec.name, tick_at, now, outcome, by), "job_id": job_id, "message": message}
        tx.one("set_tick_outcome", args)
        return _tick_from_args(args)


def _outcome(
    overlap: OnConflict, submission: Submission, was_active: bool, triggered: bool, by: str | None
) -> tuple[TickOutcome, str | None, str | None]:
    job = submission.job
    if not submission.created:
        waiting = "waits to start" if overlap is OnConflict.QUEUE else "is still active"
        return TickOutcome.SKIPPED, job.id, f"job {job.id} of this schedule {waiting} (overlap={overlap.value!r})"
    if triggered:
        return TickOutcome.TRIGGERED, job.id, f"triggered by {by}" if by else "triggered"
    if submission.superseded:
        stopped = ", ".join(old.id for old in submission.superseded)
        return TickOutcome.SUPERSEDED, job.id, f"stopped job {stopped} (reason superseded)"
    if was_active:
        return TickOutcome.QUEUED, job.id, "waits behind the schedule's active job"
    return TickOutcome.ENQUEUED, job.id, None


def _when(t: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _locked(tx: Tx, name: str) -> Schedule:
    row = tx.one("schedule_for_update", {"name": name})
    if row is None:
        raise ScheduleNotFound(name)
    return _schedule_from_row(row)


def _put_args(
    spec: ScheduleSpec,
    source: ScheduleSource,
    paused_at: float | None,
    paused_by: str | None,
    next_at: float | None,
    now: float,
) -> dict[str, object]:
    return {
        "name": spec.name,
        "kind": spec.kind,
        "params": json.dumps(dict(spec.params), separators=(",", ":")),
        "cron": spec.cron,
        "every_s": spec.every_s,
        "timezone": spec.timezone,
        "overlap": spec.overlap.value,
        "catch_up": spec.catch_up.value,
        "priority": spec.priority,
        "timeout_s": spec.timeout_s,
        "source": source.value,
        "paused_at": paused_at,
        "paused_by": paused_by,
        "next_at": next_at,
        "now": now,
    }


def _tick_args(
    schedule: str, tick_at: float, at: float, outcome: TickOutcome | None, by: str | None
) -> dict[str, Any]:  # Any: SQL parameter values
    # A tick row is inserted first as "enqueued" (the claim on the tick) and given its real
    # outcome in the same transaction.
    value = (outcome or TickOutcome.ENQUEUED).value
    return {
        "schedule": schedule,
        "tick_at": tick_at,
        "at": at,
        "outcome": value,
        "job_id": None,
        "by": by,
        "message": None,
    }


def _tick_from_args(args: dict[str, Any]) -> Tick:
    return _tick_from_row(args)


def _tick_from_row(row: Row | dict[str, Any]) -> Tick:  # Any: column values
    return Tick(
        schedule=row["schedule"],
        tick_at=row["tick_at"],
        at=row["at"],
        outcome=TickOutcome(row["outcome"]),
        job_id=row["job_id"],
        by=row["by"],
        message=row["message"],
    )


def _schedule_from_row(row: Row, ticks: Sequence[Tick] = ()) -> Schedule:
    spec = ScheduleSpec(
        name=row["name"],
        kind=row["kind"],
        params=json.loads(row["params"]),
        cron=row["cron"],
        every_s=row["every_s"],
        timezone=row["timezone"],
        overlap=OnConflict(row["overlap"]),
        catch_up=CatchUp(row["catch_up"]),
        priority=row["priority"],
        timeout_s=row["timeout_s"],
    )
    return Schedule(
        spec=spec,
        source=ScheduleSource(row["source"]),
        next_at=row["next_at"],
        paused_at=row["paused_at"],
        paused_by=row["paused_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        last_ticks=tuple(ticks),
    )


def _with_ticks(tx: Tx, row: Row, ticks: int) -> Schedule:
    rows = tx.all("ticks", {"schedule": row["name"], "limit": ticks}) if ticks > 0 else []
    return _schedule_from_row(row, [_tick_from_row(r) for r in rows])
