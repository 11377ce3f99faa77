"""What the suite's measurement modules share: PostgreSQL schemas, worker processes, a bench app."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

import andon
from _report import rows_table, wait_for
from andon._storage._postgres import PostgresStore

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
ANDON = Path(sys.executable).parent / "andon"
"""The ``andon`` command of the interpreter running the benchmark (the venv's)."""
BENCH_APP = "_bench_app:app"


def with_schema(url: str, schema: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "schema"]
    return urlunsplit(
        (parts.scheme, parts.netloc, parts.path, urlencode([*query, ("schema", schema)], quote_via=quote), "")
    )


@contextlib.contextmanager
def fresh_schema(server: str, label: str) -> Iterator[str]:
    """A PostgreSQL URL with a new andon schema of its own, dropped afterwards."""
    name = f"andon_bench_{os.getpid()}_{label}"
    url = with_schema(server, name)
    PostgresStore(url).upgrade()
    try:
        yield url
    finally:
        with psycopg.connect(server_only(server), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def server_only(url: str) -> str:
    """``url`` without its query (no ``?schema=``), for a plain psycopg connection."""
    return urlunsplit(urlsplit(url)._replace(query=""))


def postgres_version(url: str) -> str:
    with psycopg.connect(server_only(url), autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


@contextlib.contextmanager
def andon_workers(
    url: str,
    count: int,
    concurrency: int,
    *,
    log_level: str = "warning",
    app: str = BENCH_APP,
    command: list[str] | None = None,
) -> Iterator[None]:
    """``count`` real ``andon worker`` processes on ``app`` (the bench app), stopped (SIGTERM) afterwards.
    ``command``: what runs in place of ``andon`` (``_traced_worker.py`` and its folder).

    Returns once each has claimed its first job or printed its banner (it is then serving).
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    procs = [
        subprocess.Popen(
            [
                *(command or [str(ANDON)]),
                "worker",
                "--db",
                url,
                "--app",
                app,
                "-c",
                str(concurrency),
                "--log-level",
                log_level,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(count)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            if not proc.stdout.readline().startswith("andon worker"):
                raise SystemExit(f"a worker did not start: {proc.communicate(timeout=10)}")
        yield
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                _, err = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            if proc.returncode != 0:
                print(f"a worker exited with {proc.returncode}: {err[-2000:]}", file=sys.stderr)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 300.0, poll: float = 0.01) -> None:
    """:func:`_report.wait_for` with the throughput benchmark's bound: five minutes."""
    wait_for(condition, what, timeout, poll)


def machine() -> dict[str, object]:
    import platform

    return {
        "andon": andon.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpu": _cpu_model(),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


DEFAULT_POSTGRES = os.environ.get("ANDON_TEST_POSTGRES_URL") or "postgresql://root@127.0.0.1:5432/test"


def group_main(doc: str, measure: Callable[[bool, str | None], list[dict[str, Any]]]) -> int:
    """Run one group of the suite on its own (``python benchmarks/scale.py [--quick]``)."""
    parser = argparse.ArgumentParser(description=doc.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke test, figures meaningless")
    parser.add_argument("--db", default=DEFAULT_POSTGRES, help="PostgreSQL server URL")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    print(rows_table(measure(args.quick, None if args.no_postgres else args.db)))
    return 0
