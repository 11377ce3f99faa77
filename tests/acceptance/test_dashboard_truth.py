"""The dashboard says what is true, precisely (issue 18), in Debian's headless Chromium
against a real ``andon serve`` of ``tests.acceptance.truth_app`` over a SQLite file:

* the Kinds page shows each kind's stop statistics, and a "needs force" badge only on the
  kind whose handler never checks for a cancel (screenshot: tests/artifacts/kinds.png);
* stop times in milliseconds, as the CLI writes them;
* Force fail on a kind with a retry policy says the job runs again, and offers no retry;
* a card stopped by its timeout says "timeout";
* ended jobs leave the Active panel after a few seconds (not while the pointer is on them);
* the history's filters live in the URL (reload, back, forward);
* the history table fits a 1280 px window with every row's buttons in view;
* a retry of a deleted job says "(removed)" instead of linking to nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

import andon
from tests import support
from tests.acceptance.dashboard_page import card, history_row, open_dashboard
from tests.acceptance.serving import Served, serve_test_app
from tests.acceptance.truth_app import app as truth_app

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
WAIT_S = 20.0

expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def server(folder: Path) -> Iterator[Served]:
    """``andon serve`` of the truth app (importable from the repository's root)."""
    served = serve_test_app(folder, "tests.acceptance.truth_app:app", 8)
    yield served
    assert served.stop() == 0, served.output()


@pytest.fixture(scope="module")
def jobs(server: Served, folder: Path) -> Iterator[andon.Client]:
    with andon.connect(f"sqlite:///{folder / 'andon.db'}", truth_app, actor="test") as client:
        yield client


@pytest.fixture(autouse=True)
def nothing_left_running(jobs: andon.Client) -> Iterator[None]:
    yield
    jobs.cancel_many(message="test cleanup")


def wait_status(jobs: andon.Client, job_id: str, status: andon.JobStatus) -> andon.Job:
    return support.wait_status(jobs, job_id, status, WAIT_S)


def stop_time(seconds: float) -> str:
    """What andon.cli._format.seconds writes below a minute."""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def test_the_kinds_page_badges_only_the_kind_that_never_checks(page: Page, server: Served, jobs: andon.Client) -> None:
    deaf = [jobs.submit("deaf") for _ in range(3)]
    polite = [jobs.submit("polite") for _ in range(3)]
    for job in deaf + polite:
        wait_status(jobs, job.id, andon.JobStatus.RUNNING)
    for job in deaf + polite:
        jobs.cancel(job.id)
    methods: dict[str, set[andon.StopMethod | None]] = {"deaf": set(), "polite": set()}
    for job in deaf + polite:
        stopped = wait_status(jobs, job.id, andon.JobStatus.CANCELLED)
        assert stopped.cancel is not None
        methods[job.kind].add(stopped.cancel.stop_method)
    assert methods == {"deaf": {andon.StopMethod.INJECTED}, "polite": {andon.StopMethod.COOPERATIVE}}
    stats = {s.kind: s for s in jobs.stop_stats()}

    page.goto(f"{server.base_url}#/kinds")
    expect(page.locator("#live")).to_have_text("live")
    expect(page.get_by_role("heading", name="Kinds: how they stop")).to_be_visible()
    deaf_row = page.locator('.kinds-table tr[data-kind="deaf"]')
    polite_row = page.locator('.kinds-table tr[data-kind="polite"]')
    badge = deaf_row.locator(".needs-force")
    expect(badge).to_have_text("needs force")
    expect(badge).to_be_visible()
    assert "ignores Cancel" in (badge.get_attribute("title") or "")
    assert "ctx.check()" in (badge.get_attribute("title") or "")
    expect(polite_row.locator(".needs-force")).to_have_count(0)
    expect(page.locator(".kinds-table .needs-force")).to_have_count(1)
    expect(deaf_row).to_contain_text("injected 3")
    expect(polite_row).to_contain_text("cooperative 3")
    cells = polite_row.locator("td")
    expect(cells.nth(2)).to_have_text("3")
    expect(cells.nth(3)).to_have_text(stop_time(stats["polite"].p50_s or 0))
    expect(cells.nth(4)).to_have_text(stop_time(stats["polite"].p99_s or 0))
    expect(cells.nth(5)).to_have_text(stop_time(stats["polite"].max_s or 0))
    note = page.locator("#needs-force-deaf")
    expect(note).to_contain_text("3 of 3 stops needed force (injected 3)")
    expect(note).to_contain_text("ctx.check()")
    expect(page.locator("#needs-force-polite")).to_have_count(0)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "kinds.png", full_page=True)

    # The home page's kinds strip carries the same badge, on the same kind only.
    page.get_by_role("link", name="← All jobs").click()
    expect(page.locator('#kinds-list li[data-kind="deaf"] .needs-force')).to_be_visible()
    expect(page.locator("#kinds-list .needs-force")).to_have_count(1)


