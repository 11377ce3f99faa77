"""Two stop requests during one stop: the job ends as the strongest accepted one asked
(issue 12, item 7), on every store.

Before, a cancel (or a force-fail without retry) that arrived while a retrying force-fail
was in flight was answered ``cancelling`` and then ignored: the job went back to the queue
and ran again. Every ordered pair of requests is tried against each backend, through the
one-job path and the bulk path, and the worker's stop is recorded as it really happens.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import andon
from andon import CancelReason, JobStatus, ManualClock, StopMethod
from andon._ids import new_job_id
from andon._jobs import ALLOWED_TRANSITIONS, CancelOutcome, Outcome, OutcomeKind, stop_strength
from andon._storage import JobFilter, NewJob
from andon._storage._engine import StoreEngine
from andon._storage._postgres import PostgresStore
from tests.postgres import fresh_schema


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreEngine]:
    with contextlib.ExitStack() as stack:
        opened: StoreEngine
        if request.param == "sqlite":
            opened = andon.SqliteStore(str(tmp_path / "stops.db"), clock=ManualClock())
        else:
            opened = PostgresStore(stack.enter_context(fresh_schema()), clock=ManualClock())
        opened.open()
        stack.callback(opened.close)
        yield opened


def running_job(store: StoreEngine) -> andon.Job:
    store.submit([NewJob(id=new_job_id(), kind="a", params={}, max_attempts=3)], actor="tester")
    job = store.claim("w1", ("a",), 30.0)
    assert job is not None
    return job


def assert_one_transition_per_change(store: StoreEngine, job_id: str) -> None:
    state = JobStatus.QUEUED
    for event in store.events(job_id)[1:]:
        if event.from_status is not None and event.to_status is not None and event.from_status != event.to_status:
            assert (event.from_status, event.to_status) in ALLOWED_TRANSITIONS, event
            assert event.from_status == state, event
            state = event.to_status
    assert state == store.get(job_id).status


@dataclass(frozen=True)
class Request:
    name: str
    reason: CancelReason
    retry: bool = True

    def send(self, store: StoreEngine, job_id: str, *, bulk: bool = False) -> None:
        if bulk and self.reason is not CancelReason.FORCED:
            store.request_cancel_many(JobFilter(ids=[job_id]), self.reason, by=self.name)
        else:
            store.request_cancel(job_id, self.reason, by=self.name, retry=self.retry)

    @property
    def ends_as(self) -> JobStatus:
        """What a job stopped for this request alone ends as (it has retries left)."""
        if self.reason is CancelReason.FORCED:
            return JobStatus.QUEUED if self.retry else JobStatus.FAILED
        return JobStatus.CANCELLED


REQUESTS = [
    Request("cancel", CancelReason.USER),
    Request("timeout", CancelReason.TIMEOUT),
    Request("fail-retry", CancelReason.FORCED, retry=True),
    Request("fail-no-retry", CancelReason.FORCED, retry=False),
]
PAIRS = list(itertools.product(REQUESTS, repeat=2))


def strongest(first: Request, second: Request) -> Request:
    """The first of the two unless the second is strictly stronger."""
    if stop_strength(second.reason, second.retry) > stop_strength(first.reason, first.retry):
        return second
    return first


@pytest.mark.parametrize("bulk", [False, True], ids=["one", "bulk"])
@pytest.mark.parametrize(("first", "second"), PAIRS, ids=[f"{a.name}+{b.name}" for a, b in PAIRS])
def test_two_requests_during_a_stop_end_as_the_strongest(
    store: StoreEngine, first: Request, second: Request, bulk: bool
) -> None:
    running = running_job(store)
    job = running
    first.send(store, job.id)
    second.send(store, job.id, bulk=bulk)
    held = store.get(job.id)
    assert held.status is JobStatus.CANCELLING
    wanted = strongest(first, second)
    assert held.cancel is not None
    assert (held.cancel.reason, held.cancel.by) == (wanted.reason, wanted.name)
    stop = Outcome(OutcomeKind.STOPPED, stop_method=StopMethod.COOPERATIVE, stopped_at=1.0)
    ended = store.settle("w1", running.attempt, job.id, stop, None)
    assert ended.status is wanted.ends_as
    assert ended.attempt == 1
    if ended.status is not JobStatus.QUEUED:
        assert store.claim("w2", ("a",), 30.0) is None, "a stopped job ran again"
    assert_one_transition_per_change(store, job.id)


def test_a_weaker_request_changes_nothing_and_says_so(store: StoreEngine) -> None:
    job = running_job(store)
    store.request_cancel(job.id, CancelReason.FORCED, by="bob", retry=False)
    events = store.events(job.id)
    for reason, retry in ((CancelReason.USER, True), (CancelReason.FORCED, True)):
        again = store.request_cancel(job.id, reason, by="carol", retry=retry)
        assert again.outcome is CancelOutcome.ALREADY
    assert store.events(job.id) == events


def test_a_delete_in_flight_is_never_overruled(store: StoreEngine) -> None:
    job = running_job(store)
    store.request_cancel(job.id, CancelReason.DELETED, by="alice")
    for request in REQUESTS:
        assert store.request_cancel(job.id, request.reason, by=request.name, retry=request.retry).outcome is (
            CancelOutcome.ALREADY
        )
    held = store.get(job.id)
    assert held.cancel is not None
    assert held.cancel.reason is CancelReason.DELETED


# -- with a real worker: the second request arrives while the handler is stopping ------

app = andon.App(default_grace=5.0)
saw_stop = threading.Event()
may_stop = threading.Event()
listening = threading.Event()
"""Set once the handler has reached a cancel point: it listens, so the stop gives it its
grace instead of an injection at once (which could land before its ``try``)."""


@app.job("slow_to_stop", retry=andon.Retry(max_attempts=3))
def slow_to_stop(ctx: andon.Context) -> None:
    if ctx.attempt > 1:
        ctx.emit({"ran_again": ctx.attempt})
        return
    try:
        while True:
            ctx.sleep(0.01)
            listening.set()
    finally:
        saw_stop.set()
        may_stop.wait(10)  # held here until the test has sent its second request


@pytest.mark.timeout(60)
@pytest.mark.parametrize("second", [r for r in REQUESTS if r.name != "fail-retry"], ids=lambda r: str(r.name))
def test_a_worker_honours_a_cancel_sent_after_a_retrying_force_fail(store: StoreEngine, second: Request) -> None:
    saw_stop.clear()
    may_stop.clear()
    listening.clear()
    client = andon.Client(store, app, actor="test")
    worker = andon.Worker(app, store, concurrency=1, shutdown_grace_s=0.5)
    worker.start()
    try:
        job = client.submit("slow_to_stop", {})
        assert listening.wait(20)
        assert client.fail(job.id).job.status is JobStatus.CANCELLING
        assert saw_stop.wait(10)
        if second.reason is CancelReason.FORCED:
            answered = client.fail(job.id, retry=second.retry).job
        else:
            answered = client.cancel(job.id).job
        assert answered.status is JobStatus.CANCELLING
        may_stop.set()
        ended = client.wait_finished(job.id, timeout=20)
    finally:
        may_stop.set()
        worker.stop()
    assert ended.status is second.ends_as
    assert ended.attempt == 1, "the job ran again after a stronger stop was accepted"
    assert client.results(job.id) == []
