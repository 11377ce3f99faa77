"""A dead worker's jobs: how soon after ``kill -9`` of an ``andon worker`` they are recovered.

Usage::

    python benchmarks/dead_worker.py [--runs 7] [--db URL]

Each run starts an ``andon worker --concurrency 2`` process, submits two long ``count``
jobs, waits until both run in it, kills it with SIGKILL and polls the store (every 2 ms)
until neither job is ``running`` any more. Another ``andon worker`` (claiming only a kind
nobody submits) runs throughout: its lookout (every 0.5 s) finds the killed worker's
process gone and recovers its jobs; before the workers registry they stayed ``running``
until their 30 s lease ran out. Figures: kill -> both jobs recovered (median, min, max over
the runs). ``--db``: any store URL (default: a SQLite file in a temporary folder; a
PostgreSQL URL measures the same-host rule there, in a schema of its own dropped afterwards).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import andon
from andon.examples import app as example_app

ANDON = Path(sys.executable).parent / "andon"
LONG = {"n": 100_000, "interval_s": 0.05}
START_S = 30.0
RECOVERY_LIMIT_S = 60.0


def start_worker(db: str, log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(ANDON), "worker", "--db", db, "--no-scheduler", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def wait(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(interval)


def one_run(client: andon.Client, db: str, log: Path) -> float:
    """Seconds from the kill to both of the worker's jobs recovered."""
    worker = start_worker(db, log, "--concurrency", "2", "--kinds", "count")
    try:
        jobs = [client.submit("count", LONG).id for _ in range(2)]

        def both_running_there() -> bool:
            found = [client.get(job_id) for job_id in jobs]
            return all(job.status is andon.JobStatus.RUNNING for job in found) and all(
                job.worker_id is not None and f":{worker.pid}:" in job.worker_id for job in found
            )

        wait(both_running_there, START_S, "both jobs to run in the worker")
        killed_at = time.monotonic()
        os.kill(worker.pid, signal.SIGKILL)
        wait(
            lambda: all(client.get(job_id).status is not andon.JobStatus.RUNNING for job_id in jobs),
            RECOVERY_LIMIT_S,
            "the jobs to be recovered",
            interval=0.002,
        )
        return time.monotonic() - killed_at
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.wait()


@contextlib.contextmanager
def store_url(given: str | None, folder: Path) -> Iterator[str]:
    if given is None or not given.startswith("postgresql"):
        yield given or f"sqlite:///{folder / 'andon.db'}"
        return
    import psycopg
    from psycopg import sql

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import server_only, with_schema

    name = f"andon_bench_{os.getpid()}_dead_worker"
    url = with_schema(given, name)
    andon.upgrade_database(url)
    try:
        yield url
    finally:
        with psycopg.connect(server_only(given), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--db", default=None, help="a store URL (default: a SQLite file in a temporary folder)")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        log = folder / "workers.log"
        with store_url(options.db, folder) as db:
            andon.upgrade_database(db)
            lookout = start_worker(db, log, "--concurrency", "1", "--kinds", "sleeper")
            try:
                with andon.connect(db, example_app) as client:
                    wait(lambda: any(w.is_alive for w in client.workers()), START_S, "the other worker to start")
                    figures = [one_run(client, db, log) for _ in range(options.runs)]
            finally:
                lookout.send_signal(signal.SIGTERM)
                lookout.wait(30)
    store = "PostgreSQL" if db.startswith("postgresql") else "SQLite"
    print(
        f"kill -9 of an andon worker ({store}, 2 running jobs) -> both recovered:"
        f" median {statistics.median(figures) * 1000:.0f} ms, min {min(figures) * 1000:.0f} ms,"
        f" max {max(figures) * 1000:.0f} ms over {len(figures)} runs"
        f" (load average {os.getloadavg()[0]:.1f})"
    )
    print("runs (ms): " + ", ".join(f"{figure * 1000:.0f}" for figure in figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
