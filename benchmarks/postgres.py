"""Andon on PostgreSQL: cancel-to-stop across processes, bulk cancel, throughput.

Usage::

    python benchmarks/postgres.py [--db URL] [--cancels N] [--bulk N] [--jobs N] [--quick] [--out PATH]

The database is ``--db``, else ``$ANDON_TEST_POSTGRES_URL``, else
``postgresql://root@127.0.0.1:5432/test``; each measurement runs in a schema of its own,
dropped afterwards. Workers are separate processes (this script, ``worker`` mode), so
every cancel and every job travels through PostgreSQL.

(a) cancel-to-stop: one worker process runs ``tick`` (a cooperative handler that emits
    ``{"i", "at": time.time()}`` every millisecond); this process cancels it through a
    client of its own. Figures: from the cancel call to the work having stopped (the job's
    ``stopped_at``, stamped by the worker once the handler and its cleanups are over), to
    the last item emitted, and to this process reading ``cancelled`` from the database.
(b) bulk cancel: ``Client.cancel_many(statuses=["queued"])`` over N queued jobs (one
    statement), timed from the call to its return with every result.
(c) throughput: N ``noop`` jobs queued at once, run by 1 and by 4 worker processes of 4
    slots each; from the submit to the last job's end, as the database records it.
(d) claims at scale: one claim at a time with ``--history`` finished jobs (1,000,000) and
    ``--queued`` queued ones (100,000) in the table, the planner's statistics taken while
    the queue was still empty (the worst case for a queue table).

Prints a table and writes everything (samples too) as JSON to
``benchmarks/out/postgres.json`` (or ``--out``). ``--quick`` does a handful of runs, for a
smoke test; its figures are not meaningful.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

import _report
import andon
from _report import summary, table
from andon._storage._postgres import PostgresStore

DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "postgres.json"
DEFAULT_URL = os.environ.get("ANDON_TEST_POSTGRES_URL") or "postgresql://root@127.0.0.1:5432/test"
POLL_S = 0.0005
WAIT_BOUND_S = 120.0

app = andon.App(default_grace=1.0)


@app.job("tick")
def tick(ctx: andon.Context, n: int = 10_000_000, interval_s: float = 0.001) -> dict[str, int]:
    """Emit ``{"i", "at"}`` every ``interval_s`` seconds; ``ctx.sleep`` is the checkpoint."""
    for i in range(n):
        ctx.sleep(interval_s)
        ctx.emit({"i": i, "at": time.time()})
    return {"counted": n}


@app.job("noop")
def noop(ctx: andon.Context) -> None:
    """Nothing: what is measured is andon's own cost per job."""


# -- helpers ----------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT_BOUND_S, poll: float = POLL_S) -> None:
    _report.wait_for(condition, what, timeout, poll)


def with_schema(url: str, schema: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "schema"]
    return urlunsplit(
        (parts.scheme, parts.netloc, parts.path, urlencode([*query, ("schema", schema)], quote_via=quote), "")
    )


@contextlib.contextmanager
def fresh_schema(server: str, label: str) -> Iterator[str]:
    name = f"andon_bench_{os.getpid()}_{label}"
    url = with_schema(server, name)
    PostgresStore(url).upgrade()
    try:
        yield url
    finally:
        admin = urlunsplit(urlsplit(server)._replace(query=""))
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


class WorkerProcess:
    """``python benchmarks/postgres.py worker URL ID CONCURRENCY`` in the background."""

    def __init__(self, url: str, worker_id: str, concurrency: int) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, __file__, "worker", url, worker_id, str(concurrency)],
            stdout=subprocess.PIPE,
            text=True,
        )

    def wait_ready(self) -> None:
        assert self.popen.stdout is not None
        if self.popen.stdout.readline().strip() != "ready":
            raise SystemExit("a worker process did not start")

    def stop(self) -> None:
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.communicate()


@contextlib.contextmanager
def worker_processes(url: str, count: int, concurrency: int) -> Iterator[list[WorkerProcess]]:
    workers = [WorkerProcess(url, f"bench-{i}", concurrency) for i in range(count)]
    try:
        for worker in workers:
            worker.wait_ready()
        yield workers
    finally:
        for worker in workers:
            worker.stop()


def run_worker(url: str, worker_id: str, concurrency: int) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with PostgresStore(url) as store, andon.Worker(app, store, concurrency=concurrency, worker_id=worker_id):
        print("ready", flush=True)
        while not stop.wait(0.1):
            pass
    return 0


# -- (a) cancel-to-stop -------------------------------------------------------------------


