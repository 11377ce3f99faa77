"""The storage engine: every store operation, once, over a :class:`Connector` per database.

An operation is a body run by the connector in one transaction (or one read), made of
named statements (``queries_sqlite.sql``, ``queries_postgres.sql``: the same names for the
same steps) and the state rules of ``andon._jobs``. What a connector adds is how to reach
its database: connections, retries, what to do when a commit's outcome is unknown,
notifications, and the few steps one database does its own way (bulk inserts, the
settlement of many attempts at once, how leases are judged).

A body may run more than once (a connector retries it after a lost connection or a busy
database), so it only reads and writes through its :class:`Tx` and computes its result
from what it read.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Collection, Sequence
from typing import Any, Final, Generic, TypeAlias, TypeVar

from andon._access import Role, TokenRecord
from andon._cancel import CancelReason
from andon._clock import Clock
from andon._errors import InvalidTransition, JobNotFound, UsageError
from andon._jobs import (
    CancelOutcome,
    Job,
    JobEvent,
    JobStatus,
    Outcome,
    OutcomeKind,
    ResultItem,
    check_transition,
    decide_cancel,
)
from andon._output import AttemptEnd, ProgressUpdate
from andon._storage._connector import Args, Connector, IfUnsure, Resolution, Tx
from andon._storage._port import (
    ALL_CHANGES,
    BulkCancel,
    CancelNotice,
    CancelResult,
    Change,
    ChangeWatcher,
    JobFilter,
    KindStats,
    NewJob,
    OffsetPage,
    Page,
)
from andon._storage._rows import (
    LOST_ATTEMPT_EVENT,
    Row,
    event_from_row,
    item_from_row,
    job_from_row,
    lost_attempt_event,
    rows_that_fit,
    settlement_write,
)

__all__ = ["Engine", "StoreEngine"]

T = TypeVar("T")
Settled = Job | InvalidTransition | JobNotFound

_HELD: Final = (JobStatus.RUNNING, JobStatus.CANCELLING)


C = TypeVar("C", bound=Connector)


class Engine(Generic[C]):
    """A :class:`~andon._storage.Store` over connector ``C``; ``SqliteStore`` and
    ``PostgresStore`` are this with their connector."""

    def __init__(self, connector: C, clock: Clock) -> None:
        self._db = connector
        self._clock = clock

    @property
    def url(self) -> str:
        return self._db.url

    def open(self) -> None:
        self._db.open()

    def close(self) -> None:
        self._db.close()

    def upgrade(self) -> tuple[int, int]:
        """Create or upgrade the schema; returns (version before, after). See the
        connector's ``upgrade`` for what each database does and raises."""
        return self._db.upgrade()

    # -- clients --------------------------------------------------------------

    def submit(self, jobs: Sequence[NewJob], actor: str | None) -> list[Job]:
        if not jobs:
            return []
        now = self._clock.now()
        ids = self._db.array([j.id for j in jobs])

        def body(tx: Tx) -> None:
            self._db.insert_jobs(tx, jobs, now, actor)
            tx.notify([Change.WORK])

        def applied(tx: Tx) -> Resolution | None:
            row = tx.one("submitted_count", {"ids": ids, "now": now})
            return Resolution.NOT_APPLIED if row is None or row["n"] == 0 else None

        self._db.write(body, applied)
        return [
            Job(
                id=j.id,
                kind=j.kind,
                params=j.params,
                status=JobStatus.QUEUED,
                created_at=now,
                available_at=now,
                max_attempts=j.max_attempts,
                retry_backoff_s=j.retry_backoff_s,
                timeout_s=j.timeout_s,
                priority=j.priority,
                retry_of=j.retry_of,
                owner=j.owner,
            )
            for j in jobs
        ]

    def get(self, job_id: str) -> Job:
        row = self._db.read(lambda tx: tx.one("get", {"id": job_id}))
        if row is None:
            raise JobNotFound(job_id)
        return job_from_row(row)

    def list_jobs(self, where: JobFilter, limit: int, cursor: str | None = None, max_bytes: int | None = None) -> Page:
        clause, order, args = self._db.job_filter(where, cursor)
        args["limit"] = limit + 1
        if max_bytes is None:
            rows = self._db.read(lambda tx: tx.all("list", args, where=clause, order=order))
            jobs = [job_from_row(r) for r in rows[:limit]]
            return Page(jobs, jobs[-1].id if len(rows) > limit else None)

        def body(tx: Tx) -> tuple[list[Row], list[str], bool]:
            sizes = ((r["id"], r["size"]) for r in tx.scan("job_sizes", args, where=clause, order=order))
            ids, more = rows_that_fit(sizes, limit, max_bytes)
            return tx.all("jobs_by_ids", {"ids": self._db.array(ids)}), ids, more

        rows, ids, more = self._db.read(body)
        return Page([job_from_row(r) for r in rows], ids[-1] if more else None)

    def events(self, job_id: str) -> list[JobEvent]:
        return [event_from_row(r) for r in self._rows_of(job_id, "events", {"id": job_id})]

    def items(self, job_id: str, offset: int = 0, limit: int | None = None) -> list[ResultItem]:
        rows = self._rows_of(job_id, "items", {"id": job_id, "limit": limit, "offset": offset})
        return [item_from_row(r) for r in rows]

    def _rows_of(self, job_id: str, name: str, args: Args) -> list[Row]:
        """The rows of query ``name`` about one job. Raises :class:`~andon.JobNotFound`."""

        def body(tx: Tx) -> list[Row] | None:
            rows = tx.all(name, args)
            if not rows and tx.one("exists", {"id": job_id}) is None:
                return None
            return rows

        rows = self._db.read(body)
        if rows is None:
            raise JobNotFound(job_id)
        return rows

    def events_page(self, job_id: str, offset: int, limit: int, max_bytes: int) -> OffsetPage[JobEvent]:
        # Events are numbered 1..n, so the first ``offset`` are those up to seq ``offset``.
        rows, seqs, more = self._page("event_sizes", "events_between", job_id, offset, limit, max_bytes)
        return OffsetPage([event_from_row(r) for r in rows], offset + len(seqs) if more else None)

    def items_page(self, job_id: str, offset: int, limit: int, max_bytes: int) -> OffsetPage[ResultItem]:
        rows, seqs, more = self._page("item_sizes", "items_between", job_id, offset, limit, max_bytes)
        return OffsetPage([item_from_row(r) for r in rows], offset + len(seqs) if more else None)

    def _page(
        self, sizes: str, rows_between: str, job_id: str, offset: int, limit: int, max_bytes: int
    ) -> tuple[list[Row], list[int], bool]:
        """The rows of one job's page (by seq) that fit in ``max_bytes``, their seqs, and
        whether rows are left. Raises :class:`~andon.JobNotFound`."""
        args = {"id": job_id, "offset": offset, "limit": limit + 1}

        def body(tx: Tx) -> tuple[list[Row], list[int], bool] | None:
            seqs, more = rows_that_fit(((r["seq"], r["size"]) for r in tx.scan(sizes, args)), limit, max_bytes)
            if not seqs:
                return None if tx.one("exists", args) is None else ([], [], False)
            between = {**args, "first": seqs[0], "last": seqs[-1], "n": len(seqs)}
            return tx.all(rows_between, between), seqs, more

        page = self._db.read(body)
        if page is None:
            raise JobNotFound(job_id)
        return page

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

    def delete(self, job_id: str) -> None:
        def body(tx: Tx) -> None:
            row = tx.one("status_for_update", {"id": job_id})
            if row is None:
                raise JobNotFound(job_id)
            if JobStatus(row["status"]).is_active:
                raise InvalidTransition(
                    job_id, row["status"], "delete", f"job {job_id} is {row['status']}; cancel it first"
                )
            tx.one("delete_job", {"id": job_id})

        def gone(tx: Tx) -> Resolution | None:
            return Resolution.NOT_APPLIED if tx.one("exists", {"id": job_id}) else None

        self._db.write(body, gone)

    def kind_stats(self) -> list[KindStats]:
        def body(tx: Tx) -> tuple[list[Row], list[Row], list[Row]]:
            return tx.all("counts_by_kind", {}), tx.all("stops_by_kind", {}), tx.all("stop_methods_by_kind", {})

        count_rows, stop_rows, method_rows = self._db.read(body)
        counts: dict[str, dict[str, int]] = {}
        for row in count_rows:
            counts.setdefault(row["kind"], {})[row["status"]] = row["n"]
        stops = {row["kind"]: row for row in stop_rows}
        methods: dict[str, dict[str, int]] = {}
        for row in method_rows:
            methods.setdefault(row["kind"], {})[row["method"]] = row["n"]
        result = []
        for kind in sorted(counts):
            stop = stops.get(kind)
            result.append(
                KindStats(
                    kind=kind,
                    counts=counts[kind],
                    stops=stop["stops"] if stop else 0,
                    stop_p50_s=stop["p50"] if stop else None,
                    stop_max_s=stop["slowest"] if stop else None,
                    stop_methods=methods.get(kind, {}),
                )
            )
        return result

    def watch(self, changes: Collection[Change] = ALL_CHANGES) -> ChangeWatcher:
        """A watcher for ``changes`` made by any process; the caller closes it."""
        return self._db.watch(frozenset(changes))

    # -- workers --------------------------------------------------------------

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

        return self._db.write(lambda tx: _in_claim_order(tx.all("claim", args)), claimed, single=True)

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
            return self._settle_held(tx, worker_id, ends), _in_claim_order(tx.all("claim", args))

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
        for job, outcome in ending:
            write = settlement_write(job, outcome, now, json.dumps)
            if write.status is JobStatus.QUEUED:
                changes.add(Change.WORK)
            rows.append({"id": job.id, **write.columns})
            events.extend((job.id, job.attempt, *event) for event in write.events)
        settled = {row["id"]: row for row in self._db.settle_rows(tx, rows)}
        # Each job's new events are the last ``events`` of its (now raised) events_count.
        next_seq = {row["id"]: settled[row["id"]]["events_count"] - row["events"] for row in rows}
        numbered = []
        for job_id, attempt, type_, from_, to, why, text in events:
            next_seq[job_id] += 1
            numbered.append(
                {
                    "job_id": job_id,
                    "seq": next_seq[job_id],
                    "attempt": attempt,
                    "type": type_,
                    "from_status": from_.value,
                    "to_status": to.value,
                    "actor": actor,
                    "reason": why,
                    "message": text,
                }
            )
        self._db.insert_events(tx, now, numbered)
        tx.notify(sorted(changes))
        return [job_from_row(settled[job.id]) for job, _ in ending]

    def cancel_notices(self, worker_id: str) -> list[CancelNotice]:
        rows = self._db.read(lambda tx: tx.all("cancel_notices", {"worker": worker_id}))
        return [
            CancelNotice(r["id"], r["attempt"], CancelReason(r["cancel_reason"]), r["cancel_message"]) for r in rows
        ]

    def renew_leases(self, worker_id: str, lease_s: float, job_ids: Collection[str] | None = None) -> list[str]:
        args = {
            "now": self._clock.now(),
            "lease_base": self._db.lease_base(),
            "lease_s": lease_s,
            "worker": worker_id,
            "ids": None if job_ids is None else self._db.array(job_ids),
        }
        rows = self._db.write(lambda tx: tx.all("renew_leases", args), IfUnsure.RETRY, single=True)
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

    # -- tokens ---------------------------------------------------------------

    def create_token(self, name: str, role: Role, token_hash: str) -> TokenRecord:
        args = {"name": name, "role": role.value, "hash": token_hash, "now": self._clock.now()}

        def applied(tx: Tx) -> Row | Resolution | None:
            row = tx.one("find_token", args)
            return row if row is not None and row["name"] == name else Resolution.NOT_APPLIED

        row = self._db.write(lambda tx: tx.one("insert_token", args), applied, single=True)
        if row is None:
            raise UsageError(f"a token named {name!r} exists already (names are never reused); pick another")
        return _token_from_row(row)

    def find_token(self, token_hash: str) -> TokenRecord | None:
        row = self._db.read(lambda tx: tx.one("find_token", {"hash": token_hash}))
        return _token_from_row(row) if row is not None else None

    def list_tokens(self) -> list[TokenRecord]:
        return [_token_from_row(r) for r in self._db.read(lambda tx: tx.all("list_tokens", {}))]

    def revoke_token(self, name: str) -> TokenRecord:
        args = {"name": name, "now": self._clock.now()}
        row = self._db.write(lambda tx: tx.one("revoke_token", args), IfUnsure.RETRY, single=True)
        if row is None:
            raise UsageError(f"no token is named {name!r} (see: andon token ls)")
        return _token_from_row(row)

    # -- helpers --------------------------------------------------------------

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


StoreEngine: TypeAlias = Engine[Any]  # Any: either connector
"""A store as the engine serves it: the port, plus what only tests and tools use
(:meth:`Engine.claim`, :meth:`Engine.settle`, :meth:`Engine.upgrade`)."""


def _token_from_row(row: Row) -> TokenRecord:
    return TokenRecord(row["name"], Role(row["role"]), row["created_at"], row["revoked_at"])


def _held_by(job: Job, worker_id: str, attempt: int) -> bool:
    return job.worker_id == worker_id and job.attempt == attempt and job.status in _HELD


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


def _reread(tx: Tx, job_id: str) -> Job:
    row = tx.one("get", {"id": job_id})
    assert row is not None, f"job {job_id} vanished inside its own transaction"
    return job_from_row(row)


def _cancel_changes(withdrawn: list[str], stopping: list[CancelResult]) -> list[Change]:
    return [*([Change.ENDED] if withdrawn else []), *([Change.CANCEL] if stopping else [])]


def _by(actor: str | None) -> str:
    return f" by {actor}" if actor else ""
