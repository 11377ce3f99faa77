"""What workers call: claim, write output, settle (with the next claims), hear cancels,
renew leases and recover the jobs of workers that are gone."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Collection, Sequence
from typing import Any, Final

from andon._cancel import CancelReason
from andon._errors import InvalidTransition, JobNotFound
from andon._jobs import Job, JobStatus, Outcome, OutcomeKind
from andon._output import AttemptEnd, ProgressUpdate
from andon._storage._connector import IfUnsure, Resolution, Tx
from andon._storage._ops._base import C
from andon._storage._ops._limits import claim_limited, rate_due
from andon._storage._ops._trees import TreeOperations
from andon._storage._port import Change
from andon._storage._records import CancelNotice
from andon._storage._rows import (
    LOST_ATTEMPT_EVENT,
    Row,
    SettlementWrite,
    job_from_row,
    lost_attempt_event,
    registration_args,
    settlement_write,
)
from andon._workers import WorkerRegistration

__all__ = ["Settled", "WorkOperations"]

Settled = Job | InvalidTransition | JobNotFound

_HELD: Final = (JobStatus.RUNNING, JobStatus.CANCELLING)


class WorkOperations(TreeOperations[C]):
    def claim(self, worker_id: str, kinds: Collection[str], lease_s: float) -> Job | None:
        claimed = self.claim_many(worker_id, kinds, lease_s, 1)
        return claimed[0] if claimed else None

    def claim_many(self, worker_id: str, kinds: Collection[str], lease_s: float, limit: int) -> list[Job]:
        if not kinds or limit < 1:
            return []
        args = self._claim_args(worker_id, kinds, lease_s, limit)

        def claimed(tx: Tx) -> list[Job] | Resolution:
            # Only this call knows its token: the jobs are ours if the commit happened.
            return _in_claim_order(tx.all("claimed_with_token", args)) or Resolution.NOT_APPLIED

        jobs = self._db.write(lambda tx: _in_claim_order(tx.all("claim", args)), claimed, single=True)
        if jobs:
            return jobs
        # Nothing: the queue has nothing to start, or a kind of ``kinds`` is limited (_limits).
        return self._db.write(lambda tx: _in_claim_order(self._claim_limited(tx, args, kinds)), claimed)

    def _claim_limited(self, tx: Tx, args: dict[str, Any], kinds: Collection[str]) -> list[Row]:
        return claim_limited(tx, args, kinds, self._db.array, self._clock.now)

    def _claim_args(self, worker_id: str, kinds: Collection[str], lease_s: float, limit: int) -> dict[str, Any]:
        return {
            "now": self._clock.now(),
            "kinds": self._db.array(kinds),
            "worker": worker_id,
            "lease_base": self._db.lease_base(),
            "lease_s": lease_s,
            "token": uuid.uuid4().hex,
            "actor": f"worker:{worker_id}",
            "n": limit,
        }

    def next_due(self, kinds: Collection[str]) -> float | None:
        """When the next queued job of ``kinds`` that is not due yet falls due (wall clock),
        or a start of a rate-limited kind leaves its window, whichever comes first."""
        if not kinds:
            return None
        args = {"now": self._clock.now(), "kinds": self._db.array(kinds)}

        def body(tx: Tx) -> float | None:
            row = tx.one("next_due", args)
            due = None if row is None or row["due"] is None else float(row["due"])
            by_rate = rate_due(tx, args["kinds"], args["now"])
            return by_rate if due is None else due if by_rate is None else min(due, by_rate)

        return self._db.read(body)

    def write_progress(self, updates: Sequence[ProgressUpdate]) -> list[str]:
        pending = [u for u in updates if not u.is_empty]
        if not pending:
            return []
        return self._db.write(lambda tx: self._write_updates(tx, pending), IfUnsure.RETRY)

    def _write_updates(self, tx: Tx, updates: Sequence[ProgressUpdate]) -> list[str]:
        refused: list[str] = []
        # Rows are locked in id order, the order recovery and bulk cancels lock them in.
        for update in sorted(updates, key=lambda u: u.job_id):
            progress = update.progress or (None, None, None)
            held = tx.one(
                "write_progress",
                {
                    "job_id": update.job_id,
                    "attempt": update.attempt,
                    "items_count": update.items[-1][0] + 1 if update.items else 0,
                    "has_progress": update.progress is not None,
                    "done": progress[0],
                    "total": progress[1],
                    "progress_message": progress[2],
                    "acknowledged_at": update.acknowledged_at,
                    "has_checkpoint": update.checkpoint is not None,
                    "checkpoint": update.checkpoint.encoded if update.checkpoint else None,
                    "checkpoint_items": update.checkpoint.items if update.checkpoint else None,
                    "checkpoint_at": update.checkpoint.at if update.checkpoint else None,
                },
            )
            if held is None:
                # The attempt lost the job (recovered, requeued, settled): what it still sends
                # must not change a finished job or mix into the next attempt's results.
                refused.append(update.job_id)
                continue
            if update.items:
                self._db.insert_items(tx, update)
        return refused

    def settle(
        self,
        worker_id: str,
        attempt: int,
        job_id: str,
        outcome: Outcome,
        update: ProgressUpdate | None,
    ) -> Job:
        """End one attempt (:meth:`settle_many` of one).

        Raises:
            InvalidTransition: this worker no longer holds this attempt (it was recovered).
            JobNotFound: no such job.
        """
        (settled,) = self.settle_many(worker_id, [AttemptEnd(job_id, attempt, outcome, update)])
        if isinstance(settled, (InvalidTransition, JobNotFound)):
            raise settled
        return settled

    def settle_many(self, worker_id: str, ends: Sequence[AttemptEnd]) -> list[Settled]:
        if not ends:
            return []
        return self._db.write(
            lambda tx: self._settle_held(tx, worker_id, ends),
            lambda tx: _settled_now(tx, worker_id, ends),
        )

    def settle_and_claim(
        self,
        worker_id: str,
        ends: Sequence[AttemptEnd],
        kinds: Collection[str],
        lease_s: float,
        limit: int,
    ) -> tuple[list[Settled], list[Job]]:
        if not kinds or limit < 1:
            return self.settle_many(worker_id, ends), []
        args = self._claim_args(worker_id, kinds, lease_s, limit)

        def body(tx: Tx) -> tuple[list[Settled], list[Job]]:
            settled = self._settle_held(tx, worker_id, ends)
            # An empty claim may mean a limited kind among ``kinds`` (_limits).
            rows = tx.all("claim", args) or self._claim_limited(tx, args, kinds)
            return settled, _in_claim_order(rows)

        def resolved(tx: Tx) -> tuple[list[Settled], list[Job]] | Resolution:
            # One transaction: the ends tell whether it committed, the token finds
            # the jobs it claimed if it did.
            found = _settled_now(tx, worker_id, ends)
            if found is Resolution.NOT_APPLIED:
                return found
            return found, _in_claim_order(tx.all("claimed_with_token", args))

        return self._db.write(body, resolved)

    def _settle_held(self, tx: Tx, worker_id: str, ends: Sequence[AttemptEnd]) -> list[Settled]:
        if not ends:
            return []
        # Rows are locked in id order, the order recovery and bulk cancels lock them in.
        ids = self._db.array(sorted({s.job_id for s in ends}))
        locked = {row["id"]: job_from_row(row) for row in tx.all("lock_many", {"ids": ids})}
        results: list[Settled | None] = [None] * len(ends)
        ending: list[tuple[int, Job, AttemptEnd]] = []
        for i, s in enumerate(ends):
            job = locked.get(s.job_id)
            if job is None:
                results[i] = JobNotFound(s.job_id)
            elif not _held_by(job, worker_id, s.attempt):
                results[i] = InvalidTransition(
                    s.job_id, job.status.value, "settle", f"worker {worker_id} no longer holds job {s.job_id}"
                )
            else:
                ending.append((i, job, s))
        updates = [s.update for _, _, s in ending if s.update is not None and not s.update.is_empty]
        if updates:
            self._write_updates(tx, updates)
            # A checkpoint in the last batch decides where a requeued attempt goes on from.
            fresh = {u.job_id for u in updates if u.checkpoint is not None}
            ending = [(i, _job(tx, job.id) if job.id in fresh else job, s) for i, job, s in ending]
        settled = self._settle_all(tx, [(job, s.outcome) for _, job, s in ending], f"worker:{worker_id}")
        for (i, _, _), job in zip(ending, settled, strict=True):
            results[i] = job
        return [r for r in results if r is not None]

    def _settle_all(self, tx: Tx, ending: Sequence[tuple[Job, Outcome]], actor: str) -> list[Job]:
        """End attempts of jobs this transaction holds, with their events."""
        if not ending:
            return []
        now = self._clock.now()
        rows: list[dict[str, Any]] = []
        events: list[tuple[str, int, str, JobStatus, JobStatus, str | None, str | None]] = []
        changes = {Change.ENDED}
        resumes: list[tuple[str, int]] = []
        writes = [settlement_write(job, outcome, now, json.dumps) for job, outcome in ending]
        # A stopped job with children still active ends once they have (``_trees``).
        held = self._held_for_descendants(
            tx, [job.id for (job, _), write in zip(ending, writes, strict=True) if _may_wait(job, write)]
        )
        for (job, _), write in zip(ending, writes, strict=True):
            if job.id in held:
                write = _awaiting_descendants(job, write)
            if write.status is JobStatus.QUEUED:
                changes.add(Change.WORK)
            if write.resume_from is not None:
                resumes.append((job.id, write.resume_from))
            rows.append({"id": job.id, **write.columns})
            events.extend((job.id, job.attempt, *event) for event in write.events)
        # Each job's new events are the last ``n`` of its (raised) events_count, in order (``k``).
        count = {row["id"]: row["events"] for row in rows}
        order: dict[str, int] = {}
        pending = []
        for job_id, attempt, type_, from_, to, why, text in events:
            order[job_id] = order.get(job_id, 0) + 1
            pending.append(
                {
                    "job_id": job_id,
                    "k": order[job_id],
                    "n": count[job_id],
                    "attempt": attempt,
                    "type": type_,
                    "from_status": from_.value,
                    "to_status": to.value,
                    "actor": actor,
                    "reason": why,
                    "message": text,
                }
            )
        settled = {row["id"]: row for row in self._db.settle_rows(tx, rows, now, pending)}
        for job_id, from_seq in resumes:
            # Resumed from its checkpoint: the next attempt redoes what came after it.
            row = tx.one("drop_items_after_checkpoint", {"id": job_id, "from_seq": from_seq})
            assert row is not None, f"job {job_id} vanished inside its own transaction"
            settled[job_id] = row
        tx.notify(sorted(changes))
        ended = [job_from_row(settled[job.id]) for job, _ in ending]
        self._after_ends(tx, ended, actor, {job_id for job_id, row in settled.items() if _childless(row)})
        return ended

    def cancel_notices(self, worker_id: str) -> list[CancelNotice]:
        rows = self._db.read(lambda tx: tx.all("cancel_notices", {"worker": worker_id}))
        return [
            CancelNotice(
                r["id"], r["attempt"], CancelReason(r["cancel_reason"]), r["cancel_message"], r["cancel_grace_s"]
            )
            for r in rows
        ]

    def renew_leases(
        self,
        worker_id: str,
        lease_s: float,
        job_ids: Collection[str] | None = None,
        *,
        heartbeat: WorkerRegistration | None = None,
    ) -> list[str]:
        args = {
            "now": self._clock.now(),
            "lease_base": self._db.lease_base(),
            "lease_s": lease_s,
            "worker": worker_id,
            "ids": None if job_ids is None else self._db.array(job_ids),
        }
        name = "renew_leases"
        if heartbeat is not None:
            # The worker's heartbeat rides in the renewal: one transaction (one statement on PostgreSQL).
            name = "renew_leases_beating"
            args |= registration_args(heartbeat) | {"worker": worker_id, "lease_s": lease_s}
        rows = self._db.write(lambda tx: tx.all(name, args), IfUnsure.RETRY, single=True)
        return [row["id"] for row in rows]

    def recover_lost(self) -> list[Job]:
        """Settle attempts whose worker's lease expired (reason ``worker_lost``)."""

        def body(tx: Tx) -> list[Job]:
            rows = tx.all("expired", self._db.expired_args(tx))
            return self._settle_all(tx, [(job_from_row(r), Outcome(OutcomeKind.LOST)) for r in rows], "andon")

        # Run again after an unknown commit, it finds what is still expired; it only misses
        # reporting what the first run recovered.
        return self._db.write(body, IfUnsure.RETRY)

    def record_lost_attempt(self, job_id: str, attempt: int, worker_id: str, outcome: Outcome, lost_items: int) -> None:
        reason, message = lost_attempt_event(attempt, worker_id, outcome, lost_items)

        def body(tx: Tx) -> None:
            row = tx.one("get_for_update", {"id": job_id})
            if row is None:
                raise JobNotFound(job_id)
            job = dataclasses.replace(job_from_row(row), attempt=attempt)
            actor = f"worker:{worker_id}"
            now = self._clock.now()
            self._event(tx, job, LOST_ATTEMPT_EVENT, job.status, job.status, actor, reason, message, now)

        # Not repeated after an unknown commit: a second copy of the event would be wrong.
        self._db.write(body, IfUnsure.RAISE)


