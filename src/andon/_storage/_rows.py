"""Rows both SQL stores read and write, shared so the stores cannot disagree.

Both stores keep the same columns under the same names (JSON as text, timestamps as unix
seconds); only the driver's row type differs, so the decoders take anything indexable by
column name. :func:`settlement_write` is the other direction: what an ended attempt
changes in its job's row and which events it adds, for the stores' SQL to apply.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from andon._cancel import CancelReason, StopMethod
from andon._jobs import (
    CancelInfo,
    Checkpoint,
    ErrorInfo,
    Job,
    JobEvent,
    JobStatus,
    Outcome,
    OutcomeKind,
    ResultItem,
    check_transition,
    decide_settlement,
)
from andon._storage._records import ROW_OVERHEAD_BYTES, CancelNotice
from andon._workers import WorkerEnd, WorkerInfo, WorkerRegistration, worker_status

__all__ = [
    "Row",
    "SettlementWrite",
    "cancel_notices_of",
    "event_from_row",
    "item_from_row",
    "job_from_row",
    "lost_attempt_event",
    "registration_args",
    "resumes_from",
    "rows_that_fit",
    "settlement_write",
    "worker_from_row",
]

K = TypeVar("K")

NewEvent = tuple[str, JobStatus, JobStatus, str | None, str | None]
"""An event to append: type, from status, to status, reason, message."""


@dataclass(frozen=True, slots=True)
class SettlementWrite:
    """An attempt's end as a store writes it."""

    status: JobStatus
    columns: dict[str, Any]  # Any: SQL parameter values, named as both stores' SQL names them
    events: list[NewEvent]
    resume_from: int | None = None
    """Requeued to resume from its checkpoint: the items from this seq on are dropped."""


def settlement_write(job: Job, outcome: Outcome, now: float, encode: Callable[[Any], Any]) -> SettlementWrite:
    """What ending ``job``'s attempt with ``outcome`` writes (``encode``: the store's JSON).

    Raises:
        InvalidTransition: the job is not running (it was already settled).
    """
    settlement = decide_settlement(job, outcome)
    check_transition(job.status, settlement.status)
    status = settlement.status
    cancel = job.cancel if job.status is JobStatus.CANCELLING else None
    events: list[NewEvent] = []
    method = outcome.stop_method
    if outcome.kind is OutcomeKind.LOST:
        # Recovery settles a stop whose worker vanished: the record says so, not "no method".
        method = StopMethod.WORKER_LOST
    if cancel is not None or outcome.kind is OutcomeKind.STOPPED:
        how = method.value if method else None
        why = (cancel.reason.value if cancel else None) or (outcome.stop_reason.value if outcome.stop_reason else None)
        events.append(("stopped", job.status, job.status, why, f"stopped by: {how}" if how else None))
    error = outcome.error
    if outcome.kind is OutcomeKind.LOST:
        # How the worker was found lost: its process gone (a lookout says which), else its lease.
        error = outcome.error or ErrorInfo("WorkerLost", f"worker {job.worker_id} stopped renewing its lease")
    elif status is JobStatus.FAILED and error is None and cancel is not None:
        if cancel.reason is CancelReason.CHILD_FAILED:
            error = ErrorInfo("ChildFailed", cancel.message or "a child failed")
        else:
            by = f" by {cancel.by}" if cancel.by else ""
            error = ErrorInfo("ForcedFailure", f"force-failed{by}")
    requeue = status is JobStatus.QUEUED
    message = f"{error.type}: {error.message}" if error and status is not JobStatus.SUCCEEDED else None
    if settlement.requeue_delay:
        message = f"{message or ''}; next attempt in {settlement.requeue_delay:g} s".lstrip("; ")
    checkpoint = job.checkpoint if settlement.resume else None
    if checkpoint is not None:
        message = f"{message or ''}; {resumes_from(checkpoint)}".lstrip("; ")
    reason = outcome.stop_reason.value if outcome.stop_reason and cancel is None else None
    if outcome.kind is OutcomeKind.LOST:
        reason = CancelReason.WORKER_LOST.value
    events.append((settlement.event, job.status, status, reason, message))
    columns = {
        "status": status.value,
        "finished": None if requeue else now,
        "result": encode(outcome.result) if status is JobStatus.SUCCEEDED else None,
        "error_type": error.type if error else None,
        "error_message": error.message if error else None,
        "error_traceback": error.traceback if error else None,
        "failed": int(settlement.counts_as_failure),
        "available": now + (settlement.requeue_delay or 0.0) if requeue else job.available_at,
        "acknowledged_at": outcome.acknowledged_at if cancel is not None else None,
        "has_cancel": cancel is not None,
        # A force-fail that leads to a retry: that cancel belonged to the attempt that just
        # ended (its events keep it); the next attempt starts with none.
        "clear_cancel": requeue and cancel is not None,
        "stopped": outcome.stopped_at or now,
        "method": method.value if method else None,
        "events": len(events),
        "resume": settlement.resume,
        "awaiting": None,
    }
    return SettlementWrite(status, columns, events, checkpoint.items if checkpoint is not None else None)


