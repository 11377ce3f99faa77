"""Pruning old history: the params, results, items and events of finished jobs go; a
tombstone of each job stays (or, with ``purge``, the job goes too).

A prune is many short transactions, never one long one. It walks finished jobs oldest
first from a cursor, a window of ``batch`` jobs at a time: the window is read outside any
write transaction, and the write that follows touches only that window's jobs and checks
again that each is still finished and old enough (a resume may have put it back in the
queue meanwhile). On SQLite the write lock is held for one batch, so claims and submits
of other processes run between batches; on PostgreSQL each batch is a small transaction
whose dead row versions autovacuum reclaims as it goes.

A job is left alone while its tree has an active job (its top-level job, or any job under
that): a parent still waiting for its descendants, a detached child still running. A tree
is pruned once all of it has finished.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Final

from andon._errors import UsageError
from andon._jobs import TERMINAL_STATUSES, JobStatus
from andon._storage._connector import IfUnsure, Tx
from andon._storage._ops._base import C, Operations
from andon._storage._port import Change
from andon._storage._records import PruneResult
from andon._storage._rows import Row

__all__ = ["DEFAULT_PRUNE_BATCH", "MAX_PRUNE_BATCH", "RetentionOperations"]

DEFAULT_PRUNE_BATCH: Final = 2000
"""Jobs per transaction: about 10-40 ms of writing on SQLite, so a claim waits at most that."""
MAX_PRUNE_BATCH: Final = 10_000
ERROR_MESSAGE_CHARS: Final = 500
"""How much of an error's message a tombstone keeps (its traceback goes)."""
_START: Final = (-1e300, "")
"""A cursor before every finished job."""


@dataclass(frozen=True, slots=True)
class _Finished:
    """A finished job as a prune's window read it."""

    id: str
    kind: str
    status: str
    finished_at: float
    awaiting: bool
    tree_active: bool
    items: int
    events: int


@dataclass
class _Tally:
    jobs: int = 0
    items: int = 0
    events: int = 0
    batches: int = 0


class RetentionOperations(Operations[C]):
    def prune(
        self,
        older_than_s: float,
        *,
        statuses: Collection[JobStatus] = TERMINAL_STATUSES,
        kinds: Collection[str] = (),
        purge: bool = False,
        batch: int = DEFAULT_PRUNE_BATCH,
        dry_run: bool = False,
        limit: int | None = None,
    ) -> PruneResult:
        wanted = _check(older_than_s, statuses, batch)
        now = self._clock.now()
        before = now - older_than_s
        tally = _Tally()
        # Purge walks the tombstones too (they are in their own index), then the rest.
        windows = ("purge_window", "prune_window") if purge else ("prune_window",)
        for window in windows:
            if limit is not None and tally.jobs >= limit:
                break
            cursor = _START
            while True:
                rows = self._db.read(
                    functools.partial(self._window, window=window, before=before, cursor=cursor, limit=batch)
                )
                if not rows:
                    break
                cursor = (rows[-1].finished_at, rows[-1].id)
                chosen = [r for r in rows if _eligible(r, wanted, kinds)]
                if chosen:
                    self._prune_batch(tally, chosen, before, now, purge=purge, dry_run=dry_run)
                if len(rows) < batch or (limit is not None and tally.jobs >= limit):
                    break
        return PruneResult(
            jobs=tally.jobs,
            items=tally.items,
            events=tally.events,
            purged=purge,
            dry_run=dry_run,
            batches=tally.batches,
        )

    def _window(self, tx: Tx, *, window: str, before: float, cursor: tuple[float, str], limit: int) -> list[_Finished]:
        """The next ``limit`` finished jobs after ``cursor``, each marked if its tree is active
        (those are kept, not dropped: the cursor must still move past them)."""
        args = {"before": before, "after_at": cursor[0], "after_id": cursor[1], "limit": limit}
        rows = tx.all(window, args)
        if not rows:
            return []
        roots = {r["root_id"] or r["id"] for r in rows}
        active = {a["root_id"] for a in tx.all("active_trees", {"roots": self._db.array(roots)})}
        return [_finished(r, (r["root_id"] or r["id"]) in active) for r in rows]

    def _prune_batch(
        self, tally: _Tally, rows: Sequence[_Finished], before: float, now: float, *, purge: bool, dry_run: bool
    ) -> None:
        if dry_run:
            tally.jobs += len(rows)
            tally.items += sum(r.items for r in rows)
            tally.events += sum(r.events for r in rows)
            return
        ids = self._db.array([r.id for r in rows])
        args = {"ids": ids, "before": before, "now": now, "message_chars": ERROR_MESSAGE_CHARS}

        def body(tx: Tx) -> tuple[int, int, int]:
            done = [r["id"] for r in tx.all("purge_jobs" if purge else "tombstone_jobs", args)]
            if not done:
                return 0, 0, 0
            these = {"ids": self._db.array(done)}
            items = tx.one("prune_items", these)
            events = tx.one("prune_events", these)
            if purge:
                # A job gone is a change watchers of "ended" jobs may be waiting on (a wait_finished).
                tx.notify([Change.ENDED])
            return len(done), items["n"] if items else 0, events["n"] if events else 0

        # Running a batch twice is running it once: the second finds the jobs pruned already.
        jobs, items, events = self._db.write(body, IfUnsure.RETRY)
        tally.jobs += jobs
        tally.items += items
        tally.events += events
        tally.batches += 1


def _check(older_than_s: float, statuses: Collection[JobStatus], batch: int) -> frozenset[JobStatus]:
    if not older_than_s >= 0:  # also refuses NaN
        raise UsageError(f"older_than_s must be 0 or more seconds, not {older_than_s!r}")
    if not 1 <= batch <= MAX_PRUNE_BATCH:
        raise UsageError(f"batch must be from 1 to {MAX_PRUNE_BATCH} jobs, not {batch!r}")
    wanted = frozenset(JobStatus(s) for s in statuses)
    active = sorted(s.value for s in wanted - TERMINAL_STATUSES)
    if active:
        raise UsageError(f"only finished jobs can be pruned, not {', '.join(active)} ones")
    if not wanted:
        raise UsageError("statuses is empty: give one or more of succeeded, failed, cancelled")
    return wanted


def _finished(row: Row, tree_active: bool) -> _Finished:
    return _Finished(
        id=row["id"],
        kind=row["kind"],
        status=row["status"],
        finished_at=row["finished_at"],
        awaiting=row["awaiting_status"] is not None,
        tree_active=tree_active,
        items=row["items_count"],
        events=row["events_count"],
    )


def _eligible(job: _Finished, statuses: frozenset[JobStatus], kinds: Collection[str]) -> bool:
    return not job.tree_active and not job.awaiting and job.status in statuses and (not kinds or job.kind in kinds)
