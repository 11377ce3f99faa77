"""Hostile job data in the dashboard, in a real browser, and the headers that back it up.

Jobs whose kind, params, progress message, items, result, error message, cancel message
and actor are markup meant to run script are shown on the dashboard's list, history and
job page (Debian's Chromium through Playwright, against a real ``andon serve``; the jobs
run on a worker in this process, on the same SQLite file). Every payload must show as
literal text: no script runs (each payload would set ``window.__xss``), no dialog opens,
no element the payloads describe exists in the DOM, and the console stays clean (the CSP
would log a refusal if markup got in and tried to run).

Then, in-process: the security headers on the dashboard, its static files and the API,
and cross-site state-changing requests refused with 403.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, expect
from starlette.testclient import TestClient

import andon
from andon.api import create_app
from tests import support
from tests.acceptance.serving import Served, serve

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]

WAIT_S = 15.0

PAYLOADS = (
    "<script>window.__xss = 'script'</script>",
    "<img src=x onerror=\"window.__xss = 'img'\">",
    "\"'><svg onload=\"window.__xss = 'svg'\"></svg>",
    "javascript:window.__xss='href'",
)
MARKUP = " ".join(PAYLOADS)
HOSTILE_KIND = "<b id=injected-kind>kind</b>"
INJECTED = "img[src=x], svg[onload], [onerror], [onload], b#injected-kind, a[href^='javascript']"

hostile_app = andon.App(default_grace=0.5)


@hostile_app.job(HOSTILE_KIND)
def hostile(ctx: andon.Context, text: str, fail: bool = False, hold: bool = False) -> dict[str, str]:
    """Reports ``text`` everywhere a job can: progress, items, result or error."""
    ctx.progress(1, 2, text)
    ctx.emit({"text": text})
    ctx.emit(text)
    while hold:
        ctx.sleep(0.05)
    if fail:
        raise RuntimeError(text)
    return {"text": text}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("escaping")


@pytest.fixture(scope="module")
def server(folder: Path) -> Iterator[Served]:
    served = serve(folder, "--db", f"sqlite:///{folder / 'andon.db'}", "--no-worker", "--no-demo-jobs")
    yield served
    assert served.stop() == 0, served.output()


@pytest.fixture(scope="module")
def jobs(server: Served, folder: Path) -> Iterator[dict[str, str]]:
    """Hostile jobs in every state worth showing: succeeded, failed, cancelled and running."""
    with andon.connect(f"sqlite:///{folder / 'andon.db'}", hostile_app, actor=MARKUP) as client:
        worker = andon.Worker(hostile_app, client.store, concurrency=2, shutdown_grace_s=0.5)
        worker.start()
        try:
            ids = {
                "succeeded": client.submit(HOSTILE_KIND, {"text": MARKUP}).id,
                "failed": client.submit(HOSTILE_KIND, {"text": MARKUP, "fail": True}).id,
                "cancelled": client.submit(HOSTILE_KIND, {"text": MARKUP, "hold": True}).id,
            }
            client.wait_finished(ids["succeeded"], WAIT_S)
            client.wait_finished(ids["failed"], WAIT_S)
            support.wait_until(lambda: client.results(ids["cancelled"]) != [], WAIT_S, "the held job to emit")
            client.cancel(ids["cancelled"], message=MARKUP, wait=True, timeout=WAIT_S)
            ids["running"] = client.submit(HOSTILE_KIND, {"text": MARKUP, "hold": True}).id
            support.wait_until(lambda: client.results(ids["running"]) != [], WAIT_S, "the running job to emit")
            yield ids
        finally:
            client.cancel_many(message="test cleanup")
            worker.stop()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    opened.on("dialog", lambda dialog: _refuse(dialog, problems))
    opened.on("console", lambda message: _console(message, problems))
    yield opened
    context.close()
    assert problems == [], problems


def _refuse(dialog: Dialog, problems: list[str]) -> None:
    problems.append(f"a {dialog.type} dialog opened: {dialog.message}")
    dialog.dismiss()


def _console(message: ConsoleMessage, problems: list[str]) -> None:
    if message.type in ("error", "warning"):
        problems.append(f"console {message.type}: {message.text}")


def assert_nothing_injected(page: Page) -> None:
    assert page.evaluate("() => window.__xss === undefined"), page.evaluate("() => window.__xss")
    assert page.locator(INJECTED).count() == 0
    # The only scripts are the dashboard's own file.
    assert page.evaluate("() => [...document.scripts].every((s) => s.src && !s.text)")


def test_the_list_and_history_show_hostile_fields_as_text(page: Page, server: Served, jobs: dict[str, str]) -> None:
    page.goto(server.base_url)
    expect(page.locator("#live")).to_have_text("live")
    running = page.locator(f'#active-list li[data-job-id="{jobs["running"]}"]')
    expect(running).to_be_visible()
    expect(running).to_contain_text(HOSTILE_KIND)
    expect(running).to_contain_text(MARKUP)  # the progress message
    for state in ("succeeded", "failed", "cancelled"):
        row = page.locator(f'#history-body tr[data-job-id="{jobs[state]}"]')
        expect(row).to_be_visible()
        expect(row).to_contain_text(HOSTILE_KIND)
    expect(page.locator(f'#history-body tr[data-job-id="{jobs["failed"]}"]')).to_contain_text(MARKUP)
    assert_nothing_injected(page)


@pytest.mark.parametrize("state", ["succeeded", "failed", "cancelled", "running"])
def test_the_job_page_shows_hostile_fields_as_text(
    page: Page, server: Served, jobs: dict[str, str], state: str
) -> None:
    page.goto(f"{server.base_url}/#/jobs/{jobs[state]}")
    expect(page.locator("#live")).to_have_text("live")
    body = page.locator("body")
    expect(body).to_contain_text(HOSTILE_KIND)
    expect(body).to_contain_text(MARKUP)  # params, progress, items, result or error, history
    if state == "cancelled":
        expect(body).to_contain_text("cancelled")
    page.wait_for_timeout(300)  # give anything injected the time to load and run
    assert_nothing_injected(page)
    text = body.inner_text()
    for payload in PAYLOADS:
        assert payload in text.replace("\n", " ") or payload.replace('"', '\\"') in text, payload


# -- headers and cross-site requests (in-process) -----------------------------------------------


@pytest.fixture
def http(store: andon.SqliteStore) -> Iterator[TestClient]:
    with TestClient(create_app(store, hostile_app), base_url="http://127.0.0.1:8000") as opened:
        yield opened


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/static/app.css", "/api/v1/info", "/api/v1/jobs/nope"])
def test_every_answer_carries_the_security_headers(http: TestClient, path: str) -> None:
    response = http.get(path)
    assert response.status_code in (200, 404), response.text
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "same-origin"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/jobs"),
        ("POST", "/api/v1/jobs/cancel"),
        ("DELETE", "/api/v1/jobs/x"),
        ("POST", "/api/v1/jobs/x/cancel"),
    ],
)
@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://evil.example"},
        {"origin": "null"},
        {"referer": "http://evil.example/page"},
        {"origin": "http://127.0.0.1:8001"},  # another port is another origin
    ],
)
def test_cross_site_state_changes_are_refused(
    http: TestClient, store: andon.SqliteStore, method: str, path: str, headers: dict[str, str]
) -> None:
    body = b'{"kind": "x", "params": {}}' if path == "/api/v1/jobs" else b"{}"
    response = http.request(method, path, content=body, headers={**headers, "content-type": "application/json"})
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "cross_origin"


def test_a_cross_site_submit_creates_nothing_and_a_same_origin_one_does(
    http: TestClient, store: andon.SqliteStore
) -> None:
    body = {"kind": HOSTILE_KIND, "params": {"text": "hi"}}
    refused = http.post("/api/v1/jobs", json=body, headers={"origin": "http://evil.example"})
    assert refused.status_code == 403
    assert store.list_jobs(andon.JobFilter(), 10, None).items == []
    accepted = http.post("/api/v1/jobs", json=body, headers={"origin": "http://127.0.0.1:8000"})
    assert accepted.status_code == 201, accepted.text
