"""Going on where a job left off (resume), and holding a kind back (pause), each with its
record in the history of every job it touches."""

from __future__ import annotations

from andon._errors import JobNotFound
from andon._jobs import RESUMABLE_STATUSES, Job, JobStatus, check_transition, decide_resume
from andon._storage._connector import Resolution, Tx
from andon._storage._ops._base import C, Operations
from andon._storage._port import Change
from andon._storage._records import PausedKind, PauseResult
from andon._storage._rows import cancel_notices_of, job_from_row, resumes_from

__all__ = ["ControlOperations"]


class ControlOperations(Operations[C]):
    def resume(self, job_id: str, by: str | None) -> Job:
        def body(tx: Tx) -> Job:
            job = _locked(tx, job_id)
            parent_status = None
            if job.parent_id is not None and not job.detached:
                # Held (FOR SHARE) until the commit: the parent cannot end meanwhile.
                parent = tx.one("parent_for_children", {"id": job.parent_id})
                parent_status = JobStatus(parent["status"]) if parent is not None else None
            checkpoint = decide_resume(job, parent_status)
            check_transition(job.status, JobStatus.QUEUED)
            now = self._clock.now()
            tx.one("resume", {"id": job_id, "now": now})
            self._event(tx, job, "resumed", job.status, JobStatus.QUEUED, by, None, resumes_from(checkpoint), now)
            row = tx.one("drop_items_after_checkpoint", {"id": job_id, "from_seq": checkpoint.items})
            assert row is not None, f"job {job_id} vanished inside its own transaction"
            tx.notify([Change.WORK])
            return job_from_row(row)

        def applied(tx: Tx) -> Job | Resolution:
            # Still cancelled or failed: the commit did not happen. Otherwise it did (or a
            # worker has claimed the resumed job since).
            row = tx.one("get", {"id": job_id})
            if row is None:
                raise JobNotFound(job_id)
            job = job_from_row(row)
            return Resolution.NOT_APPLIED if job.status in RESUMABLE_STATUSES else job

        return self._db.write(body, applied)

    def pause_kind(self, kind: str, by: str | None, message: str | None, now: bool) -> PauseResult:
        args = {"kind": kind, "now": self._clock.now(), "by": by, "message": message}

        def body(tx: Tx) -> PauseResult:
            added = tx.one("pause_kind", args) is not None
            note = {**args, "type": "kind paused", "reason": "paused"}
            if added:
                tx.one("note_on_queued", note)
            rows = tx.all("pause_running", args) if now else []
            stopping = [job_from_row(r) for r in rows]
            if stopping:
                tx.stopping(cancel_notices_of(rows))
                tx.notify([Change.CANCEL])
            return PauseResult(kind, added, stopping)

        def applied(tx: Tx) -> PauseResult | Resolution:
            if not any(row["kind"] == kind for row in tx.all("paused_kinds", {})):
                return Resolution.NOT_APPLIED
            return PauseResult(kind, True, [])

        return self._db.write(body, applied)

    def unpause_kind(self, kind: str, by: str | None) -> bool:
        args = {"kind": kind, "now": self._clock.now(), "by": by, "message": None}

        def body(tx: Tx) -> bool:
            removed = tx.one("unpause_kind", args) is not None
            if removed:
                tx.one("note_on_queued", {**args, "type": "kind unpaused", "reason": None})
                tx.notify([Change.WORK])
            return removed

        def applied(tx: Tx) -> bool | Resolution:
            paused = any(row["kind"] == kind for row in tx.all("paused_kinds", {}))
            return Resolution.NOT_APPLIED if paused else True

        return self._db.write(body, applied)

    def paused_kinds(self) -> list[PausedKind]:
        rows = self._db.read(lambda tx: tx.all("paused_kinds", {}))
        return [PausedKind(r["kind"], r["paused_at"], r["paused_by"], r["message"]) for r in rows]


def _locked(tx: Tx, job_id: str) -> Job:
    row = tx.one("get_for_update", {"id": job_id})
    if row is None:
        raise JobNotFound(job_id)
    return job_from_row(row)