def bench_cancel(server: str, runs: int, rng: random.Random) -> dict[str, list[float]]:
    series: dict[str, list[float]] = {"stopped": [], "last_item": [], "store": [], "acknowledged": []}
    methods: dict[str, int] = {}
    with fresh_schema(server, "cancel") as url, PostgresStore(url) as store, worker_processes(url, 1, 1):
        client = andon.Client(store, app, actor="bench")
        for run in range(runs + 1):
            job = client.submit("tick")
            wait_for(lambda job=job: client.get(job.id).items_count >= 1, f"job {job.id} to emit")  # type: ignore[misc]
            time.sleep(rng.uniform(0.0, 0.005))  # land the cancel anywhere in the emit cycle
            called = time.time()
            client.cancel(job.id)
            wait_for(lambda job=job: client.get(job.id).is_terminal, f"job {job.id} to stop")  # type: ignore[misc]
            read_cancelled = time.time()
            done = client.get(job.id)
            cancel = done.cancel
            if done.status is not andon.JobStatus.CANCELLED or cancel is None or cancel.stopped_at is None:
                raise SystemExit(f"job {job.id} did not end cancelled: {done}")
            last = client.results(job.id, offset=max(0, done.items_count - 1))[-1]
            if run == 0:
                continue  # warm-up
            method = cancel.stop_method.value if cancel.stop_method else "?"
            methods[method] = methods.get(method, 0) + 1
            series["stopped"].append(cancel.stopped_at - called)
            series["acknowledged"].append((cancel.acknowledged_at or cancel.stopped_at) - called)
            series["last_item"].append(last.data["at"] - called)
            series["store"].append(read_cancelled - called)
    print(f"  (a) stop methods: {methods}", flush=True)
    return series


# -- (b) bulk cancel -----------------------------------------------------------------------


def bench_bulk(server: str, count: int, repeats: int) -> list[float]:
    took = []
    with fresh_schema(server, "bulk") as url, PostgresStore(url) as store:
        client = andon.Client(store, app, actor="bench")
        for _ in range(repeats):
            client.submit_many("noop", [{}] * count)
            began = time.perf_counter()
            results = client.cancel_many(statuses=["queued"])
            took.append(time.perf_counter() - began)
            if len(results) != count or any(r.outcome is not andon.CancelOutcome.WITHDRAWN for r in results):
                raise SystemExit(f"bulk cancel withdrew {len(results)} of {count} jobs")
    return took


# -- (c) throughput ------------------------------------------------------------------------


def bench_throughput(server: str, jobs: int, processes: int, concurrency: int) -> dict[str, float]:
    with fresh_schema(server, f"throughput{processes}") as url, PostgresStore(url) as store:
        client = andon.Client(store, app, actor="bench")
        with worker_processes(url, processes, concurrency):
            began = time.time()
            submitted = client.submit_many("noop", [{}] * jobs)

            def all_done() -> bool:
                return not client.list_jobs(statuses=["queued", "running"], limit=1).items

            wait_for(all_done, f"{jobs} no-op jobs to run", poll=0.01)
        done = [j for j in store.list_jobs(andon.JobFilter(), jobs + 1).items if j.status is andon.JobStatus.SUCCEEDED]
        if len(done) != len(submitted):
            raise SystemExit(f"only {len(done)} of {jobs} no-op jobs succeeded")
        last = max(j.finished_at or 0.0 for j in done)
        seconds = last - began
    return {
        "jobs": jobs,
        "processes": processes,
        "slots": processes * concurrency,
        "seconds": round(seconds, 3),
        "jobs_per_s": round(jobs / seconds, 1),
    }


# -- (d) claims at scale ---------------------------------------------------------------------

# Synthetic rows written straight into the table: a million jobs through the API would take
# minutes and measure the submit, not the claim.
_FILL = """
INSERT INTO andon_jobs (id, kind, params, status, priority, created_at, available_at, attempt, events_count,
                        finished_at)
SELECT lpad(to_hex(g), 8, '0') || '-0000-7000-8000-000000000000', 'noop', '{}', %(status)s, 0, %(now)s, %(now)s,
       0, 0, CASE WHEN %(status)s = 'queued' THEN NULL ELSE %(now)s END
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
"""


