"""Job trees in a real browser (issue 16): a job's page shows its tree, nested and opened a
level at a time; Cancel on a job with active descendants says how many it will stop; cards
and history rows say whose child a job is.

Headless Chromium against a real ``andon serve`` (conftest's ``server``). The trees are made
through the store (``tests/trees.py``) in kinds no worker claims, so each stays as built until
the test stops it. Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

import andon
from tests import support
from tests.acceptance.dashboard_page import card, history_row, open_dashboard
from tests.acceptance.serving import Served
from tests.trees import CHILD_KIND, Tree, build_tree

pytestmark = [pytest.mark.timeout(60), pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
WAIT_S = 15.0

expect.set_options(timeout=10_000)


@pytest.fixture(autouse=True)
def nothing_left_active(jobs: andon.Client) -> Iterator[None]:
    yield
    jobs.cancel_many(message="test cleanup")


@pytest.fixture
def tree(jobs: andon.Client) -> Tree:
    """A running root with 5 children (one running, with 7 queued children of its own): 12
    active descendants."""
    return build_tree(jobs.store, children=5, grandchildren=7)


def open_job(page: Page, server: Served, job_id: str) -> None:
    open_dashboard(page, server)
    page.goto(f"{server.base_url}#/jobs/{job_id}")
    expect(page.locator("#job-view .job-id.full")).to_have_text(job_id)


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / name, full_page=True)


def test_the_job_page_shows_the_tree_and_opens_a_level_when_asked(page: Page, server: Served, tree: Tree) -> None:
    open_job(page, server, tree.root.id)
    section = page.locator(".job-tree")
    expect(section.locator(".tree-counts")).to_have_text("12 descendants: 11 queued, 1 running")
    top = section.locator(":scope > ul.tree > li.tree-node")
    expect(top).to_have_count(5)
    running = section.locator(f'li.tree-node[data-job-id="{tree.running_child.id}"]')
    expect(running.locator(".badge").first).to_have_text("running")
    toggle = running.get_by_role("button", name="▸ 7 children")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(running.locator("li.tree-node")).to_have_count(0)  # not loaded until opened
    toggle.click()
    expect(running.locator("ul.tree > li.tree-node")).to_have_count(7)
    expect(running.get_by_role("button", name="▾ 7 children")).to_have_attribute("aria-expanded", "true")
    screenshot(page, "dashboard-tree.png")

    # A child's page links back to its parent.
    running.locator(".tree-row a").first.click()
    expect(page.locator("#job-view .job-id.full")).to_have_text(tree.running_child.id)
    parent = page.locator(".job-tree .tree-parent")
    expect(parent).to_contain_text("Child of")
    parent.get_by_role("link").first.click()
    expect(page.locator("#job-view .job-id.full")).to_have_text(tree.root.id)


def test_cancel_on_a_parent_says_how_many_descendants_it_stops(
    page: Page, server: Served, jobs: andon.Client, tree: Tree
) -> None:
    open_job(page, server, tree.root.id)
    dialog = page.locator("#confirm-dialog")
    page.locator(".job-head").get_by_role("button", name="Cancel", exact=True).click()
    expect(dialog.locator("#confirm-title")).to_have_text("Cancel this job and its 12 active descendants?")
    expect(dialog.locator("#confirm-yes")).to_have_text("Cancel 13 jobs")
    screenshot(page, "dashboard-tree-cancel.png")
    dialog.get_by_role("button", name="Keep it").click()
    assert jobs.get(tree.root.id).cancel is None  # asked, refused: nothing was stopped

    page.locator(".job-head").get_by_role("button", name="Cancel", exact=True).click()
    dialog.locator("#confirm-yes").click()
    support.wait_until(lambda: jobs.get(tree.root.id).cancel is not None, WAIT_S, "the root's cancel")
    withdrawn = page.locator(f'.job-tree li.tree-node[data-job-id="{tree.children[1].id}"]')
    expect(withdrawn.locator(".badge").first).to_have_text("cancelled")
    expect(withdrawn.locator(".tree-stop").first).to_have_text("parent_cancelled → withdrawn")
    running = page.locator(f'.job-tree li.tree-node[data-job-id="{tree.running_child.id}"]')
    expect(running.locator(".badge").first).to_have_text("cancelling")
    expect(page.locator(".job-tree .tree-counts")).to_have_text("12 descendants: 1 cancelling, 11 cancelled")
    screenshot(page, "dashboard-tree-cancelled.png")


def test_a_job_without_descendants_cancels_without_asking(page: Page, server: Served, tree: Tree) -> None:
    leaf = tree.grandchildren[0]
    open_job(page, server, leaf.id)
    page.locator(".job-head").get_by_role("button", name="Cancel", exact=True).click()
    expect(page.locator("#job-view .job-head .badge")).to_have_text("cancelled")
    expect(page.locator("#confirm-dialog")).not_to_be_visible()


def test_cards_and_history_rows_say_whose_child_a_job_is(page: Page, server: Served, tree: Tree) -> None:
    open_dashboard(page, server)
    child = tree.children[2]
    marker = card(page, child.id).locator(".child-of")
    expect(marker).to_have_text(f"child of {tree.root.id[:8]}…{tree.root.id[-4:]}")
    expect(card(page, tree.root.id).locator(".child-of")).to_have_count(0)
    expect(history_row(page, child.id).locator(".child-of")).to_contain_text("child of")
    expect(history_row(page, tree.root.id).locator(".children-count")).to_have_text("5 children")
    expect(history_row(page, tree.running_child.id).locator(".children-count")).to_have_text("7 children")
    assert history_row(page, child.id).locator("td a").first.inner_text() == CHILD_KIND
    marker.get_by_role("link").click()
    expect(page.locator("#job-view .job-id.full")).to_have_text(tree.root.id)
