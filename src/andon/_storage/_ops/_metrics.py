"""What a scrape of ``GET /metrics`` reads: one read transaction, cheap at any history size.

Active jobs are counted as they are, over the rows in active states only. What ended and
how long stops took are counters a trigger on ``andon_jobs`` keeps in the transaction that
ends each job (``schema_sqlite.sql``, ``migrations_postgres.sql`` migration 7), whichever
path ends it: a settlement, a withdraw, a bulk cancel, a tree rule, recovery, a force-fail.
"""

from __future__ import annotations

from andon._jobs import JobStatus
from andon._storage._connector import Tx
from andon._storage._ops._base import C, Operations
from andon._storage._records import ActiveJobs, MetricsSnapshot, StopTimes
from andon._storage._rows import Row

__all__ = ["MetricsOperations"]


class MetricsOperations(Operations[C]):
    def metrics(self) -> MetricsSnapshot:
        now = self._clock.now()

        def body(tx: Tx) -> tuple[list[Row], list[Row], list[Row], list[Row]]:
            return (
                tx.all("metrics_active", {"now": now}),
                tx.all("metrics_ended", {}),
                tx.all("metrics_stops", {}),
                tx.all("metrics_buckets", {}),
            )

        active, ended, stops, buckets = self._db.read(body)
        return MetricsSnapshot(
            at=now,
            active=tuple(
                ActiveJobs(
                    kind=row["kind"],
                    status=JobStatus(row["status"]),
                    jobs=int(row["n"]),
                    scheduled=int(row["scheduled"] or 0),
                    oldest_due_at=row["oldest_due"],
                    oldest_request_at=row["oldest_request"],
                )
                for row in active
            ),
            ended={(row["kind"], row["status"]): int(row["n"]) for row in ended},
            stops=tuple(
                StopTimes(row["kind"], row["method"], row["reason"], float(row["le"]), int(row["n"]), row["seconds"])
                for row in stops
            ),
            bounds=tuple(float(row["le"]) for row in buckets),
        )
