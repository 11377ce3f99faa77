"""Scale: claiming and listing with 1,000,000 jobs in the store.

Usage::

    python benchmarks/scale.py [--quick] [--db POSTGRES_URL | --no-postgres]

The table gets ``--history`` finished jobs (90% succeeded, 5% failed, 5% cancelled, three
kinds) and ``--queued`` queued ones, written straight into it (a million jobs through the
API would take minutes and measure the submit). On PostgreSQL the planner's statistics are
taken before the queue is filled, the worst case for a queue table; SQLite has none.

Then, timed one call at a time through the store:
(a) ``claim``: each takes the next queued job (1,000 claims);
(b) a history page (50 jobs, newest first) as the dashboard asks for it: the first page,
    a page deep in the history (by cursor), only ``failed`` jobs, only one kind.
"""

from __future__ import annotations

import os
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

import _common
import andon
from _report import latency_row
from andon._storage._postgres import PostgresStore

# Ids sort like the real ones (time-ordered): the queued jobs are the newest.
_SQLITE_FILL = """
WITH RECURSIVE g(n) AS (SELECT :first UNION ALL SELECT n + 1 FROM g WHERE n < :last)
INSERT INTO andon_jobs (id, kind, params, status, priority, created_at, available_at, attempt, events_count,
                        started_at, finished_at)
SELECT printf('%08x-0000-7000-8000-%012x', n, n),
       CASE n % 3 WHEN 0 THEN 'noop' WHEN 1 THEN 'scan' ELSE 'crawl' END, '{"n": 1}',
       CASE WHEN :status != 'history' THEN :status WHEN n % 20 = 0 THEN 'failed'
            WHEN n % 20 = 1 THEN 'cancelled' ELSE 'succeeded' END,
       0, :now, :now, CASE WHEN :status = 'queued' THEN 0 ELSE 1 END, 0,
       CASE WHEN :status = 'queued' THEN NULL ELSE :now END, CASE WHEN :status = 'queued' THEN NULL ELSE :now END
FROM g
"""
_POSTGRES_FILL = """
INSERT INTO andon_jobs (id, kind, params, status, priority, created_at, available_at, attempt, events_count,
                        started_at, finished_at)
SELECT lpad(to_hex(n), 8, '0') || '-0000-7000-8000-' || lpad(to_hex(n), 12, '0'),
       CASE n %% 3 WHEN 0 THEN 'noop' WHEN 1 THEN 'scan' ELSE 'crawl' END, '{"n": 1}',
       CASE WHEN %(status)s != 'history' THEN %(status)s WHEN n %% 20 = 0 THEN 'failed'
            WHEN n %% 20 = 1 THEN 'cancelled' ELSE 'succeeded' END,
       0, %(now)s, %(now)s, CASE WHEN %(status)s = 'queued' THEN 0 ELSE 1 END, 0,
       CASE WHEN %(status)s = 'queued' THEN NULL ELSE %(now)s END,
       CASE WHEN %(status)s = 'queued' THEN NULL ELSE %(now)s END
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n
"""


def fill_sqlite(path: str, history: int, queued: int) -> None:
    with sqlite3.connect(path) as conn:
        now = time.time()
        conn.execute(_SQLITE_FILL, {"first": 1, "last": history, "status": "history", "now": now})
        conn.execute(_SQLITE_FILL, {"first": history + 1, "last": history + queued, "status": "queued", "now": now})


def fill_postgres(url: str, history: int, queued: int) -> None:
    schema = PostgresStore(url).schema
    with psycopg.connect(_common.server_only(url), autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        now = time.time()
        conn.execute(_POSTGRES_FILL, {"first": 1, "last": history, "status": "history", "now": now})
        conn.execute("ANALYZE andon_jobs")
        conn.execute(_POSTGRES_FILL, {"first": history + 1, "last": history + queued, "status": "queued", "now": now})


def timed(call: Callable[[], object], runs: int) -> list[float]:
    took = []
    for _ in range(runs):
        began = time.perf_counter()
        call()
        took.append(time.perf_counter() - began)
    return took


def measure_store(name: str, url: str, history: int, queued: int, claims: int, pages: int) -> list[dict[str, Any]]:
    total = history + queued
    rows: list[dict[str, Any]] = []
    with andon.connect(url) as client:
        store = client.store

        def claim() -> None:
            if not store.claim_many("bench", ["noop", "scan", "crawl"], 30.0, 1):
                raise SystemExit("the queue ran dry")

        took = timed(claim, claims)
        rows.append(latency_row("scale", f"claim, {total:,} jobs in the store, {name}", took, target_p99_ms=50))
        print(f"  claim on {name}: p99 {sorted(took)[int(len(took) * 0.99) - 1] * 1000:.1f} ms", flush=True)
        deep = f"{history // 2:08x}-0000-7000-8000-{history // 2:012x}"
        rng = random.Random(1)
        page_calls: dict[str, Callable[[], object]] = {
            "first page": lambda: client.list_jobs(limit=50),
            "a page deep in the history": lambda: client.list_jobs(limit=50, cursor=deep),
            "failed jobs only": lambda: client.list_jobs(statuses=["failed"], limit=50),
            "one kind only": lambda: client.list_jobs(kinds=[rng.choice(["noop", "scan", "crawl"])], limit=50),
        }
        for label, call in page_calls.items():
            took = timed(call, pages)
            rows.append(latency_row("scale", f"history page ({label}), {total:,} jobs, {name}", took, target_p99_ms=50))
        print(f"  history pages on {name}: done", flush=True)
    return rows


def measure(quick: bool, postgres_url: str | None) -> list[dict[str, Any]]:  # Any: JSON values
    history, queued, claims, pages = (20_000, 2_000, 50, 20) if quick else (1_000_000, 100_000, 1_000, 200)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="andon-bench-") as folder:
        path = os.path.join(folder, "scale.db")
        with andon.connect(f"sqlite:///{path}"):
            pass  # creates the schema
        began = time.monotonic()
        fill_sqlite(path, history - queued, queued)
        print(f"  filled SQLite with {history:,} jobs in {time.monotonic() - began:.0f} s", flush=True)
        rows += measure_store("SQLite", f"sqlite:///{path}", history - queued, queued, claims, pages)
    if postgres_url is not None:
        with _common.fresh_schema(postgres_url, "scale") as url:
            began = time.monotonic()
            fill_postgres(url, history - queued, queued)
            print(f"  filled PostgreSQL with {history:,} jobs in {time.monotonic() - began:.0f} s", flush=True)
            rows += measure_store("PostgreSQL", url, history - queued, queued, claims, pages)
    return rows


if __name__ == "__main__":
    sys.exit(_common.group_main(__doc__, measure))
