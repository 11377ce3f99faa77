"""The REST API end to end: in-process through Starlette's TestClient, over a real SQLite
file, with the embedded worker the app's lifespan starts and stops.

Every row of the API table is here, with its error answers, plus the event stream, the
request guard (413, 415, cross-origin refusal, host check, token) and generated junk that
must never get a 5xx.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any

import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

import andon
from andon import dashboard
from andon.api import MAX_BODY_BYTES, create_app, runtime_of
from andon.api._events import RESYNC, ServerEvent, Subscription, changes
from andon.examples import app as example_app
from tests import support

pytestmark = pytest.mark.timeout(60)

BASE = "http://127.0.0.1:8000"
WAIT_S = 15.0
Json = dict[str, Any]  # Any: decoded JSON bodies
MakeHttp = Callable[..., TestClient]
JSON_TYPE = {"content-type": "application/json"}

stubborn_app = andon.App(default_grace=30.0)


@stubborn_app.job("stubborn", grace=30.0)  # its own grace: it holds although the handler never listens
def stubborn(ctx: andon.Context, seconds: float = 1.5) -> str:
    """Ignores cancels (no checkpoint, long grace): a stop takes ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.02)
    return "done"


@pytest.fixture
def make_http(store: andon.SqliteStore) -> Iterator[MakeHttp]:
    """Start the app (and its lifespan: worker, event broadcaster) with options; stopped at the end."""
    started: list[TestClient] = []

    def make(
        app: andon.App | None = example_app,
        *,
        worker: bool = True,
        base_url: str = BASE,
        **options: Any,  # Any: create_app's keyword options
    ) -> TestClient:
        runner = andon.Worker(app, store, concurrency=4, shutdown_grace_s=0.5) if worker and app else None
        options.setdefault("stream_keepalive_s", 0.2)
        http = TestClient(create_app(store, app, worker=runner, **options), base_url=base_url)
        http.__enter__()
        started.append(http)
        return http

    yield make
    for http in reversed(started):
        http.__exit__(None, None, None)


@pytest.fixture
def http(make_http: MakeHttp) -> TestClient:
    return make_http()


@pytest.fixture
def idle(make_http: MakeHttp) -> TestClient:
    """The API without a worker: jobs stay queued, so listings are exact."""
    return make_http(worker=False)


def submit(http: TestClient, kind: str = "count", **params: Any) -> Json:  # Any: JSON params
    response = http.post("/api/v1/jobs", json={"kind": kind, "params": params})
    assert response.status_code == 201, response.text
    body: Json = response.json()
    return body


def get(http: TestClient, job_id: str) -> Json:
    response = http.get(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


def wait_for(http: TestClient, job_id: str, done: Callable[[Json], bool], what: str) -> Json:
    support.wait_until(lambda: done(get(http, job_id)), WAIT_S, what, interval=0.02)
    return get(http, job_id)


def assert_error(response: Any, status: int, code: str) -> Json:  # Any: an httpx response
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error: Json = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    return error


# -- kinds and submit ----------------------------------------------------------------------


def test_kinds_lists_every_registered_kind_with_a_params_schema(http: TestClient) -> None:
    response = http.get("/api/v1/kinds")
    assert response.status_code == 200
    kinds = {item["kind"]: item for item in response.json()["items"]}
    assert set(kinds) == {kind.kind for kind in example_app.kinds}
    count = kinds["count"]
    assert count["params_schema"]["properties"]["n"] == {"default": 10, "title": "N", "type": "integer"}
    assert count["isolation"] == "thread"
    assert kinds["spin"]["isolation"] == "process"
    assert count["description"].startswith("Count to n")
    # The embedded worker stored the app's limits as it started: the crawl's browsers.
    assert kinds["crawl"]["limits"] == {
        "max_running": 2,
        "running_now": 0,
        "rate_starts": None,
        "rate_s": None,
        "starts_in_window": None,
    }
    assert count["limits"] is None


def test_kinds_carry_their_stop_statistics(idle: TestClient, store: andon.SqliteStore) -> None:
    """count, p50, p99 (percentile_cont), max and methods per kind; ``needs_force`` when most
    of at least three stops were forced."""
    for seconds, method in ((0.007, "injected"), (0.01, "injected"), (2.5, "killed"), (0.003, "cooperative")):
        support.stopped_by_cancel(store, "count", seconds, andon.StopMethod(method))
    support.stopped_by_cancel(store, "fail", 0.004, andon.StopMethod.COOPERATIVE)
    kinds = {item["kind"]: item["stops"] for item in idle.get("/api/v1/kinds").json()["items"]}
    count = kinds["count"]
    assert count["count"] == 4
    assert count["p50_s"] == pytest.approx(0.0085, abs=1e-6)
    assert count["p99_s"] == pytest.approx(0.01 + 0.97 * (2.5 - 0.01), abs=1e-6)
    assert count["max_s"] == pytest.approx(2.5, abs=1e-6)
    assert count["methods"] == {"injected": 2, "killed": 1, "cooperative": 1}
    assert (count["forced"], count["needs_force"]) == (3, True)
    assert kinds["fail"]["methods"] == {"cooperative": 1}
    assert (kinds["fail"]["forced"], kinds["fail"]["needs_force"]) == (0, False)
    assert kinds["spin"] == {
        "count": 0,
        "p50_s": None,
        "p99_s": None,
        "max_s": None,
        "methods": {},
        "forced": 0,
        "needs_force": False,
    }


def test_submit_queues_a_job_and_answers_201_with_it(idle: TestClient) -> None:
    response = idle.post("/api/v1/jobs", json={"kind": "count", "params": {"n": 3}, "timeout_s": 9})
    assert response.status_code == 201
    job = response.json()
    assert job["status"] == "queued"
    assert job["params"] == {"n": 3, "interval_s": 0.5}  # defaults filled in
    assert job["timeout_s"] == 9
    assert job["cancel"] is None
    assert get(idle, job["id"]) == job


def test_submit_timeout_left_out_is_the_kinds_default_and_null_is_none(store: andon.SqliteStore) -> None:
    custom = andon.App(default_timeout=60)

    @custom.job("nap")
    def nap(ctx: andon.Context) -> None:
        ctx.sleep(1)

    http = TestClient(create_app(store, custom), base_url=BASE)
    with http:
        default = http.post("/api/v1/jobs", json={"kind": "nap"}).json()
        none = http.post("/api/v1/jobs", json={"kind": "nap", "timeout_s": None}).json()
    assert default["timeout_s"] == 60
    assert none["timeout_s"] is None


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"kind": "nope"}, "unknown_kind"),
        ({"kind": "count", "params": {"n": "many"}}, "invalid_params"),
        ({"kind": "count", "params": {"colour": 1}}, "invalid_params"),
        ({"kind": "count", "timeout_s": -1}, "invalid_request"),
        ({"kind": "count", "surprise": True}, "invalid_request"),
        ({"params": {}}, "invalid_request"),
        ({"kind": "count", "params": [1, 2]}, "invalid_request"),
    ],
)
def test_submit_with_an_unknown_kind_or_bad_params_is_422_and_creates_nothing(
    idle: TestClient, body: Json, code: str
) -> None:
    error = assert_error(idle.post("/api/v1/jobs", json=body), 422, code)
    if code == "invalid_params":
        assert error["problems"]
    assert idle.get("/api/v1/jobs").json()["items"] == []


