"""``crawl``: a breadth-first crawl of one site with a real headless browser.

Playwright (sync API) drives Debian's Chromium in a profile folder of the job's own
(``--user-data-dir``), so the job's browser processes are easy to tell from any other.

Why ``isolation="process"``: Chromium is started by Playwright's driver (a Node.js
process), not by ``ctx.popen``, so andon's child-process tracking does not see it. In a
process of its own, the handler and the driver share the job's process group, which andon
kills when the job ends, whichever way it ends; Chromium (which Playwright starts in a
session of its own) exits as soon as the driver's pipe to it closes. So the browser is gone
on every exit path, even when the driver hangs.

Where it may go: ``start_url`` must be on a loopback host or on one ``ANDON_CRAWL_ALLOW``
names (see ``_confinement``), and Chromium is started with resolver rules that fail every
other host, so a redirect, an image or a script on a crawled page cannot reach one either.

What a cancel does: the crawl loop checks between pages, so the page being loaded finishes
(or times out after ``page_timeout_s``) and then the handler raises ``andon.Cancelled``;
the cleanups close the browser, stop the driver and remove the profile folder. A page that
takes longer than the kind's ``grace`` to load gets the process SIGTERM'd instead, which
ends it the same way. Pages crawled before are kept as items.

Resume: a checkpoint before the first page and after each one stores the pages crawled, the
URLs visited and the frontier (the URLs queued, with their depth). A page leaves the
frontier only in the checkpoint stored after its item, so the page in flight when the grace
period runs out is still in the last checkpoint's frontier: a resumed crawl loads it again,
first, and goes on breadth-first; no page is crawled twice, none is lost. A crawl whose
visited set and frontier outgrow a checkpoint (64 KiB as JSON, some 1,000 URLs) keeps going
without storing more: a resume then goes on from the last checkpoint that fit, and the pages
after it are crawled again (their items of the stopped attempt are dropped, so none is
stored twice).
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any, Final

from pydantic import Field

from andon import ConfigurationError, Context, ResultTooLarge
from andon.examples import app
from andon.examples._confinement import CrawlUrl, checked_crawl_url, crawl_resolver_rules

if TYPE_CHECKING:
    from playwright.sync_api import Page

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "CRAWL_BROWSERS", "crawl"]

CHROMIUM: Final = "/usr/bin/chromium"
"""Debian's Chromium (apt-get install chromium); Playwright's own browser downloads are not used."""

CHROMIUM_ARGS: Final = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

MAX_LINKS_PER_ITEM: Final = 500

CRAWL_BROWSERS: Final = 2
"""Crawls running at once across every worker of the store (``max_running``): each holds a
Chromium of a few hundred MiB, and more crawls than this wait queued (a cancel withdraws one
at once) instead of each worker slot starting a browser."""


@app.job("crawl", isolation="process", timeout=45 * 60, grace=2.0, max_running=CRAWL_BROWSERS)
def crawl(
    ctx: Context,
    start_url: CrawlUrl,
    max_pages: Annotated[int, Field(ge=1, le=100_000)] = 50,
    max_depth: Annotated[int, Field(ge=0, le=1000)] = 3,
    page_timeout_s: Annotated[float, Field(gt=0)] = 30.0,
) -> dict[str, Any]:  # Any: a JSON summary
    """Crawl a site breadth-first from start_url (same origin only) in headless Chromium; one item per page.

    start_url must be on a loopback host, or on a host named in ANDON_CRAWL_ALLOW.
    """
    from playwright.sync_api import sync_playwright

    # Checked again here: the worker's allow-list, not the submitter's, is what counts.
    host = checked_crawl_url("start_url", start_url)
    start = _normalised(start_url)
    origin = _origin(start)
    if not os.access(CHROMIUM, os.X_OK):
        raise ConfigurationError(f"Chromium is not installed at {CHROMIUM} (Debian: apt-get install chromium)")
    # Cleanups run in reverse order: close the browser, stop the driver, then remove the
    # profile folder (Chromium writes to it until it exits). The job id in the folder's
    # name lets anyone find this job's browser processes by their command line.
    profile = ctx.enter(_profile_folder(ctx.job_id))
    playwright = ctx.enter(sync_playwright())
    browser = playwright.chromium.launch_persistent_context(
        profile, executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, *_confined_args(host)]
    )
    ctx.on_cleanup(browser.close)
    page = browser.new_page()
    page.set_default_timeout(page_timeout_s * 1000)

    site = _Crawl.resumed(ctx.resumed) if ctx.resumed else _Crawl.starting_at(start)
    if not ctx.resumed:
        site.save(ctx)  # so that even a stop while the first page loads can be resumed
    while site.frontier and site.crawled < max_pages:
        # The cancel point: a sync Playwright call cannot be interrupted from here, so a
        # cancel is seen between two pages (a stuck page is the grace period's business).
        ctx.check()
        url, depth = site.frontier[0]
        item = _visit(page, url, depth)
        ctx.emit(item)
        site.visited(url, item["links"] if depth < max_depth else [], depth, origin)
        site.save(ctx)
        ctx.progress(site.crawled, min(max_pages, site.crawled + len(site.frontier)), url)
    return {"start_url": start, "pages": site.crawled, "not_crawled": len(site.frontier)}


_PROFILE_REMOVAL_S: Final = 1.5
"""How long the profile folder's removal keeps trying while a closing Chromium writes to it."""


