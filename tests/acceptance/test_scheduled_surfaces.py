"""Scheduling a job through the REST API and the CLI (issue 17): a due time in the submit,
``due_at`` on the job, the ``scheduled`` filter, and a clear error for every bad due time
(nothing is created)."""

from __future__ import annotations

import datetime
import time
from typing import Any

import pytest
from starlette.testclient import TestClient

import andon
from andon.api import create_app
from andon.examples import app as example_app
from tests.acceptance.test_api import assert_error
from tests.acceptance.test_cli import Run

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def idle(store: andon.SqliteStore) -> Any:  # Any: the entered TestClient
    with TestClient(create_app(store, example_app), base_url="http://127.0.0.1:8000") as http:
        yield http


def test_the_api_schedules_by_delay_or_moment_and_lists_what_is_scheduled(idle: TestClient) -> None:
    before = time.time()
    later = idle.post("/api/v1/jobs", json={"kind": "count", "delay_s": 120})
    assert later.status_code == 201, later.text
    assert before + 119 < later.json()["due_at"] < time.time() + 121
    moment = idle.post("/api/v1/jobs", json={"kind": "count", "run_at": "2031-01-02T03:04:05+00:00"})
    assert moment.status_code == 201, moment.text
    assert moment.json()["due_at"] == datetime.datetime(2031, 1, 2, 3, 4, 5, tzinfo=datetime.UTC).timestamp()
    now = idle.post("/api/v1/jobs", json={"kind": "count"}).json()
    assert now["due_at"] <= time.time()
    listed = idle.get("/api/v1/jobs", params={"scheduled": "true"}).json()["items"]
    assert sorted(j["id"] for j in listed) == sorted([later.json()["id"], moment.json()["id"]])
    others = idle.get("/api/v1/jobs", params={"scheduled": "false"}).json()["items"]
    assert [j["id"] for j in others] == [now["id"]]
    cancelled = idle.post(f"/api/v1/jobs/{later.json()['id']}/cancel", json={})
    assert cancelled.status_code == 200, cancelled.text
    withdrawn = idle.get(f"/api/v1/jobs/{later.json()['id']}").json()
    assert (withdrawn["status"], withdrawn["due_at"]) == ("cancelled", None)
    assert withdrawn["cancel"]["stop_method"] == "withdrawn"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"run_at": "2031-01-02T03:04:05"}, 422, "invalid_request"),  # no time zone
        ({"run_at": "next tuesday"}, 422, "invalid_request"),
        ({"delay_s": -1}, 422, "invalid_request"),
        ({"delay_s": 1e12}, 422, "invalid_request"),
        ({"delay_s": "soon"}, 422, "invalid_request"),
        ({"delay_s": 5, "run_at": "2031-01-02T03:04:05+00:00"}, 400, "bad_request"),
        ({"run_at": "9999-01-01T00:00:00+00:00"}, 400, "bad_request"),
    ],
)
def test_a_bad_due_time_is_refused_and_creates_nothing(
    idle: TestClient, store: andon.SqliteStore, body: dict[str, Any], status: int, code: str
) -> None:
    response = idle.post("/api/v1/jobs", json={"kind": "count", **body})
    assert_error(response, status, code)
    assert store.list_jobs(andon.JobFilter(), 10).items == []


def test_the_cli_schedules_with_at_or_in_and_lists_the_scheduled(run: Run, client: andon.Client) -> None:
    submitted = run("submit", "count", "n=2", "--in", "10m")
    assert submitted.exit_code == 0, submitted.output
    assert "scheduled: starts no earlier than" in submitted.stdout
    at = run("submit", "count", "--at", "2031-01-02T03:04:05+00:00", "-q")
    assert at.exit_code == 0, at.output
    run("submit", "count", "-q")
    listed = run("ls", "--scheduled")
    assert listed.exit_code == 0, listed.output
    jobs = client.list_jobs(scheduled=True).items
    assert len(jobs) == 2
    assert all(job.id in listed.stdout for job in jobs)
    assert "due" in listed.stdout
    shown = run("show", at.stdout.strip())
    assert "scheduled: in" in shown.stdout


@pytest.mark.parametrize(
    "args",
    [("--in", "5x"), ("--in", "-3m"), ("--at", "tomorrow"), ("--at", "2031-01-02T03:04", "--in", "1m")],
)
def test_the_cli_refuses_a_bad_due_time(run: Run, client: andon.Client, args: tuple[str, ...]) -> None:
    result = run("submit", "count", *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert client.list_jobs().items == []