@pytest.mark.parametrize(
    "raw",
    [
        b'{"kind": "count", "params": {"interval_s": NaN}}',
        b'{"kind": "count", "params": {"n": Infinity}}',
        b'{"kind": "count", "params": {"x": "\\ud800"}}',
        b'{"kind": "count", "params": {"x": ' + b"[" * 40 + b"]" * 40 + b"}}",
        b'{"kind": "count", "params": {"x": ' + b"[" * 5000 + b"]" * 5000 + b"}}",
        b'{"kind": "count"',
        b"[]",
        b"null",
        b"\xff\xfe",
    ],
)
def test_submit_refuses_what_is_not_plain_json_without_a_5xx(idle: TestClient, raw: bytes) -> None:
    response = idle.post("/api/v1/jobs", content=raw, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    assert "error" in response.json()
    assert idle.get("/api/v1/jobs").json()["items"] == []


def test_submit_without_an_app_is_a_configuration_error_400(make_http: MakeHttp) -> None:
    http = make_http(None)
    assert http.get("/api/v1/kinds").json() == {"items": []}
    assert_error(http.post("/api/v1/jobs", json={"kind": "count"}), 400, "configuration_error")


# -- reading -------------------------------------------------------------------------------


def test_history_is_newest_first_paged_and_filtered(idle: TestClient) -> None:
    ids = [submit(idle, "count")["id"] for _ in range(5)]
    failing = submit(idle, "fail")["id"]
    idle.post(f"/api/v1/jobs/{ids[0]}/cancel")

    first = idle.get("/api/v1/jobs", params={"limit": 4}).json()
    assert [job["id"] for job in first["items"]] == [failing, *ids[::-1][:3]]
    assert "params" not in first["items"][0]  # listings carry summaries
    second = idle.get("/api/v1/jobs", params={"limit": 4, "cursor": first["next_cursor"]}).json()
    assert [job["id"] for job in second["items"]] == ids[1::-1]
    assert second["next_cursor"] is None

    by_kind = idle.get("/api/v1/jobs", params={"kind": "fail"}).json()["items"]
    assert [job["id"] for job in by_kind] == [failing]
    cancelled = idle.get("/api/v1/jobs", params={"status": "cancelled"}).json()["items"]
    assert [job["id"] for job in cancelled] == [ids[0]]
    both = idle.get("/api/v1/jobs", params=[("status", "cancelled"), ("status", "queued"), ("kind", "count")])
    assert len(both.json()["items"]) == 5


@pytest.mark.parametrize(
    "params",
    [{"status": "done"}, {"limit": 0}, {"limit": 1001}, {"limit": "x"}, {"cursor": "x" * 101}],
)
def test_history_with_a_bad_query_is_422(idle: TestClient, params: Json) -> None:
    assert_error(idle.get("/api/v1/jobs", params=params), 422, "invalid_request")


@pytest.mark.parametrize(
    "cursor",
    [
        "%%%",
        "zzzz",
        "x",
        "",
        "00000000-0000-0000-0000-000000000000",
        "1" * 36,
        "{0190f1d4-7b1c-7000-8000-000000000000}",
    ],
)
def test_a_cursor_no_page_gave_is_422_naming_the_parameter(idle: TestClient, cursor: str) -> None:
    """Issue 12, item 9: such a cursor used to be accepted, answering an empty page or the
    whole history from the top as if it were one."""
    submit(idle, "count")
    error = assert_error(idle.get("/api/v1/jobs", params={"cursor": cursor}), 422, "invalid_request")
    assert any(problem.startswith(("cursor:", "query.cursor:")) for problem in error["problems"]), error
    assert "cursor" in error["message"]


def test_one_job_has_progress_counts_error_and_timestamps(http: TestClient) -> None:
    job = submit(http, "fail", after_items=2, message="boom")
    job = wait_for(http, job["id"], lambda j: j["is_terminal"], "the job to fail")
    assert job["status"] == "failed"
    assert job["items_count"] == 2
    assert job["error"]["type"] == "RuntimeError"
    assert job["error"]["message"] == "boom"
    assert "Traceback" in job["error"]["traceback"]
    assert job["created_at"] <= job["started_at"] <= job["finished_at"]
    assert job["duration_s"] == pytest.approx(job["finished_at"] - job["started_at"])
    assert job["attempt"] == 1
    assert job["failures"] == 1


def test_a_finished_job_names_the_worker_that_ran_it(http: TestClient) -> None:
    """``worker_id`` outlives the attempt (issue 13): who ran a job is on the job, not only
    in its ``started`` event; in listings too."""
    done = submit(http, "count", n=1, interval_s=0.01)
    failed = submit(http, "fail")
    for job in (done, failed):
        finished = wait_for(http, job["id"], lambda j: j["is_terminal"], "the job to end")
        events = http.get(f"/api/v1/jobs/{job['id']}/events").json()["items"]
        [started] = [event for event in events if event["type"] == "started"]
        assert finished["worker_id"] is not None, finished
        assert started["actor"] == f"worker:{finished['worker_id']}"
        listed = {item["id"]: item for item in http.get("/api/v1/jobs").json()["items"]}
        assert listed[job["id"]]["worker_id"] == finished["worker_id"]


@pytest.mark.parametrize("job_id", ["01a1fed6-aad3-7000-a5df-a4b67c0dd7d2", "nope", "0", "x.y", "%00", "a b"])
def test_an_unknown_or_malformed_id_is_404(http: TestClient, job_id: str) -> None:
    for path in ("", "/events", "/results"):
        assert_error(http.get(f"/api/v1/jobs/{job_id}{path}"), 404, "job_not_found")
    for action in ("cancel", "fail", "retry"):
        assert_error(http.post(f"/api/v1/jobs/{job_id}/{action}"), 404, "job_not_found")
    assert_error(http.delete(f"/api/v1/jobs/{job_id}"), 404, "job_not_found")


def test_an_overlong_id_is_422(http: TestClient) -> None:
    assert_error(http.get(f"/api/v1/jobs/{'7' * 101}"), 422, "invalid_request")


def test_events_are_the_jobs_history_of_transitions(http: TestClient) -> None:
    job = submit(http, "count", n=1, interval_s=0.01)
    wait_for(http, job["id"], lambda j: j["status"] == "succeeded", "the job to succeed")
    response = http.get(f"/api/v1/jobs/{job['id']}/events")
    assert response.status_code == 200
    events = response.json()["items"]
    assert [e["type"] for e in events] == ["submitted", "started", "succeeded"]
    assert [(e["from_status"], e["to_status"]) for e in events] == [
        (None, "queued"),
        ("queued", "running"),
        ("running", "succeeded"),
    ]
    assert events[0]["actor"] == "http"
    assert response.json()["next_offset"] is None
    first = http.get(f"/api/v1/jobs/{job['id']}/events", params={"limit": 2}).json()
    assert (first["items"], first["next_offset"]) == (events[:2], 2)
    rest = http.get(f"/api/v1/jobs/{job['id']}/events", params={"offset": 2}).json()
    assert (rest["items"], rest["next_offset"]) == (events[2:], None)
    for params in ({"offset": -1}, {"limit": 0}, {"limit": 1001}, {"offset": "x"}):
        assert_error(http.get(f"/api/v1/jobs/{job['id']}/events", params=params), 422, "invalid_request")


def test_results_are_paged_and_say_whether_they_are_complete(http: TestClient) -> None:
    job = submit(http, "count", n=5, interval_s=0.01)
    wait_for(http, job["id"], lambda j: j["status"] == "succeeded", "the job to succeed")
    page = http.get(f"/api/v1/jobs/{job['id']}/results", params={"offset": 1, "limit": 2}).json()
    assert [item["data"]["i"] for item in page["items"]] == [1, 2]
    assert [item["seq"] for item in page["items"]] == [1, 2]
    assert (page["count"], page["offset"], page["complete"], page["cancelled"]) == (5, 1, True, False)
    assert page["next_offset"] == 3
    last = http.get(f"/api/v1/jobs/{job['id']}/results", params={"offset": page["next_offset"]}).json()
    assert ([item["seq"] for item in last["items"]], last["next_offset"]) == ([3, 4], None)
    assert http.get(f"/api/v1/jobs/{job['id']}/results", params={"offset": 99}).json()["items"] == []
    for params in ({"offset": -1}, {"limit": 0}, {"limit": 1001}, {"offset": 10**30}):
        assert_error(http.get(f"/api/v1/jobs/{job['id']}/results", params=params), 422, "invalid_request")


# -- cancel ----------------------------------------------------------------------------------


def test_cancel_a_running_job_then_get_shows_cancelled_with_partial_results_kept(http: TestClient) -> None:
    job = submit(http, "count", n=1000, interval_s=0.01)
    wait_for(http, job["id"], lambda j: j["items_count"] >= 3, "a few items")

    response = http.post(f"/api/v1/jobs/{job['id']}/cancel", json={"reason": "enough counting"})
    assert response.status_code == 200
    assert response.json()["status"] in ("cancelling", "cancelled")

    final = wait_for(http, job["id"], lambda j: j["is_terminal"], "the work to stop")
    assert final["status"] == "cancelled"
    assert final["cancel"]["reason"] == "user"
    assert final["cancel"]["message"] == "enough counting"
    assert final["cancel"]["by"] == "http"
    assert final["cancel"]["stop_method"] == "cooperative"
    assert final["cancel"]["acknowledged_at"] is not None
    assert final["cancel"]["stop_seconds"] >= 0
    kept = final["items_count"]
    assert 3 <= kept < 1000

    results = http.get(f"/api/v1/jobs/{job['id']}/results", params={"limit": 1000}).json()
    assert (results["count"], results["cancelled"], results["complete"]) == (kept, True, True)
    assert [item["data"]["i"] for item in results["items"]] == list(range(kept))


def test_cancel_a_queued_job_withdraws_it_at_once(idle: TestClient) -> None:
    job = submit(idle)
    response = idle.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 200
    cancelled = response.json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancel"]["stop_method"] == "withdrawn"
    assert cancelled["started_at"] is None


def test_cancel_twice_is_200_both_times_and_changes_nothing(http: TestClient) -> None:
    job = submit(http, "count", n=1000, interval_s=0.01)
    wait_for(http, job["id"], lambda j: j["status"] == "running", "the job to run")
    first = http.post(f"/api/v1/jobs/{job['id']}/cancel")
    second = http.post(f"/api/v1/jobs/{job['id']}/cancel", json={"message": "again"})
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json()["cancel"]["requested_at"] == first.json()["cancel"]["requested_at"]
    final = wait_for(http, job["id"], lambda j: j["is_terminal"], "the work to stop")
    third = http.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert third.status_code == 200
    assert third.json() == final
    assert [e["type"] for e in http.get(f"/api/v1/jobs/{job['id']}/events").json()["items"]].count(
        "cancel requested"
    ) == 1


def test_cancel_a_finished_job_is_409_naming_its_state(http: TestClient) -> None:
    job = submit(http, "count", n=1, interval_s=0.01)
    wait_for(http, job["id"], lambda j: j["status"] == "succeeded", "the job to succeed")
    error = assert_error(http.post(f"/api/v1/jobs/{job['id']}/cancel"), 409, "job_finished")
    assert error["state"] == "succeeded"
    assert "succeeded" in error["message"]
    assert error["job_id"] == job["id"]


def test_cancel_with_wait_answers_once_the_work_has_stopped(http: TestClient) -> None:
    job = submit(http, "sleeper", seconds=30)
    wait_for(http, job["id"], lambda j: j["status"] == "running", "the job to run")
    started = time.monotonic()
    response = http.post(f"/api/v1/jobs/{job['id']}/cancel", params={"wait": "true", "timeout": 10})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "cancelled"
    assert body["cancel"]["stopped_at"] is not None
    assert time.monotonic() - started < 10


def test_cancel_with_wait_does_not_block_other_requests(make_http: MakeHttp) -> None:
    http = make_http(stubborn_app)
    job = submit(http, "stubborn", seconds=1.5)
    wait_for(http, job["id"], lambda j: j["status"] == "running", "the job to run")
    answers: list[Any] = []  # Any: the httpx response
    waiter = threading.Thread(
        target=lambda: answers.append(http.post(f"/api/v1/jobs/{job['id']}/cancel?wait=true&timeout=10"))
    )
    waiter.start()
    support.wait_until(lambda: get(http, job["id"])["status"] == "cancelling", WAIT_S, "the cancel request")
    started = time.monotonic()
    assert http.get("/api/v1/info").status_code == 200
    assert time.monotonic() - started < 0.5
    assert answers == []  # still waiting for the stubborn work
    waiter.join(WAIT_S)
    assert answers[0].status_code == 200
    assert answers[0].json()["status"] == "succeeded"  # it finished before it saw the cancel


def test_cancel_with_wait_that_times_out_is_504_and_the_cancel_stays(make_http: MakeHttp) -> None:
    http = make_http(stubborn_app)
    job = submit(http, "stubborn", seconds=1.5)
    wait_for(http, job["id"], lambda j: j["status"] == "running", "the job to run")
    error = assert_error(http.post(f"/api/v1/jobs/{job['id']}/cancel?wait=true&timeout=0.2"), 504, "wait_timeout")
    assert error["state"] == "cancelling"
    assert get(http, job["id"])["cancel"]["reason"] == "user"


@pytest.mark.parametrize("query", ["wait=maybe", "timeout=0", "timeout=301", "timeout=nan"])
def test_cancel_with_a_bad_query_is_422(idle: TestClient, query: str) -> None:
    job = submit(idle)
    assert_error(idle.post(f"/api/v1/jobs/{job['id']}/cancel?{query}"), 422, "invalid_request")


# -- bulk cancel -------------------------------------------------------------------------------


def test_bulk_cancel_by_status_kind_or_ids(idle: TestClient) -> None:
    counts = [submit(idle, "count")["id"] for _ in range(3)]
    fails = [submit(idle, "fail")["id"] for _ in range(2)]

    by_ids = idle.post("/api/v1/jobs/cancel", json={"ids": counts[:1]}).json()
    assert by_ids == {"cancelled": 1, "ids": counts[:1]}
    by_kind = idle.post("/api/v1/jobs/cancel", json={"kind": "fail", "status": ["queued"]}).json()
    assert by_kind["cancelled"] == 2
    assert sorted(by_kind["ids"]) == sorted(fails)
    everything = idle.post("/api/v1/jobs/cancel", json={}).json()
    assert sorted(everything["ids"]) == sorted(counts[1:])
    assert idle.post("/api/v1/jobs/cancel").json() == {"cancelled": 0, "ids": []}
    statuses = {job["status"] for job in idle.get("/api/v1/jobs").json()["items"]}
    assert statuses == {"cancelled"}


@pytest.mark.parametrize(
    "body",
    [{"status": "done"}, {"ids": "one"}, {"ids": [1]}, {"kind": [None]}, {"every": True}, {"ids": ["x"] * 1001}],
)
def test_bulk_cancel_with_a_bad_body_is_422(idle: TestClient, body: Json) -> None:
    assert_error(idle.post("/api/v1/jobs/cancel", json=body), 422, "invalid_request")


# -- retry, fail, delete -------------------------------------------------------------------------


def test_retry_makes_a_new_attempt_of_a_failed_job(http: TestClient) -> None:
    job = submit(http, "fail", message="first try")
    wait_for(http, job["id"], lambda j: j["is_terminal"], "the job to fail")
    response = http.post(f"/api/v1/jobs/{job['id']}/retry")
    assert response.status_code == 201
    again = response.json()
    assert again["id"] != job["id"]
    assert again["retry_of"] == job["id"]
    assert again["params"] == job["params"]
    assert again["status"] in ("queued", "running", "failed")


def test_retry_of_an_active_or_succeeded_job_is_409(http: TestClient) -> None:
    running = submit(http, "count", n=1000, interval_s=0.01)
    error = assert_error(http.post(f"/api/v1/jobs/{running['id']}/retry"), 409, "invalid_transition")
    assert error["state"] in ("queued", "running")
    done = submit(http, "count", n=1, interval_s=0.01)
    wait_for(http, done["id"], lambda j: j["status"] == "succeeded", "the job to succeed")
    assert assert_error(http.post(f"/api/v1/jobs/{done['id']}/retry"), 409, "invalid_transition")["state"] == (
        "succeeded"
    )


def test_fail_stops_the_work_and_marks_it_failed_with_reason_forced(http: TestClient) -> None:
    job = submit(http, "count", n=1000, interval_s=0.01)
    wait_for(http, job["id"], lambda j: j["status"] == "running", "the job to run")
    response = http.post(f"/api/v1/jobs/{job['id']}/fail", json={"message": "stuck", "retry": False})
    assert response.status_code == 200
    final = wait_for(http, job["id"], lambda j: j["is_terminal"], "the work to stop")
    assert final["status"] == "failed"
    assert final["cancel"]["reason"] == "forced"
    assert final["cancel"]["message"] == "stuck"
    error = assert_error(http.post(f"/api/v1/jobs/{job['id']}/fail"), 409, "job_finished")
    assert error["state"] == "failed"


def test_delete_cancels_an_active_job_waits_and_deletes_it_with_its_results(http: TestClient) -> None:
    job = submit(http, "count", n=1000, interval_s=0.01)
    wait_for(http, job["id"], lambda j: j["items_count"] >= 2, "a few items")
    response = http.delete(f"/api/v1/jobs/{job['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert_error(http.get(f"/api/v1/jobs/{job['id']}"), 404, "job_not_found")
    assert_error(http.get(f"/api/v1/jobs/{job['id']}/results"), 404, "job_not_found")
    assert_error(http.delete(f"/api/v1/jobs/{job['id']}"), 404, "job_not_found")


def test_delete_a_finished_job(idle: TestClient) -> None:
    job = submit(idle)
    idle.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert idle.delete(f"/api/v1/jobs/{job['id']}").status_code == 204
    assert idle.get("/api/v1/jobs").json()["items"] == []


# -- what a job allows --------------------------------------------------------------------------


def test_every_job_says_which_actions_it_allows_and_how_far_it_has_come(
    idle: TestClient, store: andon.SqliteStore
) -> None:
    queued = submit(idle)
    assert (queued["actions"], queued["stage"]) == (["cancel", "fail", "delete"], 1)  # one event: created
    withdrawn = idle.post(f"/api/v1/jobs/{queued['id']}/cancel").json()
    assert withdrawn["actions"] == ["retry", "delete"]
    assert withdrawn["stage"] > queued["stage"]
    other = submit(idle)
    for listed in idle.get("/api/v1/jobs").json()["items"]:
        job = store.get(listed["id"])
        assert listed["actions"] == [action.value for action in andon.Action if action in andon.allowed_actions(job)]
        assert listed["stage"] == andon.life_stage(job)
        assert get(idle, listed["id"])["actions"] == listed["actions"]
    assert {j["id"] for j in idle.get("/api/v1/jobs").json()["items"]} == {queued["id"], other["id"]}


def test_a_running_and_a_succeeded_job_allow_what_their_state_allows(
    http: TestClient, store: andon.SqliteStore
) -> None:
    running = submit(http, "count", n=1000, interval_s=0.01)
    running = wait_for(http, running["id"], lambda j: j["status"] == "running", "the job to run")
    assert running["actions"] == ["cancel", "fail", "delete"]
    done = submit(http, "count", n=1, interval_s=0.01)
    done = wait_for(http, done["id"], lambda j: j["status"] == "succeeded", "the job to succeed")
    assert done["actions"] == ["delete"]
    assert done["stage"] == andon.life_stage(store.get(done["id"]))


def test_the_openapi_spec_lists_the_actions_and_stage_of_a_job(http: TestClient) -> None:
    schemas = http.get("/openapi.json").json()["components"]["schemas"]
    for name in ("JobSummary", "JobOut"):
        properties = schemas[name]["properties"]
        assert {"actions", "stage"} <= set(properties)
        assert {"actions", "stage"} <= set(schemas[name]["required"])
    assert schemas["Action"]["enum"] == ["cancel", "fail", "resume", "retry", "delete"]


# -- resume, pause, downloads ------------------------------------------------------------------

flat_app = andon.App()


@flat_app.job("nested")
def nested(ctx: andon.Context) -> None:
    """Emits one flat item, then one with a list inside (no CSV for it)."""
    ctx.emit({"a": 1})
    ctx.emit({"a": [1, 2]})


def cancel_mid_count(http: TestClient, n: int) -> Json:
    job = submit(http, "count", n=n, interval_s=0.01)
    wait_for(http, job["id"], lambda j: j["items_count"] >= 5, "a few items")
    response = http.post(f"/api/v1/jobs/{job['id']}/cancel", params={"wait": "true"})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    return get(http, job["id"])


def items_of(http: TestClient, job_id: str) -> list[int]:
    page = http.get(f"/api/v1/jobs/{job_id}/results", params={"limit": 1000}).json()
    return [item["data"]["i"] for item in page["items"]]


def test_resume_goes_on_from_the_checkpoint_and_every_item_is_there_once(http: TestClient) -> None:
    cancelled = cancel_mid_count(http, 300)
    checkpoint = cancelled["checkpoint"]
    assert checkpoint["state"] == {"next": checkpoint["items"]}
    assert (checkpoint["attempt"], cancelled["resume"]) == (1, False)
    assert cancelled["actions"] == ["resume", "retry", "delete"]
    listed = next(j for j in http.get("/api/v1/jobs").json()["items"] if j["id"] == cancelled["id"])
    assert listed["checkpoint"] == {key: checkpoint[key] for key in ("items", "attempt", "at")}  # no state

    response = http.post(f"/api/v1/jobs/{cancelled['id']}/resume")
    assert response.status_code == 200, response.text
    resumed = response.json()
    assert (resumed["id"], resumed["status"], resumed["resume"]) == (cancelled["id"], "queued", True)
    assert "resume" not in resumed["actions"]
    final = wait_for(http, cancelled["id"], lambda j: j["is_terminal"], "the resumed job to finish")
    assert (final["status"], final["attempt"]) == ("succeeded", 2)
    assert items_of(http, final["id"]) == list(range(300))
    events = http.get(f"/api/v1/jobs/{final['id']}/events").json()["items"]
    assert [e["actor"] for e in events if e["type"] == "resumed"] == ["http"]


def test_resume_without_a_checkpoint_of_an_active_or_unknown_job_is_409_or_404(idle: TestClient) -> None:
    queued = submit(idle)
    error = assert_error(idle.post(f"/api/v1/jobs/{queued['id']}/resume"), 409, "invalid_transition")
    assert error["state"] == "queued"
    idle.post(f"/api/v1/jobs/{queued['id']}/cancel")  # withdrawn before it ran: no checkpoint
    error = assert_error(idle.post(f"/api/v1/jobs/{queued['id']}/resume"), 409, "invalid_transition")
    assert "no checkpoint" in error["message"]
    assert_error(idle.post("/api/v1/jobs/0190a0b0-0000-7000-8000-00000000abcd/resume"), 404, "job_not_found")


def test_pause_now_requeues_running_jobs_and_unpause_lets_them_finish(http: TestClient) -> None:
    job = submit(http, "count", n=200, interval_s=0.01)
    wait_for(http, job["id"], lambda j: j["items_count"] >= 5, "a few items")
    response = http.post("/api/v1/kinds/count/pause", json={"now": True, "message": "maintenance"})
    assert response.status_code == 200, response.text
    assert response.json() == {"kind": "count", "paused": True, "changed": True, "stopping": [job["id"]]}
    again = http.post("/api/v1/kinds/count/pause").json()
    assert (again["changed"], again["stopping"]) == (False, [])
    held = wait_for(http, job["id"], lambda j: j["status"] == "queued", "the job to go back to the queue")
    assert held["resume"] is True
    events = http.get(f"/api/v1/jobs/{job['id']}/events").json()["items"]
    assert [e["reason"] for e in events if e["type"] == "cancel requested"] == ["paused"]
    kinds = {k["kind"]: k["paused"] for k in http.get("/api/v1/kinds").json()["items"]}
    assert kinds["count"] is not None
    assert (kinds["count"]["by"], kinds["count"]["message"]) == ("http", "maintenance")
    assert kinds["spin"] is None

    unpaused = http.post("/api/v1/kinds/count/unpause").json()
    assert (unpaused["paused"], unpaused["changed"]) == (False, True)
    assert http.post("/api/v1/kinds/count/unpause").json()["changed"] is False
    final = wait_for(http, job["id"], lambda j: j["is_terminal"], "the job to finish")
    assert final["status"] == "succeeded"
    assert items_of(http, job["id"]) == list(range(200))
    assert http.get("/api/v1/kinds").json()["items"][0]["paused"] is None


@pytest.mark.parametrize("body", [{"now": "soon"}, {"message": 1}, {"extra": True}, []])
def test_pause_with_a_bad_body_or_an_unknown_kind_is_422(idle: TestClient, body: Any) -> None:  # Any: JSON
    assert_error(idle.post("/api/v1/kinds/count/pause", json=body), 422, "invalid_request")
    assert_error(idle.post("/api/v1/kinds/nope/pause"), 422, "unknown_kind")


def test_items_download_as_json_lines_and_csv_in_any_state(http: TestClient) -> None:
    cancelled = cancel_mid_count(http, 1000)
    kept = cancelled["items_count"]
    response = http.get(f"/api/v1/jobs/{cancelled['id']}/results.jsonl")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/jsonl"
    disposition = f'attachment; filename="count-{cancelled["id"]}.jsonl"'
    assert response.headers["content-disposition"] == disposition
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["i"] for line in lines] == list(range(kept))

    response = http.get(f"/api/v1/jobs/{cancelled['id']}/results.csv")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    rows = response.text.splitlines()
    assert rows[0] == "i,at"
    assert [int(row.split(",")[0]) for row in rows[1:]] == list(range(kept))
    assert float(rows[1].split(",")[1]) == lines[0]["at"]


def test_csv_of_items_that_are_not_flat_is_409_and_json_lines_still_work(make_http: MakeHttp) -> None:
    http = make_http(flat_app)
    job = submit(http, "nested")
    wait_for(http, job["id"], lambda j: j["is_terminal"], "the job to finish")
    error = assert_error(http.get(f"/api/v1/jobs/{job['id']}/results.csv"), 409, "items_not_flat")
    assert "item 1" in error["message"]
    assert error["job_id"] == job["id"]
    assert http.get(f"/api/v1/jobs/{job['id']}/results.jsonl").text == '{"a": 1}\n{"a": [1, 2]}\n'


def test_downloads_of_an_unknown_job_or_format_are_404_or_422(idle: TestClient) -> None:
    unknown = "0190a0b0-0000-7000-8000-00000000abcd"
    assert_error(idle.get(f"/api/v1/jobs/{unknown}/results.csv"), 404, "job_not_found")
    job = submit(idle)
    assert idle.get(f"/api/v1/jobs/{job['id']}/results.jsonl").text == ""
    assert_error(idle.get(f"/api/v1/jobs/{job['id']}/results.xml"), 422, "invalid_request")


def test_the_new_operations_have_stable_operation_ids(idle: TestClient) -> None:
    paths = idle.get("/openapi.json").json()["paths"]
    assert paths["/api/v1/jobs/{job_id}/resume"]["post"]["operationId"] == "resumeJob"
    assert paths["/api/v1/kinds/{kind}/pause"]["post"]["operationId"] == "pauseKind"
    assert paths["/api/v1/kinds/{kind}/unpause"]["post"]["operationId"] == "unpauseKind"
    assert paths["/api/v1/jobs/{job_id}/results.{format}"]["get"]["operationId"] == "downloadResults"


# -- the event stream ------------------------------------------------------------------------------


def read_events(
    http: TestClient, until: Callable[[list[tuple[str, Json]]], bool], start: Callable[[], None]
) -> list[tuple[str, Json]]:
    """Open the stream, call ``start`` after ``hello``, and collect events until ``until`` holds."""
    events: list[tuple[str, Json]] = []
    deadline = time.monotonic() + WAIT_S
    with http.stream("GET", "/api/v1/stream") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        name = ""
        for line in response.iter_lines():  # a keep-alive comment comes every 0.2 s at least
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out reading events; got {[e[0] for e in events]}")
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
                if name == "hello":
                    start()
                if until(events):
                    return events
    raise AssertionError("the stream ended")


def test_the_stream_sends_created_status_progress_and_items_events(http: TestClient) -> None:
    submitted: list[str] = []

    def start() -> None:
        # Long enough to span several snapshots: the stream coalesces what happens between
        # two of them, so a job over in ~150 ms could legitimately show no progress event.
        submitted.append(submit(http, "count", n=8, interval_s=0.1)["id"])

    def finished(events: list[tuple[str, Json]]) -> bool:
        return any(n == "job.status" and d["job"]["status"] == "succeeded" for n, d in events)

    events = read_events(http, finished, start)
    ours = [(name, data) for name, data in events if data.get("id") in submitted]
    names = [name for name, _ in ours]
    assert events[0][0] == "hello"
    assert names[0] == "job.created"
    assert {"job.status", "job.progress", "job.items"} <= set(names)
    for _, data in ours:
        assert data["job"]["kind"] == "count"
        assert "params" not in data["job"]
    progress = [d["job"]["progress"]["done"] for n, d in ours if n == "job.progress"]
    assert progress == sorted(progress)
    assert ours[-1][1]["job"]["items_count"] == 8


def test_the_stream_reports_cancel_and_delete(http: TestClient) -> None:
    job_ids: list[str] = []

    def start() -> None:
        job_ids.append(submit(http, "count", n=1000, interval_s=0.01)["id"])

    def step(events: list[tuple[str, Json]]) -> bool:
        """Cancel once an item shows, delete once it shows cancelled, stop at the deletion."""
        name, data = events[-1]
        if data.get("id") != job_ids[0]:
            return False
        if name == "job.items" and data["job"]["status"] == "running":
            assert http.post(f"/api/v1/jobs/{job_ids[0]}/cancel").status_code == 200
        elif name == "job.status" and data["job"]["status"] == "cancelled":
            assert http.delete(f"/api/v1/jobs/{job_ids[0]}").status_code == 204
        return name == "job.deleted"

    events = read_events(http, step, start)
    ours = [(name, data) for name, data in events if data.get("id") == job_ids[0]]
    statuses = [data["job"]["status"] for name, data in ours if name == "job.status"]
    assert statuses[-1] == "cancelled"
    assert ours[-1][1] == {"type": "job.deleted", "id": job_ids[0], "job": None}


def test_a_slow_stream_gets_resync_instead_of_unbounded_memory() -> None:
    subscription = Subscription(size=3)
    for number in range(10):
        subscription.offer(ServerEvent(f"{number}".encode()))
    assert subscription.resyncs >= 1
    assert len(subscription._queue) <= 3
    assert RESYNC in subscription._queue


def _job(job_id: str, status: andon.JobStatus = andon.JobStatus.RUNNING, **fields: Any) -> andon.Job:  # Any: Job fields
    return andon.Job(id=job_id, kind="count", params={}, status=status, created_at=0.0, **fields)


def test_changes_between_snapshots_name_what_happened() -> None:
    before = {"a": _job("a"), "b": _job("b", andon.JobStatus.QUEUED), "c": _job("c", andon.JobStatus.SUCCEEDED)}
    after = {
        "a": _job("a", progress_done=1.0, progress_total=5.0, items_count=1),
        "b": _job("b", andon.JobStatus.RUNNING, attempt=1),
        "d": _job("d", andon.JobStatus.QUEUED),
        "0": _job("0"),  # older than everything seen: it came into view, it is not new
    }
    found = [(change.type, change.job_id) for change in changes(before, after, deleted=["c"])]
    assert found == [
        ("job.status", "0"),
        ("job.progress", "a"),
        ("job.items", "a"),
        ("job.status", "b"),
        ("job.created", "d"),
        ("job.deleted", "c"),
    ]
    assert changes(after, after) == []
    assert [c.type for c in changes({}, {"x": _job("x")})] == ["job.created"]


def test_streams_end_when_the_server_stops(http: TestClient) -> None:
    assert isinstance(http.app, FastAPI)
    runtime = runtime_of(http.app)
    with http.stream("GET", "/api/v1/stream") as response:
        lines = response.iter_lines()
        assert next(lines) == "retry: 2000"
        support.wait_until(lambda: runtime.broadcaster.subscriptions == 1, WAIT_S, "the subscription")
        runtime.end_streams_soon()
        rest = list(lines)  # ends: the server closed the stream
        assert all(not line or line.startswith((":", "id:", "event:", "data:")) for line in rest)
    assert runtime.broadcaster.subscriptions == 0


# -- the guard: size, media type, origin, host, token, headers ---------------------------------------


def test_a_body_over_the_limit_is_413(idle: TestClient) -> None:
    big = json.dumps({"kind": "count", "params": {"x": "y" * MAX_BODY_BYTES}})
    assert_error(idle.post("/api/v1/jobs", content=big, headers=JSON_TYPE), 413, "body_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
        for _ in range(20):
            yield b"x" * (MAX_BODY_BYTES // 10)

    response = idle.post("/api/v1/jobs", content=chunks(), headers=JSON_TYPE)
    assert_error(response, 413, "body_too_large")


def test_a_body_that_is_not_declared_json_is_415(idle: TestClient) -> None:
    def post(body: bytes, content_type: str) -> Any:  # Any: an httpx response
        return idle.post("/api/v1/jobs", content=body, headers={"content-type": content_type})

    assert_error(post(b"kind=count", "application/x-www-form-urlencoded"), 415, "unsupported_media_type")
    assert_error(post(b'{"kind": "count"}', "text/plain"), 415, "unsupported_media_type")
    assert post(b'{"kind": "count"}', "application/json; charset=utf-8").status_code == 201


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://evil.example"},
        {"origin": "null"},
        {"origin": "http://127.0.0.1:9999"},
        {"referer": "http://evil.example/page"},
    ],
)
def test_state_changing_requests_from_another_origin_are_403(idle: TestClient, headers: dict[str, str]) -> None:
    job = submit(idle)
    assert_error(idle.post(f"/api/v1/jobs/{job['id']}/cancel", headers=headers), 403, "cross_origin")
    assert_error(idle.delete(f"/api/v1/jobs/{job['id']}", headers=headers), 403, "cross_origin")
    assert_error(idle.post("/api/v1/jobs", json={"kind": "count"}, headers=headers), 403, "cross_origin")
    assert get(idle, job["id"])["status"] == "queued"
    assert idle.get("/api/v1/jobs", headers=headers).status_code == 200  # reading is not state-changing


def test_requests_from_the_servers_own_origin_or_without_one_are_accepted(idle: TestClient) -> None:
    assert idle.post("/api/v1/jobs", json={"kind": "count"}, headers={"origin": BASE}).status_code == 201
    assert idle.post("/api/v1/jobs", json={"kind": "count"}, headers={"referer": f"{BASE}/#/"}).status_code == 201
    assert idle.post("/api/v1/jobs", json={"kind": "count"}).status_code == 201


def test_without_a_token_only_loopback_host_names_are_served(make_http: MakeHttp) -> None:
    for base in ("http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000"):
        assert make_http(worker=False, base_url=base).get("/api/v1/kinds").status_code == 200
    rebound = make_http(worker=False, base_url="http://evil.example:8000")
    assert_error(rebound.get("/api/v1/kinds"), 400, "bad_host")
    assert_error(rebound.get("/"), 400, "bad_host")


def test_with_a_token_the_api_demands_it_and_the_dashboard_still_loads(make_http: MakeHttp) -> None:
    http = make_http(worker=False, token="s3cret-token", base_url="http://andon.example:8000")
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "Basic s3cret-token"}):
        error = assert_error(http.get("/api/v1/jobs", headers=headers), 401, "unauthorized")
        assert "Bearer" in error["message"]
    response = http.get("/api/v1/jobs", headers={"authorization": "Bearer wrong"})
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert_error(http.get("/api/v1/stream"), 401, "unauthorized")
    authorized = {"authorization": "Bearer s3cret-token"}
    assert http.get("/api/v1/jobs", headers=authorized).status_code == 200
    assert http.post("/api/v1/jobs", json={"kind": "count"}, headers=authorized).status_code == 201
    assert http.get("/api/v1/info", headers=authorized).json()["auth"] is True
    assert http.get("/").status_code == 200
    assert http.get("/static/app.js").status_code == 200


