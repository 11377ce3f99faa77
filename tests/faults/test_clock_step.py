"""A step of the wall clock costs no healthy job its lease (issue 12, item 6).

A VM resume or a first NTP sync moves the wall clock by a minute at once; leases judged on
it expired together and healthy jobs were recovered as lost. Leases are now judged on a
clock that does not step: the database server's on PostgreSQL, ``CLOCK_BOOTTIME`` on SQLite.

The step is injected through the store's clock (``now()`` is what the store stamps and
shows; ``lease_now() -> None`` leaves leases to the store's own clock), so the real
machine's clock is left alone while real workers run real jobs.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import andon
from andon._ids import new_job_id
from andon._storage import NewJob, Store
from andon._storage._postgres import PostgresStore
from tests.postgres import fresh_schema
from tests.support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

LEASE_S = 2.0
app = andon.App(default_grace=0.5)


@app.job("patient")
def patient(ctx: andon.Context) -> None:
    while True:
        ctx.sleep(0.05)


class SteppingClock:
    """The real wall clock, plus steps a test makes; leases stay on the store's own clock."""

    def __init__(self) -> None:
        self.offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.time() + self.offset

    def lease_now(self) -> None:
        return None

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        return event.wait(timeout)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def step(self, seconds: float) -> None:
        with self._lock:
            self.offset += seconds


@pytest.fixture(params=["sqlite", "postgres"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "sqlite":
        yield "sqlite", str(tmp_path / "step.db")
    else:
        with fresh_schema() as url:
            yield "postgres", url


def open_store(kind: str, where: str, clock: SteppingClock) -> Store:
    store: Store = andon.SqliteStore(where, clock=clock) if kind == "sqlite" else PostgresStore(where, clock=clock)
    store.open()
    return store


@pytest.mark.parametrize("step_s", [60.0, -60.0])
def test_a_wall_clock_step_fails_no_healthy_job(opener: tuple[str, str], step_s: float) -> None:
    clock = SteppingClock()
    with contextlib.ExitStack() as stack:
        stores = [open_store(*opener, clock) for _ in range(3)]
        for store in stores:
            stack.callback(store.close)
        client = andon.Client(stores[0], app, actor="test")
        jobs = [client.submit("patient", {}) for _ in range(8)]
        workers = [andon.Worker(app, s, concurrency=4, lease_s=LEASE_S, shutdown_grace_s=0.5) for s in stores[1:]]
        for worker in workers:
            worker.start()
            stack.callback(worker.stop)
        wait_until(lambda: all(client.get(j.id).status is andon.JobStatus.RUNNING for j in jobs), timeout=30)
        clock.step(step_s)
        # Three lease periods: every worker renews and runs recovery several times.
        time.sleep(3 * LEASE_S)
        states = {client.get(j.id).status for j in jobs}
        assert states == {andon.JobStatus.RUNNING}, f"healthy jobs ended after a {step_s:+g} s step: {states}"
        for job in jobs:
            client.cancel(job.id)
        for job in jobs:
            ended = client.wait_finished(job.id, timeout=30)
            assert ended.status is andon.JobStatus.CANCELLED
            assert ended.attempt == 1
            assert not any(e.reason == "worker_lost" for e in client.events(job.id))


def test_after_a_reboot_every_job_of_the_old_boot_is_recovered_at_once(tmp_path: Path) -> None:
    """SQLite is one machine: a new boot id means every worker of the old boot is gone."""
    path = tmp_path / "boot.db"
    with andon.SqliteStore(str(path)) as store:
        store.submit([NewJob(id=new_job_id(), kind="patient", params={})], actor="test")
        claimed = store.claim("w-old-boot", ["patient"], 3600.0)
        assert claimed is not None
        assert store.recover_lost() == []  # this boot: the hour-long lease holds
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE andon_meta SET value = 'an-earlier-boot' WHERE key = 'boot_id'")
        recovered = store.recover_lost()
        assert [job.id for job in recovered] == [claimed.id]
        assert store.get(claimed.id).status is andon.JobStatus.FAILED
        assert store.recover_lost() == []  # the new boot id is kept
