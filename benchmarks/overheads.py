"""Overheads: what andon costs a handler per cancel check, item and ``ctx.checkpoint()``; a queued job's size.

Usage::

    python benchmarks/overheads.py [--quick] [--db POSTGRES_URL | --no-postgres]

(a) ``ctx.check()`` and ``ctx.cancelled``: a job running in a real worker (thread runtime)
    times a million calls of each with ``time.perf_counter_ns`` and reports ns per call,
    the loop's own cost subtracted (an empty loop of the same length). Repeated runs.
(b) ``ctx.emit()``: a job emits 200,000 small items as fast as it can; the rate is the
    items divided by the time from the first emit to the job being recorded as succeeded,
    which is when the docs promise every item is stored (the last flush is part of
    settling). On SQLite and on PostgreSQL, the worker in this process.
(c) A queued job's size in the store: bytes the store grows by per queued job, over
    100,000 queued jobs (job row, its ``submitted`` event, indexes).
(d) ``ctx.checkpoint()`` per call, beside ``ctx.emit()`` measured the same way and the two
    together (emit an item, then checkpoint the next position, as ``count`` does): a job
    makes 20,000 calls as fast as it can; a run's figure is the time from its first call to
    the job being recorded as succeeded (every item and the last checkpoint stored), divided
    by the calls. Median and p99 over 15 runs, on SQLite and on PostgreSQL, the worker in
    this process; the note also gives the median time spent inside the calls alone.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

import _common
import andon
from _report import figure_row, percentile
from andon._storage._postgres import PostgresStore

app = andon.App()


@app.job("check_cost")
def check_cost(ctx: andon.Context, calls: int) -> dict[str, float]:
    """ns per ``ctx.check()`` and per ``ctx.cancelled``, the empty loop's cost subtracted."""
    clock = time.perf_counter_ns
    began = clock()
    for _ in range(calls):
        pass
    empty = clock() - began
    check = ctx.check
    began = clock()
    for _ in range(calls):
        check()
    checked = clock() - began
    began = clock()
    for _ in range(calls):
        ctx.cancelled  # noqa: B018  # the property read is what is measured
    read = clock() - began
    return {"check_ns": (checked - empty) / calls, "cancelled_ns": (read - empty) / calls}


@app.job("emit_many")
def emit_many(ctx: andon.Context, n: int) -> float:
    """Emit ``n`` small items; returns the wall-clock time of the first emit."""
    first = time.time()
    for i in range(n):
        ctx.emit({"i": i})
    return first


CALL_VARIANTS = {
    "emit": "ctx.emit()",
    "checkpoint": "ctx.checkpoint()",
    "both": "ctx.emit() + ctx.checkpoint()",
}


@app.job("call_many")
def call_many(ctx: andon.Context, n: int, calls: str) -> dict[str, float]:
    """Make ``n`` calls of ``calls`` (a key of ``CALL_VARIANTS``); returns the wall-clock time
    of the first and the ns spent in the loop."""
    emit, checkpoint = ctx.emit, ctx.checkpoint
    first = time.time()
    began = time.perf_counter_ns()
    if calls == "emit":
        for i in range(n):
            emit({"i": i})
    elif calls == "checkpoint":
        for i in range(n):
            checkpoint({"next": i + 1})
    else:
        for i in range(n):
            emit({"i": i})
            checkpoint({"next": i + 1})
    return {"first": first, "loop_ns": time.perf_counter_ns() - began}


def call_costs(url: str, calls: str, n: int, runs: int) -> tuple[list[float], list[float]]:
    """Per run: µs per call until stored, and µs per call inside the handler's loop."""
    stored, inside = [], []
    with andon.connect(url, app) as client, andon.Worker(app, client.store, concurrency=1):
        for _ in range(runs):
            job = client.wait_finished(client.submit("call_many", {"n": n, "calls": calls}).id, timeout=300)
            expected = 0 if calls == "checkpoint" else n
            if job.status is not andon.JobStatus.SUCCEEDED or job.items_count != expected:
                raise SystemExit(f"call_many ({calls}) ended {job.status.value} with {job.items_count} items")
            if calls != "emit" and (job.checkpoint is None or job.checkpoint.state != {"next": n}):
                raise SystemExit(f"call_many ({calls}) stored the checkpoint {job.checkpoint}")
            recorded = next(e.at for e in client.events(job.id) if e.type == "succeeded")
            stored.append((recorded - job.result["first"]) / n * 1e6)
            inside.append(job.result["loop_ns"] / n / 1000)
    return stored, inside


def call_rows(url: str, store: str, n: int, runs: int) -> list[dict[str, Any]]:  # Any: JSON values
    rows = []
    for calls, label in CALL_VARIANTS.items():
        stored, inside = call_costs(url, calls, n, runs)
        median, p99 = percentile(stored, 50), percentile(stored, 99)
        assert median is not None  # runs >= 1
        assert p99 is not None
        note = (
            f"median of {runs} runs of {n:,} calls, first call to stored; p99 {p99:.2f} µs; "
            f"inside the calls alone {percentile(inside, 50):.2f} µs"
        )
        per = "step" if calls == "both" else "call"
        row = figure_row("overhead", f"{label} per {per}, stored, {store}", median, "µs", runs=runs, note=note)
        row.update(p99=p99, samples_us=[round(v, 3) for v in stored], inside_us=[round(v, 3) for v in inside])
        rows.append(row)
        print(f"  {label} on {store}: median {median:.2f} µs, p99 {p99:.2f} µs per {per}", flush=True)
    return rows