def test_stop_times_read_in_milliseconds_like_the_cli(page: Page, server: Served, jobs: andon.Client) -> None:
    open_dashboard(page, server)
    job = jobs.submit("polite")
    expect(card(page, job.id).locator(".badge")).to_have_text("running")
    jobs.cancel(job.id)
    stopped = wait_status(jobs, job.id, andon.JobStatus.CANCELLED)
    assert stopped.cancel is not None
    assert stopped.cancel.stop_seconds is not None
    assert stopped.cancel.stop_seconds < 1  # a check every 5 ms: well under a second
    words = stop_time(stopped.cancel.stop_seconds)
    assert re.fullmatch(r"\d+ ms", words)
    expect(card(page, job.id).locator(".progress-message")).to_have_text(
        f"cancelled: 0 items kept, stopped: cooperative in {words}"
    )
    expect(history_row(page, job.id).locator(".reason")).to_have_text(f"user (cooperative in {words})")
    page.goto(f"{server.base_url}#/jobs/{job.id}")
    expect(page.locator(".cancel-steps")).to_contain_text(f"cooperative · {words} after the request")


def test_force_fail_on_a_retrying_kind_says_it_runs_again_and_offers_no_retry(
    page: Page, server: Served, jobs: andon.Client
) -> None:
    open_dashboard(page, server)
    again = jobs.submit("retrying")
    job_card = card(page, again.id)
    expect(job_card.locator(".badge")).to_have_text("running")
    job_card.get_by_role("button", name="Force fail").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("It will run again")
    expect(dialog).to_contain_text("runs it again: 2 attempts left")
    expect(dialog.get_by_role("button", name="Fail, no retry")).to_be_visible()
    dialog.get_by_role("button", name="Fail, run again").click()
    queued = wait_status(jobs, again.id, andon.JobStatus.QUEUED)  # after its backoff, it runs again
    assert (queued.failures, queued.attempt) == (1, 1)
    expect(job_card.locator(".badge")).to_have_text("queued")

    # Queued, a force-fail fails it at once: the dialog says it will not run again.
    job_card.get_by_role("button", name="Force fail").click()
    expect(dialog).to_contain_text("It will not run again")
    expect(dialog.get_by_role("button", name="Fail, no retry")).to_be_hidden()
    dialog.get_by_role("button", name="Force fail", exact=True).click()
    wait_status(jobs, again.id, andon.JobStatus.FAILED)

    final = jobs.submit("retrying")
    final_card = card(page, final.id)
    expect(final_card.locator(".badge")).to_have_text("running")
    final_card.get_by_role("button", name="Force fail").click()
    expect(dialog).to_contain_text("2 attempts left")
    dialog.get_by_role("button", name="Fail, no retry").click()
    failed = wait_status(jobs, final.id, andon.JobStatus.FAILED)
    assert failed.cancel is not None
    assert failed.cancel.retry is False
    assert failed.failures == 1
    expect(final_card.locator(".badge")).to_have_text("failed")


def test_a_timeout_card_says_timeout(page: Page, server: Served, jobs: andon.Client) -> None:
    open_dashboard(page, server)
    job = jobs.submit("slow")
    stopped = wait_status(jobs, job.id, andon.JobStatus.CANCELLED)
    assert stopped.cancel is not None
    assert stopped.cancel.reason is andon.CancelReason.TIMEOUT
    message = card(page, job.id).locator(".progress-message")
    expect(message).to_have_text(re.compile(r"^timeout after 0\.5 s: 0 items kept, stopped: cooperative in \d+ ms$"))


def test_ended_jobs_leave_the_active_panel(page: Page, server: Served, jobs: andon.Client) -> None:
    open_dashboard(page, server)
    page.mouse.move(5, 790)
    job = jobs.submit("polite")
    job_card = card(page, job.id)
    expect(job_card.locator(".badge")).to_have_text("running")
    jobs.cancel(job.id)
    expect(job_card.locator(".badge")).to_have_text("cancelled")
    expect(job_card).to_have_count(0)  # a few seconds later: only in the history
    expect(history_row(page, job.id).locator(".badge")).to_have_text("cancelled")
    expect(page.locator("#active-empty")).to_be_visible()
    expect(page.locator("#active-count")).to_have_text("")
    # Later events do not bring it back.
    other = jobs.submit("quick")
    wait_status(jobs, other.id, andon.JobStatus.SUCCEEDED)
    expect(history_row(page, other.id).locator(".badge")).to_have_text("succeeded")
    expect(job_card).to_have_count(0)

    # A card under the pointer stays until the pointer leaves it.
    held = jobs.submit("polite")
    held_card = card(page, held.id)
    expect(held_card.locator(".badge")).to_have_text("running")
    held_card.locator(".card-head").hover()
    jobs.cancel(held.id)
    expect(held_card.locator(".badge")).to_have_text("cancelled")
    page.wait_for_timeout(8_000)  # longer than a card is kept
    expect(held_card).to_have_count(1)
    page.mouse.move(5, 790)
    expect(held_card).to_have_count(0)


