"""Stop now, continue later, in a real browser (issue 15): Resume on a cancelled job, the
checkpoint and the downloads on its page, and pausing a kind from the kinds strip.

Headless Chromium against a real ``andon serve`` process (conftest's ``server``: one per
module, so pausing ``count`` here cannot hold test_dashboard.py's jobs).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

import andon
from tests import support
from tests.acceptance.dashboard_page import card, open_dashboard
from tests.acceptance.serving import Served

pytestmark = [pytest.mark.timeout(60), pytest.mark.slow]

WAIT_S = 15.0

expect.set_options(timeout=10_000)


@pytest.fixture(autouse=True)
def nothing_left_running_or_paused(jobs: andon.Client) -> Iterator[None]:
    yield
    for paused in jobs.paused_kinds():
        jobs.unpause(paused.kind)
    jobs.cancel_many(message="test cleanup")


def items_of(jobs: andon.Client, job_id: str) -> list[int]:
    return [item.data["i"] for item in jobs.results(job_id)]


def running_count(page: Page, server: Served, jobs: andon.Client, n: int) -> andon.Job:
    """A ``count`` job the dashboard shows running, with a few items (and checkpoints) done."""
    job = jobs.submit("count", {"n": n, "interval_s": 0.03})
    open_dashboard(page, server)
    expect(card(page, job.id).locator(".badge")).to_have_text("running")
    support.wait_until(lambda: jobs.get(job.id).items_count >= 5, WAIT_S, "a few items")
    return job


def download(page: Page, link: Locator) -> str:
    with page.expect_download() as started:
        link.click()
    return Path(started.value.path()).read_text(encoding="utf-8")


def test_cancel_then_resume_finishes_with_every_item_once_and_the_items_download(
    page: Page, server: Served, jobs: andon.Client
) -> None:
    n = 60
    job = running_count(page, server, jobs, n)
    job_card = card(page, job.id)
    job_card.get_by_role("button", name="Cancel", exact=True).click()
    expect(job_card.locator(".badge")).to_have_text("cancelled")
    kept = jobs.get(job.id)
    assert kept.checkpoint is not None
    assert 0 < kept.checkpoint.items < n

    page.goto(f"{server.base_url}/#/jobs/{job.id}")
    checkpoint = page.locator(".job-section-checkpoint")
    expect(checkpoint).to_contain_text(f"Stored by attempt 1 after {kept.checkpoint.items} items")
    expect(page.locator(".job-actions").get_by_role("button")).to_have_text(["Resume", "Retry", "Remove"])
    lines = download(page, page.get_by_role("link", name="JSON Lines"))
    assert [json.loads(line)["i"] for line in lines.splitlines()] == list(range(kept.items_count))

    page.locator(".job-actions").get_by_role("button", name="Resume").click()
    expect(page.get_by_role("status").filter(has_text="Resumed count")).to_be_visible()
    expect(page.locator(".job-head .badge")).to_have_text("succeeded", timeout=WAIT_S * 1000)
    assert items_of(jobs, job.id) == list(range(n))
    expect(page.locator(".timeline li .what").filter(has_text="resumed")).to_have_count(1)
    expect(page.get_by_role("heading", name=f"Results ({n})")).to_be_visible()

    rows = list(csv.DictReader(download(page, page.get_by_role("link", name="CSV")).splitlines()))
    assert [int(row["i"]) for row in rows] == list(range(n))
    assert {tuple(row) for row in rows} == {("i", "at")}


def test_pause_now_sends_running_jobs_back_and_unpause_lets_them_finish(
    page: Page, server: Served, jobs: andon.Client
) -> None:
    n = 60
    job = running_count(page, server, jobs, n)

    strip = page.locator('#kinds-list li[data-kind="count"]')
    strip.get_by_role("button", name="Pause now").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Pause now", exact=True).click()
    expect(strip).to_have_attribute("data-paused", "yes")
    expect(strip).to_contain_text("paused")
    expect(page.get_by_role("status").filter(has_text="Paused count; 1 running job(s)")).to_be_visible()
    support.wait_status(jobs, job.id, andon.JobStatus.QUEUED, WAIT_S)
    assert [p.kind for p in jobs.paused_kinds()] == ["count"]

    strip.get_by_role("button", name="Unpause").click()
    expect(strip).to_have_attribute("data-paused", "no")
    assert jobs.wait_finished(job.id, WAIT_S).status is andon.JobStatus.SUCCEEDED
    assert items_of(jobs, job.id) == list(range(n))
