"""Shared fixtures: a real SQLite store in a temporary folder, a client, a worker factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import andon
from andon.examples import app as example_app


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "andon.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[andon.SqliteStore]:
    with andon.SqliteStore(str(db_path)) as opened:
        yield opened


@pytest.fixture
def app() -> andon.App:
    return example_app


@pytest.fixture
def client(store: andon.SqliteStore, app: andon.App) -> andon.Client:
    return andon.Client(store, app, actor="test")


@pytest.fixture
def make_worker(store: andon.SqliteStore) -> Iterator[Callable[..., andon.Worker]]:
    """Start workers that are stopped (with a short grace) when the test ends."""
    workers: list[andon.Worker] = []

    def make(app: andon.App = example_app, **options: Any) -> andon.Worker:
        options.setdefault("shutdown_grace_s", 0.5)
        worker = andon.Worker(app, store, **options)
        worker.start()
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.stop()


# The tiers ./scripts/test --fast leaves out; CI runs every tier.
_TIER_BY_FILE = {
    "test_benchmarks_quick.py": "bench",
    "test_load_quick.py": "bench",
    "test_readme.py": "readme",
    "test_examples_crawl.py": "browser",  # the crawl example's own Chromium
    "test_postgres_faults.py": "faults",  # restarts, cuts off and kills PostgreSQL's clients
}


# What ./scripts/test runs alone, after the tests it runs on two processes.
_SERIAL = {
    # restarts the PostgreSQL server every other test shares
    "tests/acceptance/test_postgres_faults.py::test_a_server_restart_mid_run_loses_and_duplicates_nothing",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = item.path
        if "faults" in path.parts:
            item.add_marker(pytest.mark.faults)
        tier = _TIER_BY_FILE.get(path.name)
        if tier is not None:
            item.add_marker(getattr(pytest.mark, tier))
        if {"browser", "page"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.browser)
        if item.nodeid in _SERIAL:
            item.add_marker(pytest.mark.serial)
