"""The schedules panel in a real browser (issue 17): a schedule with its next tick, paused,
resumed and triggered from its buttons; hostile text (a pause's actor, a trigger's message)
shown as text. Headless Chromium against a real ``andon serve`` process (conftest's
``server``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

import andon
from tests.acceptance.dashboard_page import open_dashboard
from tests.acceptance.serving import Served

pytestmark = [pytest.mark.timeout(60), pytest.mark.slow]

expect.set_options(timeout=10_000)


@pytest.fixture(autouse=True)
def no_schedule_left(jobs: andon.Client) -> Iterator[None]:
    yield
    for schedule in jobs.list_schedules():
        jobs.remove_schedule(schedule.name)
    jobs.cancel_many(message="test cleanup")


def test_pause_resume_and_trigger_from_the_panel(page: Page, server: Served, jobs: andon.Client) -> None:
    jobs.add_schedule("hourly", "count", {"n": 1, "interval_s": 0.01}, cron="0 * * * *")
    open_dashboard(page, server)
    row = page.locator('#schedules-list li[data-schedule="hourly"]')
    expect(row).to_contain_text("0 * * * *")
    expect(row).to_contain_text("next")
    row.get_by_role("button", name="Pause").click()
    expect(row).to_have_attribute("data-paused", "yes")
    assert jobs.get_schedule("hourly").is_paused
    row.get_by_role("button", name="Resume").click()
    expect(row).to_have_attribute("data-paused", "no")
    row.get_by_role("button", name="Trigger").click()
    expect(row).to_contain_text("last: triggered")
    (tick,) = jobs.schedule_ticks("hourly")
    assert tick.job_id is not None
    assert jobs.get(tick.job_id).schedule == "hourly"


def test_hostile_text_in_a_schedule_is_shown_as_text(page: Page, server: Served, jobs: andon.Client) -> None:
    hostile = '<img src=x onerror="window.__pwned=1">'
    jobs.add_schedule("hostile", "count", {"n": 1}, every=3600)
    jobs.store.pause_schedule("hostile", hostile)
    open_dashboard(page, server)
    row = page.locator('#schedules-list li[data-schedule="hostile"]')
    expect(row).to_contain_text(hostile)
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned === undefined")
    assert row.locator("img").count() == 0


def test_the_schedules_panel_does_not_cover_the_kinds_panel(page: Page, server: Served, jobs: andon.Client) -> None:
    jobs.add_schedule("hourly", "count", {"n": 1}, cron="0 * * * *")
    open_dashboard(page, server)
    expect(page.locator('#schedules-list li[data-schedule="hourly"]')).to_be_visible()
    kinds = page.locator("section.kinds-panel:not(.schedules-panel)").bounding_box()
    schedules = page.locator("section.schedules-panel").bounding_box()
    assert kinds is not None
    assert schedules is not None
    assert schedules["y"] >= kinds["y"] + kinds["height"], (kinds, schedules)
    expect(page.locator("#kinds-title")).to_be_visible()
