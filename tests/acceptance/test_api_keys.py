"""Keyed jobs and the Idempotency-Key header through the REST API (issue 16), in-process
through Starlette's TestClient over a real SQLite file, without a worker: jobs stay queued
unless a test claims them, so what each request did is exact."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from starlette.testclient import TestClient

import andon
from andon.api import create_app
from andon.examples import app as example_app
from tests.acceptance.test_api import assert_error

pytestmark = pytest.mark.timeout(60)

Json = dict[str, Any]  # Any: decoded JSON bodies


@pytest.fixture
def idle(store: andon.SqliteStore) -> Any:  # Any: the entered TestClient
    with TestClient(create_app(store, example_app), base_url="http://127.0.0.1:8000") as http:
        yield http


def post(http: TestClient, body: Json, idempotency_key: str | None = None) -> Any:  # Any: an httpx response
    headers = {} if idempotency_key is None else {"Idempotency-Key": idempotency_key}
    return http.post("/api/v1/jobs", json=body, headers=headers)


def keyed(on_conflict: str, n: int = 1) -> Json:
    return {"kind": "count", "params": {"n": n}, "key": "report-7", "on_conflict": on_conflict}


def test_skip_answers_the_active_job_with_200(idle: TestClient) -> None:
    first = post(idle, keyed("skip"))
    assert first.status_code == 201
    assert first.json()["key"] == "report-7"
    again = post(idle, keyed("skip", n=2))
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["params"]["n"] == 1


def test_queue_lets_one_wait_and_supersede_stops_it(idle: TestClient, store: andon.SqliteStore) -> None:
    running = post(idle, keyed("queue")).json()
    assert store.claim("w", ["count"], 30.0) is not None
    waiting = post(idle, keyed("queue"))
    assert waiting.status_code == 201
    assert post(idle, keyed("queue")).json()["id"] == waiting.json()["id"]
    new = post(idle, keyed("supersede"))
    assert new.status_code == 201
    old = idle.get(f"/api/v1/jobs/{waiting.json()['id']}").json()
    assert old["status"] == "cancelled"
    assert old["cancel"]["reason"] == "superseded"
    assert new.json()["id"] in old["cancel"]["message"]
    assert idle.get(f"/api/v1/jobs/{running['id']}").json()["status"] == "cancelling"


def test_a_retried_post_with_an_idempotency_key_creates_one_job(idle: TestClient, store: andon.SqliteStore) -> None:
    body = {"kind": "count", "params": {"n": 3}}
    post(idle, body, "order-42")  # its response is lost: the caller never reads it
    retried = post(idle, body, "order-42")
    assert retried.status_code == 201
    assert len(store.list_jobs(andon.JobFilter(), limit=10).items) == 1
    assert retried.json()["id"] == store.list_jobs(andon.JobFilter(), limit=10).items[0].id
    # Without the key, or with another one, it is a new request.
    assert post(idle, body, "order-43").json()["id"] != retried.json()["id"]


def test_concurrent_retries_with_one_idempotency_key_create_one_job(idle: TestClient) -> None:
    body = {"kind": "count", "params": {"n": 3}}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post(idle, body, "burst"), range(32)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1


def test_an_idempotent_skip_answers_200_again(idle: TestClient) -> None:
    existing = post(idle, keyed("skip")).json()
    first = post(idle, keyed("skip"), "again")
    second = post(idle, keyed("skip"), "again")
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["id"] == second.json()["id"] == existing["id"]


def test_an_idempotency_key_sent_with_another_body_is_refused(idle: TestClient, store: andon.SqliteStore) -> None:
    first = post(idle, {"kind": "count", "params": {"n": 3}}, "order-1").json()
    error = assert_error(post(idle, {"kind": "count", "params": {"n": 4}}, "order-1"), 422, "idempotency_key_reused")
    assert error["job_id"] == first["id"]
    assert len(store.list_jobs(andon.JobFilter(), limit=10).items) == 1


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ({"key": ""}, {}),
        ({"key": "k" * (andon.MAX_KEY_CHARS + 1)}, {}),
        ({"key": "a\x00b"}, {}),
        ({"key": "a\nb"}, {}),
        ({"key": 7}, {}),
        ({"key": "k", "on_conflict": "replace"}, {}),
        ({"on_conflict": None}, {}),
        ({}, {"Idempotency-Key": ""}),
        ({}, {"Idempotency-Key": "i" * (andon.MAX_KEY_CHARS + 1)}),
        ({}, {"Idempotency-Key": "a\tb"}),
    ],
)
def test_bad_keys_are_a_4xx_json_and_create_nothing(
    idle: TestClient, store: andon.SqliteStore, body: Json, headers: dict[str, str]
) -> None:
    response = idle.post("/api/v1/jobs", json={"kind": "count", **body}, headers=headers)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["code"] in {"invalid_request", "invalid_key"}
    assert store.list_jobs(andon.JobFilter(), limit=10).items == []
