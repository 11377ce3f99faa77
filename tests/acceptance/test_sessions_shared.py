"""Dashboard sessions every server of a store honours, with real ``andon serve`` processes on
SQLite and on PostgreSQL: a session outlives a restart; a logout or a revoke on one server
is refused by the others at once (no server caches sessions); a session made from a
server's own token is honoured only by servers with that same token; the store keeps only
a hash of each cookie. Expiry is judged on the store's clock, so it is checked in-process
with a manual clock.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.cookies import SimpleCookie
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import Page, expect
from starlette.testclient import TestClient

import andon
from andon._access import hash_token
from andon._storage._engine import StoreEngine
from andon._storage._postgres import PostgresStore
from andon.api import create_app
from andon.examples import app as example_app
from tests.acceptance.serving import Served, serve
from tests.acceptance.test_dashboard_auth import log_in as log_in_on_the_page
from tests.acceptance.test_dashboard_auth import login_form
from tests.postgres import fresh_database

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

ROOT = "root-" + "r" * 40
OTHER_ROOT = "other-" + "o" * 40
SESSION_COOKIE = "andon_session"
DAY_HALF_S = 12 * 3600


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def alice(db_url: str) -> str:
    """A stored user token, ``alice``'s."""
    with andon.connect(db_url, example_app, actor="test") as client:
        return client.create_token("alice", "user").token


@pytest.fixture
def start(db_url: str, tmp_path: Path) -> Iterator[Callable[[str], Served]]:
    """Start an API-only ``andon serve`` on the test's store with this own token."""
    started: list[Served] = []

    def make(own_token: str) -> Served:
        served = serve(tmp_path, "--db", db_url, "--no-worker", "--no-demo-jobs", token=own_token)
        started.append(served)
        return served

    yield make
    for served in started:
        served.kill()
        assert "Traceback" not in served.output(), served.output()


