"""Cancelling and force-failing, one job or many: the rules of ``andon._jobs.decide_cancel``
applied in one transaction, so a queued job is withdrawn before any worker can claim it."""

from __future__ import annotations

from andon._cancel import CancelReason
from andon._errors import JobNotFound
from andon._jobs import CancelOutcome, Job, JobStatus, check_transition, decide_cancel
from andon._storage._connector import IfUnsure, Tx
from andon._storage._ops._base import C, Operations
from andon._storage._port import BulkCancel, CancelResult, Change, JobFilter
from andon._storage._rows import job_from_row

__all__ = ["CancelOperations"]


class CancelOperations(Operations[C]):
    def request_cancel(
        self,
        job_id: str,
        reason: CancelReason,
        by: str | None,
        message: str | None = None,
        retry: bool = True,
    ) -> CancelResult:
        def body(tx: Tx) -> CancelResult:
            row = tx.one("get_for_update", {"id": job_id})
            if row is None:
                raise JobNotFound(job_id)
            job = job_from_row(row)
            outcome, status = decide_cancel(job, reason, retry=retry)
            if outcome is not CancelOutcome.ALREADY:
                self._apply_cancel(tx, job, outcome, status, reason, by, message, retry)
                job = _reread(tx, job_id)
                tx.notify([Change.ENDED if outcome is CancelOutcome.WITHDRAWN else Change.CANCEL])
            return CancelResult(job, outcome)

        # Asking again after an unknown commit is harmless: it reports the state as it is.
        return self._db.write(body, IfUnsure.RETRY)

    def _apply_cancel(
        self,
        tx: Tx,
        job: Job,
        outcome: CancelOutcome,
        status: JobStatus,
        reason: CancelReason,
        by: str | None,
        message: str | None,
        retry: bool,
    ) -> None:
        now = self._clock.now()
        check_transition(job.status, status)
        # One event per change: withdrawing a queued job is its request and its end at once.
        what = "withdrawn" if outcome is CancelOutcome.WITHDRAWN else "cancel requested"
        self._event(tx, job, what, job.status, status, by, reason.value, message, now)
        args = {"id": job.id, "now": now, "reason": reason.value, "by": by, "message": message, "retry": retry}
        if outcome is CancelOutcome.WITHDRAWN:
            forced = status is JobStatus.FAILED
            tx.one(
                "withdraw",
                {
                    **args,
                    "status": status.value,
                    "error_type": "ForcedFailure" if forced else None,
                    "error_message": f"force-failed before it started{_by(by)}" if forced else None,
                },
            )
        elif outcome is CancelOutcome.REQUESTED:
            tx.one("request_stop", args)
        else:  # ESCALATED: a stronger request takes over the one in force (stop_strength)
            tx.one("escalate", args)

    def request_cancel_many(
        self, where: JobFilter, reason: CancelReason, by: str | None, message: str | None = None
    ) -> BulkCancel:
        if reason is CancelReason.FORCED:
            return self._force_fail_many(where, by, message)
        clause, _, args = self._db.job_filter(where, None)
        args |= {"now": self._clock.now(), "reason": reason.value, "by": by, "message": message}

        def body(tx: Tx) -> BulkCancel:
            # The rule of decide_cancel, set-based: queued jobs are withdrawn, running ones
            # move to cancelling (each with its event); everything else is left alone.
            withdrawn = [row["id"] for row in tx.all("withdraw_many", args, where=clause)]
            requested = tx.all("request_stop_many", args, where=clause)
            stopping = [CancelResult(job_from_row(r), CancelOutcome.REQUESTED) for r in requested]
            # A cancel outranks a retrying force-fail in flight (stop_strength); such jobs
            # are rare, so they take the one-job path.
            for row in tx.all("retrying_force_fails", args, where=clause):
                job = job_from_row(row)
                self._apply_cancel(tx, job, CancelOutcome.ESCALATED, job.status, reason, by, message, True)
                stopping.append(CancelResult(_reread(tx, job.id), CancelOutcome.ESCALATED))
            tx.notify(_cancel_changes(withdrawn, stopping))
            return BulkCancel(withdrawn=withdrawn, stopping=stopping)

        return self._db.write(body, IfUnsure.RAISE)

    def _force_fail_many(self, where: JobFilter, by: str | None, message: str | None) -> BulkCancel:
        """Bulk force-fail, job by job through ``decide_cancel`` (rare; no set-based shortcut)."""
        clause, _, args = self._db.job_filter(where, None)

        def body(tx: Tx) -> BulkCancel:
            withdrawn: list[str] = []
            stopping: list[CancelResult] = []
            for row in tx.all("active_for_update", args, where=clause):
                job = job_from_row(row)
                outcome, status = decide_cancel(job, CancelReason.FORCED)
                if outcome is CancelOutcome.ALREADY:
                    continue
                self._apply_cancel(tx, job, outcome, status, CancelReason.FORCED, by, message, True)
                if outcome is CancelOutcome.WITHDRAWN:
                    withdrawn.append(job.id)
                else:
                    stopping.append(CancelResult(_reread(tx, job.id), outcome))
            tx.notify(_cancel_changes(withdrawn, stopping))
            return BulkCancel(withdrawn, stopping)

        return self._db.write(body, IfUnsure.RAISE)


def _reread(tx: Tx, job_id: str) -> Job:
    row = tx.one("get", {"id": job_id})
    assert row is not None, f"job {job_id} vanished inside its own transaction"
    return job_from_row(row)


def _cancel_changes(withdrawn: list[str], stopping: list[CancelResult]) -> list[Change]:
    return [*([Change.ENDED] if withdrawn else []), *([Change.CANCEL] if stopping else [])]


def _by(actor: str | None) -> str:
    return f" by {actor}" if actor else ""
