"""The dashboard with tokens and roles, in a real browser (Debian's headless Chromium through
Playwright) against a real ``andon serve`` whose SQLite store holds tokens for ``alice``,
``bob`` and ``carol`` (users) and ``ops`` (an admin).

What a person sees: the login form when the API answers 401; after logging in, only a
session cookie the page's scripts cannot read (nothing in sessionStorage, localStorage or
``document.cookie``, not even a token an older dashboard left there); their name and
role; their own jobs only, each with its owner; an admin sees everyone's. Logging out,
or a token revoked under a live session, brings the login form back; a wrong token is
refused with a clear message.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

import andon
from andon.examples import app as example_app
from tests import support
from tests.acceptance.dashboard_page import card, history_row, submit_count_from_the_form
from tests.acceptance.serving import Served, serve

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]

WAIT_S = 15.0
SESSION_COOKIE = "andon_session"
LONG_COUNT = {"kind": "count", "params": {"n": 400, "interval_s": 0.05}}
SHORT_COUNT = {"kind": "count", "params": {"n": 2, "interval_s": 0.01}}

expect.set_options(timeout=10_000)


@dataclass(frozen=True)
class Tokens:
    alice: str
    bob: str
    carol: str
    ops: str


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dashboard-auth")


@pytest.fixture(scope="module")
def db(folder: Path) -> Iterator[andon.Client]:
    """An admin client on the server's database (no principal: it acts as the operator)."""
    with andon.connect(f"sqlite:///{folder / 'andon.db'}", example_app, actor="test") as client:
        yield client


@pytest.fixture(scope="module")
def tokens(db: andon.Client) -> Tokens:
    return Tokens(
        alice=db.create_token("alice", "user").token,
        bob=db.create_token("bob", "user").token,
        carol=db.create_token("carol", "user").token,
        ops=db.create_token("ops", "admin").token,
    )


@pytest.fixture(scope="module")
def server(folder: Path, tokens: Tokens) -> Iterator[Served]:
    served = serve(folder, "--db", f"sqlite:///{folder / 'andon.db'}", "--no-demo-jobs", "--shutdown-grace", "0.5")
    yield served
    assert served.stop() == 0, served.output()


@pytest.fixture(autouse=True)
def nothing_left_running(db: andon.Client) -> Iterator[None]:
    yield
    db.cancel_many(message="test cleanup")


def call(
    server: Served, method: str, path: str, *, token: str | None = None, cookie: str | None = None, body: object = None
) -> tuple[int, Any]:  # Any: decoded JSON
    """One API call with a bearer token or a session cookie; the status and decoded body."""
    headers: dict[str, str] = {}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    if cookie is not None:
        headers["cookie"] = f"{SESSION_COOKIE}={cookie}"
    return server.request(method, path, body, headers=headers)


def submit(server: Served, token: str, body: dict[str, Any]) -> dict[str, Any]:  # Any: JSON
    status, job = call(server, "POST", "/api/v1/jobs", token=token, body=body)
    assert status == 201, job
    assert isinstance(job, dict)
    return job


def login_form(page: Page) -> Locator:
    return page.get_by_role("dialog", name="This server needs a token")


def log_in(page: Page, token: str) -> None:
    form = login_form(page)
    expect(form).to_be_visible()
    form.get_by_label("Token").fill(token)
    form.get_by_role("button", name="Unlock").click()
    expect(form).to_be_hidden()
    expect(page.locator("#live")).to_have_text("live")


def session_cookies(page: Page) -> list[Any]:  # Any: Playwright's cookie dicts
    return [cookie for cookie in page.context.cookies() if cookie["name"] == SESSION_COOKIE]


def api_status_in_page(page: Page, path: str) -> int:
    status = page.evaluate("(path) => fetch(path, {cache: 'no-store'}).then((r) => r.status)", path)
    assert isinstance(status, int)
    return status


def assert_the_page_keeps_no_token(page: Page, token: str) -> None:
    storage = page.evaluate("() => JSON.stringify([Object.entries(sessionStorage), Object.entries(localStorage)])")
    assert storage == "[[],[]]"
    assert page.evaluate("() => document.cookie") == ""  # HttpOnly: scripts cannot read it
    assert page.locator("#token-input").input_value() == ""
    assert token not in page.content()
    [session] = session_cookies(page)
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert token not in session["value"]


