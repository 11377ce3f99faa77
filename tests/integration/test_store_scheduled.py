"""Scheduled jobs as every store must keep them (issue 17): not claimable before their due
time, claimable from it, withdrawn by a cancel before it, found by the ``scheduled`` filter,
and the next due time known to idle workers. Time from a ``ManualClock``.
"""

from __future__ import annotations

import andon
from andon import CancelReason, JobStatus, ManualClock, StopMethod
from andon._storage._engine import StoreEngine
from tests.integration.test_store_contract import claim, new_job

LEASE_S = 30.0


def scheduled(store: StoreEngine, *, delay_s: float | None = None, available_at: float | None = None) -> andon.Job:
    return store.submit([new_job(delay_s=delay_s, available_at=available_at)], actor="tester")[0]


def test_a_job_due_later_is_not_claimed_before_its_time(store: StoreEngine, clock: ManualClock) -> None:
    job = scheduled(store, delay_s=60.0)
    assert job.available_at == clock.now() + 60.0
    assert job.due_at == job.available_at
    assert store.claim("w1", ["a"], LEASE_S) is None
    clock.advance(59.9)
    assert store.claim("w1", ["a"], LEASE_S) is None
    clock.advance(0.1)
    assert claim(store).id == job.id


def test_run_at_is_a_moment_and_a_past_one_is_due_at_once(store: StoreEngine, clock: ManualClock) -> None:
    later = scheduled(store, available_at=clock.now() + 10)
    past = scheduled(store, available_at=clock.now() - 10)
    assert store.get(later.id).available_at == clock.now() + 10
    assert claim(store).id == past.id
    assert store.claim("w1", ["a"], LEASE_S) is None


def test_the_next_due_time_is_the_earliest_of_the_kinds_asked(store: StoreEngine, clock: ManualClock) -> None:
    assert store.next_due(["a"]) is None
    scheduled(store, delay_s=30.0)
    b = store.submit([new_job("b", delay_s=5.0)], actor="tester")[0]
    scheduled(store, delay_s=90.0)
    assert store.next_due(["a"]) == clock.now() + 30.0
    assert store.next_due(["a", "b"]) == b.available_at
    assert store.next_due(["c"]) is None
    clock.advance(31)
    assert store.next_due(["a"]) == clock.now() + 59.0


def test_a_cancel_before_the_due_time_withdraws_it(store: StoreEngine, clock: ManualClock) -> None:
    job = scheduled(store, delay_s=1.0)
    result = store.request_cancel(job.id, CancelReason.USER, "alice")
    assert result.job.status is JobStatus.CANCELLED
    assert result.job.cancel is not None
    assert result.job.cancel.stop_method is StopMethod.WITHDRAWN
    clock.advance(2)
    assert store.claim("w1", ["a"], LEASE_S) is None
    assert store.get(job.id).started_at is None


def test_the_scheduled_filter_finds_the_queued_jobs_not_due_yet(store: StoreEngine, clock: ManualClock) -> None:
    now = scheduled(store)
    later = scheduled(store, delay_s=10.0)
    assert [j.id for j in store.list_jobs(andon.JobFilter(scheduled=True), 10).items] == [later.id]
    assert [j.id for j in store.list_jobs(andon.JobFilter(scheduled=False), 10).items] == [now.id]
    clock.advance(10)
    assert store.list_jobs(andon.JobFilter(scheduled=True), 10).items == []
    bulk = store.request_cancel_many(andon.JobFilter(scheduled=False), CancelReason.USER, "bob")
    assert sorted(bulk.withdrawn) == sorted([now.id, later.id])
