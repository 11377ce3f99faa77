"""Metrics: the cost of one scrape of ``GET /metrics`` with 1,000,000 jobs in the store.

Usage::

    python benchmarks/metrics.py [--quick] [--db POSTGRES_URL | --no-postgres]

The table gets ``--history`` ended jobs (90% succeeded, 5% failed, 5% cancelled after a
stop of 0-1 s by one of three methods, three kinds) and a few active ones: 10,000 queued
(a tenth of them scheduled ahead), 64 running, 16 cancelling. They are written straight into
it (a million jobs through the API would take minutes and measure the submit): the ended
ones are inserted running and then ended by one UPDATE, so the store's own trigger counts
them, as it counts every job that ends.

Then, timed one scrape at a time: the store read and the text ``prometheus_client`` makes of
it (what ``GET /metrics`` does, less HTTP). The plans of the scrape's statements are
printed, so that a full scan of the table would show.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
import time
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, generate_latest
from psycopg import sql

import _common
import andon
from _report import latency_row
from andon._storage._postgres import PostgresStore
from andon._storage._sql import read_blocks
from andon.api._metrics import StoreCollector

ACTIVE = {"queued": 10_000, "running": 64, "cancelling": 16}

# Ids sort like the real ones (time-ordered). A row's awaiting_status holds the status it
# ends in until the UPDATE that ends them all (and clears it).
_SQLITE_FILL = """
WITH RECURSIVE g(n) AS (SELECT :first UNION ALL SELECT n + 1 FROM g WHERE n < :last)
INSERT INTO andon_jobs (id, kind, params, status, priority, created_at, available_at, attempt, events_count,
                        started_at, awaiting_status, cancel_requested_at, cancel_reason, cancel_stopped_at,
                        cancel_stop_method)
SELECT printf('%08x-0000-7000-8000-%012x', n, n),
       CASE n % 3 WHEN 0 THEN 'noop' WHEN 1 THEN 'scan' ELSE 'crawl' END, '{"n": 1}',
       CASE WHEN :status = 'history' THEN 'running' ELSE :status END, 0, :now,
       CASE WHEN :status = 'queued' AND n % 10 = 0 THEN :now + 3600 ELSE :now END, 1, 0, :now,
       CASE WHEN :status != 'history' THEN NULL WHEN n % 20 = 0 THEN 'failed' WHEN n % 20 = 1 THEN 'cancelled'
            ELSE 'succeeded' END,
       CASE WHEN :status = 'cancelling' OR (:status = 'history' AND n % 20 = 1) THEN :now END,
       CASE WHEN :status = 'cancelling' OR (:status = 'history' AND n % 20 = 1) THEN 'user' END,
       CASE WHEN :status = 'history' AND n % 20 = 1 THEN :now + (n % 1000) / 1000.0 END,
       CASE WHEN :status = 'history' AND n % 20 = 1
            THEN CASE n % 3 WHEN 0 THEN 'cooperative' WHEN 1 THEN 'injected' ELSE 'killed' END END
FROM g
"""
_POSTGRES_FILL = """
INSERT INTO andon_jobs (id, kind, params, status, priority, created_at, available_at, attempt, events_count,
                        started_at, awaiting_status, cancel_requested_at, cancel_reason, cancel_stopped_at,
                        cancel_stop_method)
