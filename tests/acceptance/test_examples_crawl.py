"""``crawl`` end to end: Playwright driving Debian's Chromium over a site served on loopback.

The job's browser processes are found the way an operator would find them: by the job's
own profile folder (``--user-data-dir=.../andon-crawl-<job id>-...``) in their command
line; Playwright's driver (Node.js) is the parent of the main one.
"""

from __future__ import annotations

import functools
import http.server
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import andon
from andon.examples import app as example_app
from andon.examples import create_sample_data
from andon.examples._crawl import CHROMIUM
from tests.acceptance.examples_support import (
    STOP_BOUND_S,
    assert_cancelled_with_history,
    cancel_and_measure,
    processes_with,
    require_tool,
)
from tests.support import cmdline, is_alive, proc_stat, wait_items, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

MakeWorker = Callable[..., andon.Worker]

PAGE_DELAY_S = 0.3
"""How long the slow site takes to answer each page."""


class SiteServer(http.server.ThreadingHTTPServer):
    """The sample site on 127.0.0.1, optionally slow, with one page (``/hang``) that never answers."""

    daemon_threads = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), functools.partial(_SiteHandler, directory=str(root)))
        self.delay_s = 0.0
        self.paths: list[str] = []
        self.hanging = threading.Event()
        self.released = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _SiteHandler(http.server.SimpleHTTPRequestHandler):
    server: SiteServer

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        if self.path == "/hang":
            self.server.hanging.set()
            self.server.released.wait(60)
            return
        if self.server.delay_s and self.path.endswith(".html"):
            time.sleep(self.server.delay_s)
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:  # Any: as the base class
        """Quiet: the test reads ``server.paths`` instead."""


@pytest.fixture(scope="module")
def sample_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("samples")
    create_sample_data(root, ["site"])
    return root / "site"


@pytest.fixture
def site(sample_site: Path) -> Iterator[SiteServer]:
    require_tool(CHROMIUM, "apt-get install chromium")
    server = SiteServer(sample_site)
    thread = threading.Thread(target=server.serve_forever, name="site", daemon=True)
    thread.start()
    yield server
    server.released.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


class JobProcesses:
    """The processes of one crawl job, as seen so far: its Chromium processes (they carry
    the job's profile folder in their command line) and Playwright's driver."""

    def __init__(self, job_id: str) -> None:
        self.marker = f"andon-crawl-{job_id}-"
        self.seen: set[int] = set()

    def look(self) -> tuple[list[int], set[int]]:
        """The job's browser and driver processes alive now (remembered for :meth:`gone`)."""
        browsers = processes_with(self.marker)
        drivers = {
            stat[1] for pid in browsers if (stat := proc_stat(pid)) is not None and "run-driver" in cmdline(stat[1])
        }
        self.seen |= set(browsers) | drivers
        return browsers, drivers

    def wait_running(self, timeout: float = 30.0) -> None:
        wait_until(lambda: all(self.look()), timeout, "the job's Chromium and Playwright driver")

    def gone(self) -> bool:
        return not processes_with(self.marker) and not any(is_alive(pid) for pid in self.seen)


def profile_folders(job_id: str) -> list[Path]:
    import tempfile

    return list(Path(tempfile.gettempdir()).glob(f"andon-crawl-{job_id}-*"))


def test_crawl_is_breadth_first_same_origin_and_depth_limited(
    client: andon.Client, make_worker: MakeWorker, site: SiteServer
) -> None:
    site.delay_s = 0.2  # time enough to see the browser run
    make_worker()
    job = client.submit("crawl", {"start_url": f"{site.url}/index.html", "max_depth": 1})
    processes = JobProcesses(job.id)
    processes.wait_running()
    done = client.wait_finished(job.id, timeout=60)

    assert done.status is andon.JobStatus.SUCCEEDED, done.error
    items = [item.data for item in client.results(job.id)]
    urls = [item["url"].removeprefix(site.url) for item in items]
    assert urls == [
        "/index.html",
        "/news/index.html",
        "/guides/index.html",
        "/reference/index.html",
        "/about.html",
        "/missing.html",
    ], "breadth-first from the start page, one level deep, never off the site"
    assert [item["depth"] for item in items] == [0, 1, 1, 1, 1, 1]
    start = items[0]
    assert start["title"] == "Sample site"
    assert start["status"] == 200
    assert "https://example.org/" in start["links"], "off-site links are reported, not followed"
    assert items[-1]["status"] == 404
    assert done.result == {"start_url": f"{site.url}/index.html", "pages": 6, "not_crawled": 0}
    assert not any("example.org" in path for path in site.paths)
    wait_until(processes.gone, 5, "the browser and driver to exit")
    assert not profile_folders(job.id), "the profile folder is removed"