def test_history_filters_live_in_the_url(page: Page, server: Served, jobs: andon.Client) -> None:
    done = jobs.submit("quick")
    failed = jobs.submit("broken")
    wait_status(jobs, done.id, andon.JobStatus.SUCCEEDED)
    wait_status(jobs, failed.id, andon.JobStatus.FAILED)
    page.goto(f"{server.base_url}?status=succeeded&kind=quick")
    expect(page.locator("#live")).to_have_text("live")
    expect(page.locator("#filter-status")).to_have_value("succeeded")
    expect(page.locator("#filter-kind")).to_have_value("quick")
    expect(history_row(page, done.id)).to_be_visible()
    expect(history_row(page, failed.id)).to_have_count(0)
    expect(page.locator("#history-body tr")).not_to_have_count(0)
    for status in page.locator("#history-body tr").evaluate_all("rows => rows.map(r => r.dataset.status)"):
        assert status == "succeeded"

    page.locator("#filter-status").select_option("failed")
    page.locator("#filter-kind").select_option("broken")
    expect(page).to_have_url(re.compile(r"\?status=failed&kind=broken$"))
    expect(history_row(page, failed.id)).to_be_visible()
    expect(history_row(page, done.id)).to_have_count(0)

    page.reload()
    expect(page.locator("#filter-status")).to_have_value("failed")
    expect(page.locator("#filter-kind")).to_have_value("broken")
    expect(history_row(page, failed.id)).to_be_visible()

    page.go_back()  # the first choice: failed jobs, still of the kind quick
    expect(page).to_have_url(re.compile(r"\?status=failed&kind=quick$"))
    expect(page.locator("#filter-status")).to_have_value("failed")
    expect(page.locator("#filter-kind")).to_have_value("quick")
    expect(history_row(page, failed.id)).to_have_count(0)
    page.go_back()  # the link it was opened with
    expect(page.locator("#filter-status")).to_have_value("succeeded")
    expect(page.locator("#filter-kind")).to_have_value("quick")
    expect(history_row(page, done.id)).to_be_visible()
    expect(history_row(page, failed.id)).to_have_count(0)
    page.go_forward()
    expect(page.locator("#filter-status")).to_have_value("failed")
    expect(page.locator("#history-empty")).to_be_visible()  # no quick job failed
    page.go_forward()
    expect(page.locator("#filter-kind")).to_have_value("broken")
    expect(history_row(page, failed.id)).to_be_visible()
    expect(history_row(page, done.id)).to_have_count(0)


def test_the_history_fits_a_1280_px_window_with_its_buttons(page: Page, server: Served, jobs: andon.Client) -> None:
    page.set_viewport_size({"width": 1280, "height": 800})
    long = "a message long enough to push every column to its widest " * 4
    ended = [jobs.submit("broken", {"message": long}) for _ in range(3)]
    ended += [jobs.submit("quick", {"n": 10**12})]
    running = jobs.submit("polite")
    for job in ended:
        jobs.wait_finished(job.id, WAIT_S)
    wait_status(jobs, running.id, andon.JobStatus.RUNNING)
    cancelled = jobs.submit("polite")
    wait_status(jobs, cancelled.id, andon.JobStatus.RUNNING)
    jobs.cancel(cancelled.id, wait=True)
    open_dashboard(page, server)
    expect(history_row(page, running.id).locator(".badge")).to_have_text("running")
    expect(history_row(page, cancelled.id).get_by_role("button", name="Retry")).to_be_visible()

    wrap = page.locator(".history-panel .table-wrap")
    scroll, client = wrap.evaluate("el => [el.scrollWidth, el.clientWidth]")
    assert scroll <= client, f"the history scrolls sideways: {scroll} px of content in {client} px"
    wrap_box = wrap.bounding_box()
    assert wrap_box is not None
    buttons = page.locator("#history-body .row-actions button")
    assert buttons.count() >= len(ended) + 2
    for index in range(buttons.count()):
        box = buttons.nth(index).bounding_box()
        assert box is not None, f"button {index} is not laid out"
        assert box["x"] >= wrap_box["x"]
        assert box["x"] + box["width"] <= min(1280, wrap_box["x"] + wrap_box["width"]) + 0.5, (
            f"button {buttons.nth(index).inner_text()!r} ends at {box['x'] + box['width']:.0f} px"
        )
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(".history-panel").screenshot(path=ARTIFACTS / "history-1280.png")


def test_a_retry_of_a_removed_job_says_so(page: Page, server: Served, jobs: andon.Client) -> None:
    original = jobs.submit("broken")
    wait_status(jobs, original.id, andon.JobStatus.FAILED)
    kept = jobs.retry(original.id)
    page.goto(f"{server.base_url}#/jobs/{kept.id}")
    facts = page.locator(".facts")
    expect(facts.get_by_role("link", name=re.compile(original.id[:8]))).to_be_visible()

    jobs.delete(original.id)
    page.reload()
    expect(facts).to_contain_text(re.compile(r"Retry of\s*" + re.escape(original.id[:8]) + r".*\(removed\)"))
    expect(facts.get_by_role("link", name=re.compile(original.id[:8]))).to_have_count(0)
