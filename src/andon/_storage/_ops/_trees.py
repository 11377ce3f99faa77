"""Job trees: children submitted from a running job, stops that reach a whole subtree, and a
stopped job that ends only once its descendants have.

The rules, each applied inside the transaction that causes it:

* **A stop reaches the subtree.** A cancel, timeout, force-fail or delete of a job withdraws
  every queued descendant and marks every running one ``cancelling`` (reason
  ``parent_cancelled``, ``origin`` the job whose cancel reached it), in the same transaction:
  once it commits, no descendant can be claimed. Every active descendant is locked first, so
  a child being submitted by one of them either is seen and withdrawn, or finds its parent
  stopping and is never created (:meth:`TreeOperations._check_parent`).
* **Cancelled means the tree stopped.** A ``cancelling`` job whose own work has stopped waits,
  still ``cancelling``, with :attr:`~andon.Job.awaiting` set, until its last active child
  ends; then it takes that status, in the transaction that ended the child, and so on up.
* **A parent that ends by itself** (its handler returned or raised) cancels the children it
  left active (reason ``parent_ended``) unless they were submitted ``detached``; those are
  left running and the parent's history says so.
* **Fail fast.** A child submitted with ``fail_parent`` that fails for good stops its parent
  (reason ``child_failed``): the parent fails, naming the child, and its other children are
  cancelled with it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from andon._cancel import CancelReason
from andon._errors import JobNotFound, ParentStopping
from andon._jobs import (
    FAILING_REASONS,
    CancelOutcome,
    Job,
    JobStatus,
    check_transition,
    decide_cancel,
    shortest_grace,
)
from andon._storage._connector import Tx
from andon._storage._ops._base import C, Operations
from andon._storage._port import Change
from andon._storage._records import CancelNotice
from andon._storage._rows import cancel_notices_of, job_from_row

__all__ = ["TreeOperations"]

_NOT_PROPAGATED = frozenset(
    {CancelReason.PAUSED, CancelReason.SHUTDOWN, CancelReason.LEASE_LOST, CancelReason.WORKER_LOST}
)
"""Stops that do not end the job, so do not reach its children: it goes back to the queue,
and its next attempt finds them (``ctx.children()``)."""

_STOPPED_BY_ITS_PARENT = frozenset({CancelReason.PARENT_CANCELLED, CancelReason.PARENT_ENDED})


class TreeOperations(Operations[C]):
    # -- one job's stop, and its subtree's ---------------------------------------------

    def _stop_job(
        self,
        tx: Tx,
        job: Job,
        reason: CancelReason,
        by: str | None,
        message: str | None,
        *,
        retry: bool = True,
        origin: str | None = None,
        grace_s: float | None = None,
    ) -> tuple[CancelOutcome, list[Change]]:
        """Apply ``decide_cancel`` to ``job`` (locked by the caller) and to its subtree.

        ``grace_s``: the most grace the request allows (``None``: the kind's); it reaches the
        running descendants this stop asks to stop, and nothing already stopping below.
        """
        outcome, status = decide_cancel(job, reason, retry=retry, grace_s=grace_s)
        if outcome is CancelOutcome.ALREADY:
            return outcome, []
        now = self._clock.now()
        if outcome is CancelOutcome.HURRIED:
            self._hurry(tx, job, reason, by, message, grace_s, now)
            return outcome, [Change.CANCEL]
        # Only a job that has run can have children (they come from a running attempt).
        waits_for_children = (
            outcome is CancelOutcome.WITHDRAWN
            and job.attempt > 0
            and tx.all("with_active_children", self._ids([job.id])) != []
        )
        if waits_for_children:
            # Queued again (a shutdown, a lost worker) while its children of an earlier
            # attempt still run: it ends once they have stopped, like any stopped parent.
            check_transition(job.status, JobStatus.CANCELLING)
            self._event(tx, job, "cancel requested", job.status, JobStatus.CANCELLING, by, reason.value, message, now)
            args = self._cancel_args(job.id, reason, by, message, retry, origin, now, grace_s)
            tx.one("request_stop", args)
            tx.one("await_descendants", {"id": job.id, "status": status.value})
        else:
            self._apply_cancel(tx, job, outcome, status, reason, by, message, retry, origin, now, grace_s)
            if job.awaiting is not None:
                # Its work has stopped already; a stronger request changes how it will end.
                final = JobStatus.FAILED if reason in FAILING_REASONS else JobStatus.CANCELLED
                tx.one("await_descendants", {"id": job.id, "status": final.value})
        changes = [Change.ENDED if outcome is CancelOutcome.WITHDRAWN else Change.CANCEL]
        if reason not in _NOT_PROPAGATED:
            changes += self._stop_descendants(tx, job, reason, by, grace_s)
        if waits_for_children:
            self._finish_awaiting(tx, [job.id])
        return outcome, changes

    def _cancel_args(
        self,
        job_id: str,
        reason: CancelReason,
        by: str | None,
        message: str | None,
        retry: bool,
        origin: str | None,
        now: float,
        grace_s: float | None = None,
    ) -> dict[str, Any]:
        return {
            "id": job_id,
            "now": now,
            "reason": reason.value,
            "by": by,
            "message": message,
            "retry": retry,
            "origin": origin,
            "grace_s": grace_s,
        }

    def _hurry(
        self,
        tx: Tx,
        job: Job,
        reason: CancelReason,
        by: str | None,
        message: str | None,
        grace_s: float | None,
        now: float,
    ) -> None:
        """A request for less grace joins the stop in force: only the wait changes (recorded)."""
        grace = shortest_grace(job.cancel.grace_s if job.cancel else None, grace_s)
        assert grace is not None  # decide_cancel answers HURRIED only for a shorter grace
        note = f"asked to stop within {grace:g} s" + (f": {message}" if message else "")
        self._event(tx, job, "cancel requested", job.status, job.status, by, reason.value, note, now)
        tx.one("hurry", {"id": job.id, "grace_s": grace})
        # The stop in force, with its new grace, named to the worker (as a request would be).
        in_force = job.cancel
        if in_force is not None and in_force.reason is not None:
            tx.stopping([CancelNotice(job.id, job.attempt, in_force.reason, in_force.message, grace)])

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
        origin: str | None,
        now: float,
        grace_s: float | None = None,
    ) -> None:
        check_transition(job.status, status)
        # One event per change: withdrawing a queued job is its request and its end at once.
        what = "withdrawn" if outcome is CancelOutcome.WITHDRAWN else "cancel requested"
        self._event(tx, job, what, job.status, status, by, reason.value, message, now)
        if outcome is CancelOutcome.ESCALATED:
            grace_s = shortest_grace(job.cancel.grace_s if job.cancel else None, grace_s)
        args = self._cancel_args(job.id, reason, by, message, retry, origin, now, grace_s)
        if outcome is CancelOutcome.WITHDRAWN:
            failing = status is JobStatus.FAILED
            forced = reason is CancelReason.FORCED
            tx.one(
                "withdraw",
                {
                    **args,
                    "status": status.value,
                    "error_type": ("ForcedFailure" if forced else "ChildFailed") if failing else None,
                    "error_message": (
                        (f"force-failed before it started{_by(by)}" if forced else message) if failing else None
                    ),
                },
            )
        elif outcome is CancelOutcome.REQUESTED:
            tx.one("request_stop", args)
            tx.stopping([CancelNotice(job.id, job.attempt, reason, message, grace_s)])
        else:  # ESCALATED: a stronger request takes over the one in force (stop_strength)
            tx.one("escalate", args)
            tx.stopping([CancelNotice(job.id, job.attempt, reason, message, grace_s)])

    def _stop_descendants(
        self, tx: Tx, origin: Job, reason: CancelReason, by: str | None, grace_s: float | None = None
    ) -> list[Change]:
        """Withdraw ``origin``'s queued descendants and ask its running ones to stop, set-based."""
        if origin.attempt == 0 and origin.status is JobStatus.QUEUED:
            return []  # never ran: no children (they come from a running attempt)
        clause = self._db.subtree_clause(root=origin.parent_id is None)
        if tx.one("any_active_descendant", {"origin": origin.id}, where=clause) is None:
            # Most jobs: nothing below them is active. (A child submitted concurrently waits
            # on this transaction's lock of ``origin`` and then finds it stopping.)
            return []
        now = self._clock.now()
        message = f"job {origin.id} ({origin.kind}) {_what(reason)}"
        args = self._cancel_args(origin.id, CancelReason.PARENT_CANCELLED, by, message, True, origin.id, now, grace_s)
        tx.one("lock_subtree", {"origin": origin.id}, where=clause)
        requeued = [job_from_row(row) for row in tx.all("requeued_parents", args, where=clause)]
        withdrawn = tx.all("withdraw_many", args, where=clause)
        requested = tx.all("request_stop_many", args, where=clause)
        tx.stopping(cancel_notices_of(requested))
        for row in tx.all("retrying_force_fails", args, where=clause):
            # A cancel outranks a retrying force-fail in flight (stop_strength).
            job = job_from_row(row)
            self._apply_cancel(
                tx,
                job,
                CancelOutcome.ESCALATED,
                job.status,
                CancelReason.PARENT_CANCELLED,
                by,
                message,
                True,
                origin.id,
                now,
                grace_s,
            )
            requested.append(row)
        self._stop_requeued(tx, requeued, CancelReason.PARENT_CANCELLED, by, message, grace_s, origin.id)
        # A withdrawn job may be the last active child of a job already waiting for it.
        self._finish_awaiting(tx, [row["parent_id"] for row in withdrawn if row["parent_id"]])
        return [*([Change.ENDED] if withdrawn else []), *([Change.CANCEL] if requested or requeued else [])]

    def _stop_requeued(
        self,
        tx: Tx,
        jobs: list[Job],
        reason: CancelReason,
        by: str | None,
        message: str | None,
        grace_s: float | None,
        origin: str | None = None,
    ) -> None:
        """Stop, one by one, queued jobs that had active children of an earlier attempt (queued
        again by a shutdown or a lost worker; ``requeued_parents``, read before the set-based
        statements, which leave them alone): withdrawn in bulk they would end while their
        children run. ``_stop_job`` makes each wait for the children still active now (the
        bulk statements may have stopped some) and stops those; rare, usually none."""
        for job in jobs:
            _, changes = self._stop_job(tx, job, reason, by, message, origin=origin, grace_s=grace_s)
            tx.notify(changes)

    # -- children ----------------------------------------------------------------------

    def _check_parent(self, tx: Tx, parent_id: str, worker_id: str | None, attempt: int | None) -> str:
        """Lock the parent of children about to be inserted; returns their root id.

        Raises:
            JobNotFound: no such parent.
            ParentStopping: it is not running (a stop has committed), or ``worker_id``'s
                ``attempt`` no longer holds it.
        """
        row = tx.one("parent_for_children", {"id": parent_id})
        if row is None:
            raise JobNotFound(parent_id)
        if row["status"] != JobStatus.RUNNING.value or row["awaiting_status"] is not None:
            raise ParentStopping(parent_id, row["status"], row["cancel_reason"])
        if worker_id is not None and (row["worker_id"], row["attempt"]) != (worker_id, attempt):
            raise ParentStopping(parent_id, "held by another attempt", CancelReason.LEASE_LOST.value)
        root: str = row["root_id"] or parent_id
        return root

    # -- the end of a job and its tree -------------------------------------------------

    def _held_for_descendants(self, tx: Tx, job_ids: Collection[str]) -> set[str]:
        """Which of these jobs still have an active child."""
        if not job_ids:
            return set()
        return {row["id"] for row in tx.all("with_active_children", self._ids(job_ids))}

    def _after_ends(self, tx: Tx, ended: Sequence[Job], actor: str, childless: Collection[str] = ()) -> None:
        """What the end of these jobs (settled this transaction) does to their trees
        (``childless``: jobs known to have no active child)."""
        parents: list[str] = []
        for job in ended:
            if job.status.is_terminal and job.parent_id is not None:
                parents.append(job.parent_id)
                if job.status is JobStatus.FAILED and job.fail_parent:
                    self._fail_parent(tx, job, actor)
        # One query for the whole batch: most jobs never start children.
        ended_by_themselves = [
            j for j in ended if j.status.is_terminal and j.status is not JobStatus.CANCELLED and j.id not in childless
        ]
        with_children = self._held_for_descendants(tx, [j.id for j in ended_by_themselves])
        for job in ended_by_themselves:
            if job.id in with_children:
                self._end_children(tx, job, actor)
        self._finish_awaiting(tx, parents)

    def _fail_parent(self, tx: Tx, child: Job, actor: str) -> None:
        if child.cancel is not None and child.cancel.reason in _STOPPED_BY_ITS_PARENT:
            return  # its parent is stopping it already: its failure is not the cause
        assert child.parent_id is not None
        row = tx.one("get_for_update", {"id": child.parent_id})
        if row is None:
            return
        parent = job_from_row(row)
        if not parent.status.is_active or parent.awaiting is not None:
            return
        error = f": {child.error.type}: {child.error.message}" if child.error else ""
        message = f"child {child.id} ({child.kind}) failed{error}"
        _, changes = self._stop_job(tx, parent, CancelReason.CHILD_FAILED, actor, message, origin=child.id)
        tx.notify(changes)

    def _end_children(self, tx: Tx, parent: Job, actor: str) -> None:
        """A parent ended by itself: cancel the children it left active, note the detached ones."""
        now = self._clock.now()
        message = f"its parent {parent.id} ({parent.kind}) ended {parent.status.value} without waiting for it"
        changes: list[Change] = []
        for row in tx.all("undetached_active_children", {"id": parent.id}):
            locked = tx.one("get_for_update", {"id": row["id"]})
            if locked is None:
                continue
            _, more = self._stop_job(
                tx, job_from_row(locked), CancelReason.PARENT_ENDED, actor, message, origin=parent.id
            )
            changes += more
        left = [row["id"] for row in tx.all("detached_active_children", {"id": parent.id})]
        if left:
            note = f"left {len(left)} detached child(ren) running: {', '.join(left[:20])}"
            if len(left) > 20:
                note += ", ..."
            self._event(tx, parent, "children left running", parent.status, parent.status, actor, None, note, now)
        tx.notify(changes)

    def _finish_awaiting(self, tx: Tx, job_ids: Iterable[str]) -> None:
        """End the jobs among ``job_ids`` that waited for descendants none of which is
        active any more, then their parents, up the tree."""
        ids = set(job_ids)
        while ids:
            now = self._clock.now()
            rows = tx.all("awaiting_done", self._ids(ids))
            ids = set()
            ended = []
            for row in rows:
                job = job_from_row(row)
                assert job.awaiting is not None
                error_type, error_message = _stop_error(job) if job.awaiting is JobStatus.FAILED else (None, None)
                args = {"id": job.id, "now": now, "error_type": error_type, "error_message": error_message}
                done = tx.one("finish_awaiting", args)
                assert done is not None, f"job {job.id} vanished inside its own transaction"
                reason = job.cancel.reason.value if job.cancel else None
                self._event(
                    tx, job, job.awaiting.value, job.status, job.awaiting, "andon", reason,
                    "its last active descendant has stopped", now,
                )  # fmt: skip
                ended.append(job_from_row(done))
            for job in ended:
                if job.parent_id is not None:
                    ids.add(job.parent_id)
                    if job.status is JobStatus.FAILED and job.fail_parent:
                        self._fail_parent(tx, job, "andon")
            if ended:
                tx.notify([Change.ENDED])

    def _ids(self, job_ids: Iterable[str]) -> dict[str, Any]:
        return {"ids": self._db.array(sorted(set(job_ids)))}


def _what(reason: CancelReason) -> str:
    return {
        CancelReason.USER: "was cancelled",
        CancelReason.TIMEOUT: "timed out",
        CancelReason.FORCED: "was force-failed",
        CancelReason.DELETED: "is being deleted",
        CancelReason.CHILD_FAILED: "failed: a child of it failed",
        CancelReason.PARENT_CANCELLED: "was cancelled with its parent",
        CancelReason.PARENT_ENDED: "was cancelled when its parent ended",
        CancelReason.SUPERSEDED: "was superseded",
    }.get(reason, f"was stopped ({reason.value})")


def _stop_error(job: Job) -> tuple[str, str]:
    """The error a job failed by its stop records (a force-fail, a failed child)."""
    cancel = job.cancel
    if cancel is not None and cancel.reason is CancelReason.CHILD_FAILED:
        return "ChildFailed", cancel.message or "a child failed"
    return "ForcedFailure", f"force-failed{_by(cancel.by if cancel else None)}"


def _by(actor: str | None) -> str:
    return f" by {actor}" if actor else ""
