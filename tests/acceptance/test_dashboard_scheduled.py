"""A scheduled job in a real browser (issue 17): its card says it is scheduled and counts
down to its due time, its page shows the due time, and Cancel withdraws it (it never starts).

Headless Chromium against a real ``andon serve`` with its worker (conftest's ``server``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

import andon
from tests.acceptance.dashboard_page import card, open_dashboard
from tests.acceptance.serving import Served

pytestmark = [pytest.mark.timeout(60), pytest.mark.slow]

expect.set_options(timeout=10_000)


@pytest.fixture(autouse=True)
def nothing_left_active(jobs: andon.Client) -> Iterator[None]:
    yield
    jobs.cancel_many(message="test cleanup")


def test_a_scheduled_job_says_when_it_starts_and_cancel_withdraws_it(
    page: Page, server: Served, jobs: andon.Client
) -> None:
    job = jobs.submit("count", {"n": 1, "interval_s": 0.01}, delay=600)
    open_dashboard(page, server)
    view = card(page, job.id)
    expect(view).to_contain_text("scheduled: starts in")
    expect(view).to_contain_text("due in 9:")
    page.goto(f"{server.base_url}#/jobs/{job.id}")
    expect(page.locator("#job-view .facts")).to_contain_text("Due")
    expect(page.locator("#job-view .facts")).to_contain_text("scheduled: starts in")
    page.get_by_role("button", name="Cancel", exact=True).first.click()
    expect(page.locator("#job-view .badge").first).to_have_text("cancelled")
    ended = jobs.get(job.id)
    assert ended.status is andon.JobStatus.CANCELLED
    assert ended.cancel is not None
    assert ended.cancel.stop_method is andon.StopMethod.WITHDRAWN
    assert ended.started_at is None
