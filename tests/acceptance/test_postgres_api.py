"""An API node and a worker, separate processes on one PostgreSQL: the deployment the README
describes, end to end through HTTP.

``andon serve --no-worker --upgrade-db`` creates the schema of an empty database, then a
worker process runs what the API submits, and a cancel sent to the API stops the work in
the worker's process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.pg_processes import ROOT, Spawned, read_executions
from tests.acceptance.serving import serve

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


def test_an_api_node_and_a_worker_process_share_postgres(
    empty_schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the API serves this module's app
    api = serve(
        tmp_path,
        *("--no-worker", "--upgrade-db", "--no-demo-jobs", "--app", "tests.acceptance.pg_processes:app"),
        *("--db", empty_schema),
    )
    exec_log = tmp_path / "executions.log"
    worker: Spawned | None = None
    try:
        status, submitted = api.request("POST", "/api/v1/jobs", {"kind": "tick", "params": {"n": 100_000}})
        assert status == 201, submitted
        assert submitted["status"] == "queued"
        worker = Spawned("worker", "--db", empty_schema, "--id", "api-test", "--concurrency", "1", exec_log=exec_log)
        worker.wait_for("ready", 30)
        job_id = submitted["id"]
        api.wait_job(job_id, lambda job: job["status"] == "running", 30)
        status, cancelled = api.request("POST", f"/api/v1/jobs/{job_id}/cancel?wait=true&timeout=20")
        assert status == 200, cancelled
        assert cancelled["status"] == "cancelled"
        [start] = [e for e in read_executions(exec_log) if e.what == "start"]
        [end] = [e for e in read_executions(exec_log) if e.what == "end"]
        assert (start.job_id, end.job_id, end.detail) == (job_id, job_id, "cancelled:user")
        assert start.pid == worker.pid
        assert worker.stop() == 0, worker.output()
        assert api.stop() == 0, api.output()
        assert "Traceback" not in api.output()
    finally:
        api.kill()
        if worker is not None:
            worker.kill()
