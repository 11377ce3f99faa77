"""Cancelling and force-failing, one job or many: the rules of ``andon._jobs.decide_cancel``
applied in one transaction, so a queued job is withdrawn before any worker can claim it, and
with it the job's whole subtree (``_trees``)."""

from __future__ import annotations

from andon._cancel import CancelReason
from andon._errors import JobNotFound
from andon._jobs import FAILING_REASONS, CancelOutcome, Job
from andon._storage._connector import IfUnsure, Tx
from andon._storage._ops._base import C
from andon._storage._ops._trees import TreeOperations
from andon._storage._port import Change
from andon._storage._records import BulkCancel, CancelResult, JobFilter
from andon._storage._rows import Row, cancel_notices_of, job_from_row

__all__ = ["CancelOperations"]


class CancelOperations(TreeOperations[C]):
    def request_cancel(
        self,
        job_id: str,
        reason: CancelReason,
        by: str | None,
        message: str | None = None,
        retry: bool = True,
        grace_s: float | None = None,
    ) -> CancelResult:
        def body(tx: Tx) -> CancelResult:
            row = tx.one("get_for_update", {"id": job_id})
            if row is None:
                raise JobNotFound(job_id)
            job = job_from_row(row)
            outcome, changes = self._stop_job(tx, job, reason, by, message, retry=retry, grace_s=grace_s)
            if outcome is not CancelOutcome.ALREADY:
                job = _reread(tx, job_id)
                tx.notify(changes)
            return CancelResult(job, outcome)

        if reason not in FAILING_REASONS:
            withdrawn = self._withdraw_fresh(job_id, reason, by, message)
            if withdrawn is not None:
                return CancelResult(withdrawn, CancelOutcome.WITHDRAWN)
        # Asking again after an unknown commit is harmless: it reports the state as it is.
        return self._db.write(body, IfUnsure.RETRY)

    def _withdraw_fresh(self, job_id: str, reason: CancelReason, by: str | None, message: str | None) -> Job | None:
        """The commonest cancel, in one statement: a queued job that never ran and has no
        parent is withdrawn (what ``decide_cancel`` decides for it, with no tree to look at).
        ``None``: the job is in any other state, and nothing was written."""
        args = {"id": job_id, "now": self._clock.now(), "reason": reason.value, "by": by, "message": message}

        def body(tx: Tx) -> Row | None:
            row = tx.one("withdraw_fresh", args)
            if row is not None:
                tx.notify([Change.ENDED])
            return row

        row = self._db.write(body, IfUnsure.RETRY, single=True)
        return job_from_row(row) if row is not None else None

    def request_cancel_many(
        self,
        where: JobFilter,
        reason: CancelReason,
        by: str | None,
        message: str | None = None,
        grace_s: float | None = None,
    ) -> BulkCancel:
        if reason is CancelReason.FORCED:
            return self._force_fail_many(where, by, message)
        clause, _, args = self._db.job_filter(where, None, self._clock.now())
        now = self._clock.now()
        args |= {"now": now, "reason": reason.value, "by": by, "message": message, "origin": None, "grace_s": grace_s}

        def body(tx: Tx) -> BulkCancel:
            requeued = [job_from_row(row) for row in tx.all("requeued_parents", args, where=clause)]
            # The rule of decide_cancel, set-based: queued jobs are withdrawn, running ones
            # move to cancelling (each with its event); everything else is left alone.
            withdrawn_rows = tx.all("withdraw_many", args, where=clause)
            withdrawn = [row["id"] for row in withdrawn_rows]
            requested = tx.all("request_stop_many", args, where=clause)
            tx.stopping(cancel_notices_of(requested))
            stopping = [CancelResult(job_from_row(r), CancelOutcome.REQUESTED) for r in requested]
            # Then the requeued parents, each waiting for its children still active (if any).
            self._stop_requeued(tx, requeued, reason, by, message, grace_s)
            for job in requeued:
                after = _reread(tx, job.id)
                if after.status.is_terminal:
                    withdrawn.append(job.id)  # none of its children was left running
                else:
                    stopping.append(CancelResult(after, CancelOutcome.WITHDRAWN))
            # A cancel outranks a retrying force-fail in flight (stop_strength); such jobs
            # are rare, so they take the one-job path.
            for row in tx.all("retrying_force_fails", args, where=clause):
                job = job_from_row(row)
                self._apply_cancel(
                    tx, job, CancelOutcome.ESCALATED, job.status, reason, by, message, True, None, now, grace_s
                )
                stopping.append(CancelResult(_reread(tx, job.id), CancelOutcome.ESCALATED))
            if grace_s is not None:
                # Asking for less grace brings forward the stops already under way (rare: a
                # second, hurried bulk cancel), job by job.
                seen = {r.job.id for r in stopping}
                for row in tx.all("stopping_slower_than", args, where=clause):
                    job = job_from_row(row)
                    if job.id not in seen:
                        self._hurry(tx, job, reason, by, message, grace_s, now)
                        stopping.append(CancelResult(_reread(tx, job.id), CancelOutcome.HURRIED))
            changes = _cancel_changes(withdrawn, stopping)
            # Their trees stop with them (only the jobs that have children are looked at again).
            stopped = {r.job.id: r.job for r in stopping} | {r["id"]: None for r in withdrawn_rows}
            for parent_id in sorted(self._held_for_descendants(tx, stopped)):
                parent = stopped[parent_id] or _reread(tx, parent_id)
                changes += self._stop_descendants(tx, parent, reason, by, grace_s)
            self._finish_awaiting(tx, [row["parent_id"] for row in withdrawn_rows if row["parent_id"]])
            tx.notify(changes)
            return BulkCancel(withdrawn=withdrawn, stopping=stopping)

        return self._db.write(body, IfUnsure.RAISE)

    def _force_fail_many(self, where: JobFilter, by: str | None, message: str | None) -> BulkCancel:
        """Bulk force-fail, job by job through ``decide_cancel`` (rare; no set-based shortcut)."""
        clause, _, args = self._db.job_filter(where, None, self._clock.now())

        def body(tx: Tx) -> BulkCancel:
            withdrawn: list[str] = []
            stopping: list[CancelResult] = []
            changes: list[Change] = []
            for row in tx.all("active_for_update", args, where=clause):
                job = job_from_row(row)
                if not _reread(tx, job.id).status.is_active:
                    continue  # ended meanwhile with a parent this bulk stopped
                outcome, more = self._stop_job(tx, _reread(tx, job.id), CancelReason.FORCED, by, message)
                if outcome is CancelOutcome.ALREADY:
                    continue
                changes += more
                if outcome is CancelOutcome.WITHDRAWN:
                    withdrawn.append(job.id)
                else:
                    stopping.append(CancelResult(_reread(tx, job.id), outcome))
            tx.notify(changes)
            return BulkCancel(withdrawn, stopping)

        return self._db.write(body, IfUnsure.RAISE)


def _reread(tx: Tx, job_id: str) -> Job:
    row = tx.one("get", {"id": job_id})
    assert row is not None, f"job {job_id} vanished inside its own transaction"
    return job_from_row(row)


def _cancel_changes(withdrawn: list[str], stopping: list[CancelResult]) -> list[Change]:
    return [*([Change.ENDED] if withdrawn else []), *([Change.CANCEL] if stopping else [])]
