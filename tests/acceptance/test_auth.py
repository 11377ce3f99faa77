"""Tokens and roles over HTTP, against a real app on a real SQLite store (Starlette's TestClient).

The cast: ``root`` (the server's own ``--token``, admin), ``ops`` (a stored admin token),
``alice`` and ``bob`` (users), ``carol`` (a user whose token was revoked), a request with
no token and one with a token nobody issued. Every job endpoint is exercised for each.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

import andon
from andon.api import create_app
from andon.examples import app as example_app
from tests.support import wait_until

Json = dict[str, Any]  # Any: JSON values
ROOT = "root-" + "x" * 40
WAIT_S = 10.0
BASE = "http://127.0.0.1:8000"


class Cast:
    """Tokens by name, and an ``as_`` helper that sends one."""

    def __init__(self, http: TestClient, tokens: dict[str, str]) -> None:
        self.http = http
        self.tokens = tokens

    def headers(self, who: str) -> dict[str, str]:
        token = self.tokens.get(who)
        return {"authorization": f"Bearer {token}"} if token else {}

    def call(self, who: str, method: str, path: str, **options: Any) -> Any:  # Any: httpx.Response
        return self.http.request(method, path, headers=self.headers(who), **options)

    def submit(self, who: str, n: int = 3) -> Json:
        response = self.call(who, "POST", "/api/v1/jobs", json={"kind": "count", "params": {"n": n}})
        assert response.status_code == 201, response.text
        body: Json = response.json()
        return body


@pytest.fixture
def cast(store: andon.SqliteStore) -> Iterator[Cast]:
    admin = andon.Client(store)
    tokens = {
        "root": ROOT,
        "ops": admin.create_token("ops", "admin").token,
        "alice": admin.create_token("alice", "user").token,
        "bob": admin.create_token("bob", "user").token,
        "carol": admin.create_token("carol", "user").token,
        "stranger": "andon_" + "s" * 43,
    }
    admin.revoke_token("carol")
    api = create_app(store, example_app, token=ROOT, auth_cache_s=0.0, stream_keepalive_s=0.2)
    with TestClient(api, base_url=BASE) as http:
        yield Cast(http, tokens)


def assert_error(response: Any, status: int, code: str) -> None:  # Any: httpx.Response
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == code


# -- who gets in ---------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["nobody", "stranger", "carol"])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/info"),
        ("GET", "/api/v1/jobs"),
        ("POST", "/api/v1/jobs"),
        ("POST", "/api/v1/jobs/cancel"),
        ("GET", "/api/v1/stream"),
        ("GET", "/api/v1/tokens"),
        ("POST", "/api/session"),
    ],
)
def test_no_bad_or_revoked_token_is_401(cast: Cast, who: str, method: str, path: str) -> None:
    response = cast.call(who, method, path, json={"kind": "count"} if method == "POST" else None)
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == 'Bearer realm="andon"'
    assert cast.tokens.get(who, "-") not in response.text


@pytest.mark.parametrize("who", ["nobody", "stranger", "carol"])
def test_job_endpoints_refuse_without_a_valid_token(cast: Cast, who: str) -> None:
    job = cast.submit("alice")
    for method, path in _job_endpoints(job["id"]):
        assert_error(cast.call(who, method, path), 401, "unauthorized")
    assert cast.call("alice", "GET", f"/api/v1/jobs/{job['id']}").json()["status"] == "queued"


def test_info_says_who_is_calling(cast: Cast) -> None:
    for who, role in (("root", "admin"), ("ops", "admin"), ("alice", "user")):
        body = cast.call(who, "GET", "/api/v1/info").json()
        assert body["auth"] is True
        assert body["user"] == {"name": "admin" if who == "root" else who, "role": role}


# -- owners --------------------------------------------------------------------------------


def _job_endpoints(job_id: str) -> list[tuple[str, str]]:
    return [
        ("GET", f"/api/v1/jobs/{job_id}"),
        ("GET", f"/api/v1/jobs/{job_id}/events"),
        ("GET", f"/api/v1/jobs/{job_id}/results"),
        ("GET", f"/api/v1/jobs/{job_id}/results.jsonl"),
        ("POST", f"/api/v1/jobs/{job_id}/cancel"),
        ("POST", f"/api/v1/jobs/{job_id}/fail"),
        ("POST", f"/api/v1/jobs/{job_id}/resume"),
        ("POST", f"/api/v1/jobs/{job_id}/retry"),
        ("DELETE", f"/api/v1/jobs/{job_id}"),
    ]


def test_jobs_record_their_owner(cast: Cast) -> None:
    assert cast.submit("alice")["owner"] == "alice"
    assert cast.submit("ops")["owner"] == "ops"
    assert cast.submit("root")["owner"] == "admin"
    job = cast.submit("bob")
    events = cast.call("bob", "GET", f"/api/v1/jobs/{job['id']}/events").json()["items"]
    assert events[0]["actor"] == "user:bob"


def test_another_users_job_is_404_on_every_endpoint_and_untouched(cast: Cast) -> None:
    job = cast.submit("bob")
    for method, path in _job_endpoints(job["id"]):
        response = cast.call("alice", method, path)
        assert_error(response, 404, "job_not_found")
        # Exactly the answer for an id that does not exist: nothing tells the two apart.
        unknown = path.replace(job["id"], "0190a0b0-0000-7000-8000-00000000abcd")
        assert cast.call("alice", method, unknown).json()["error"]["code"] == "job_not_found"
    after = cast.call("bob", "GET", f"/api/v1/jobs/{job['id']}").json()
    assert after["status"] == "queued"
    assert after["cancel"] is None


def test_users_act_on_their_own_jobs(cast: Cast) -> None:
    job = cast.submit("alice")
    for method, path in _job_endpoints(job["id"])[:4]:
        assert cast.call("alice", method, path).status_code == 200
    cancelled = cast.call("alice", "POST", f"/api/v1/jobs/{job['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancel"]["by"] == "user:alice"
    retried = cast.call("alice", "POST", f"/api/v1/jobs/{job['id']}/retry")
    assert retried.status_code == 201
    assert retried.json()["owner"] == "alice"
    failed = cast.call("alice", "POST", f"/api/v1/jobs/{retried.json()['id']}/fail", json={"retry": False})
    assert failed.json()["status"] == "failed"
    assert cast.call("alice", "DELETE", f"/api/v1/jobs/{job['id']}").status_code == 204


@pytest.mark.parametrize("admin", ["root", "ops"])
def test_admins_see_and_act_on_every_job(cast: Cast, admin: str) -> None:
    job = cast.submit("bob")
    for method, path in _job_endpoints(job["id"])[:4]:
        assert cast.call(admin, method, path).status_code == 200
    assert cast.call(admin, "POST", f"/api/v1/jobs/{job['id']}/cancel").json()["status"] == "cancelled"
    assert cast.call(admin, "POST", f"/api/v1/jobs/{job['id']}/retry").json()["owner"] == admin.replace("root", "admin")
    assert cast.call(admin, "DELETE", f"/api/v1/jobs/{job['id']}").status_code == 204


def test_listings_show_own_jobs_to_users_and_all_to_admins(cast: Cast) -> None:
    mine = {cast.submit("alice")["id"] for _ in range(2)}
    theirs = {cast.submit("bob")["id"]}
    listed = {j["id"] for j in cast.call("alice", "GET", "/api/v1/jobs").json()["items"]}
    assert listed == mine
    everything = {j["id"] for j in cast.call("ops", "GET", "/api/v1/jobs").json()["items"]}
    assert everything == mine | theirs


def test_bulk_cancel_by_a_user_touches_only_their_jobs(cast: Cast) -> None:
    mine = cast.submit("alice")
    theirs = cast.submit("bob")
    body = cast.call("alice", "POST", "/api/v1/jobs/cancel", json={}).json()
    assert body["ids"] == [mine["id"]]
    # Naming another user's job explicitly changes nothing either.
    body = cast.call("alice", "POST", "/api/v1/jobs/cancel", json={"ids": [theirs["id"]]}).json()
    assert body == {"cancelled": 0, "ids": []}
    assert cast.call("bob", "GET", f"/api/v1/jobs/{theirs['id']}").json()["status"] == "queued"
    assert cast.call("ops", "POST", "/api/v1/jobs/cancel", json={}).json()["ids"] == [theirs["id"]]


def test_token_listing_is_admin_only(cast: Cast) -> None:
    assert_error(cast.call("alice", "GET", "/api/v1/tokens"), 403, "not_allowed")
    items = cast.call("ops", "GET", "/api/v1/tokens").json()["items"]
    assert [(t["name"], t["role"], t["active"]) for t in items] == [
        ("ops", "admin", True),
        ("alice", "user", True),
        ("bob", "user", True),
        ("carol", "user", False),
    ]
    text = cast.call("root", "GET", "/api/v1/tokens").text
    assert all(token not in text for token in cast.tokens.values())
    assert "hash" not in text


def test_pausing_a_kind_is_admin_only_and_anyone_sees_it(cast: Cast) -> None:
    for path in ("/api/v1/kinds/count/pause", "/api/v1/kinds/count/unpause"):
        assert_error(cast.call("alice", "POST", path), 403, "not_allowed")
    assert cast.call("ops", "POST", "/api/v1/kinds/count/pause", json={"message": "disk full"}).json()["changed"]
    kinds = {k["kind"]: k["paused"] for k in cast.call("alice", "GET", "/api/v1/kinds").json()["items"]}
    assert (kinds["count"]["by"], kinds["count"]["message"]) == ("admin:ops", "disk full")
    assert cast.call("root", "POST", "/api/v1/kinds/count/unpause").json()["changed"]


def test_revoking_a_token_locks_it_out_and_kills_its_sessions(cast: Cast, store: andon.SqliteStore) -> None:
    assert cast.call("bob", "GET", "/api/v1/jobs").status_code == 200
    assert cast.call("bob", "POST", "/api/session").status_code == 204
    cookie_only = {"cookie": f"andon_session={cast.http.cookies['andon_session']}"}
    assert cast.http.get("/api/v1/jobs", headers=cookie_only).status_code == 200
    andon.Client(store).revoke_token("bob")
    assert_error(cast.call("bob", "GET", "/api/v1/jobs"), 401, "unauthorized")
    assert_error(cast.http.get("/api/v1/jobs", headers=cookie_only), 401, "unauthorized")


def test_a_revoked_token_stops_within_the_cache_time(store: andon.SqliteStore) -> None:
    token = andon.Client(store).create_token("dave", "user").token
    headers = {"authorization": f"Bearer {token}"}
    with TestClient(create_app(store, example_app, auth_cache_s=0.5), base_url=BASE) as http:
        assert http.get("/api/v1/jobs", headers=headers).status_code == 200
        andon.Client(store).revoke_token("dave")
        # A revoke that takes 5 s to bite is a bug.
        wait_until(
            lambda: http.get("/api/v1/jobs", headers=headers).status_code == 401,
            5.0,
            "the revoked token to stop working",
            interval=0.05,
        )


def test_store_tokens_alone_turn_auth_on(store: andon.SqliteStore) -> None:
    with TestClient(create_app(store, example_app), base_url=BASE) as http:
        assert http.get("/api/v1/jobs").status_code == 200  # no tokens anywhere: open (loopback only)
    token = andon.Client(store).create_token("erin", "user").token
    with TestClient(create_app(store, example_app), base_url="http://andon.example") as http:
        assert_error(http.get("/api/v1/jobs"), 401, "unauthorized")
        assert http.get("/api/v1/jobs", headers={"authorization": f"Bearer {token}"}).status_code == 200


# -- the dashboard's session ---------------------------------------------------------------


def test_session_cookie_is_httponly_strict_and_logs_out(cast: Cast) -> None:
    response = cast.call("alice", "POST", "/api/session")
    assert response.status_code == 204
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/" in cookie
    assert cast.tokens["alice"] not in cookie
    session = cast.http.cookies["andon_session"]
    with_cookie = {"cookie": f"andon_session={session}"}
    assert cast.http.get("/api/v1/info", headers=with_cookie).json()["user"]["name"] == "alice"
    assert cast.http.delete("/api/session", headers=with_cookie).status_code == 204
    cast.http.cookies.clear()
    assert_error(cast.http.get("/api/v1/info", headers=with_cookie), 401, "unauthorized")


def test_cross_site_login_and_state_changes_are_refused(cast: Cast) -> None:
    evil = {**cast.headers("alice"), "origin": "https://evil.example"}
    assert_error(cast.http.post("/api/session", headers=evil), 403, "cross_origin")
    assert_error(cast.http.post("/api/v1/jobs/cancel", headers=evil, json={}), 403, "cross_origin")


# -- the event stream ----------------------------------------------------------------------


def _stream(cast: Cast, who: str, start: Callable[[], None], until: Callable[[list[Json]], bool]) -> list[Json]:
    events: list[Json] = []
    deadline = time.monotonic() + WAIT_S
    with cast.http.stream("GET", "/api/v1/stream", headers=cast.headers(who)) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            assert time.monotonic() < deadline, f"timed out; got {events}"
            if line.startswith("data: "):
                event = json.loads(line.removeprefix("data: "))
                events.append(event)
                if event["type"] == "hello":
                    start()
                if until(events):
                    return events
    raise AssertionError("the stream ended")


def test_the_stream_carries_only_the_callers_jobs(cast: Cast) -> None:
    submitted: dict[str, str] = {}

    def start() -> None:
        submitted["bob"] = cast.submit("bob")["id"]
        submitted["alice"] = cast.submit("alice")["id"]

    def seen(events: list[Json]) -> bool:
        return any(e.get("id") == submitted.get("alice") for e in events)

    events = _stream(cast, "alice", start, seen)
    ids = {e["id"] for e in events if e["type"].startswith("job.")}
    assert submitted["bob"] not in ids
    assert all(e["job"]["owner"] == "alice" for e in events if e["type"].startswith("job."))

    def both_seen(events: list[Json]) -> bool:
        ids = {e.get("id") for e in events}
        return {submitted.get("carl"), submitted.get("dora")} <= ids

    def start_two() -> None:
        submitted["carl"] = cast.submit("bob")["id"]
        submitted["dora"] = cast.submit("alice")["id"]

    _stream(cast, "ops", start_two, both_seen)  # an admin sees everyone's
