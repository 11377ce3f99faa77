"""A cancel that asks for an immediate stop, end to end on both stores: ``POST
/api/v1/jobs/{id}/cancel`` with ``{"grace_s": 0}`` and ``andon cancel --now``, acting on a
separate ``andon worker`` process that learns of the request only through the store.

The handler's kind grants 60 s of grace to everyone, and the handler never looks at its
context again once it spins: a stop within the test's bound (far under a minute) can only be
the request's own grace at work, however loaded the machine.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

import andon
from andon.api import create_app
from andon.cli import cli
from tests.acceptance.grace_app import app
from tests.postgres import fresh_schema
from tests.subprocesses import WorkerProcess
from tests.support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

WAIT_S = 30.0
JSON = {"content-type": "application/json"}
KIND = "listens_then_spins"


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'andon.db'}"
        andon.open_store(url).close()  # the schema, before the worker and the client share it
        yield url
        return
    with fresh_schema() as url:
        yield url


@pytest.fixture
def client(db: str, tmp_path: Path) -> Iterator[andon.Client]:
    worker = WorkerProcess(tmp_path, db, concurrency=2, app="tests.acceptance.grace_app:app")
    try:
        worker.wait_started(WAIT_S)
        with andon.connect(db, app) as client:
            yield client
        assert worker.stop() == 0, worker.output()
        assert "Traceback" not in worker.output(), worker.output()
    finally:
        worker.kill()


def spinning(client: andon.Client) -> andon.Job:
    job = client.submit(KIND, {})
    wait_until(lambda: client.get(job.id).items_count > 0, timeout=WAIT_S)
    return job


def assert_injected(job: andon.Job) -> None:
    assert job.status is andon.JobStatus.CANCELLED
    assert job.cancel is not None
    assert job.cancel.stop_method is andon.StopMethod.INJECTED


def test_rest_cancel_with_no_grace_stops_a_stop_under_way_at_once(client: andon.Client) -> None:
    http = TestClient(create_app(client, app), base_url="http://127.0.0.1")
    with http:
        job = spinning(client)
        first = http.post(f"/api/v1/jobs/{job.id}/cancel", json={"message": "take your time"})
        assert first.status_code == 200
        assert (first.json()["status"], first.json()["cancel"]["grace_s"]) == ("cancelling", None)
        time.sleep(0.5)  # the worker had time to hear it; the kind's minute of grace holds
        assert client.get(job.id).status is andon.JobStatus.CANCELLING
        now = http.post(f"/api/v1/jobs/{job.id}/cancel?wait=true&timeout=30", json={"grace_s": 0})
        assert now.status_code == 200, now.text
        assert now.json()["status"] == "cancelled"
        assert now.json()["cancel"]["grace_s"] == 0
    ended = client.get(job.id)
    assert_injected(ended)
    assert ended.cancel is not None
    assert ended.cancel.message == "take your time"  # the request in force stays; only the wait changed
    hurried = [e for e in client.events(job.id) if e.message == "asked to stop within 0 s"]
    assert len(hurried) == 1


def test_rest_cancel_of_a_running_job_with_no_grace(client: andon.Client) -> None:
    http = TestClient(create_app(client, app), base_url="http://127.0.0.1")
    with http:
        job = spinning(client)
        answer = http.post(f"/api/v1/jobs/{job.id}/cancel?wait=true&timeout=30", json={"grace_s": 0.0})
        assert answer.status_code == 200, answer.text
    assert_injected(client.get(job.id))


@pytest.mark.parametrize("raw", ["-1", "-0.001", '"soon"', "true", "[0]", "{}", "NaN", "Infinity"])
def test_rest_cancel_with_a_bad_grace_is_422_and_changes_nothing(client: andon.Client, raw: str) -> None:
    http = TestClient(create_app(client, app), base_url="http://127.0.0.1")
    with http:
        job = client.submit(KIND, {}, delay=3600)  # never starts within the test
        one = http.post(f"/api/v1/jobs/{job.id}/cancel", content=f'{{"grace_s": {raw}}}', headers=JSON)
        assert one.status_code == 422, one.text
        assert one.json()["error"]["code"] == "invalid_request"
        bulk = http.post("/api/v1/jobs/cancel", content=f'{{"ids": ["{job.id}"], "grace_s": {raw}}}', headers=JSON)
        assert bulk.status_code == 422, bulk.text
    assert client.get(job.id).status is andon.JobStatus.QUEUED


def test_cli_cancel_now_stops_the_work_at_once(client: andon.Client, db: str) -> None:
    job = spinning(client)
    result = CliRunner().invoke(cli, ["cancel", job.id, "--now", "--wait", "--timeout", "30", "--db", db])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert "cancelled" in result.output
    ended = client.get(job.id)
    assert_injected(ended)
    assert ended.cancel is not None
    assert ended.cancel.grace_s == 0


def test_cli_cancel_all_now_brings_every_stop_forward(client: andon.Client, db: str) -> None:
    jobs = [spinning(client) for _ in range(2)]
    client.cancel(jobs[0].id)  # one already stopping, at the kind's grace
    result = CliRunner().invoke(cli, ["cancel", "--all", "--kind", KIND, "--now", "--db", db])
    assert result.exit_code == 0, result.output
    for job in jobs:
        assert_injected(client.wait_finished(job.id, timeout=WAIT_S))


def test_python_cancel_rejects_a_bad_grace_before_anything_changes(client: andon.Client) -> None:
    job = client.submit(KIND, {}, delay=3600)
    for grace in (-0.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="grace"):
            client.cancel(job.id, grace=grace)
    with pytest.raises(TypeError, match="grace"):
        client.cancel(job.id, grace="0")  # type: ignore[arg-type]  # the mistake under test
    assert client.get(job.id).status is andon.JobStatus.QUEUED