@contextlib.contextmanager
def _profile_folder(job_id: str) -> Iterator[str]:
    """The browser's profile folder, removed when the job ends. Chromium may still be writing
    to it as it exits (it leaves when the driver's pipe closes, in a session of its own): a
    single removal then left files created behind it (seen under a CPU hog), so the removal
    goes on until the folder is gone, for a moment at most (the grace bounds the cleanups)."""
    folder = tempfile.mkdtemp(prefix=f"andon-crawl-{job_id}-")
    try:
        yield folder
    finally:
        give_up = time.monotonic() + _PROFILE_REMOVAL_S
        shutil.rmtree(folder, ignore_errors=True)
        while os.path.exists(folder) and time.monotonic() < give_up:
            time.sleep(0.05)
            shutil.rmtree(folder, ignore_errors=True)


class _Crawl:
    """Where a crawl stands: pages crawled, URLs seen, and the frontier, whose head is the
    page being loaded until its item is out."""

    def __init__(self, crawled: int, visited: list[str], frontier: list[tuple[str, int]]) -> None:
        self.crawled = crawled
        self._visited = visited
        self.frontier = collections.deque(frontier)
        self._seen = {*visited, *(url for url, _depth in frontier)}

    @classmethod
    def starting_at(cls, start: str) -> _Crawl:
        return cls(0, [], [(start, 0)])

    @classmethod
    def resumed(cls, state: dict[str, Any]) -> _Crawl:  # Any: a JSON state
        return cls(int(state["crawled"]), list(state["visited"]), [(url, int(d)) for url, d in state["frontier"]])

    def visited(self, url: str, links: list[str], depth: int, origin: tuple[str, str]) -> None:
        """``url`` (the frontier's head) was crawled; its ``links`` on the origin join the frontier."""
        self.frontier.popleft()
        self._visited.append(url)
        self.crawled += 1
        for link in links:
            if link not in self._seen and _origin(link) == origin:
                self._seen.add(link)
                self.frontier.append((link, depth + 1))

    def save(self, ctx: Context) -> None:
        # Too large, the last checkpoint that fit stays the one a resume starts from (see above).
        with contextlib.suppress(ResultTooLarge):
            ctx.checkpoint({"crawled": self.crawled, "visited": self._visited, "frontier": list(self.frontier)})


def _confined_args(start_host: str) -> list[str]:
    """Chromium flags that keep every request of the browser on the allowed hosts.

    No proxy: a proxy would resolve the names itself, past the resolver rules. And no
    WebRTC over UDP: a page's script could send STUN packets to any IP address, and those
    never go through the resolver.
    """
    return [
        "--no-proxy-server",
        f"--host-resolver-rules={crawl_resolver_rules(start_host)}",
        "--webrtc-ip-handling-policy=disable_non_proxied_udp",
    ]


def _visit(page: Page, url: str, depth: int) -> dict[str, Any]:  # Any: a JSON item
    """``{url, depth, title, status, links}`` of one page; a page that fails to load gets ``error``."""
    from playwright.sync_api import Error as PlaywrightError

    try:
        response = page.goto(url, wait_until="load")
        hrefs: list[str] = page.eval_on_selector_all("a[href]", "anchors => anchors.map(a => a.href)")
        title = page.title()
    except PlaywrightError as exc:
        return {"url": url, "depth": depth, "title": None, "status": None, "links": [], "error": exc.message}
    links = list(dict.fromkeys(link for link in map(_normalised_or_none, hrefs) if link))
    return {
        "url": url,
        "depth": depth,
        "title": title,
        "status": response.status if response is not None else None,
        "links": links[:MAX_LINKS_PER_ITEM],
    }


def _normalised(url: str) -> str:
    """``url`` without its fragment. Raises ``ValueError`` unless it is an http(s) URL."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, ""))


def _normalised_or_none(url: str) -> str | None:
    try:
        return _normalised(url)
    except ValueError:
        return None  # mailto:, javascript: and the like: not pages to crawl


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.netloc.lower()
