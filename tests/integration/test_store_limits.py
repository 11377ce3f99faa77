"""Limits per kind as every store must keep them (issue 19, part 3): ``max_running`` counts the
kind's running and cancelling jobs, ``rate`` the starts within a sliding window; a kind at its
limit is passed over and the others' jobs are claimed; a held-back job stays queued and a
cancel withdraws it; concurrent claims of one limited kind never exceed it together.

Run against each store the contract suite runs against, with time from a ``ManualClock``.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import andon
from andon import CancelReason, JobStatus, StopMethod
from andon._jobs import ErrorInfo, Outcome, OutcomeKind
from andon._output import AttemptEnd
from andon._storage import KindLimit
from andon._storage._engine import StoreEngine
from tests.integration.conftest import Backend
from tests.integration.test_store_contract import LEASE_S, claim, settle, submit, succeed

FAILED = Outcome(OutcomeKind.FAILED, error=ErrorInfo("RuntimeError", "boom", "Traceback..."))


def claim_all(store: StoreEngine, n: int, kinds: tuple[str, ...] = ("a",), worker: str = "w1") -> list[andon.Job]:
    return store.claim_many(worker, kinds, LEASE_S, n)


def claim_at_once(stores: list[StoreEngine], n: int) -> list[andon.Job]:
    """Each store claims up to ``n`` of kind "a" at the same moment (from its own thread)."""
    barrier = threading.Barrier(len(stores))

    def claim_one(index: int) -> list[andon.Job]:
        barrier.wait()
        return stores[index].claim_many(f"w{index}", ["a"], LEASE_S, n)

    with ThreadPoolExecutor(len(stores)) as pool:
        return [job for jobs in pool.map(claim_one, range(len(stores))) for job in jobs]


def stats(store: StoreEngine, kind: str) -> andon.KindStats:
    return next(s for s in store.kind_stats() if s.kind == kind)


def test_max_running_caps_a_claim_of_many_and_frees_room_as_jobs_end(store: StoreEngine) -> None:
    store.sync_kind_limits([KindLimit("a", max_running=2)], by="test")
    queued = [submit(store) for _ in range(5)]
    first = claim_all(store, 10)
    assert [job.id for job in first] == [job.id for job in queued[:2]]  # claim order, two of ten asked
    assert claim_all(store, 10, worker="w2") == []
    assert store.get(queued[2].id).status is JobStatus.QUEUED
    succeed(store, first[0])
    assert [job.id for job in claim_all(store, 10)] == [queued[2].id]
    # A cancelling job still holds its place.
    store.request_cancel(first[1].id, CancelReason.USER, by="alice")
    assert claim_all(store, 10) == []
    settle(store, store.get(first[1].id), Outcome(OutcomeKind.STOPPED, stop_method=StopMethod.COOPERATIVE))
    assert [job.id for job in claim_all(store, 10)] == [queued[3].id]
    figures = stats(store, "a")
    assert (figures.max_running, figures.running_now, figures.rate) == (2, 2, None)


def test_a_kind_at_its_limit_does_not_block_the_others(store: StoreEngine) -> None:
    store.sync_kind_limits([KindLimit("a", max_running=1), KindLimit("b")], by="test")
    limited = [submit(store, "a", priority=9) for _ in range(3)]
    others = [submit(store, "b") for _ in range(3)]
    got = claim_all(store, 4, kinds=("a", "b"))
    # The best of "a" (higher priority) first, then "b" fills the rest.
    assert [job.id for job in got] == [limited[0].id] + [job.id for job in others]
    assert [store.get(job.id).status for job in limited[1:]] == [JobStatus.QUEUED] * 2


def test_settle_and_claim_keeps_the_limit(store: StoreEngine) -> None:
    store.sync_kind_limits([KindLimit("a", max_running=2)], by="test")
    queued = [submit(store) for _ in range(4)]
    first = claim_all(store, 2)
    end = AttemptEnd(first[0].id, first[0].attempt, Outcome(OutcomeKind.SUCCEEDED), None)
    settled, claimed = store.settle_and_claim("w1", [end], ["a"], LEASE_S, 4)
    assert [s.status for s in settled if isinstance(s, andon.Job)] == [JobStatus.SUCCEEDED]
    assert [job.id for job in claimed] == [queued[2].id]


def test_rate_counts_starts_in_a_sliding_window(backend: Backend) -> None:
    store, clock = backend.store, backend.clock
    store.sync_kind_limits([KindLimit("a", rate=(2, 10.0))], by="test")
    queued = [submit(store) for _ in range(5)]
    assert len(claim_all(store, 5)) == 2
    assert stats(store, "a").starts_in_window == 2
    clock.advance(4.0)
    assert claim_all(store, 5) == []
    # The worker learns when the window frees room: the first start's time plus the window.
    assert store.next_due(["a"]) == pytest.approx(clock.now() - 4.0 + 10.0)
    clock.advance(5.999)
    assert claim_all(store, 5) == []
    clock.advance(0.001)  # exactly 10 s after the first starts: they left the window
    assert [job.id for job in claim_all(store, 5)] == [job.id for job in queued[2:4]]
    figures = stats(store, "a")
    assert (figures.rate, figures.starts_in_window, figures.max_running) == ((2, 10.0), 2, None)


def test_a_retried_attempt_counts_as_a_start(backend: Backend) -> None:
    store, clock = backend.store, backend.clock
    store.sync_kind_limits([KindLimit("a", rate=(2, 10.0))], by="test")
    job = submit(store, max_attempts=3)
    other = submit(store)
    first = claim(store)
    settle(store, first, FAILED)  # back to the queue at once (no backoff)
    clock.advance(1.0)
    again = claim_all(store, 5)
    assert [j.id for j in again] == [job.id]  # its second start is the window's second
    assert again[0].attempt == 2
    assert claim_all(store, 5) == []
    clock.advance(9.0)
    assert [j.id for j in claim_all(store, 5)] == [other.id]


def test_both_limits_at_once(backend: Backend) -> None:
    store, clock = backend.store, backend.clock
    store.sync_kind_limits([KindLimit("a", max_running=1, rate=(3, 60.0))], by="test")
    for _ in range(5):
        submit(store)
    for _ in range(3):
        (job,) = claim_all(store, 5)
        assert claim_all(store, 5) == []
        succeed(store, job)
        clock.advance(1.0)
    assert claim_all(store, 5) == []  # room to run, but three starts in the minute
    clock.advance(60.0)
    assert len(claim_all(store, 5)) == 1


def test_a_held_back_job_is_withdrawn_by_a_cancel(store: StoreEngine) -> None:
    store.sync_kind_limits([KindLimit("a", max_running=1)], by="test")
    running = submit(store)
    held = submit(store)
    assert claim(store).id == running.id
    result = store.request_cancel(held.id, CancelReason.USER, by="alice")
    assert result.job.status is JobStatus.CANCELLED
    assert result.job.cancel is not None
    assert result.job.cancel.stop_method is StopMethod.WITHDRAWN
    succeed(store, store.get(running.id))
    assert claim_all(store, 5) == []
    assert store.get(held.id).started_at is None


def test_sync_replaces_and_drops_limits(store: StoreEngine) -> None:
    store.sync_kind_limits([KindLimit("a", max_running=1), KindLimit("b", rate=(1, 5.0))], by="w1")
    store.sync_kind_limits([KindLimit("a", max_running=3), KindLimit("b")], by="w2")
    by_kind = {s.kind: s for s in store.kind_stats()}
    assert by_kind["a"].max_running == 3
    assert "b" not in by_kind  # no jobs and no limit any more
    for _ in range(4):
        submit(store, "b")
    assert len(claim_all(store, 4, kinds=("b",))) == 4


def test_concurrent_claims_never_exceed_max_running(backend: Backend) -> None:
    """Eight claimers at once, each through its own store object on PostgreSQL (its own
    connections), again and again: the running count never passes the limit."""
    store = backend.store
    store.sync_kind_limits([KindLimit("a", max_running=3)], by="test")
    for _ in range(60):
        submit(store)
    peers = [backend.peer() for _ in range(4)]
    try:
        claimers = [*peers, *peers]
        for _ in range(8):
            claimed = claim_at_once(claimers, 3)
            assert len(claimed) <= 3
            assert stats(store, "a").running_now == len(claimed) == 3
            for job in claimed:
                succeed(store, job)
    finally:
        for peer in peers:
            if peer is not store:
                peer.close()


def test_concurrent_claims_never_exceed_a_rate(backend: Backend) -> None:
    store, clock = backend.store, backend.clock
    store.sync_kind_limits([KindLimit("a", rate=(4, 1.0))], by="test")
    for _ in range(40):
        submit(store)
    peers = [backend.peer() for _ in range(4)]
    try:
        for _ in range(3):
            claimed = claim_at_once(peers, 3)
            assert len(claimed) == 4
            for job in claimed:
                succeed(store, job)
            clock.advance(1.0)
    finally:
        for peer in peers:
            if peer is not store:
                peer.close()