def test_security_headers_on_every_answer(http: TestClient) -> None:
    for path in ("/", "/api/v1/kinds", "/api/v1/jobs/nope", "/static/app.css"):
        headers = http.get(path).headers
        assert "default-src 'self'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"
    assert http.get("/api/v1/kinds").headers["cache-control"] == "no-store"


# -- the rest: info, docs, dashboard files, lifespan, storage errors -----------------------------------


def test_info_openapi_docs_and_dashboard_files(http: TestClient) -> None:
    info = http.get("/api/v1/info").json()
    assert info["version"] == andon.__version__
    assert info["database"].startswith("sqlite:///")
    assert info["worker"]["concurrency"] == 4
    assert info["auth"] is False
    spec = http.get("/openapi.json").json()
    for path in ("/api/v1/jobs", "/api/v1/jobs/{job_id}/cancel", "/api/v1/jobs/cancel", "/api/v1/stream"):
        assert path in spec["paths"]
    assert "/" not in spec["paths"]
    assert http.get("/docs").status_code == 200
    page = http.get("/")
    assert page.headers["content-type"].startswith("text/html")
    assert 'src="static/app.js"' in page.text
    assert http.get("/static/app.css").headers["content-type"].startswith("text/css")
    assert_error(http.get("/static/secret.py"), 404, "not_found")
    assert_error(http.get("/static/../__init__.py"), 404, "not_found")
    assert_error(http.put("/api/v1/jobs"), 405, "method_not_allowed")