def log_in(server: Served, token: str) -> str:
    """``POST /api/session`` with a bearer token; the session cookie it sets."""
    request = urllib.request.Request(
        server.base_url + "/api/session", method="POST", headers={"authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 204
        jar = SimpleCookie(response.headers["set-cookie"])
    assert jar[SESSION_COOKIE]["httponly"]
    assert jar[SESSION_COOKIE]["samesite"].lower() == "strict"
    return jar[SESSION_COOKIE].value


def who(server: Served, cookie: str) -> str | int:
    """The name the server sees behind ``cookie`` alone, or the status it answered instead."""
    status, info = server.request("GET", "/api/v1/info", headers={"cookie": f"{SESSION_COOKIE}={cookie}"})
    if status != 200:
        assert (status, info["error"]["code"]) == (401, "unauthorized"), info
        return status
    name: str = info["user"]["name"]
    return name


def log_out(server: Served, cookie: str) -> None:
    status, _ = server.request("DELETE", "/api/session", headers={"cookie": f"{SESSION_COOKIE}={cookie}"})
    assert status == 204


def test_a_browser_stays_logged_in_across_servers_and_a_restart_and_logs_out_of_all(
    page: Page, start: Callable[[str], Served], alice: str
) -> None:
    one, two = start(ROOT), start(ROOT)
    page.goto(one.base_url)
    log_in_on_the_page(page, alice)
    expect(page.locator("#who-name")).to_have_text("signed in as alice (user)")
    # The cookie goes to every port of 127.0.0.1, as to every server behind one address.
    page.goto(two.base_url)
    expect(page.locator("#who-name")).to_have_text("signed in as alice (user)")
    expect(login_form(page)).to_be_hidden()
    assert one.stop() == 0, one.output()
    restarted = start(ROOT)
    page.goto(restarted.base_url)
    expect(page.locator("#who-name")).to_have_text("signed in as alice (user)")
    [cookie] = [c["value"] for c in page.context.cookies() if c["name"] == SESSION_COOKIE]
    page.get_by_role("button", name="Log out").click()
    expect(login_form(page)).to_be_visible()
    page.goto(two.base_url)
    expect(login_form(page)).to_be_visible()
    assert who(two, cookie) == 401  # the server refuses it too, not only the browser forgot it


def test_sessions_outlive_a_restart_and_follow_the_servers_own_token(
    start: Callable[[str], Served], alice: str
) -> None:
    first = start(ROOT)
    alice_cookie, root_cookie = log_in(first, alice), log_in(first, ROOT)
    assert (who(first, alice_cookie), who(first, root_cookie)) == ("alice", "admin")
    assert first.stop() == 0, first.output()
    again = start(ROOT)
    assert (who(again, alice_cookie), who(again, root_cookie)) == ("alice", "admin")
    assert again.stop() == 0, again.output()
    # Restarted with another own token: the old token's sessions no longer act as admin here.
    rekeyed = start(OTHER_ROOT)
    assert (who(rekeyed, alice_cookie), who(rekeyed, root_cookie)) == ("alice", 401)


def test_a_logout_on_one_server_is_refused_by_the_others_at_once(start: Callable[[str], Served], alice: str) -> None:
    one, two, other = start(ROOT), start(ROOT), start(OTHER_ROOT)
    alice_cookie, root_cookie, other_cookie = log_in(one, alice), log_in(one, ROOT), log_in(other, OTHER_ROOT)
    assert [who(s, alice_cookie) for s in (one, two, other)] == ["alice"] * 3
    # A session of a server's own token: honoured where that token is the server's own.
    assert [who(s, root_cookie) for s in (one, two, other)] == ["admin", "admin", 401]
    assert [who(s, other_cookie) for s in (one, two, other)] == [401, 401, "admin"]
    log_out(two, alice_cookie)
    assert [who(s, alice_cookie) for s in (one, two, other)] == [401] * 3
    log_out(one, root_cookie)
    assert [who(s, root_cookie) for s in (one, two)] == [401] * 2
    assert who(other, other_cookie) == "admin"  # no other session ended
    log_out(one, alice_cookie)  # logging out again, anywhere, is harmless


def test_revoking_a_token_ends_its_sessions_on_every_server(
    start: Callable[[str], Served], alice: str, db_url: str
) -> None:
    one, two = start(ROOT), start(ROOT)
    first, second = log_in(one, alice), log_in(two, alice)
    assert [who(s, c) for s in (one, two) for c in (first, second)] == ["alice"] * 4
    with andon.connect(db_url, example_app, actor="test") as client:
        bob = client.create_token("bob", "user").token
        bob_cookie = log_in(two, bob)
        client.revoke_token("alice")
    assert [who(s, c) for s in (one, two) for c in (first, second)] == [401] * 4
    assert [who(s, bob_cookie) for s in (one, two)] == ["bob"] * 2


def test_the_store_keeps_no_cookie_and_no_own_token(
    start: Callable[[str], Served], alice: str, db_url: str, tmp_path: Path
) -> None:
    server = start(ROOT)
    cookies = [log_in(server, alice), log_in(server, ROOT)]
    secrets = [*cookies, ROOT, hash_token(ROOT)]
    if db_url.startswith("sqlite"):
        # Every file of the database (the WAL too) while the server still runs.
        stored = b"".join(p.read_bytes() for p in tmp_path.glob("andon.db*")).decode("latin-1")
    else:
        with PostgresStore(db_url) as store, psycopg.connect(db_url.partition("?")[0]) as conn:
            rows = conn.execute(f'SELECT * FROM "{store.schema}".andon_sessions').fetchall()
        assert len(rows) == 2
        stored = repr(rows)
    for secret in secrets:
        assert secret not in stored
    for cookie in cookies:
        assert hash_token(cookie) in stored
    assert hash_token(alice) in stored  # the stored token it acts for


@pytest.fixture
def clocked(db_url: str) -> Iterator[tuple[StoreEngine, andon.ManualClock]]:
    clock = andon.ManualClock()
    store: StoreEngine
    if db_url.startswith("sqlite"):
        store = andon.SqliteStore(db_url.removeprefix("sqlite:///"), clock=clock)
    else:
        store = PostgresStore(db_url, clock=clock)
    with store:
        yield store, clock


def test_an_expired_session_is_refused_and_the_token_still_works(
    clocked: tuple[StoreEngine, andon.ManualClock], alice: str
) -> None:
    store, clock = clocked
    bearer = {"authorization": f"Bearer {alice}"}
    with TestClient(create_app(store, example_app), base_url="http://127.0.0.1:8000") as http:
        response = http.post("/api/session", headers=bearer)
        assert response.status_code == 204
        assert f"Max-Age={DAY_HALF_S}" in response.headers["set-cookie"]
        cookie = {"cookie": f"{SESSION_COOKIE}={http.cookies[SESSION_COOKIE]}"}
        http.cookies.clear()
        clock.step_wall(DAY_HALF_S - 1)
        assert http.get("/api/v1/info", headers=cookie).json()["user"]["name"] == "alice"
        clock.step_wall(1)
        assert http.get("/api/v1/info", headers=cookie).status_code == 401
        assert http.get("/api/v1/info", headers=bearer).status_code == 200
        assert http.post("/api/session", headers=bearer).status_code == 204  # a new login works


def test_a_wrong_or_odd_cookie_is_refused(start: Callable[[str], Served], alice: str) -> None:
    server = start(ROOT)
    log_in(server, alice)
    for cookie in ["", "x", "a" * 4000, "é"]:
        status, body = server.request("GET", "/api/v1/info", headers={"cookie": f"{SESSION_COOKIE}={cookie}"})
        assert status == 401, body
    with pytest.raises(urllib.error.HTTPError) as refused:
        log_in(server, "andon_" + "w" * 43)
    refused.value.close()
    assert refused.value.code == 401