def resumes_from(checkpoint: Checkpoint) -> str:
    """How a history event says where the next attempt goes on from."""
    return f"resumes from the checkpoint of attempt {checkpoint.attempt}, after item {checkpoint.items}"


class Row(Protocol):
    """A database row read by column name (``sqlite3.Row``, a psycopg ``dict_row``)."""

    def __getitem__(self, key: str, /) -> Any: ...  # Any: whatever the column holds


LOST_ATTEMPT_EVENT = "lost attempt ended"


def lost_attempt_event(attempt: int, worker_id: str, outcome: Outcome, lost_items: int) -> tuple[str, str]:
    """The reason and message of the event that records how an attempt that had lost its
    job ended (see ``Store.record_lost_attempt``)."""
    how = outcome.kind.value
    if outcome.stop_method is not None:
        how += f" ({outcome.stop_method.value})"
    if outcome.error is not None:
        how += f": {outcome.error.type}"
    reason = outcome.stop_reason.value if outcome.stop_reason is not None else outcome.kind.value
    when = ""
    if outcome.stopped_at is not None:
        stopped = datetime.datetime.fromtimestamp(outcome.stopped_at, datetime.UTC)
        when = f" at {stopped.isoformat(timespec='milliseconds')}"
    message = (
        f"attempt {attempt} went on without the job on worker {worker_id} and ended {how}{when};"
        f" {lost_items} item(s) it emitted after its last stored write were not stored"
    )
    return reason, message


