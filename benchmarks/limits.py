"""Claim cost with a limit per kind in force, beside the same claims without one.

Usage::

    python benchmarks/limits.py [--quick] [--db POSTGRES_URL | --no-postgres]

One store, ``queued`` jobs of one kind, claimed one at a time (as a worker slot does) and
settled at once, so a few run at any moment; only the claim is timed. Three ways: no limit
(the one ``claim`` statement), ``max_running`` with room (the kind's row locked, its
running jobs counted, the candidates read and started), and ``rate`` with room (the same
plus the starts log written and trimmed). The limits are set high enough never to hold a
job back: what is measured is what enforcing them costs each claim.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import _common
from _report import figure_row, percentile
from andon._ids import new_job_id
from andon._jobs import Outcome, OutcomeKind
from andon._storage import KindLimit, NewJob
from andon._storage._engine import StoreEngine
from andon._storage._postgres import PostgresStore
from andon._storage._sqlite import SqliteStore

WAYS: dict[str, KindLimit] = {
    "no limit": KindLimit("bench"),
    "max_running in force": KindLimit("bench", max_running=1_000_000),
    "rate in force": KindLimit("bench", rate=(1_000_000, 60.0)),
}


def claim_costs(store: StoreEngine, limit: KindLimit, queued: int) -> list[float]:
    """Microseconds per claim of one job, ``queued`` claims."""
    store.sync_kind_limits([limit], by="bench")
    for start in range(0, queued, 1_000):
        jobs = [NewJob(id=new_job_id(), kind="bench", params={}) for _ in range(min(1_000, queued - start))]
        store.submit(jobs, actor="bench")
    costs = []
    for _ in range(queued):
        began = time.perf_counter()
        (job,) = store.claim_many("w", ["bench"], 60.0, 1)
        costs.append((time.perf_counter() - began) * 1e6)
        store.settle("w", job.attempt, job.id, Outcome(OutcomeKind.SUCCEEDED), None)
    return costs


def rows_for(
    open_one: Callable[[str], StoreEngine], store_name: str, queued: int
) -> list[dict[str, Any]]:  # Any: JSON values
    rows = []
    for way, limit in WAYS.items():
        store = open_one(way)
        try:
            costs = claim_costs(store, limit, queued)
        finally:
            store.close()
        median = sorted(costs)[len(costs) // 2]
        note = f"median of {queued:,} claims of one job; p99 {percentile(costs, 99):.0f} µs"
        rows.append(figure_row("limits", f"claim, {way}, {store_name}", median, "µs", runs=queued, note=note))
        print(f"  claim, {way}, {store_name}: {median:.0f} µs (p99 {percentile(costs, 99):.0f})", flush=True)
    return rows


def measure(quick: bool, postgres_url: str | None) -> list[dict[str, Any]]:  # Any: JSON values
    queued = 200 if quick else 3_000
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="andon-bench-") as folder:

        def sqlite(way: str) -> StoreEngine:
            store = SqliteStore(f"{folder}/{way.replace(' ', '_')}.db")
            store.open()
            return store

        rows += rows_for(sqlite, "SQLite", queued)
    if postgres_url is not None:
        with contextlib.ExitStack() as schemas:

            def postgres(way: str) -> StoreEngine:
                label = "limits_" + way.split()[0]  # a schema of its own for each way
                store = PostgresStore(schemas.enter_context(_common.fresh_schema(postgres_url, label)))
                store.upgrade()
                store.open()
                return store

            rows += rows_for(postgres, "PostgreSQL", queued)
    return rows


if __name__ == "__main__":
    sys.exit(_common.group_main(__doc__, measure))