SELECT lpad(to_hex(n), 8, '0') || '-0000-7000-8000-' || lpad(to_hex(n), 12, '0'),
       CASE n %% 3 WHEN 0 THEN 'noop' WHEN 1 THEN 'scan' ELSE 'crawl' END, '{"n": 1}',
       CASE WHEN %(status)s = 'history' THEN 'running' ELSE %(status)s END, 0, %(now)s,
       CASE WHEN %(status)s = 'queued' AND n %% 10 = 0 THEN %(now)s + 3600 ELSE %(now)s END, 1, 0, %(now)s,
       CASE WHEN %(status)s != 'history' THEN NULL WHEN n %% 20 = 0 THEN 'failed'
            WHEN n %% 20 = 1 THEN 'cancelled' ELSE 'succeeded' END,
       CASE WHEN %(status)s = 'cancelling' OR (%(status)s = 'history' AND n %% 20 = 1) THEN %(now)s END,
       CASE WHEN %(status)s = 'cancelling' OR (%(status)s = 'history' AND n %% 20 = 1) THEN 'user' END,
       CASE WHEN %(status)s = 'history' AND n %% 20 = 1 THEN %(now)s + (n %% 1000) / 1000.0 END,
       CASE WHEN %(status)s = 'history' AND n %% 20 = 1
            THEN CASE n %% 3 WHEN 0 THEN 'cooperative' WHEN 1 THEN 'injected' ELSE 'killed' END END
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n
"""
_END_THEM = (
    "UPDATE andon_jobs SET status = awaiting_status, awaiting_status = NULL, finished_at = started_at"
    " WHERE awaiting_status IS NOT NULL"
)


def _batches(history: int) -> list[tuple[str, int, int]]:
    """(status, first n, last n) of each INSERT: the history, then the active jobs."""
    batches = [("history", 1, history)]
    first = history + 1
    for status, count in ACTIVE.items():
        batches.append((status, first, first + count - 1))
        first += count
    return batches


def fill_sqlite(path: str, history: int) -> None:
    with sqlite3.connect(path) as conn:
        now = time.time()
        for status, first, last in _batches(history):
            conn.execute(_SQLITE_FILL, {"first": first, "last": last, "status": status, "now": now})
        conn.execute(_END_THEM)


def fill_postgres(url: str, history: int) -> None:
    schema = PostgresStore(url).schema
    with psycopg.connect(_common.server_only(url), autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        now = time.time()
        for status, first, last in _batches(history):
            conn.execute(_POSTGRES_FILL, {"first": first, "last": last, "status": status, "now": now})
        conn.execute(_END_THEM)
        conn.execute("ANALYZE andon_jobs")


def print_plans_sqlite(path: str) -> None:
    blocks = read_blocks("queries_sqlite.sql")
    with sqlite3.connect(path) as conn:
        for name in ("metrics_active", "metrics_ended", "metrics_stops"):
            (statement,) = blocks[name]
            plan = conn.execute(f"EXPLAIN QUERY PLAN {statement}", {"now": time.time()}).fetchall()
            print(f"  plan of {name} on SQLite: {'; '.join(str(row[-1]) for row in plan)}", flush=True)


def print_plans_postgres(url: str) -> None:
    blocks = read_blocks("queries_postgres.sql")
    schema = PostgresStore(url).schema
    with psycopg.connect(_common.server_only(url), autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        for name in ("metrics_active", "metrics_ended", "metrics_stops"):
            (statement,) = blocks[name]
            rows = conn.execute(f"EXPLAIN {statement}".encode(), {"now": time.time()}).fetchall()
            print(f"  plan of {name} on PostgreSQL: {' | '.join(str(row[0]).strip() for row in rows)}", flush=True)


def measure_store(name: str, url: str, total: int, scrapes: int) -> list[dict[str, Any]]:
    with andon.connect(url) as client:
        ended = sum(client.metrics().ended.values())
        if ended != total - sum(ACTIVE.values()):
            raise SystemExit(f"the trigger counted {ended:,} ended jobs of {total - sum(ACTIVE.values()):,} on {name}")
        registry = CollectorRegistry(auto_describe=False)
        registry.register(StoreCollector(client.metrics, list))
        text = generate_latest(registry)
        took = []
        for _ in range(scrapes):
            began = time.perf_counter()
            generate_latest(registry)
            took.append(time.perf_counter() - began)
    active = sum(ACTIVE.values())
    median_ms = sorted(took)[len(took) // 2] * 1000
    print(f"  one scrape on {name}: {len(text):,} bytes, median {median_ms:.1f} ms", flush=True)
    label = f"scrape of /metrics, {total:,} jobs ({active:,} active), {name}"
    return [latency_row("metrics", label, took, target_p99_ms=100)]


def measure(quick: bool, postgres_url: str | None) -> list[dict[str, Any]]:  # Any: JSON values
    history, scrapes = (20_000, 10) if quick else (1_000_000 - sum(ACTIVE.values()), 100)
    total = history + sum(ACTIVE.values())
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="andon-bench-") as folder:
        path = os.path.join(folder, "metrics.db")
        with andon.connect(f"sqlite:///{path}"):
            pass  # creates the schema
        began = time.monotonic()
        fill_sqlite(path, history)
        print(f"  filled SQLite with {total:,} jobs in {time.monotonic() - began:.0f} s", flush=True)
        print_plans_sqlite(path)
        rows += measure_store("SQLite", f"sqlite:///{path}", total, scrapes)
    if postgres_url is not None:
        with _common.fresh_schema(postgres_url, "metrics") as url:
            began = time.monotonic()
            fill_postgres(url, history)
            print(f"  filled PostgreSQL with {total:,} jobs in {time.monotonic() - began:.0f} s", flush=True)
            print_plans_postgres(url)
            rows += measure_store("PostgreSQL", url, total, scrapes)
    return rows


if __name__ == "__main__":
    sys.exit(_common.group_main(__doc__, measure))
