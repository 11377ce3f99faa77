"""The worker's timing rules on a manual clock: escalation, timeouts, fencing and shutdown.

A real worker on a real SQLite store, with time moved on by the test instead of slept
through (``Worker(clock=ManualClock())``, the store on the same clock): each rule is taken
on purpose, at the moment the test chooses, whatever the machine's load. The real-time
version of each stop stays in the acceptance tier (tests/acceptance/test_escalation.py).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import andon
from andon import CancelReason, JobStatus, ManualClock, StopMethod
from andon._errors import StorageUnavailable
from tests.support import wait_until

pytestmark = pytest.mark.timeout(60)

GRACE_S = 2.0
LEASE_S = 30.0
app = andon.App(default_grace=GRACE_S)
release = threading.Event()
"""Set at the end of each test: lets a handler blocked in C code go (an abandoned thread)."""


@app.job("spin")
def spin(ctx: andon.Context) -> None:
    """Pure Python that never looks at its context: only an injected exception stops it."""
    ctx.emit({"started": True})
    n = 0
    while not release.is_set():
        n += 1


@app.job("spin_after_a_check")
def spin_after_a_check(ctx: andon.Context) -> None:
    """Reached a cancel point once (it listens), then spins: it gets the grace, then the injection."""
    ctx.check()
    ctx.emit({"started": True})
    n = 0
    while not release.is_set():
        n += 1


@app.job("spin_with_its_own_grace", grace=GRACE_S)
def spin_with_its_own_grace(ctx: andon.Context) -> None:
    """Never listens, but its kind set a grace itself: that grace holds for it too."""
    ctx.emit({"started": True})
    n = 0
    while not release.is_set():
        n += 1


@app.job("blocked")
def blocked(ctx: andon.Context) -> None:
    """Blocked in C code: nothing reaches it, so andon stops waiting for it."""
    ctx.emit({"started": True})
    release.wait()


@app.job("quick")
def quick(ctx: andon.Context) -> str:
    return "done"


@app.job("spin_async", isolation="async")
async def spin_async(ctx: andon.Context) -> None:
    """Blocks its event loop with sync code: cancelling its task cannot reach it."""
    ctx.emit({"started": True})
    n = 0
    while not release.is_set():
        n += 1


@app.job("spin_async_after_an_await", isolation="async")
async def spin_async_after_an_await(ctx: andon.Context) -> None:
    """Gave its loop control once (it listens), then blocks it with sync code."""
    await asyncio.sleep(0)
    ctx.emit({"started": True})
    n = 0
    while not release.is_set():
        n += 1


@app.job("polite")
def polite(ctx: andon.Context) -> None:
    """Checks often, on real time (a ``ctx.sleep`` would wait for the manual clock)."""
    ctx.emit({"started": True})
    while True:
        ctx.check()
        time.sleep(0.001)


@app.job("spin_process_default", isolation="process")
def spin_process_default(ctx: andon.Context) -> None:
    """Default settings, never looks at its context: SIGTERM at once."""
    ctx.emit({"started": True})
    n = 0
    while True:
        n += 1


@app.job("spin_process_after_a_check", isolation="process")
def spin_process_after_a_check(ctx: andon.Context) -> None:
    """Reached a cancel point once: its child tells the worker, and it gets the grace."""
    ctx.check()
    ctx.emit({"started": True})
    n = 0
    while True:
        n += 1


@app.job("spin_process", isolation="process", grace=GRACE_S)
def spin_process(ctx: andon.Context) -> None:
    ctx.emit({"started": True})
    n = 0
    while True:
        n += 1


@app.job("stubborn_process", isolation="process", grace=GRACE_S)
def stubborn_process(ctx: andon.Context) -> None:
    """Swallows the SIGTERM's ``Cancelled`` and spins on: only SIGKILL ends it."""
    ctx.emit({"started": True})
    try:
        while True:
            pass
    except andon.Cancelled:
        ctx.emit({"terminated": True})
        while True:
            pass