def job_from_row(row: Row) -> Job:
    cancel = None
    if row["cancel_requested_at"] is not None:
        cancel = CancelInfo(
            requested_at=row["cancel_requested_at"],
            reason=CancelReason(row["cancel_reason"]),
            by=row["cancel_by"],
            message=row["cancel_message"],
            retry=bool(row["cancel_retry"]),
            acknowledged_at=row["cancel_acknowledged_at"],
            stopped_at=row["cancel_stopped_at"],
            stop_method=StopMethod(row["cancel_stop_method"]) if row["cancel_stop_method"] else None,
            origin=row["cancel_origin"],
            grace_s=row["cancel_grace_s"],
        )
    error = None
    if row["error_type"] is not None:
        error = ErrorInfo(row["error_type"], row["error_message"] or "", row["error_traceback"])
    return Job(
        id=row["id"],
        kind=row["kind"],
        params=json.loads(row["params"]),
        status=JobStatus(row["status"]),
        created_at=row["created_at"],
        attempt=row["attempt"],
        failures=row["failures"],
        max_attempts=row["max_attempts"],
        retry_backoff_s=row["retry_backoff_s"],
        priority=row["priority"],
        timeout_s=row["timeout_s"],
        available_at=row["available_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        worker_id=row["worker_id"],
        lease_expires_at=row["lease_expires_at"],
        progress_done=row["progress_done"],
        progress_total=row["progress_total"],
        progress_message=row["progress_message"],
        items_count=row["items_count"],
        result=json.loads(row["result"]) if row["result"] is not None else None,
        error=error,
        cancel=cancel,
        checkpoint=_checkpoint_from_row(row),
        events_count=row["events_count"],
        resume=bool(row["resume"]),
        retry_resume=bool(row["retry_resume"]),
        retry_of=row["retry_of"],
        owner=row["owner"],
        parent_id=row["parent_id"],
        root_id=row["root_id"],
        detached=bool(row["detached"]),
        fail_parent=bool(row["fail_parent"]),
        key=row["job_key"],
        awaiting=JobStatus(row["awaiting_status"]) if row["awaiting_status"] else None,
        schedule=row["schedule_name"],
        pruned_at=row["pruned_at"],
    )


def _checkpoint_from_row(row: Row) -> Checkpoint | None:
    if row["checkpoint"] is None:
        return None
    return Checkpoint(
        json.loads(row["checkpoint"]), row["checkpoint_items"], row["checkpoint_attempt"], row["checkpoint_at"]
    )


def event_from_row(row: Row) -> JobEvent:
    return JobEvent(
        job_id=row["job_id"],
        seq=row["seq"],
        at=row["at"],
        type=row["type"],
        from_status=JobStatus(row["from_status"]) if row["from_status"] else None,
        to_status=JobStatus(row["to_status"]) if row["to_status"] else None,
        actor=row["actor"],
        reason=row["reason"],
        message=row["message"],
        attempt=row["attempt"],
    )


def item_from_row(row: Row) -> ResultItem:
    return ResultItem(row["job_id"], row["seq"], row["attempt"], row["at"], json.loads(row["data"]))


def rows_that_fit(rows: Iterable[tuple[K, int]], limit: int, max_bytes: int) -> tuple[list[K], bool]:
    """The keys of the rows that make one page, and whether any row is left after them.

    ``rows`` are ``(key, bytes of stored values)`` in page order. A page takes rows while
    they fit in ``max_bytes`` (each costs ``ROW_OVERHEAD_BYTES`` more), always at least one,
    at most ``limit``. It reads ``rows`` only one row past the page: a store passes a lazy
    cursor, so the sizes of rows far beyond the budget are never even computed.
    """
    keys: list[K] = []
    total = 0
    for key, size in rows:
        cost = size + ROW_OVERHEAD_BYTES
        if len(keys) == limit or (keys and total + cost > max_bytes):
            return keys, True
        keys.append(key)
        total += cost
    return keys, False


def registration_args(worker: WorkerRegistration) -> dict[str, Any]:  # Any: SQL parameter values
    """The columns a worker's registration (and each heartbeat) writes, as both stores' SQL names them."""
    process = worker.process
    return {
        "worker": worker.id,
        "host": process.machine.host,
        "boot_id": process.machine.boot_id,
        "pid_ns": process.machine.pid_ns,
        "pid": process.pid,
        "pid_start": process.start,
        "version": worker.version,
        "kinds": json.dumps(list(worker.kinds)),
        "slots": worker.slots,
        "lease_s": worker.lease_s,
    }


def worker_from_row(row: Row, held: Sequence[tuple[str, str | None]], visible_owner: str | None) -> WorkerInfo:
    """A ``list_workers`` row and the jobs that worker holds (id, owner), with its status
    decided; ``visible_owner``: only that owner's job ids are named (all are counted)."""
    ended = WorkerEnd(row["ended"]) if row["ended"] is not None else None
    age = max(0.0, float(row["heartbeat_age_s"]))
    return WorkerInfo(
        id=row["id"],
        host=row["host"],
        pid=int(row["pid"]),
        version=row["version"],
        kinds=tuple(json.loads(row["kinds"])),
        slots=int(row["slots"]),
        lease_s=float(row["lease_s"]),
        started_at=float(row["started_at"]),
        heartbeat_at=float(row["heartbeat_at"]),
        heartbeat_age_s=age,
        stopped_at=None if row["stopped_at"] is None else float(row["stopped_at"]),
        end_message=row["end_message"],
        status=worker_status(ended, age, float(row["lease_s"])),
        running=len(held),
        job_ids=tuple(job_id for job_id, owner in held if visible_owner is None or owner == visible_owner),
    )


def cancel_notices_of(rows: Iterable[Row]) -> list[CancelNotice]:
    """The stop requests in ``rows`` of jobs a worker holds (each row as the cancel left it)."""
    return [
        CancelNotice(r["id"], r["attempt"], CancelReason(r["cancel_reason"]), r["cancel_message"], r["cancel_grace_s"])
        for r in rows
        if r["worker_id"] is not None
    ]
