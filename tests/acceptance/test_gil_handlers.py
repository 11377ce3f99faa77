"""A handler that holds the GIL does not hold up the stops (issue 20, item 3).

A thread-isolated handler spinning in a pure-Python loop never lets go of the GIL; every
other thread of its worker gets it back only when the interpreter hands it over. These
tests run such a handler beside cooperative ones on one worker, against both stores, and
cancel them through the store (as a cancel from another process comes: the store's
watcher or listener, then the worker's control thread, then the monitor), and check that
the cooperative jobs stop promptly and the spinning one is injected on time.

The process's switch interval is set long (0.5 s) for these tests, as an application may
set it: while a handler runs on a worker thread andon shortens it
(``andon._runtimes._switching``). Without that, each hand-off to a worker thread costs up
to 0.5 s here, and the cooperative stops took 2-4 s. The bounds are generous (a loaded
machine); ``benchmarks/gil.py`` reports the real figures.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import andon
from andon._cancel import CancelReason
from andon._runtimes._switching import HANDOFF_S
from andon._storage import Store
from andon._storage._postgres import PostgresStore
from tests.postgres import fresh_schema
from tests.support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

SPIN_GRACE_S = 0.5
PROMPT_S = 1.0
"""Generous: a cooperative stop under a spinning neighbour takes milliseconds (see the benchmark)."""
ESCALATION_SLACK_S = 2.0
"""Generous: the injection comes milliseconds after the grace (see the benchmark)."""
LONG_SWITCH_INTERVAL_S = 0.5

app = andon.App()
seen_intervals: list[float] = []


@app.job("spin", grace=SPIN_GRACE_S)
def spin(ctx: andon.Context) -> None:
    """Holds the GIL in a pure-Python loop and never looks at ``ctx`` again."""
    seen_intervals.append(sys.getswitchinterval())
    ctx.emit({"started": True})
    spins = 0
    try:
        while True:
            spins += 1
    finally:
        ctx.emit({"finally": True})


@app.job("spin_async", grace=SPIN_GRACE_S)
async def spin_async(ctx: andon.Context) -> None:
    """``spin`` as an async handler: it blocks its event loop as well as the GIL."""
    seen_intervals.append(sys.getswitchinterval())
    ctx.emit({"started": True})
    spins = 0
    try:
        while True:
            spins += 1
    finally:
        ctx.emit({"finally": True})


@app.job("steps")
def steps(ctx: andon.Context) -> None:
    """Cooperative: a millisecond of sleep (the GIL let go), then ``ctx.check()``."""
    ctx.emit({"started": True})
    while True:
        time.sleep(0.001)
        ctx.check()


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with contextlib.ExitStack() as stack:
        store: Store
        if request.param == "sqlite":
            store = andon.SqliteStore(str(tmp_path / "gil.db"))
        else:
            store = PostgresStore(stack.enter_context(fresh_schema()))
        store.open()
        stack.callback(store.close)
        yield store


@pytest.fixture
def long_switch_interval() -> Iterator[float]:
    """The interval set, as the interpreter keeps it (whole microseconds, read back as a float)."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(LONG_SWITCH_INTERVAL_S)
    try:
        yield sys.getswitchinterval()
    finally:
        sys.setswitchinterval(before)


@contextlib.contextmanager
def running(store: Store, concurrency: int) -> Iterator[andon.Worker]:
    worker = andon.Worker(app, store, concurrency=concurrency, shutdown_grace_s=0.5, scheduler=False)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


def started(client: andon.Client, job_id: str) -> None:
    wait_until(lambda: client.get(job_id).items_count >= 1, 20, f"job {job_id} to start")


def cancel_through_the_store(store: Store, job_id: str) -> None:
    """Record the cancel as another process would: the worker hears of it through the store
    (a client of this process would also tell it directly, through ``andon._hub``)."""
    result = store.request_cancel(job_id, CancelReason.USER, "test")
    assert result.job.status is andon.JobStatus.CANCELLING


def stopped(client: andon.Client, job_id: str, method: andon.StopMethod) -> float:
    """Wait for the job to end cancelled by ``method``; seconds from the request to the work's stop."""
    job = client.wait_finished(job_id, timeout=30)
    assert job.status is andon.JobStatus.CANCELLED, job
    assert job.cancel is not None
    assert job.cancel.stop_method is method, job.cancel
    assert job.cancel.stop_seconds is not None
    return job.cancel.stop_seconds


@pytest.mark.usefixtures("long_switch_interval")
def test_neighbours_stop_promptly_and_the_spinning_handler_is_injected_on_time(any_store: Store) -> None:
    client = andon.Client(any_store, app, actor="test")
    with running(any_store, concurrency=4):
        spinning = client.submit("spin")
        neighbours = [client.submit("steps") for _ in range(3)]
        for job in (spinning, *neighbours):
            started(client, job.id)
        for job in neighbours:
            cancel_through_the_store(any_store, job.id)
            took = stopped(client, job.id, andon.StopMethod.COOPERATIVE)
            assert took < PROMPT_S, f"a cooperative job took {took:.2f} s to stop beside a spinning one"
        cancel_through_the_store(any_store, spinning.id)
        took = stopped(client, spinning.id, andon.StopMethod.INJECTED)
    assert SPIN_GRACE_S <= took < SPIN_GRACE_S + ESCALATION_SLACK_S, f"injected after {took:.2f} s"
    assert [item.data for item in client.results(spinning.id)] == [{"started": True}, {"finally": True}]


@pytest.mark.parametrize("kind", ["spin", "spin_async"])
def test_the_switch_interval_is_short_only_while_a_handler_runs_on_a_worker_thread(
    any_store: Store, long_switch_interval: float, kind: str
) -> None:
    client = andon.Client(any_store, app, actor="test")
    seen_intervals.clear()
    with running(any_store, concurrency=2) as worker:
        job = client.submit(kind)
        started(client, job.id)
        assert seen_intervals == [pytest.approx(HANDOFF_S)]
        cancel_through_the_store(any_store, job.id)
        stopped(client, job.id, andon.StopMethod.INJECTED)
        # Its end is recorded, so its runtime is done with it: the interval it replaced is back
        # while the worker goes on.
        assert sys.getswitchinterval() == long_switch_interval
        assert worker.state is andon.WorkerState.RUNNING
