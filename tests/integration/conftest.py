"""Fixtures of the store suites: every store the contract runs against, on a manual clock."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import andon
from andon import ManualClock
from andon._storage._engine import StoreEngine
from andon._storage._postgres import PostgresStore
from tests.postgres import fresh_schema


@dataclass
class Backend:
    """One store under test, plus a way to reach the same database through another store object."""

    store: StoreEngine
    clock: ManualClock
    peer: Callable[[], StoreEngine]
    """Another store on the same database (its own connections), opened; the test closes it."""


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=["sqlite", "sqlite-memory", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock) -> Iterator[Backend]:
    with contextlib.ExitStack() as cleanup:
        yield from _backend(request.param, tmp_path, clock, cleanup)


def _backend(name: str, tmp_path: Path, clock: ManualClock, cleanup: contextlib.ExitStack) -> Iterator[Backend]:
    store: StoreEngine
    if name == "sqlite":
        path = str(tmp_path / "x.db")
        store = andon.SqliteStore(path, clock=clock)

        def peer() -> StoreEngine:
            other = andon.SqliteStore(path, clock=clock)
            other.open()
            return other

    elif name == "sqlite-memory":
        store = andon.SqliteStore(":memory:", clock=clock)

        def peer() -> StoreEngine:
            # A private in-memory database has no other way in; the same store object still
            # opens a connection of its own per thread (and the watcher has its own).
            return store

    elif name == "postgres":
        url = cleanup.enter_context(fresh_schema())
        store = PostgresStore(url, clock=clock)

        def peer() -> StoreEngine:
            other = PostgresStore(url, clock=clock)
            other.open()
            return other

    else:  # pragma: no cover - a new param without a branch
        raise AssertionError(name)
    store.open()
    try:
        yield Backend(store, clock, peer)
    finally:
        store.close()


@pytest.fixture
def store(backend: Backend) -> StoreEngine:
    return backend.store
