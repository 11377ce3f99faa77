"""Retention: pruning 1,000,000 finished jobs while a worker keeps claiming.

Usage::

    python benchmarks/retention.py [--quick] [--db POSTGRES_URL | --no-postgres]

The store gets ``history`` finished jobs (scale.py's fast fill: 90% succeeded, 5% failed,
5% cancelled), every 10th with 4 events and every 20th with 5 result items, plus a short
result on every job and a traceback on the failed ones. A real ``andon worker`` process
then runs no-op jobs that a feeder thread keeps submitting, while a probe thread here
submits and claims one job of its own kind at a time and times each claim, first for a
while without a prune (the baseline), then while ``Store.prune`` tombstones every
finished job (batches of 2,000). Reported: claim p50/p99 without and during the prune,
the prune's duration, and the size of each table (with its indexes) before and after
(PostgreSQL: also after a plain VACUUM; SQLite: the file keeps its size, the freed pages
go on its free list for reuse).
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

import _common
import andon
from _report import figure_row, latency_row
from andon._ids import new_job_id
from andon._jobs import Outcome, OutcomeKind
from andon._output import AttemptEnd
from andon._storage import NewJob
from andon._storage._postgres import PostgresStore
from scale import fill_postgres, fill_sqlite

TABLES = ("andon_jobs", "andon_events", "andon_items")
PROBE_KIND = "probe"

_SQLITE_EXTRAS = """
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :n)
INSERT INTO andon_events (job_id, seq, at, type, from_status, to_status, actor, attempt)
SELECT printf('%08x-0000-7000-8000-%012x', n, n), s.seq, :now, 'started', 'queued', 'running', 'bench', 1
FROM g, (SELECT 1 AS seq UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4) s WHERE n % 10 = 0;
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :n)
INSERT INTO andon_items (job_id, seq, attempt, at, data)
SELECT printf('%08x-0000-7000-8000-%012x', n, n), s.seq, 1, :now, '{"url": "https://example.com/page", "ok": true}'
FROM g, (SELECT 0 AS seq UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4) s
WHERE n % 20 = 0;
UPDATE andon_jobs SET result = '{"pages": 12, "bytes": 123456, "note": "done"}',
    error_traceback = CASE WHEN status = 'failed' THEN :traceback END;
UPDATE andon_jobs SET items_count = 5 WHERE id IN (SELECT job_id FROM andon_items);
UPDATE andon_jobs SET events_count = 4 WHERE id IN (SELECT job_id FROM andon_events)
"""
_POSTGRES_EXTRAS = """
INSERT INTO andon_events (job_id, seq, at, type, from_status, to_status, actor, attempt)
SELECT lpad(to_hex(n), 8, '0') || '-0000-7000-8000-' || lpad(to_hex(n), 12, '0'), s, %(now)s, 'started',
       'queued', 'running', 'bench', 1
FROM generate_series(10, %(n)s, 10) AS n, generate_series(1, 4) AS s;
INSERT INTO andon_items (job_id, seq, attempt, at, data)
SELECT lpad(to_hex(n), 8, '0') || '-0000-7000-8000-' || lpad(to_hex(n), 12, '0'), s, 1, %(now)s,
       '{"url": "https://example.com/page", "ok": true}'
FROM generate_series(20, %(n)s, 20) AS n, generate_series(0, 4) AS s;
UPDATE andon_jobs SET result = '{"pages": 12, "bytes": 123456, "note": "done"}',
    error_traceback = CASE WHEN status = 'failed' THEN %(traceback)s END;
UPDATE andon_jobs SET items_count = 5 WHERE id IN (SELECT job_id FROM andon_items);
UPDATE andon_jobs SET events_count = 4 WHERE id IN (SELECT job_id FROM andon_events)
"""
_TRACEBACK = "Traceback (most recent call last):\n" + '  File "x.py", line 1, in handler\n' * 20 + "ValueError: bad\n"


def add_sqlite_extras(path: str, history: int) -> None:
    with sqlite3.connect(path) as conn:
        for statement in _SQLITE_EXTRAS.split(";\n"):
            conn.execute(statement, {"n": history, "now": time.time(), "traceback": _TRACEBACK})


def add_postgres_extras(url: str, history: int) -> None:
    with psycopg.connect(_common.server_only(url), autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(PostgresStore(url).schema)))
        for statement in _POSTGRES_EXTRAS.split(";\n"):
            conn.execute(statement, {"n": history, "now": time.time(), "traceback": _TRACEBACK})
        conn.execute("VACUUM (ANALYZE)")  # a settled table, as a long-lived store's would be


def sqlite_sizes(path: str) -> dict[str, float]:
    """MB per table, its indexes included (dbstat: pages in use), and the file's size and free list."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT m.tbl_name, SUM(d.pgsize) FROM dbstat d JOIN sqlite_master m ON m.name = d.name GROUP BY m.tbl_name"
        ).fetchall()
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    sizes = {name: total / 1e6 for name, total in rows if name in TABLES}
    sizes["file"] = os.path.getsize(path) / 1e6
    sizes["free list"] = free * page / 1e6
    return sizes