def check_costs(calls: int, runs: int) -> tuple[list[float], list[float]]:
    checks, reads = [], []
    with (
        tempfile.TemporaryDirectory(prefix="andon-bench-") as folder,
        andon.connect(f"sqlite:///{folder}/check.db", app) as client,
        andon.Worker(app, client.store, concurrency=1),
    ):
        for _ in range(runs):
            job = client.wait_finished(client.submit("check_cost", {"calls": calls}).id, timeout=120)
            checks.append(job.result["check_ns"])
            reads.append(job.result["cancelled_ns"])
    return checks, reads


def emit_rate(url: str, n: int) -> float:
    with andon.connect(url, app) as client, andon.Worker(app, client.store, concurrency=1):
        job = client.wait_finished(client.submit("emit_many", {"n": n}).id, timeout=300)
        if job.status is not andon.JobStatus.SUCCEEDED or job.items_count != n:
            raise SystemExit(f"emit_many ended {job.status.value} with {job.items_count} of {n} items")
        recorded = next(e.at for e in client.events(job.id) if e.type == "succeeded")
        return n / (recorded - float(job.result))


def queued_bytes_sqlite(folder: str, count: int) -> float:
    path = Path(folder) / "size.db"
    with andon.connect(f"sqlite:///{path}", app) as client:
        client.submit_many("emit_many", [{"n": 1}] * 1_000)  # the file exists, with a first page of everything
        before = _sqlite_bytes(path)
        for _ in range(count // 1_000):
            client.submit_many("emit_many", [{"n": 1}] * 1_000)
        return (_sqlite_bytes(path) - before) / (count // 1_000 * 1_000)


def _sqlite_bytes(path: Path) -> int:
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages, size = conn.execute("PRAGMA page_count").fetchone()[0], conn.execute("PRAGMA page_size").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return int((pages - free) * size)


def queued_bytes_postgres(url: str, count: int) -> float:
    schema = PostgresStore(url).schema
    with andon.connect(url, app) as client, psycopg.connect(_common.server_only(url), autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))

        def size() -> int:
            conn.execute("VACUUM andon_jobs")
            conn.execute("VACUUM andon_events")
            row = conn.execute(
                "SELECT pg_total_relation_size('andon_jobs') + pg_total_relation_size('andon_events')"
            ).fetchone()
            assert row is not None
            return int(row[0])

        client.submit_many("emit_many", [{"n": 1}] * 1_000)
        before = size()
        for _ in range(count // 1_000):
            client.submit_many("emit_many", [{"n": 1}] * 1_000)
        return (size() - before) / (count // 1_000 * 1_000)


def measure(quick: bool, postgres_url: str | None) -> list[dict[str, Any]]:  # Any: JSON values
    calls, runs = (100_000, 3) if quick else (1_000_000, 15)
    call_n, call_runs = (2_000, 3) if quick else (20_000, 15)
    items = 5_000 if quick else 200_000
    queued = 2_000 if quick else 100_000
    rows: list[dict[str, Any]] = []
    checks, reads = check_costs(calls, runs)
    note = f"median of {runs} runs of {calls:,} calls; p99 {percentile(checks, 99):.0f} ns"
    rows.append(
        figure_row(
            "overhead",
            "ctx.check() per call",
            sorted(checks)[len(checks) // 2],
            "ns",
            at_most=200,
            runs=runs,
            note=note,
        )
    )
    rows.append(figure_row("overhead", "ctx.cancelled per read", sorted(reads)[len(reads) // 2], "ns", runs=runs))
    print(f"  ctx.check(): {rows[-2]['value']:.0f} ns, ctx.cancelled: {rows[-1]['value']:.0f} ns", flush=True)
    with tempfile.TemporaryDirectory(prefix="andon-bench-") as folder:
        rate = emit_rate(f"sqlite:///{folder}/emit.db", items)
        rows.append(
            figure_row("overhead", f"ctx.emit(), {items:,} items stored, SQLite", rate, "items/s", at_least=100_000)
        )
        print(f"  emit on SQLite: {rate:.0f} items/s", flush=True)
        rows += call_rows(f"sqlite:///{folder}/calls.db", "SQLite", call_n, call_runs)
        size = queued_bytes_sqlite(folder, queued)
        rows.append(figure_row("overhead", f"store size per queued job ({queued:,}), SQLite", size, "bytes"))
        print(f"  a queued job on SQLite: {size:.0f} bytes", flush=True)
    if postgres_url is not None:
        with _common.fresh_schema(postgres_url, "emit") as url:
            rate = emit_rate(url, items)
        rows.append(
            figure_row("overhead", f"ctx.emit(), {items:,} items stored, PostgreSQL", rate, "items/s", at_least=100_000)
        )
        print(f"  emit on PostgreSQL: {rate:.0f} items/s", flush=True)
        with _common.fresh_schema(postgres_url, "calls") as url:
            rows += call_rows(url, "PostgreSQL", call_n, call_runs)
        with _common.fresh_schema(postgres_url, "size") as url:
            size = queued_bytes_postgres(url, queued)
        rows.append(figure_row("overhead", f"store size per queued job ({queued:,}), PostgreSQL", size, "bytes"))
        print(f"  a queued job on PostgreSQL: {size:.0f} bytes", flush=True)
    return rows


if __name__ == "__main__":
    sys.exit(_common.group_main(__doc__, measure))