def test_a_user_logs_in_once_sees_only_her_jobs_with_their_owner_and_cancels_one(
    page: Page, server: Served, tokens: Tokens, db: andon.Client
) -> None:
    bobs = submit(server, tokens.bob, SHORT_COUNT)
    page.goto(server.base_url)
    expect(login_form(page)).to_be_visible()
    expect(page.locator("#who")).to_be_hidden()
    # A token an older dashboard kept in the tab must not survive this one.
    page.evaluate("(token) => sessionStorage.setItem('andon.token', token)", tokens.alice)
    page.reload()

    log_in(page, tokens.alice)
    expect(page.locator("#who-name")).to_have_text("signed in as alice (user)")
    assert_the_page_keeps_no_token(page, tokens.alice)

    created = submit_count_from_the_form(page, 400, 0.05)
    assert created["owner"] == "alice"
    job_card = card(page, created["id"])
    expect(job_card.locator(".badge")).to_have_text("running")  # live over the cookie-only stream
    expect(job_card.locator(".card-owner")).to_have_text("alice")
    expect(history_row(page, created["id"]).locator("td.owner")).to_have_text("alice")
    expect(history_row(page, bobs["id"])).to_have_count(0)

    job_card.get_by_role("button", name="Cancel", exact=True).click()
    expect(job_card.locator(".badge")).to_have_text("cancelled")
    stopped = db.get(created["id"])
    assert stopped.status is andon.JobStatus.CANCELLED
    assert stopped.owner == "alice"
    assert stopped.cancel is not None
    assert stopped.cancel.by == "user:alice"

    page.goto(f"{server.base_url}/#/jobs/{created['id']}")
    expect(page.locator("#job-view dt:text-is('Owner') + dd")).to_have_text("alice")
    page.goto(f"{server.base_url}/#/jobs/{bobs['id']}")
    expect(page.locator("#job-view")).to_contain_text("There is no job with this id")
    assert_the_page_keeps_no_token(page, tokens.alice)


def test_an_admin_sees_every_job_with_its_owner(page: Page, server: Served, tokens: Tokens) -> None:
    alices = submit(server, tokens.alice, SHORT_COUNT)
    bobs = submit(server, tokens.bob, SHORT_COUNT)
    page.goto(server.base_url)
    log_in(page, tokens.ops)
    expect(page.locator("#who-name")).to_have_text("signed in as ops (admin)")
    expect(history_row(page, alices["id"]).locator("td.owner")).to_have_text("alice")
    expect(history_row(page, bobs["id"]).locator("td.owner")).to_have_text("bob")
    page.goto(f"{server.base_url}/#/jobs/{bobs['id']}")
    expect(page.locator("#job-view dt:text-is('Owner') + dd")).to_have_text("bob")
    assert_the_page_keeps_no_token(page, tokens.ops)


def test_logging_out_brings_the_login_form_back_and_ends_the_session(
    page: Page, server: Served, tokens: Tokens
) -> None:
    page.goto(server.base_url)
    log_in(page, tokens.bob)
    [session] = session_cookies(page)
    assert call(server, "GET", "/api/v1/info", cookie=session["value"])[0] == 200

    page.get_by_role("button", name="Log out").click()
    expect(login_form(page)).to_be_visible()
    expect(page.locator("#who")).to_be_hidden()
    assert session_cookies(page) == []
    assert api_status_in_page(page, "api/v1/jobs") == 401
    status, body = call(server, "GET", "/api/v1/info", cookie=session["value"])
    assert status == 401, "the server forgot the session, not only the browser"
    assert body["error"]["code"] == "unauthorized"


def test_a_wrong_token_is_refused_clearly_and_the_right_one_then_works(
    page: Page, server: Served, tokens: Tokens
) -> None:
    page.goto(server.base_url)
    form = login_form(page)
    form.get_by_label("Token").fill("andon_" + "w" * 43)
    form.get_by_role("button", name="Unlock").click()
    expect(form.get_by_role("alert")).to_have_text("That token was refused.")
    expect(form).to_be_visible()
    assert session_cookies(page) == []
    assert api_status_in_page(page, "api/v1/info") == 401

    log_in(page, tokens.bob)
    expect(page.locator("#who-name")).to_have_text("signed in as bob (user)")


def test_a_token_revoked_under_a_live_session_brings_the_login_form_back(
    page: Page, server: Served, tokens: Tokens, db: andon.Client
) -> None:
    page.goto(server.base_url)
    log_in(page, tokens.carol)
    expect(page.locator("#who-name")).to_have_text("signed in as carol (user)")

    db.revoke_token("carol")
    # The server caches token lookups for a second: wait until it refuses the session.
    support.wait_until(
        lambda: api_status_in_page(page, "api/v1/info") == 401, WAIT_S, "the session to be refused", interval=0.1
    )
    # Any API call brings the form back. The page's own background calls (the workers panel,
    # the live stream) may have done so already, hiding the filters; so the filter is changed
    # through the DOM, which works whether or not the form came first.
    page.locator("#filter-status").evaluate(
        "(select) => { select.value = 'failed'; select.dispatchEvent(new Event('change')); }"
    )
    form = login_form(page)
    expect(form).to_be_visible()
    expect(form).to_contain_text("Your session ended")
    expect(page.locator("main")).to_be_hidden()  # carol's page is not left on show behind the form

    log_in(page, tokens.alice)  # someone else: the page starts over as alice
    expect(page.locator("#who-name")).to_have_text("signed in as alice (user)")
    expect(page.locator("main")).to_be_visible()