def postgres_sizes(url: str) -> dict[str, float]:
    """MB per table with its indexes and TOAST (pg_total_relation_size)."""
    with psycopg.connect(_common.server_only(url), autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(PostgresStore(url).schema)))
        return {
            table: float(conn.execute("SELECT pg_total_relation_size(%s::regclass)", [table]).fetchone()[0]) / 1e6  # type: ignore[index]  # one row
            for table in TABLES
        }


def postgres_vacuum(url: str) -> None:
    with psycopg.connect(_common.server_only(url), autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(PostgresStore(url).schema)))
        for table in TABLES:
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))


class Load:
    """A feeder that keeps no-op jobs queued for the worker process, and a probe that submits
    and claims one job of its own kind at a time, timing each claim."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.samples: list[float] = []
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._guard(f)) for f in (self._feed, self._probe)]

    def _guard(self, loop: Callable[[andon.Client], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                with andon.connect(self.url) as client:
                    loop(client)
            except BaseException as error:  # reported after the run
                self.errors.append(error)
                self.stop.set()

        return run

    def _feed(self, client: andon.Client) -> None:
        while not self.stop.wait(0.05):
            client.store.submit([NewJob(id=new_job_id(), kind="noop", params={}) for _ in range(20)], "bench")

    def _probe(self, client: andon.Client) -> None:
        store = client.store
        while not self.stop.wait(0.01):
            store.submit([NewJob(id=new_job_id(), kind=PROBE_KIND, params={})], "bench")
            began = time.perf_counter()
            [job] = store.claim_many("probe", [PROBE_KIND], 30.0, 1)
            self.samples.append(time.perf_counter() - began)
            store.settle_many("probe", [AttemptEnd(job.id, job.attempt, Outcome(OutcomeKind.SUCCEEDED))])

    def take(self) -> list[float]:
        taken, self.samples = self.samples, []
        return taken

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)
        if self.errors:
            raise SystemExit(f"the load failed: {self.errors[0]!r}")


def measure_store(
    name: str, url: str, history: int, baseline_s: float, sizes: Callable[[], dict[str, float]]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    before = sizes()
    print(f"  {name} sizes before (MB): {_sizes_text(before)}", flush=True)
    with _common.andon_workers(url, 1, 4), Load(url) as load:
        time.sleep(baseline_s)
        quiet = load.take()
        with andon.connect(url) as client:
            began = time.perf_counter()
            result = client.store.prune(0.0, batch=2000)
            took = time.perf_counter() - began
        during = load.take()
    after = sizes()
    print(
        f"  {name}: pruned {result.jobs:,} jobs, {result.items:,} items, {result.events:,} events"
        f" in {took:.1f} s ({result.batches} batches); claims {len(quiet)} before, {len(during)} during",
        flush=True,
    )
    print(f"  {name} sizes after (MB): {_sizes_text(after)}", flush=True)
    label = f"{history:,} finished jobs, {name}"
    rows.append(latency_row("retention", f"claim, no prune, {label}", quiet))
    rows.append(latency_row("retention", f"claim during the prune, {label}", during, target_p99_ms=250))
    rows.append(figure_row("retention", f"prune (tombstones) of {label}", took, "s"))
    rows.append(figure_row("retention", f"jobs pruned per second, {name}", result.jobs / took, "jobs/s"))
    for table, mb in before.items():
        rows.append(figure_row("retention", f"{table} before the prune, {name}", round(mb, 1), "MB"))
        rows.append(figure_row("retention", f"{table} after the prune, {name}", round(after.get(table, 0.0), 1), "MB"))
    return rows


def _sizes_text(sizes: dict[str, float]) -> str:
    return ", ".join(f"{table} {mb:.1f}" for table, mb in sizes.items())


def measure(quick: bool, postgres_url: str | None) -> list[dict[str, Any]]:  # Any: JSON values
    history, baseline_s = (20_000, 2.0) if quick else (1_000_000, 15.0)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="andon-bench-") as folder:
        path = os.path.join(folder, "retention.db")
        with andon.connect(f"sqlite:///{path}"):
            pass  # creates the schema
        began = time.monotonic()
        fill_sqlite(path, history, 0)
        add_sqlite_extras(path, history)
        print(f"  filled SQLite with {history:,} finished jobs in {time.monotonic() - began:.0f} s", flush=True)
        time.sleep(0.01)  # every job finished before the prune's "now"
        rows += measure_store("SQLite", f"sqlite:///{path}", history, baseline_s, lambda: sqlite_sizes(path))
    if postgres_url is not None:
        with _common.fresh_schema(postgres_url, "retention") as url:
            began = time.monotonic()
            fill_postgres(url, history, 0)
            add_postgres_extras(url, history)
            print(f"  filled PostgreSQL with {history:,} finished jobs in {time.monotonic() - began:.0f} s", flush=True)
            rows += measure_store("PostgreSQL", url, history, baseline_s, lambda: postgres_sizes(url))
            postgres_vacuum(url)
            vacuumed = postgres_sizes(url)
            print(f"  PostgreSQL sizes after VACUUM (MB): {_sizes_text(vacuumed)}", flush=True)
            for table, mb in vacuumed.items():
                rows.append(figure_row("retention", f"{table} after VACUUM, PostgreSQL", round(mb, 1), "MB"))
    return rows


if __name__ == "__main__":
    sys.exit(_common.group_main(__doc__, measure))