def test_every_dashboard_module_is_served_as_javascript(http: TestClient) -> None:
    """app.js imports the others by relative URL: each import must be a file the server
    serves (and ships: the package's own folder holds exactly the listed modules)."""
    folder = resources.files(dashboard)
    assert {entry.name for entry in folder.iterdir() if entry.name.endswith(".js")} == set(dashboard.SCRIPTS)
    seen: set[str] = set()
    waiting = ["app.js"]
    while waiting:
        name = waiting.pop()
        seen.add(name)
        response = http.get(f"/static/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"].startswith("text/javascript")
        imported = set(re.findall(r'^import [^;]+ from "\./([\w.]+)";$', response.text, re.MULTILINE))
        waiting.extend(imported - seen)
    assert seen == set(dashboard.SCRIPTS), "a module nothing imports"


def test_the_lifespan_starts_the_worker_and_stops_it_requeuing_running_jobs(store: andon.SqliteStore) -> None:
    worker = andon.Worker(example_app, store, concurrency=1, shutdown_grace_s=0.1)
    with TestClient(create_app(store, example_app, worker=worker), base_url=BASE) as http:
        while_serving = worker.state
        job = submit(http, "count", n=1000, interval_s=0.01)
        wait_for(http, job["id"], lambda j: j["status"] == "running", "the job to run")
    assert (while_serving, worker.state) == (andon.WorkerState.RUNNING, andon.WorkerState.STOPPED)
    requeued = store.get(job["id"])
    assert requeued.status is andon.JobStatus.QUEUED
    assert store.events(job["id"])[-1].reason == "shutdown"


