"""Decoding stored rows into records, shared by every SQL store so they cannot disagree.

Both stores keep the same columns under the same names (JSON as text, timestamps as unix
seconds); only the driver's row type differs, so the decoders take anything indexable by
column name.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from andon._cancel import CancelReason, StopMethod
from andon._jobs import CancelInfo, ErrorInfo, Job, JobEvent, JobStatus, ResultItem

__all__ = ["Row", "event_from_row", "item_from_row", "job_from_row"]


class Row(Protocol):
    """A database row read by column name (``sqlite3.Row``, a psycopg ``dict_row``)."""

    def __getitem__(self, key: str, /) -> Any: ...  # Any: whatever the column holds


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
        retry_of=row["retry_of"],
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
