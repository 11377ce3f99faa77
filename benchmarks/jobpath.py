"""The job path: no-op jobs through real ``andon worker`` processes, what each costs the
database, and the floor a plain psycopg loop sets on the same server.

Usage::

    python benchmarks/jobpath.py [--quick] [--db POSTGRES_URL | --no-postgres]

(a) No-op jobs per second, "after the first": ``--jobs`` queued at once, then one worker
    process with 1 slot, with 10 slots, and (PostgreSQL) four processes with 10 slots each;
    the rate is the jobs after the first divided by the time from the first one's end to
    the last one's, as the store recorded them (worker start-up is not counted). A fresh
    store each run; the median of the runs, every run in the note.
(b) The same at 1 slot with 1,000, 10,000 and 100,000 queued (PostgreSQL), the first
    ``--window`` jobs timed: the rate must not depend on the backlog. The table's statistics
    are taken while it is empty, the worst case (a burst of submits into a quiet queue).
(c) What a job costs the database, from the worker's side: every connection of the worker
    process is traced at the protocol level (``_traced_worker.py``) and its round trips and
    ended transactions are divided by the jobs it ran (start-up and its idle probes
    included, so the figure is an upper bound). From the server's side (pg_stat_user_tables
    of the run's schema): the share of ``andon_jobs`` updates that were HOT (no index
    rewritten) and the sequential scans of it.
(d) The floor: the same number of jobs through a plain psycopg loop on a table of the same
    server with nothing but an id, a status and an index of queued rows: take the next one
    (``FOR UPDATE SKIP LOCKED``) and mark it running in one commit, then mark it done in a
    second (the two commits any queue that records a start and an end must make), and the
    same with both in one commit. No queue on this server can beat these.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

import _common
import andon
from _bench_app import app
from _report import figure_row
from _traced_worker import count_trace
from andon._storage._postgres import PostgresStore

HERE = Path(__file__).resolve().parent
TRACED = [sys.executable, str(HERE / "_traced_worker.py")]


def _ends(url: str) -> list[float]:
    """The end times of the succeeded jobs, in order, as the store has them."""
    query = "SELECT finished_at FROM andon_jobs WHERE status = 'succeeded' ORDER BY finished_at"
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return [row[0] for row in conn.execute(query)]
    with _schema_connection(url) as conn:
        return [row[0] for row in conn.execute(query)]


def _schema_connection(url: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(_common.server_only(url), autocommit=True)
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(PostgresStore(url).schema)))
    return conn


def run_noop(
    url: str, queued: int, slots: int, processes: int, window: int, trace: Path | None = None
) -> tuple[float, int]:
    """(jobs/s after the first, over the first ``window`` ends; jobs that ran)."""
    with andon.connect(url, app) as client:
        if not url.startswith("sqlite"):
            with _schema_connection(url) as conn:
                conn.execute("ANALYZE andon_jobs")  # empty now: the statistics a burst meets
        for start in range(0, queued, 5_000):
            client.submit_many("noop", [{}] * min(5_000, queued - start))
        command = [*TRACED, str(trace)] if trace is not None else None
        with _common.andon_workers(url, processes, slots, command=command):
            _common.wait_until(lambda: _done(url) >= window, poll=0.05, what=f"{window} no-op jobs to run")
    ends = _ends(url)[:window]
    return (len(ends) - 1) / (ends[-1] - ends[0]), len(_ends(url))


def _done(url: str) -> int:
    query = "SELECT count(*) FROM andon_jobs WHERE status = 'succeeded'"
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return int(conn.execute(query).fetchone()[0])
    with _schema_connection(url) as conn:
        row = conn.execute(query).fetchone()
        return int(row[0]) if row else 0


def table_stats(url: str) -> dict[str, int]:
    """andon_jobs's counters in pg_stat_user_tables (this schema's table only)."""
    time.sleep(0.6)  # backends report their counters at most every half second
    with _schema_connection(url) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        row = conn.execute(
            "SELECT seq_scan, seq_tup_read, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"
            " WHERE schemaname = current_schema() AND relname = 'andon_jobs'"
        ).fetchone()
    assert row is not None
    return dict(zip(("seq_scan", "seq_tup_read", "updates", "hot_updates"), row, strict=True))


_FLOOR_TABLE = """
CREATE TABLE floor_jobs (id bigserial PRIMARY KEY, status text NOT NULL, started_at float8, finished_at float8);
CREATE INDEX floor_jobs_queued ON floor_jobs (id) WHERE status = 'queued';
"""
_FLOOR_CLAIM = """
UPDATE floor_jobs SET status = 'running', started_at = extract(epoch FROM clock_timestamp())
WHERE id = (SELECT id FROM floor_jobs WHERE status = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id
"""
_FLOOR_FINISH = (
    "UPDATE floor_jobs SET status = 'done', finished_at = extract(epoch FROM clock_timestamp()) WHERE id = %s"
)


def floor_rates(url: str, jobs: int) -> dict[str, float]:
    """Jobs/s of a plain psycopg loop: two commits per job, then one."""
    rates: dict[str, float] = {}
    with _schema_connection(url) as conn:
        conn.execute(_FLOOR_TABLE)
        for label in ("claim, commit, finish, commit", "claim and finish, one commit"):
            conn.execute("INSERT INTO floor_jobs (status) SELECT 'queued' FROM generate_series(1, %s)", [jobs])
            began = time.perf_counter()
            for _ in range(jobs):
                if label.startswith("claim,"):
                    row = conn.execute(_FLOOR_CLAIM).fetchone()
                    assert row is not None
                    conn.execute(_FLOOR_FINISH, row)
                else:
                    with conn.transaction():
                        row = conn.execute(_FLOOR_CLAIM).fetchone()
                        assert row is not None
                        conn.execute(_FLOOR_FINISH, row)
            rates[label] = jobs / (time.perf_counter() - began)
    return rates


def _each_run(rates: list[float]) -> str:
    return "runs: " + ", ".join(f"{rate:,.0f}" for rate in rates) + " jobs/s"


def _stores(postgres_url: str | None, folder: str, label: str) -> list[tuple[str, Any]]:
    """(name, a context manager giving a fresh store URL)."""
    import contextlib

    @contextlib.contextmanager
    def sqlite_url() -> Any:  # Any: a generator context manager
        path = Path(folder, f"{label}-{time.monotonic_ns()}.db")
        yield f"sqlite:///{path}"

    out: list[tuple[str, Any]] = [("SQLite", sqlite_url)]
    if postgres_url is not None:
        out.append(("PostgreSQL", lambda: _common.fresh_schema(postgres_url, label)))
    return out


def measure(quick: bool, postgres_url: str | None) -> list[dict[str, Any]]:  # Any: JSON values
    jobs, runs, window = (300, 1, 300) if quick else (5_000, 5, 5_000)
    rows: list[dict[str, Any]] = []
    targets = {("PostgreSQL", 1): 2_000, ("PostgreSQL", 10): 4_000}
    with tempfile.TemporaryDirectory(prefix="andon-bench-") as folder:
        for slots in (1, 10):
            for name, fresh in _stores(postgres_url, folder, f"path{slots}"):
                rates = []
                for _ in range(runs):
                    with fresh() as url:
                        rates.append(run_noop(url, jobs, slots, 1, window)[0])
                rows.append(
                    figure_row(
                        "jobpath",
                        f"no-op jobs/s after the first, 1 worker process, {slots} slot(s), {name}",
                        statistics.median(rates),
                        "jobs/s",
                        at_least=targets.get((name, slots)),
                        runs=runs,
                        note=_each_run(rates),
                    )
                )
                print(f"  {rows[-1]['label']}: {_each_run(rates)}", flush=True)
    if postgres_url is None:
        return rows
    rows += _four_processes(postgres_url, jobs * 2 if not quick else jobs, runs)
    rows += _backlog(postgres_url, quick)
    rows += _costs(postgres_url, jobs)
    rows += _floor(postgres_url, 300 if quick else 5_000)
    return rows


def _four_processes(postgres_url: str, jobs: int, runs: int) -> list[dict[str, Any]]:
    rates = []
    for _ in range(runs):
        with _common.fresh_schema(postgres_url, "path4x10") as url:
            rates.append(run_noop(url, jobs, 10, 4, jobs)[0])
    row = figure_row(
        "jobpath",
        "no-op jobs/s after the first, 4 worker processes x 10 slots, PostgreSQL",
        statistics.median(rates),
        "jobs/s",
        at_least=6_000,
        runs=runs,
        note=_each_run(rates),
    )
    print(f"  {row['label']}: {_each_run(rates)}", flush=True)
    return [row]


def _backlog(postgres_url: str, quick: bool) -> list[dict[str, Any]]:
    backlogs, window, runs = ((300, 3_000), 200, 1) if quick else ((1_000, 10_000, 100_000), 1_000, 3)
    rows = []
    medians = []
    for queued in backlogs:
        rates = []
        for _ in range(runs):
            with _common.fresh_schema(postgres_url, "backlog") as url:
                rates.append(run_noop(url, queued, 1, 1, window)[0])
        medians.append(statistics.median(rates))
        rows.append(
            figure_row(
                "jobpath",
                f"no-op jobs/s at 1 slot, {queued:,} queued (first {window:,}), PostgreSQL",
                medians[-1],
                "jobs/s",
                runs=runs,
                note=_each_run(rates),
            )
        )
        print(f"  {rows[-1]['label']}: {_each_run(rates)}", flush=True)
    spread = (max(medians) / min(medians) - 1) * 100
    rows.append(
        figure_row(
            "jobpath",
            f"spread of those rates ({' / '.join(f'{q:,}' for q in backlogs)} queued), PostgreSQL",
            spread,
            "%",
            at_most=20,
            runs=len(medians),
        )
    )
    return rows


def _costs(postgres_url: str, jobs: int) -> list[dict[str, Any]]:
    rows = []
    for slots in (1, 10):
        with (
            tempfile.TemporaryDirectory(prefix="andon-trace-") as traces,
            _common.fresh_schema(postgres_url, "cost") as url,
        ):
            _, ran = run_noop(url, jobs, slots, 1, jobs, trace=Path(traces))
            trips, ended = count_trace(Path(traces))
            counters = table_stats(url)
        hot = 100 * counters["hot_updates"] / max(1, counters["updates"])
        for what, value in (("round trips", trips / ran), ("transactions", ended / ran)):
            rows.append(
                figure_row(
                    "jobpath",
                    f"{what} per no-op job, {slots} slot(s), worker side, PostgreSQL",
                    value,
                    what,
                    runs=ran,
                    note=f"{trips} round trips, {ended} transactions for {ran} jobs",
                )
            )
        rows.append(
            figure_row(
                "jobpath",
                f"andon_jobs updates that were HOT, {slots} slot(s), PostgreSQL",
                hot,
                "%",
                runs=ran,
                note=f"{counters['hot_updates']} of {counters['updates']}; {counters['seq_scan']} sequential scans"
                f" reading {counters['seq_tup_read']} rows",
            )
        )
        print("  " + "; ".join(f"{r['label']}: {r['value']:.2f}" for r in rows[-3:]), flush=True)
    return rows


def _floor(postgres_url: str, jobs: int) -> list[dict[str, Any]]:
    rows = []
    with _common.fresh_schema(postgres_url, "floor") as url:
        for label, rate in floor_rates(url, jobs).items():
            rows.append(figure_row("jobpath", f"floor: plain psycopg loop, {label}, PostgreSQL", rate, "jobs/s"))
            print(f"  {rows[-1]['label']}: {rate:,.0f} jobs/s", flush=True)
    return rows


if __name__ == "__main__":
    sys.exit(_common.group_main(__doc__, measure))
