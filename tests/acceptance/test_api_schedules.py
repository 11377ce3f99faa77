"""Schedules through the REST API (issue 17), in-process through Starlette's TestClient over a
real SQLite file, without a worker: ticks are fired only by the tests' triggers, so what each
request did is exact. Bad input is a 4xx JSON error, never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

import andon
from andon.api import create_app
from andon.examples import app as example_app
from tests.acceptance.test_api import assert_error
from tests.acceptance.test_auth import Cast, cast  # noqa: F401  # cast: the fixture, used by name

pytestmark = pytest.mark.timeout(60)

Json = dict[str, Any]  # Any: decoded JSON bodies


@pytest.fixture
def http(store: andon.SqliteStore) -> Any:  # Any: the entered TestClient
    with TestClient(create_app(store, example_app), base_url="http://127.0.0.1:8000") as client:
        yield client


def schedule(**changes: Any) -> Json:  # Any: JSON values
    return {"name": "nightly", "kind": "count", "params": {"n": 2}, "every_s": 60, **changes}


def test_add_list_pause_resume_trigger_and_remove(http: TestClient) -> None:
    added = http.post("/api/v1/schedules", json=schedule(overlap="queue"))
    assert added.status_code == 201, added.text
    body = added.json()
    assert (body["source"], body["overlap"], body["catch_up"], body["timing"]) == (
        "runtime",
        "queue",
        "latest",
        "every 60 s",
    )
    assert body["next_at"] is not None
    listed = http.get("/api/v1/schedules").json()
    assert [s["name"] for s in listed["items"]] == ["nightly"]
    assert listed["leader"] is None  # no worker runs here
    paused = http.post("/api/v1/schedules/nightly/pause").json()
    assert paused["next_at"] is None
    assert paused["paused_at"] is not None
    assert http.post("/api/v1/schedules/nightly/resume").json()["next_at"] is not None
    tick = http.post("/api/v1/schedules/nightly/trigger").json()
    assert tick["outcome"] == "triggered"
    job = http.get(f"/api/v1/jobs/{tick['job_id']}").json()
    assert (job["kind"], job["params"]["n"], job["key"]) == ("count", 2, "schedule:nightly")
    ticks = http.get("/api/v1/schedules/nightly/ticks").json()["items"]
    assert [t["outcome"] for t in ticks] == ["triggered"]
    assert http.get("/api/v1/schedules/nightly").json()["last_ticks"][0]["job_id"] == tick["job_id"]
    assert http.delete("/api/v1/schedules/nightly").status_code == 204
    assert_error(http.get("/api/v1/schedules/nightly"), 404, "schedule_not_found")
    # History outlives the schedule.
    assert len(http.get("/api/v1/schedules/nightly/ticks").json()["items"]) == 1


@pytest.mark.parametrize(
    ("changes", "status", "code"),
    [
        ({"every_s": None, "cron": "61 * * * *"}, 422, "invalid_schedule"),
        ({"every_s": None, "cron": "nonsense"}, 422, "invalid_schedule"),
        ({"every_s": None, "cron": "* * * * *", "timezone": "Mars/Olympus"}, 422, "invalid_schedule"),
        ({"every_s": None}, 422, "invalid_schedule"),
        ({"cron": "* * * * *"}, 422, "invalid_schedule"),
        ({"every_s": 0.001}, 422, "invalid_schedule"),
        ({"every_s": -1}, 422, "invalid_request"),
        ({"name": "bad name!"}, 422, "invalid_schedule"),
        ({"name": ""}, 422, "invalid_schedule"),
        ({"kind": "nope"}, 422, "unknown_kind"),
        ({"params": {"n": "many"}}, 422, "invalid_params"),
        ({"params": {"zzz": 1}}, 422, "invalid_params"),
        ({"overlap": "sometimes"}, 422, "invalid_request"),
        ({"catch_up": "most"}, 422, "invalid_request"),
        ({"surprise": 1}, 422, "invalid_request"),
    ],
)
def test_bad_schedules_are_4xx_json(http: TestClient, changes: Json, status: int, code: str) -> None:
    assert_error(http.post("/api/v1/schedules", json=schedule(**changes)), status, code)
    assert http.get("/api/v1/schedules").json()["items"] == []


def test_a_taken_name_an_unknown_one_and_an_app_schedule_are_refused(
    http: TestClient, store: andon.SqliteStore
) -> None:
    assert http.post("/api/v1/schedules", json=schedule()).status_code == 201
    assert_error(http.post("/api/v1/schedules", json=schedule()), 409, "schedule_exists")
    for method, path in [
        ("POST", "/api/v1/schedules/ghost/pause"),
        ("POST", "/api/v1/schedules/ghost/resume"),
        ("POST", "/api/v1/schedules/ghost/trigger"),
        ("DELETE", "/api/v1/schedules/ghost"),
        ("GET", "/api/v1/schedules/ghost/ticks"),
    ]:
        assert_error(http.request(method, path), 404, "schedule_not_found")
    store.sync_schedules([andon.ScheduleSpec(name="declared", kind="count", every_s=60)], "w")
    assert_error(http.delete("/api/v1/schedules/declared"), 409, "schedule_from_app")


def test_changing_schedules_is_admin_only_and_anyone_sees_them(cast: Cast) -> None:  # noqa: F811  # the fixture
    assert_error(cast.call("alice", "POST", "/api/v1/schedules", json=schedule()), 403, "not_allowed")
    assert cast.call("ops", "POST", "/api/v1/schedules", json=schedule()).status_code == 201
    for method, path in [
        ("POST", "/api/v1/schedules/nightly/pause"),
        ("POST", "/api/v1/schedules/nightly/resume"),
        ("POST", "/api/v1/schedules/nightly/trigger"),
        ("DELETE", "/api/v1/schedules/nightly"),
    ]:
        assert_error(cast.call("alice", method, path), 403, "not_allowed")
    assert [s["name"] for s in cast.call("alice", "GET", "/api/v1/schedules").json()["items"]] == ["nightly"]