def _held_by(job: Job, worker_id: str, attempt: int) -> bool:
    return job.worker_id == worker_id and job.attempt == attempt and job.status in _HELD and job.awaiting is None


def _may_wait(job: Job, write: SettlementWrite) -> bool:
    """A stop that ends the job (cancelled, or failed by a force-fail or a failed child)."""
    return job.status is JobStatus.CANCELLING and write.status.is_terminal


def _awaiting_descendants(job: Job, write: SettlementWrite) -> SettlementWrite:
    """``write`` changed to keep the job ``cancelling`` until its last active child ends:
    its work's end is recorded (how it stopped, its error), not yet the job's."""
    final = write.status
    *before, _ = write.events
    reason = job.cancel.reason.value if job.cancel is not None else None
    note = f"its work stopped; it ends {final.value} once its active descendants have stopped"
    events = [*before, ("awaiting descendants", job.status, job.status, reason, note)]
    columns = write.columns | {"status": job.status.value, "finished": None, "stopped": None, "awaiting": final.value}
    return SettlementWrite(job.status, columns, events, write.resume_from)


def _in_claim_order(rows: Sequence[Row]) -> list[Job]:
    return sorted((job_from_row(row) for row in rows), key=lambda job: (-job.priority, job.id))


def _settled_now(tx: Tx, worker_id: str, ends: Sequence[AttemptEnd]) -> list[Settled] | Resolution:
    """After a commit in doubt: if any of these attempts is still held, the transaction did
    not commit (those recovered meanwhile are refused when it runs again); if none is, it
    did (or they were recovered), and the jobs as they are now are the answer."""
    found: list[Settled] = []
    for s in ends:
        row = tx.one("get", {"id": s.job_id})
        if row is None:
            found.append(JobNotFound(s.job_id))
            continue
        job = job_from_row(row)
        if _held_by(job, worker_id, s.attempt):
            return Resolution.NOT_APPLIED
        found.append(job)
    return found


def _childless(row: Row) -> bool:
    """The settlement's row says the job has no active child (PostgreSQL's do)."""
    try:
        return row["active_children"] is False
    except (KeyError, IndexError):  # a row that does not say (SQLite's)
        return False


def _job(tx: Tx, job_id: str) -> Job:
    row = tx.one("get", {"id": job_id})
    assert row is not None, f"job {job_id} vanished inside its own transaction"
    return job_from_row(row)
