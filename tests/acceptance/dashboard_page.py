"""Where things are on the dashboard, for the browser tests (one copy of each selector)."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Locator, Page, expect

from tests.acceptance.serving import Served


def open_dashboard(page: Page, server: Served) -> None:
    """The home page, once its event stream is live."""
    page.goto(server.base_url)
    expect(page.locator("#live")).to_have_text("live")


def card(page: Page, job_id: str) -> Locator:
    """The job's card in the active jobs panel."""
    return page.locator(f'#active-list li[data-job-id="{job_id}"]')


def history_row(page: Page, job_id: str) -> Locator:
    """The job's row in the history table."""
    return page.locator(f'#history-body tr[data-job-id="{job_id}"]')


def submit_count_from_the_form(page: Page, n: int, interval_s: float) -> dict[str, Any]:  # Any: JSON
    """Submit a ``count`` job through the form; returns the API's answer (the new job)."""
    form = page.get_by_role("region", name="Submit a job")
    form.get_by_label("Kind").select_option("count")
    form.get_by_label("n", exact=True).fill(str(n))
    form.get_by_label("interval_s").fill(str(interval_s))
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/api/v1/jobs")) as posted:
        form.get_by_role("button", name="Submit job").click()
    created: dict[str, Any] = posted.value.json()
    return created
