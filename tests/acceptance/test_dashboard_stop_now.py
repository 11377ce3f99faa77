"""The dashboard's "Stop now": a cancel with no grace (``grace_s: 0``, as ``andon cancel
--now``), in Debian's headless Chromium against a real ``andon serve`` (with its worker) of
``tests.acceptance.stop_now_app`` over a SQLite file.

The ``careful`` kind listens for a cancel but, once asked, winds down longer than any grace,
and its grace is a minute: a job of it that ends within the tests' bounds (seconds) was
stopped by a Stop now, never by its grace running out. So the path is deterministic: after
Cancel, the work has seen the request (the page says so) and still runs when Stop now is
pressed.

* The job page: Cancel leaves the job ``cancelling``; Stop now then ends it ``cancelled``
  at once, and its history records the hurried stop ("asked to stop within 0 s").
* The cards: a queued job has no Stop now (Cancel withdraws it at once); a running one is
  stopped at once; one already stopping is hurried.
* A 409 from the API (the job failed meanwhile) is shown as an error, and the page then
  shows the job as it is.

Who may press it: a user sees only the jobs she may cancel (another user's job is "not
found"), so no role sees a job without the right to cancel it; Stop now follows the server's
``actions`` exactly as Cancel does. There is no such role to test here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, Route, expect

import andon
from tests import support
from tests.acceptance.dashboard_page import card, open_dashboard
from tests.acceptance.serving import Served, serve_test_app
from tests.acceptance.stop_now_app import GRACE_S
from tests.acceptance.stop_now_app import app as stop_now_app

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]

WAIT_S = 20.0
STOPPED_WITHIN_MS = 10_000  # generous, and still far below the kind's GRACE_S
HURRIED = "asked to stop within 0 s"

expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def server(folder: Path) -> Iterator[Served]:
    """``andon serve`` of the stop-now app (importable from the repository's root)."""
    served = serve_test_app(folder, "tests.acceptance.stop_now_app:app", 4)
    yield served
    assert served.stop() == 0, served.output()


@pytest.fixture(scope="module")
def jobs(server: Served, folder: Path) -> Iterator[andon.Client]:
    with andon.connect(f"sqlite:///{folder / 'andon.db'}", stop_now_app, actor="test") as client:
        yield client


@pytest.fixture(autouse=True)
def nothing_left_running(jobs: andon.Client) -> Iterator[None]:
    yield
    jobs.cancel_many(message="test cleanup", grace=0)  # a careful job would take its minute


def running(jobs: andon.Client, kind: str) -> andon.Job:
    """A job of ``kind`` whose handler runs (it has emitted, or a worker holds it)."""
    job = jobs.submit(kind, {})
    return support.wait_status(jobs, job.id, andon.JobStatus.RUNNING, WAIT_S)


def stop_now(scope: Locator) -> Locator:
    return scope.get_by_role("button", name="Stop now", exact=True)


def assert_stopped_at_once(jobs: andon.Client, job_id: str) -> andon.Job:
    """The job ended cancelled, stopped by force long before its kind's grace was up."""
    job = jobs.get(job_id)
    assert job.status is andon.JobStatus.CANCELLED
    assert job.cancel is not None
    assert job.cancel.grace_s == 0
    assert job.cancel.stop_method is andon.StopMethod.INJECTED
    assert job.cancel.stop_seconds is not None
    assert job.cancel.stop_seconds < GRACE_S
    return job


def test_on_the_job_page_stop_now_hurries_a_cancel_that_waits_for_its_grace(
    page: Page, server: Served, jobs: andon.Client
) -> None:
    job = running(jobs, "careful")
    page.goto(f"{server.base_url}/#/jobs/{job.id}")
    head = page.locator("#job-view .job-head")
    badge = head.locator(".badge")
    expect(badge).to_have_text("running")
    expect(head.get_by_role("button")).to_have_text(["Cancel", "Stop now", "Cancel & delete", "Force fail"])
    expect(stop_now(head)).to_have_attribute("title", re.compile(r"without waiting for the handler to finish"))

    head.get_by_role("button", name="Cancel", exact=True).click()
    expect(badge).to_have_text("cancelling")
    # The work has seen the request: it is in its endless wind-down, given the kind's minute.
    seen = page.locator(".cancel-steps li", has_text="Seen by the work")
    expect(seen).to_have_class(re.compile(r"\bdone\b"))
    expect(page.locator(".cancel-steps li", has_text="Stopped")).to_contain_text("not yet")
    expect(head.get_by_role("button", name="Cancel", exact=True)).to_have_count(0)
    hurry = stop_now(head)
    expect(hurry).to_be_enabled()
    expect(hurry).to_have_attribute("title", re.compile(r"Stop it at once instead.*items it emitted so far are kept"))
    assert jobs.get(job.id).status is andon.JobStatus.CANCELLING  # still stopping when Stop now is pressed

    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/cancel")) as answer:
        hurry.click()
    assert answer.value.status == 200
    assert answer.value.request.post_data_json == {"grace_s": 0}
    expect(badge).to_have_text("cancelled", timeout=STOPPED_WITHIN_MS)

    stopped = assert_stopped_at_once(jobs, job.id)
    assert stopped.items_count > 0
    assert stopped.cancel is not None
    assert stopped.cancel.message is None  # the first request stays in force; only the wait changed
    [event] = [e for e in jobs.events(job.id) if e.message == HURRIED]
    assert (event.from_status, event.to_status) == (andon.JobStatus.CANCELLING, andon.JobStatus.CANCELLING)
    expect(page.locator(".timeline li", has_text=HURRIED)).to_have_count(1)
    expect(page.locator(".cancel-steps")).to_contain_text("stop at once (no grace)")
    expect(page.locator(".cancel-steps li", has_text="Stopped")).to_contain_text("injected")
    expect(stop_now(head)).to_have_count(0)
    expect(page.get_by_role("heading", name=f"Results ({stopped.items_count})")).to_be_visible()


def test_on_the_cards_stop_now_stops_running_jobs_and_hurries_stopping_ones_but_not_queued_ones(
    page: Page, server: Served, jobs: andon.Client
) -> None:
    queued = jobs.submit("careful", {}, delay=3600)
    first = running(jobs, "careful")
    second = running(jobs, "careful")
    open_dashboard(page, server)

    waiting = card(page, queued.id)
    expect(waiting.locator(".badge")).to_have_text("queued")
    expect(waiting.get_by_role("button", name="Cancel", exact=True)).to_be_visible()
    expect(stop_now(waiting)).to_have_count(0)

    # A running job: stopped at once, without the grace a Cancel would give it.
    one = card(page, first.id)
    expect(one.locator(".badge")).to_have_text("running")
    stop_now(one).click()
    expect(one.locator(".badge")).to_have_text("cancelled", timeout=STOPPED_WITHIN_MS)
    kept = assert_stopped_at_once(jobs, first.id).items_count
    expect(one.locator(".progress-message")).to_have_text(
        re.compile(rf"^cancelled: {kept} items? kept, stopped: injected")
    )
    expect(stop_now(one)).to_have_count(0)

    # A job already stopping, whose work has seen the cancel: hurried.
    two = card(page, second.id)
    two.get_by_role("button", name="Cancel", exact=True).click()
    expect(two.locator(".badge")).to_have_text("cancelling")
    support.wait_until(
        lambda: (cancel := jobs.get(second.id).cancel) is not None and cancel.acknowledged_at is not None,
        WAIT_S,
        "the work to see the cancel",
    )
    expect(two.locator(".progress-message")).to_have_text("asked to stop; waiting for the work to stop")
    assert jobs.get(second.id).status is andon.JobStatus.CANCELLING
    stop_now(two).click()
    expect(two.locator(".badge")).to_have_text("cancelled", timeout=STOPPED_WITHIN_MS)
    assert_stopped_at_once(jobs, second.id)
    assert [e.message for e in jobs.events(second.id) if e.message == HURRIED] == [HURRIED]
    expect(waiting.locator(".badge")).to_have_text("queued")  # untouched


def test_a_stop_now_the_api_refuses_shows_its_error_and_then_the_job_as_it_is(
    page: Page, server: Served, jobs: andon.Client
) -> None:
    job = running(jobs, "steady")
    page.goto(f"{server.base_url}/#/jobs/{job.id}")
    head = page.locator("#job-view .job-head")
    expect(head.locator(".badge")).to_have_text("running")

    def fail_first(route: Route) -> None:
        # The job ends before the request reaches the server (deterministically, not a race).
        jobs.fail(job.id, retry=False, wait=True, timeout=WAIT_S)
        route.continue_()

    page.route(f"**/api/v1/jobs/{job.id}/cancel", fail_first)
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/cancel")) as answer:
        stop_now(head).click()
    assert answer.value.status == 409
    expect(page.get_by_role("alert")).to_contain_text(f"cannot cancel job {job.id}: it already finished as failed")
    expect(head.locator(".badge")).to_have_text("failed")
    expect(stop_now(head)).to_have_count(0)
    assert jobs.get(job.id).status is andon.JobStatus.FAILED