def test_cancel_closes_the_browser_and_keeps_the_pages(
    client: andon.Client, make_worker: MakeWorker, site: SiteServer
) -> None:
    site.delay_s = PAGE_DELAY_S
    make_worker()
    job = client.submit("crawl", {"start_url": f"{site.url}/index.html", "max_pages": 100})
    processes = JobProcesses(job.id)
    processes.wait_running()
    wait_items(client, job.id, 3, timeout=30)
    processes.look()
    requests_at_cancel = len(site.paths)

    stopped, _timing = cancel_and_measure(client, job.id, "crawl", processes.gone)

    cancel = assert_cancelled_with_history(client, stopped, bound_s=STOP_BOUND_S)
    assert cancel.stop_method is andon.StopMethod.COOPERATIVE, "stopped at the check between two pages"
    assert processes.gone(), "no Chromium and no driver of the job is left"
    assert not profile_folders(job.id)
    items = [item.data for item in client.results(stopped.id)]
    assert len(items) >= 3
    assert len(items) < 18, "the crawl did not run to its end"
    for item in items:
        assert set(item) == {"url", "depth", "title", "status", "links"}
        assert item["status"] == 200 or item["url"].endswith("/missing.html")
    assert len(site.paths) <= requests_at_cancel + 1, "at most the page in flight was still asked for"


def test_a_page_that_never_loads_is_stopped_by_sigterm(
    client: andon.Client, make_worker: MakeWorker, site: SiteServer
) -> None:
    make_worker()
    job = client.submit("crawl", {"start_url": f"{site.url}/hang"})
    assert site.hanging.wait(30), "the browser asked for the page"
    processes = JobProcesses(job.id)
    processes.wait_running()

    stopped, _timing = cancel_and_measure(client, job.id, "crawl (page hangs)", processes.gone)

    # The handler is stuck in page.goto, where it cannot check: after the grace period the
    # process runtime sends SIGTERM to the job's process group.
    grace = example_app.get("crawl").grace_s
    cancel = assert_cancelled_with_history(client, stopped, bound_s=2 * grace + 1.0)
    assert cancel.stop_method in (andon.StopMethod.TERMINATED, andon.StopMethod.KILLED), cancel
    assert cancel.stop_seconds is not None
    assert cancel.stop_seconds >= grace
    assert processes.gone()


def test_the_page_in_flight_when_the_grace_runs_out_is_crawled_on_resume(
    client: andon.Client, make_worker: MakeWorker, site: SiteServer
) -> None:
    make_worker()
    params = {"start_url": f"{site.url}/index.html", "max_pages": 100}
    whole = client.wait_finished(client.submit("crawl", params).id, timeout=60)
    assert whole.status is andon.JobStatus.SUCCEEDED, whole.error
    expected = [item.data["url"] for item in client.results(whole.id)]

    site.delay_s = PAGE_DELAY_S
    job = client.submit("crawl", params)
    processes = JobProcesses(job.id)
    processes.wait_running()
    wait_items(client, job.id, 3, timeout=30)
    # From now on a page takes longer than the grace period: the one asked for next is in
    # flight when the cancel comes, and the handler cannot reach a check before SIGTERM.
    site.delay_s = 60.0
    asked = len(site.paths)
    wait_until(lambda: any(p.endswith(".html") for p in site.paths[asked:]), 10, "the next page to be asked for")
    in_flight = next(p for p in site.paths[asked:] if p.endswith(".html"))

    stopped, _timing = cancel_and_measure(client, job.id, "crawl (page in flight)", processes.gone)

    assert stopped.cancel is not None
    assert stopped.cancel.stop_method in (andon.StopMethod.TERMINATED, andon.StopMethod.KILLED), stopped.cancel
    kept = [item.data["url"] for item in client.results(job.id)]
    assert kept == expected[: len(kept)], "the pages done before are kept, in order"
    assert stopped.checkpoint is not None
    assert stopped.checkpoint.items == len(kept)
    assert stopped.checkpoint.state["frontier"][0][0] == f"{site.url}{in_flight}", "the page in flight is next"

    site.delay_s = 0.0
    client.resume(job.id)
    finished = client.wait_finished(job.id, timeout=60)

    assert finished.status is andon.JobStatus.SUCCEEDED, finished.error
    urls = [item.data["url"] for item in client.results(job.id)]
    assert urls == expected, "every page crawled once, none lost, in the same breadth-first order"
    assert finished.result == {**(whole.result or {}), "pages": len(expected)}
    wait_until(processes.gone, 5, "the browser and driver to exit")


def test_timeout_stops_the_crawl_with_reason_timeout(
    client: andon.Client, make_worker: MakeWorker, site: SiteServer
) -> None:
    assert example_app.get("crawl").timeout_s == 45 * 60, "the kind's default timeout is 45 minutes"
    # Long enough for Chromium to start and keep a page even on a busy machine (2.5 s was
    # not, under a CPU hog); the site's six pages at 2 s each keep the crawl going past it.
    site.delay_s = 2.0
    make_worker()
    job = client.submit("crawl", {"start_url": f"{site.url}/index.html"}, timeout=8.0)
    processes = JobProcesses(job.id)
    processes.wait_running()
    stopped = client.wait_finished(job.id, timeout=30)

    assert stopped.status is andon.JobStatus.CANCELLED
    assert stopped.cancel is not None
    assert stopped.cancel.reason is andon.CancelReason.TIMEOUT
    assert stopped.items_count >= 1
    wait_until(processes.gone, 5, "the browser and driver to exit")
    assert not profile_folders(job.id)


def test_only_http_urls_are_crawled(client: andon.Client) -> None:
    # Refused before a job exists (tests/acceptance/test_examples_confinement.py has the rest).
    with pytest.raises(andon.InvalidParams) as refused:
        client.submit("crawl", {"start_url": "file:///etc/passwd"})
    assert refused.value.problems == ["start_url: not an http(s) URL: 'file:///etc/passwd'"]
    assert client.list_jobs().items == []