def test_a_closed_store_is_503_not_500(make_http: MakeHttp, store: andon.SqliteStore) -> None:
    http = make_http(worker=False)
    store.close()
    assert_error(http.get("/api/v1/jobs"), 503, "unavailable")


# -- generated junk never gets a 5xx --------------------------------------------------------------------

_junk_text = st.text(max_size=60)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
_bodies = st.one_of(
    _json_values,
    st.fixed_dictionaries(
        {"kind": st.sampled_from(["count", "fail", "nope", ""]) | _junk_text},
        optional={"params": _json_values, "timeout_s": _json_values, "priority": _json_values},
    ),
)
_fuzz = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_fuzz
@given(job_id=_junk_text)
@example(job_id=".")
@example(job_id="..")
def test_junk_ids_get_404_or_422_never_a_5xx(idle: TestClient, job_id: str) -> None:
    from urllib.parse import quote

    # Dots too: a client resolves "." and ".." segments, so /jobs/./cancel would be a
    # request to /jobs/cancel (the bulk cancel), not one about a job called ".".
    path = quote(job_id, safe="").replace(".", "%2E")
    for method, suffix in (("GET", ""), ("GET", "/results"), ("POST", "/cancel"), ("POST", "/retry"), ("DELETE", "")):
        response = idle.request(method, f"/api/v1/jobs/{path}{suffix}")
        assert response.status_code in (404, 405, 422) or (response.status_code == 200 and suffix == ""), (
            method,
            job_id,
            response.text,
        )


@_fuzz
@given(body=_bodies)
def test_junk_bodies_never_get_a_5xx(idle: TestClient, body: Any) -> None:  # Any: generated JSON
    raw = json.dumps(body)  # Python writes NaN and Infinity, which the API must refuse too
    headers = {"content-type": "application/json"}
    for path in ("/api/v1/jobs", "/api/v1/jobs/cancel"):
        response = idle.post(path, content=raw, headers=headers)
        assert response.status_code < 500, (path, raw, response.text)
        if response.status_code == 201:
            job = response.json()
            assert get(idle, job["id"])["params"] == job["params"]


@_fuzz
@given(status=_junk_text, kind=_junk_text, limit=_junk_text, cursor=_junk_text)
def test_junk_queries_never_get_a_5xx(idle: TestClient, status: str, kind: str, limit: str, cursor: str) -> None:
    response = idle.get("/api/v1/jobs", params={"status": status, "kind": kind, "limit": limit, "cursor": cursor})
    assert response.status_code in (200, 422), response.text
