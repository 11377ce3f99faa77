"""A running server's access policy tightens but never loosens by itself (issue 12, item 2).

Tokens are made and revoked with the real ``andon token`` command on the server's SQLite
file, as an operator would, while the real app runs in-process (Starlette's TestClient).
Once auth has been required in a server's life, revoking the last token must leave every
``/api/`` call at 401, from loopback and from any other Host, until an operator restarts
the server in the open mode. Auth counts as required once the server started with a
token, or saw one exist while running: by an anonymous request asking, or by its use.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

import andon
from andon.api import create_app
from andon.examples import app as example_app
from tests.acceptance.test_auth import BASE, assert_error
from tests.acceptance.test_cli_tokens import run

FOREIGN = "http://andon.example"
ANONYMOUS_CALLS = [
    ("GET", "/api/v1/jobs"),
    ("POST", "/api/v1/jobs"),
    ("POST", "/api/v1/jobs/cancel"),
    ("GET", "/api/v1/info"),
]


def create_token(db_path: Path, name: str) -> str:
    code, out, err = run(db_path, "create", "--role", "admin", "--name", name)
    assert (code, err) == (0, ""), err
    found: list[str] = re.findall(r"andon_[A-Za-z0-9_-]{43}", out)
    assert len(found) == 1, out
    return found[0]


def revoke_token(db_path: Path, name: str) -> None:
    code, out, err = run(db_path, "revoke", name)
    assert (code, err) == (0, ""), err
    assert f"revoked token {name!r}" in out


def anonymous(http: TestClient, method: str, path: str, base: str) -> Any:  # Any: httpx.Response
    body = {"kind": "count", "params": {"n": 1}} if path == "/api/v1/jobs" else {}
    return http.request(method, base + path, json=body if method == "POST" else None)


def assert_closed(http: TestClient, store: andon.SqliteStore, bases: tuple[str, ...]) -> None:
    """Every anonymous call is 401 JSON, and none of them submitted or cancelled anything."""
    before = [(job.id, job.status) for job in andon.Client(store).list_jobs().items]
    for base in bases:
        for method, path in ANONYMOUS_CALLS:
            response = anonymous(http, method, path, base)
            assert_error(response, 401, "unauthorized")
            assert response.headers["www-authenticate"] == 'Bearer realm="andon"'
    assert [(job.id, job.status) for job in andon.Client(store).list_jobs().items] == before


@pytest.mark.parametrize("base", [BASE, FOREIGN])
def test_revoking_the_last_token_leaves_a_server_started_with_tokens_closed(
    db_path: Path, store: andon.SqliteStore, base: str
) -> None:
    token = create_token(db_path, "ops")
    bearer = {"authorization": f"Bearer {token}"}
    with TestClient(create_app(store, example_app, auth_cache_s=0.0), base_url=base) as http:
        submitted = http.post("/api/v1/jobs", headers=bearer, json={"kind": "count", "params": {"n": 1}})
        assert submitted.status_code == 201, submitted.text
        assert http.get("/api/v1/info", headers=bearer).json()["auth"] is True
        revoke_token(db_path, "ops")
        # Tokens guarded this server, which is why it answers any Host: after the last
        # revoke it stays closed on every name it answers to, loopback and foreign alike.
        assert_closed(http, store, (BASE, FOREIGN))
        assert_error(http.get("/api/v1/info", headers=bearer), 401, "unauthorized")
    assert store.get(submitted.json()["id"]).status == andon.JobStatus.QUEUED


def test_tokens_revoked_before_the_first_request_still_leave_it_closed(db_path: Path, store: andon.SqliteStore) -> None:
    create_token(db_path, "ops")
    api = create_app(store, example_app, auth_cache_s=0.0)  # started while a token existed
    revoke_token(db_path, "ops")
    with TestClient(api, base_url=FOREIGN) as http:
        assert_closed(http, store, (BASE, FOREIGN))


def test_a_server_started_open_on_loopback_tightens_on_the_first_token_and_stays_tight(
    db_path: Path, store: andon.SqliteStore
) -> None:
    with TestClient(create_app(store, example_app, auth_cache_s=0.0), base_url=BASE) as http:
        assert http.get("/api/v1/info").json()["auth"] is False  # no tokens anywhere: open...
        assert http.post("/api/v1/jobs", json={"kind": "count", "params": {"n": 1}}).status_code == 201
        assert http.get("/api/v1/jobs").status_code == 200
        assert_error(http.get(FOREIGN + "/api/v1/jobs"), 400, "bad_host")  # ...on loopback names only
        token = create_token(db_path, "ops")
        assert_closed(http, store, (BASE,))
        assert http.get("/api/v1/info", headers={"authorization": f"Bearer {token}"}).json()["auth"] is True
        revoke_token(db_path, "ops")
        assert_closed(http, store, (BASE,))
        assert_error(http.get(FOREIGN + "/api/v1/jobs"), 400, "bad_host")  # the Host rule did not loosen either


def test_a_token_only_ever_used_with_credentials_still_latches_auth_on(db_path: Path, store: andon.SqliteStore) -> None:
    with TestClient(create_app(store, example_app, auth_cache_s=0.0), base_url=BASE) as http:
        assert http.get("/api/v1/jobs").status_code == 200  # open, on loopback
        token = create_token(db_path, "ops")
        # No anonymous request sees the token exist; the server learns of it from its use.
        assert http.get("/api/v1/jobs", headers={"authorization": f"Bearer {token}"}).status_code == 200
        revoke_token(db_path, "ops")
        assert_closed(http, store, (BASE,))
