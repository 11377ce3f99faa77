"""Submitting jobs, reading them (one, a page, their history and items), deleting them,
and the figures per kind."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from typing import Any

from andon._cancel import CancelReason
from andon._errors import IdempotencyKeyReused, InvalidTransition, JobNotFound, NotAllowed, UsageError
from andon._jobs import Job, JobEvent, JobStatus, ResultItem
from andon._keys import IDEMPOTENCY_WINDOW_S, OnConflict, decide_conflict
from andon._storage._connector import Args, Resolution, Tx
from andon._storage._ops._base import C
from andon._storage._ops._trees import TreeOperations
from andon._storage._port import Change
from andon._storage._records import (
    IdempotencyKey,
    JobFilter,
    KindStats,
    NewJob,
    OffsetPage,
    Page,
    StopStats,
    Submission,
)
from andon._storage._rows import Row, event_from_row, item_from_row, job_from_row, rows_that_fit

__all__ = ["JobOperations"]


class JobOperations(TreeOperations[C]):
    def submit(self, jobs: Sequence[NewJob], actor: str | None, *, connection: object | None = None) -> list[Job]:
        keyed = next((j for j in jobs if j.key is not None), None)
        if keyed is not None:
            raise UsageError(f"job {keyed.id} has a key: submit keyed jobs one at a time (submit_one)")
        return self._submit(jobs, actor, None, connection)

    def submit_one(
        self,
        job: NewJob,
        actor: str | None,
        *,
        on_conflict: OnConflict = OnConflict.SKIP,
        visible_owner: str | None = None,
        idempotency: IdempotencyKey | None = None,
        parent: tuple[str, str | None, int | None] | None = None,
        connection: object | None = None,
    ) -> Submission:
        now = self._clock.now()

        def body(tx: Tx) -> Submission:
            if idempotency is not None:
                earlier = self._earlier_answer(tx, idempotency, now)
                if earlier is not None:
                    return earlier
            (new,) = due_now([job], now)
            if parent is not None:
                parent_id, worker_id, attempt = parent
                root = self._check_parent(tx, parent_id, worker_id, attempt)
                new = dataclasses.replace(new, parent_id=parent_id, root_id=root)
            submission = self._submit_keyed(tx, new, actor, on_conflict, visible_owner, now)
            if idempotency is not None:
                args = self._idempotency_args(idempotency, now)
                tx.one("save_idempotency", {**args, "job_id": submission.job.id, "created": submission.created})
            return submission

        def applied(tx: Tx) -> Submission | Resolution:
            # Only a submit that creates can be in doubt in a way that matters: if the new
            # job is there, it was created (and its idempotency record with it); if not,
            # running the body again decides afresh, as if the first try never happened.
            row = tx.one("get", {"id": job.id})
            return Submission(job_from_row(row), True) if row is not None else Resolution.NOT_APPLIED

        if connection is not None:
            with self._db.caller_tx(connection) as tx:
                return body(tx)
        return self._db.write(body, applied)

    def _submit_keyed(
        self, tx: Tx, job: NewJob, actor: str | None, on_conflict: OnConflict, visible_owner: str | None, now: float
    ) -> Submission:
        """Apply ``decide_conflict`` to the active jobs of ``job``'s kind and key, then create
        ``job`` unless an existing one answers."""
        superseded: list[Job] = []
        if job.key is not None:
            key_args = {"kind": job.kind, "key": job.key}
            # PostgreSQL: submits of one kind and key take turns from here to their commit,
            # so each sees what the one before it did (READ COMMITTED would not otherwise).
            tx.one("lock_key", key_args)
            active = [job_from_row(row) for row in tx.all("active_with_key", key_args)]
            if visible_owner is not None and any(other.owner != visible_owner for other in active):
                raise NotAllowed(f"use key {job.key!r} for {job.kind!r}: a job of another owner holds it")
            conflict = decide_conflict(active, on_conflict)
            if conflict.existing is not None:
                return Submission(conflict.existing, False)
            message = f"superseded by job {job.id}"
            for old in conflict.superseded:
                _, changes = self._stop_job(tx, old, CancelReason.SUPERSEDED, actor, message, origin=job.id)
                tx.notify(changes)
                stopped = tx.one("get", {"id": old.id})
                assert stopped is not None, f"job {old.id} vanished inside its own transaction"
                superseded.append(job_from_row(stopped))
        self._db.insert_jobs(tx, [job], now, actor)
        tx.notify([Change.WORK])
        return Submission(_queued(job, now), True, tuple(superseded))

    def _earlier_answer(self, tx: Tx, idempotency: IdempotencyKey, now: float) -> Submission | None:
        """What the first request with this idempotency key answered, if it is in the window.

        Raises:
            IdempotencyKeyReused: that request differs from this one.
            JobNotFound: its job was deleted since.
        """
        args = self._idempotency_args(idempotency, now)
        tx.one("lock_idempotency", args)
        row = tx.one("find_idempotency", args)
        if row is None:
            return None
        if row["request_hash"] != idempotency.request_hash:
            raise IdempotencyKeyReused(idempotency.key, row["job_id"])
        found = tx.one("get", {"id": row["job_id"]})
        if found is None:
            raise JobNotFound(row["job_id"])
        return Submission(job_from_row(found), bool(row["created"]))

    @staticmethod
    def _idempotency_args(idempotency: IdempotencyKey, now: float) -> dict[str, object]:
        return {
            "scope": idempotency.scope,
            "key": idempotency.key,
            "request_hash": idempotency.request_hash,
            "now": now,
            "since": now - IDEMPOTENCY_WINDOW_S,
        }

    async def submit_async(self, connection: object, jobs: Sequence[NewJob], actor: str | None) -> list[Job]:
        """:meth:`submit` in the caller's open transaction on their async connection
        (PostgreSQL), awaited on their event loop; not committed here."""
        if any(j.key is not None for j in jobs):
            raise UsageError("a keyed submit cannot join an async connection's transaction: use a psycopg.Connection")
        now = self._clock.now()
        new = due_now(jobs, now)
        await self._db.insert_jobs_async(connection, new, now, actor)
        return [_queued(j, now) for j in new]

    def submit_children(
        self, parent_id: str, worker_id: str | None, attempt: int | None, jobs: Sequence[NewJob], actor: str | None
    ) -> list[Job]:
        """Create jobs as children of ``parent_id``, all or none, if it is running (and held by
        ``worker_id``'s ``attempt`` when they are given); see ``_trees``.

        Raises:
            JobNotFound: no such parent.
            ParentStopping: the parent is not running, or that attempt no longer holds it.
        """
        return self._submit(jobs, actor, (parent_id, worker_id, attempt), None)

    def _submit(
        self,
        jobs: Sequence[NewJob],
        actor: str | None,
        parent: tuple[str, str | None, int | None] | None,
        connection: object | None,
    ) -> list[Job]:
        if not jobs:
            return []
        now = self._clock.now()
        ids = self._db.array([j.id for j in jobs])

        def body(tx: Tx) -> list[NewJob]:
            new = due_now(jobs, now)
            if parent is not None:
                parent_id, worker_id, attempt = parent
                root = self._check_parent(tx, parent_id, worker_id, attempt)
                new = [dataclasses.replace(j, parent_id=parent_id, root_id=root) for j in new]
            self._db.insert_jobs(tx, new, now, actor)
            tx.notify([Change.WORK])
            return new

        def applied(tx: Tx) -> list[NewJob] | Resolution:
            row = tx.one("submitted_count", {"ids": ids, "now": now})
            if row is None or row["n"] == 0:
                return Resolution.NOT_APPLIED
            return [_as_stored(tx, j) for j in jobs]

        if connection is not None:
            # In the caller's transaction: nothing is committed here, nothing to be unsure of.
            with self._db.caller_tx(connection) as tx:
                created = body(tx)
        else:
            # Without a parent to check the body is one statement (PostgreSQL: it commits on
            # its own, in one round trip).
            created = self._db.write(body, applied, single=parent is None)
        return [_queued(j, now) for j in created]

    def get(self, job_id: str) -> Job:
        row = self._db.read(lambda tx: tx.one("get", {"id": job_id}))
        if row is None:
            raise JobNotFound(job_id)
        return job_from_row(row)

    def list_jobs(self, where: JobFilter, limit: int, cursor: str | None = None, max_bytes: int | None = None) -> Page:
        clause, order, args = self._db.job_filter(where, cursor, self._clock.now())
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

    def stages(self, job_ids: Collection[str]) -> dict[str, tuple[object, ...]]:
        """Where each of ``job_ids`` is now: its life stage first, then its items and progress
        (equal tuples: the same snapshot but for fields nobody waits on); gone jobs are left out."""
        if not job_ids:
            return {}
        rows = self._db.read(lambda tx: tx.all("stages", {"ids": self._db.array(job_ids)}))
        return {
            row["id"]: (
                row["events_count"],
                row["items_count"],
                row["progress_done"],
                row["progress_total"],
                row["progress_message"],
            )
            for row in rows
        }

    def child_counts(self, job_ids: Collection[str]) -> dict[str, dict[JobStatus, int]]:
        """How many direct children each of ``job_ids`` has, by status (jobs without any are left out)."""
        if not job_ids:
            return {}
        rows = self._db.read(lambda tx: tx.all("child_counts", {"ids": self._db.array(job_ids)}))
        counts: dict[str, dict[JobStatus, int]] = {}
        for row in rows:
            counts.setdefault(row["parent_id"], {})[JobStatus(row["status"])] = row["n"]
        return counts

    def descendant_counts(self, job_id: str) -> dict[JobStatus, int]:
        """How many descendants (children, their children...) ``job_id`` has, by status."""
        rows = self._db.read(lambda tx: tx.all("descendant_counts", {"id": job_id}))
        return {JobStatus(row["status"]): row["n"] for row in rows}

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
        now = self._clock.now()

        def body(tx: Tx) -> tuple[list[Row], list[StopStats], list[Row]]:
            return tx.all("counts_by_kind", {}), _stop_stats(tx), tx.all("kind_limits", {"now": now})

        count_rows, stop_list, limit_rows = self._db.read(body)
        counts: dict[str, dict[str, int]] = {}
        for row in count_rows:
            counts.setdefault(row["kind"], {})[row["status"]] = row["n"]
        limits = {row["kind"]: row for row in limit_rows}
        for kind in limits:
            counts.setdefault(kind, {})
        stops = {stop.kind: stop for stop in stop_list}
        result = []
        for kind in sorted(counts):
            stop = stops.get(kind, StopStats(kind, 0, None, None, None, {}))
            result.append(
                KindStats(
                    kind=kind,
                    counts=counts[kind],
                    stops=stop.stops,
                    stop_p50_s=stop.p50_s,
                    stop_p99_s=stop.p99_s,
                    stop_max_s=stop.max_s,
                    stop_methods=stop.methods,
                    **_limit_fields(limits.get(kind)),
                )
            )
        return result

    def stop_stats(self) -> list[StopStats]:
        return self._db.read(_stop_stats)


def _stop_stats(tx: Tx) -> list[StopStats]:
    """Per kind with a stop, by kind; both statements read only the index of stopped jobs."""
    methods: dict[str, dict[str, int]] = {}
    for row in tx.all("stop_methods_by_kind", {}):
        methods.setdefault(row["kind"], {})[row["method"]] = row["n"]
    return sorted(
        (
            StopStats(row["kind"], row["stops"], row["p50"], row["p99"], row["slowest"], methods.get(row["kind"], {}))
            for row in tx.all("stops_by_kind", {})
        ),
        key=lambda stop: stop.kind,
    )


def _limit_fields(row: Row | None) -> dict[str, Any]:  # Any: KindStats field values
    if row is None:
        return {}
    rate = (row["rate_starts"], row["rate_s"]) if row["rate_starts"] is not None else None
    return {"max_running": row["max_running"], "rate": rate, "starts_in_window": row["starts"] if rate else None}


def _as_stored(tx: Tx, job: NewJob) -> NewJob:
    """``job`` with the tree it was stored in (after a commit in doubt that did happen)."""
    row = tx.one("get", {"id": job.id})
    if row is None:
        return job
    return dataclasses.replace(
        job, parent_id=row["parent_id"], root_id=row["root_id"], available_at=row["available_at"], delay_s=None
    )


def due_now(jobs: Sequence[NewJob], now: float) -> list[NewJob]:
    """``jobs`` with a delay turned into the moment it ends, by the store's clock."""
    return [
        dataclasses.replace(j, available_at=now + j.delay_s, delay_s=None) if j.delay_s is not None else j for j in jobs
    ]


def _queued(job: NewJob, now: float) -> Job:
    """The record of ``job`` as its submit at ``now`` stored it."""
    return Job(
        id=job.id,
        kind=job.kind,
        params=job.params,
        status=JobStatus.QUEUED,
        created_at=now,
        available_at=now if job.available_at is None else job.available_at,
        events_count=1,
        retry_resume=job.retry_resume,
        max_attempts=job.max_attempts,
        retry_backoff_s=job.retry_backoff_s,
        timeout_s=job.timeout_s,
        priority=job.priority,
        retry_of=job.retry_of,
        owner=job.owner,
        parent_id=job.parent_id,
        root_id=job.root_id,
        detached=job.detached,
        fail_parent=job.fail_parent,
        key=job.key,
        schedule=job.schedule,
    )
