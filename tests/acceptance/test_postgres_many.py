"""Many processes on one PostgreSQL: the promise holds when the work is spread out.

Four worker processes (concurrency 4 each) and one client process share a fresh schema.
The client submits 1,000 jobs and cancels 300 of them at random moments, half at a random
time (they find the job queued, running or over), half a few milliseconds after the job is
first seen running; it stands in for the API nodes (the REST API is not involved). The
cancels travel to the workers through PostgreSQL only (NOTIFY, and the workers' poll).

Afterwards, from the database and the handlers' own execution log: every job is in exactly
one terminal state, reached once and last; no cancelled job emitted after its work stopped;
no job ran more than once, and none ran without a ``started`` event.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from andon._storage._postgres import PostgresStore
from tests.acceptance.pg_processes import Spawned, check_jobs
from tests.postgres import fresh_schema

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("ANDON_TEST_SEED", "20261122"))
JOBS = 1000
CANCELS = 300
WORKERS = 4


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_schema() as migrated:
        yield migrated


@pytest.mark.timeout(240)
def test_four_worker_processes_and_a_client_process(url: str, tmp_path: Path) -> None:
    exec_log = tmp_path / "executions.log"
    report_path = tmp_path / "client.json"
    workers = [
        Spawned("worker", "--db", url, "--id", f"w{index}", "--concurrency", "4", exec_log=exec_log)
        for index in range(WORKERS)
    ]
    client: Spawned | None = None
    try:
        for worker in workers:
            worker.wait_for("ready", 30)
        client = Spawned(
            "client",
            *("--db", url, "--jobs", str(JOBS), "--cancels", str(CANCELS), "--seed", str(SEED)),
            *("--window", "6", "--out", str(report_path)),
        )
        client.wait_for("done", 200)
        assert client.wait(30) == 0, client.output()
        for worker in workers:
            assert worker.stop() == 0, worker.output()
            assert "Traceback" not in worker.output()
    finally:
        for process in [*workers, *([client] if client else [])]:
            process.kill()

    report = json.loads(report_path.read_text())
    assert len(report["ids"]) == JOBS
    assert len(report["outcomes"]) == CANCELS
    with PostgresStore(url) as store:
        methods = check_jobs(store, report, exec_log, workers=WORKERS)
    assert methods["withdrawn"] >= 10, f"too few cancels found their job queued: {methods}"
    assert sum(n for method, n in methods.items() if method != "withdrawn") >= 30, f"too few running: {methods}"