def bench_claims_at_scale(server: str, history: int, queued: int, claims: int) -> list[float]:
    with (
        fresh_schema(server, "scale") as url,
        PostgresStore(url) as store,
        psycopg.connect(urlunsplit(urlsplit(url)._replace(query="")), autocommit=True) as conn,
    ):
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(store.schema)))
        now = time.time()
        conn.execute(_FILL, {"status": "succeeded", "now": now, "first": 1, "last": history})
        conn.execute("ANALYZE andon_jobs")
        conn.execute(_FILL, {"status": "queued", "now": now, "first": history + 1, "last": history + queued})
        took = []
        for _ in range(claims):
            began = time.perf_counter()
            if store.claim("bench", ["noop"], 30.0) is None:
                raise SystemExit("the queue ran dry")
            took.append(time.perf_counter() - began)
    return took


# -- report ------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "worker":
        return run_worker(argv[1], argv[2], int(argv[3]))
    parser = argparse.ArgumentParser(description="Measure andon on PostgreSQL.")
    parser.add_argument("--db", default=DEFAULT_URL, help="PostgreSQL server URL (a schema is made per measurement)")
    parser.add_argument("--cancels", type=int, default=200, help="cancels of a running job, across processes")
    parser.add_argument("--bulk", type=int, default=10_000, help="queued jobs to cancel at once")
    parser.add_argument("--bulk-repeats", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=5_000, help="no-op jobs per throughput run")
    parser.add_argument("--history", type=int, default=1_000_000, help="finished jobs in the table for (d)")
    parser.add_argument("--queued", type=int, default=100_000, help="queued jobs in the table for (d)")
    parser.add_argument("--claims", type=int, default=1_000, help="claims timed for (d)")
    parser.add_argument("--quick", action="store_true", help="a handful of runs (a smoke test)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.quick:
        args.cancels, args.bulk, args.bulk_repeats, args.jobs = 3, 200, 1, 100
        args.history, args.queued, args.claims = 10_000, 1_000, 20
    rng = random.Random(args.seed)
    started = time.monotonic()

    print("(a) cancel-to-stop across processes...", flush=True)
    cancel = bench_cancel(args.db, args.cancels, rng)
    print(f"(b) bulk cancel of {args.bulk} queued jobs...", flush=True)
    bulk = bench_bulk(args.db, args.bulk, args.bulk_repeats)
    print(f"(c) throughput of {args.jobs} no-op jobs...", flush=True)
    throughput = [bench_throughput(args.db, args.jobs, processes, 4) for processes in (1, 4)]
    print(f"(d) claims with {args.history} finished and {args.queued} queued jobs...", flush=True)
    scale = bench_claims_at_scale(args.db, args.history, args.queued, args.claims)
    took = time.monotonic() - started

    results = {
        "a_stopped": summary("(a) cancel call -> work stopped (stopped_at)", cancel["stopped"]),
        "a_acknowledged": summary("(a) cancel call -> handler saw it", cancel["acknowledged"]),
        "a_last_item": summary("(a) cancel call -> last item emitted", cancel["last_item"]),
        "a_store": summary("(a) cancel call -> client reads cancelled", cancel["store"]),
        "b_bulk": summary(f"(b) cancel_many of {args.bulk} queued jobs", bulk),
        "d_claim": summary(f"(d) claim, {args.history:,} finished + {args.queued:,} queued in the table", scale),
    }
    rows = [["measurement", "runs", "p50", "p99", "max"]]
    for item in results.values():
        figures = [item[key] for key in ("p50_ms", "p99_ms", "max_ms")]
        rows.append([item["label"], str(item["runs"]), *(f"{v:.1f} ms" if v is not None else "-" for v in figures)])
    meta = {
        "andon": andon.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "postgres": _server_version(args.db),
        "quick": args.quick,
        "seed": args.seed,
        "seconds": round(took, 1),
    }
    print()
    print(f"andon {andon.__version__} on PostgreSQL {meta['postgres']} - Python {meta['python']}, {meta['cpus']} CPUs")
    print("(one warm-up cancel not counted; workers are separate processes; every figure goes through PostgreSQL)")
    print()
    print(table(rows))
    print()
    print(
        table(
            [["(c) no-op throughput", "jobs", "worker processes", "slots", "seconds", "jobs/s"]]
            + [
                [
                    "",
                    str(t["jobs"]),
                    str(t["processes"]),
                    str(t["slots"]),
                    f"{t['seconds']:.2f}",
                    f"{t['jobs_per_s']:.0f}",
                ]
                for t in throughput
            ]
        )
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": results, "throughput": throughput}, indent=2) + "\n")
    print(f"\nwritten to {args.out} ({took:.0f} s)")
    return 0


def _server_version(url: str) -> str:
    with psycopg.connect(urlunsplit(urlsplit(url)._replace(query="")), autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


if __name__ == "__main__":
    sys.exit(main())