class Rig:
    def __init__(self, folder: Path) -> None:
        self.clock = ManualClock()
        self.store = andon.SqliteStore(str(folder / "clock.db"), clock=self.clock)
        self.store.open()
        self.client = andon.Client(self.store, app, actor="test")
        self.worker = andon.Worker(
            app, self.store, concurrency=1, lease_s=LEASE_S, shutdown_grace_s=10.0, clock=self.clock
        )

    def started(self, kind: str, **options: object) -> andon.Job:
        job = self.client.submit(kind, {}, **options)  # type: ignore[arg-type]  # test options
        wait_until(lambda: self.client.get(job.id).items_count > 0, timeout=20)
        return job

    def ended(self, job_id: str) -> andon.Job:
        return self.client.wait_finished(job_id, timeout=20)

    def steps(self, job_id: str) -> int:
        running = self.worker._running.get(job_id)
        return running.attempt.stop.steps_taken if running is not None else -1


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    release.clear()
    rig = Rig(tmp_path)
    rig.worker.start()
    try:
        yield rig
    finally:
        release.set()
        rig.worker.stop(grace_s=0)
        rig.store.close()


def injected(ended: andon.Job) -> bool:
    return (
        ended.status is JobStatus.CANCELLED
        and ended.cancel is not None
        and ended.cancel.stop_method is StopMethod.INJECTED
    )


def test_injection_comes_one_grace_after_the_request_to_a_handler_that_listens(rig: Rig) -> None:
    job = rig.started("spin_after_a_check")
    rig.client.cancel(job.id)
    rig.clock.advance(GRACE_S - 0.01)
    time.sleep(0.05)  # the monitor had time to act on a rung that would be due
    assert rig.steps(job.id) == 0
    assert rig.client.get(job.id).status is JobStatus.CANCELLING
    rig.clock.advance(0.02)
    ended = rig.ended(job.id)
    assert ended.status is JobStatus.CANCELLED
    assert ended.cancel is not None
    assert ended.cancel.stop_method is StopMethod.INJECTED


def test_a_handler_that_never_listened_is_injected_at_the_request(rig: Rig) -> None:
    """Not a grace later: the manual clock does not move, and the injection comes."""
    job = rig.started("spin")
    rig.client.cancel(job.id)
    assert injected(rig.ended(job.id))


def test_a_kinds_own_grace_holds_for_a_handler_that_never_listened(rig: Rig) -> None:
    job = rig.started("spin_with_its_own_grace")
    rig.client.cancel(job.id)
    rig.clock.advance(GRACE_S - 0.01)
    time.sleep(0.05)  # the monitor had time to act on a rung that would be due
    assert rig.steps(job.id) == 0
    rig.clock.advance(0.02)
    assert injected(rig.ended(job.id))


def test_a_cancel_with_no_grace_stops_a_listening_handler_at_once(rig: Rig) -> None:
    job = rig.started("spin_after_a_check")
    result = rig.client.cancel(job.id, grace=0)
    assert result.job.cancel is not None
    assert result.job.cancel.grace_s == 0
    assert injected(rig.ended(job.id))


def test_a_second_cancel_with_no_grace_brings_a_stop_under_way_forward(rig: Rig) -> None:
    job = rig.started("spin_after_a_check")
    rig.client.cancel(job.id)
    time.sleep(0.05)
    assert rig.steps(job.id) == 0
    again = rig.client.cancel(job.id, grace=0)
    assert again.outcome is andon.CancelOutcome.HURRIED
    assert injected(rig.ended(job.id))
    hurried = [e for e in rig.client.events(job.id) if e.message == "asked to stop within 0 s"]
    assert [(e.from_status, e.to_status, e.actor) for e in hurried] == [
        (JobStatus.CANCELLING, JobStatus.CANCELLING, "test")
    ]


def test_an_async_handler_that_blocks_its_loop_from_the_start_gets_the_injection_at_once(rig: Rig) -> None:
    job = rig.started("spin_async")
    rig.client.cancel(job.id)
    assert injected(rig.ended(job.id))


def test_an_async_handler_that_awaited_gets_the_grace_before_the_injection(rig: Rig) -> None:
    job = rig.started("spin_async_after_an_await")
    rig.client.cancel(job.id)
    rig.clock.advance(GRACE_S - 0.01)
    time.sleep(0.05)
    assert rig.steps(job.id) == 0
    rig.clock.advance(0.02)
    assert injected(rig.ended(job.id))


def test_a_process_that_never_looked_at_its_context_gets_sigterm_at_once(rig: Rig) -> None:
    job = rig.started("spin_process_default")
    rig.client.cancel(job.id)
    ended = rig.ended(job.id)
    assert ended.cancel is not None
    assert ended.cancel.stop_method is StopMethod.TERMINATED


def test_a_process_that_reached_a_cancel_point_gets_the_grace(rig: Rig) -> None:
    job = rig.started("spin_process_after_a_check")
    rig.client.cancel(job.id)
    rig.clock.advance(GRACE_S - 0.01)
    time.sleep(0.1)
    assert rig.steps(job.id) == 0
    assert rig.client.get(job.id).status is JobStatus.CANCELLING
    rig.clock.advance(0.02)
    ended = rig.ended(job.id)
    assert ended.cancel is not None
    assert ended.cancel.stop_method is StopMethod.TERMINATED


