"""Fixtures the acceptance tests share."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from typer.testing import CliRunner, Result

import andon
from andon.cli import cli
from andon.examples import app as example_app
from tests.acceptance.serving import Served, serve
from tests.postgres import fresh_schema

CHROMIUM = "/usr/bin/chromium"  # Debian's: test tools never download a browser here
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium for one test module: missing, it skips the tests (fails under CI=true)."""
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium (./scripts/test installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context and page; any uncaught script error on it fails the test."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert errors == [], errors


@pytest.fixture
def empty_schema() -> Iterator[str]:
    """The URL of a PostgreSQL schema of its own with no tables (skips loudly when the server is missing)."""
    with fresh_schema(migrate=False) as url:
        yield url


# -- a dashboard server (test_dashboard*.py; a module may define its own instead) -----------


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dashboard")


@pytest.fixture(scope="module")
def server(folder: Path) -> Iterator[Served]:
    """``andon serve`` with the example kinds over a SQLite file, one per test module."""
    served = serve(folder, "--db", f"sqlite:///{folder / 'andon.db'}", "--no-demo-jobs", "--shutdown-grace", "0.5")
    yield served
    assert served.stop() == 0, served.output()


@pytest.fixture(scope="module")
def jobs(server: Served, folder: Path) -> Iterator[andon.Client]:
    """A client on the server's database, to set up jobs and check what the page shows."""
    with andon.connect(f"sqlite:///{folder / 'andon.db'}", example_app, actor="test") as client:
        yield client


@pytest.fixture
def run(db_path: Path) -> Callable[..., Result]:
    """Run one ``andon`` command against the test's SQLite file; a traceback in its output
    fails the test (bad input gets one line and a non-zero exit, never a traceback)."""
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        result = runner.invoke(cli, [*args, "--db", f"sqlite:///{db_path}"])
        assert "Traceback" not in result.output, result.output
        return result

    return invoke