def test_a_thread_blocked_in_c_code_is_abandoned_and_its_slot_replaced(rig: Rig) -> None:
    threads_before = set(threading.enumerate())
    job = rig.started("blocked")
    rig.client.cancel(job.id)
    # It never listened: the injection is due at once (it cannot land in C code).
    wait_until(lambda: rig.steps(job.id) == 1, timeout=10)
    assert rig.client.get(job.id).status is JobStatus.CANCELLING  # injected, still stuck
    rig.clock.advance(GRACE_S)
    ended = rig.ended(job.id)
    assert ended.cancel is not None
    assert ended.cancel.stop_method is StopMethod.ABANDONED
    # The worker's only slot thread is still blocked: a job that runs now runs on its replacement.
    following = rig.client.submit("quick", {})
    assert rig.ended(following.id).result == "done"
    # Shutting down does not wait for the abandoned thread (it would hang), which ends by
    # itself when its C call returns.
    rig.worker.stop(grace_s=0)
    release.set()
    for thread in set(threading.enumerate()) - threads_before:
        thread.join(10)
        assert not thread.is_alive(), thread


def test_a_process_gets_sigterm_one_grace_after_the_request(rig: Rig) -> None:
    job = rig.started("spin_process")
    rig.client.cancel(job.id)
    rig.clock.advance(GRACE_S)
    ended = rig.ended(job.id)
    assert ended.cancel is not None
    assert ended.cancel.stop_method is StopMethod.TERMINATED


def test_a_process_that_survives_sigterm_is_killed_one_grace_later(rig: Rig) -> None:
    job = rig.started("stubborn_process")
    rig.client.cancel(job.id)
    rig.clock.advance(GRACE_S)
    wait_until(lambda: rig.client.get(job.id).items_count == 2, timeout=20)  # it caught the SIGTERM
    assert rig.client.get(job.id).status is JobStatus.CANCELLING
    rig.clock.advance(GRACE_S)
    ended = rig.ended(job.id)
    assert ended.cancel is not None
    assert ended.cancel.stop_method is StopMethod.KILLED


def test_a_timeout_comes_at_its_moment(rig: Rig) -> None:
    job = rig.started("polite", timeout=5.0)
    rig.clock.advance(4.9)
    time.sleep(0.3)  # more than a control tick: a timeout that were due would be sent
    assert rig.client.get(job.id).status is JobStatus.RUNNING
    rig.clock.advance(0.2)
    ended = rig.ended(job.id)
    assert ended.cancel is not None
    assert (ended.cancel.reason, ended.cancel.stop_method) == (CancelReason.TIMEOUT, StopMethod.COOPERATIVE)


def test_an_attempt_not_vouched_for_is_fenced_before_its_lease_ends(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    job = rig.started("polite")

    def unavailable(*_args: object, **_kwargs: object) -> list[str]:
        raise StorageUnavailable("the store is away (test)")

    monkeypatch.setattr(rig.store, "renew_leases", unavailable)
    rig.clock.advance(LEASE_S * 2 / 3 - 0.1)
    time.sleep(0.05)
    assert rig.worker._running[job.id].attempt.stop.fenced is False
    rig.clock.advance(0.2)
    # Stopped, and back in the queue for another attempt (which this worker may claim).
    wait_until(lambda: any(e.reason == CancelReason.LEASE_LOST for e in rig.client.events(job.id)), timeout=10)
    first_end = [e for e in rig.client.events(job.id) if e.attempt == 1 and e.to_status is JobStatus.QUEUED]
    assert first_end, "attempt 1 did not end back in the queue"


def test_shutdown_waits_its_grace_then_puts_running_jobs_back(rig: Rig) -> None:
    job = rig.started("polite")
    stopper = threading.Thread(target=rig.worker.stop)  # shutdown_grace_s=10 on this clock
    stopper.start()
    rig.clock.advance(9.9)
    time.sleep(0.1)
    assert stopper.is_alive()
    assert rig.client.get(job.id).status is JobStatus.RUNNING
    rig.clock.advance(0.2)
    stopper.join(timeout=20)
    assert not stopper.is_alive()
    back = rig.client.get(job.id)
    assert back.status is JobStatus.QUEUED
    assert any(event.reason == CancelReason.SHUTDOWN for event in rig.client.events(job.id))
