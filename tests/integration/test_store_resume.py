"""Checkpoints, resume and paused kinds, as every store must keep them (issue 15).

Run against each store the contract suite runs against (SQLite on a file and in memory,
PostgreSQL), with the same fixtures and time from a ``ManualClock``.
"""

from __future__ import annotations

import json

import pytest

import andon
from andon import CancelReason, JobStatus, ManualClock, StopMethod
from andon._jobs import Outcome, OutcomeKind
from andon._output import ProgressUpdate, SavedState
from andon._storage._engine import StoreEngine
from tests.integration.test_store_contract import (
    LEASE_S,
    assert_history_is_legal,
    claim,
    fail,
    items_update,
    settle,
    submit,
)

STOPPED = Outcome(OutcomeKind.STOPPED, stop_method=StopMethod.COOPERATIVE, stop_reason=CancelReason.SHUTDOWN)


def checkpointed(job: andon.Job, seqs: range, state: object, *, at: float = 1.0) -> ProgressUpdate:
    """Items ``seqs``, then a checkpoint after them (as the output buffer sends them)."""
    update = items_update(job, seqs)
    update.checkpoint = SavedState(seqs.stop, at, json.dumps(state))
    return update


def seqs(store: StoreEngine, job_id: str) -> list[int]:
    return [item.seq for item in store.items(job_id)]


def test_a_checkpoint_is_stored_with_the_items_before_it(store: StoreEngine) -> None:
    job = submit(store)
    running = claim(store)
    assert store.write_progress([checkpointed(running, range(3), {"next": 3})]) == []
    stored = store.get(job.id)
    assert stored.checkpoint is not None
    assert (stored.checkpoint.state, stored.checkpoint.items, stored.checkpoint.attempt) == ({"next": 3}, 3, 1)
    assert stored.items_count == 3
    assert seqs(store, job.id) == [0, 1, 2]


def test_a_lost_attempt_cannot_store_a_checkpoint(store: StoreEngine, clock: ManualClock) -> None:
    job = submit(store, max_attempts=2)
    stale = claim(store, "w1")
    clock.advance(LEASE_S + 1)
    store.recover_lost()
    assert store.write_progress([checkpointed(stale, range(2), {"next": 2})]) == [job.id]
    assert store.get(job.id).checkpoint is None


def test_a_requeued_attempt_goes_on_from_its_checkpoint(store: StoreEngine) -> None:
    job = submit(store)
    first = claim(store)
    store.write_progress([checkpointed(first, range(4), {"next": 4})])
    # Two more items after the checkpoint, then a shutdown stops the attempt.
    requeued = settle(store, first, STOPPED, items_update(first, range(4, 6)))
    assert requeued.status is JobStatus.QUEUED
    assert requeued.resume
    assert requeued.items_count == 4, "what came after the checkpoint is done again, not kept twice"
    assert seqs(store, job.id) == [0, 1, 2, 3]
    assert "resumes from the checkpoint of attempt 1" in (store.events(job.id)[-1].message or "")
    second = claim(store)
    assert (second.attempt, second.resume, second.items_count) == (2, True, 4)
    assert second.checkpoint is not None
    assert second.checkpoint.state == {"next": 4}
    assert_history_is_legal(store, job.id)


def test_without_a_checkpoint_a_requeued_attempt_starts_over(store: StoreEngine) -> None:
    submit(store)
    first = claim(store)
    requeued = settle(store, first, STOPPED, items_update(first, range(2)))
    assert (requeued.status, requeued.resume, requeued.items_count) == (JobStatus.QUEUED, False, 2)


def test_a_checkpoint_in_the_last_batch_decides_where_it_goes_on(store: StoreEngine) -> None:
    job = submit(store)
    first = claim(store)
    requeued = settle(store, first, STOPPED, checkpointed(first, range(5), {"next": 5}))
    assert requeued.resume
    assert requeued.checkpoint is not None
    assert requeued.checkpoint.items == 5
    assert seqs(store, job.id) == [0, 1, 2, 3, 4]


def test_a_lost_worker_s_job_goes_on_from_its_checkpoint(store: StoreEngine, clock: ManualClock) -> None:
    submit(store, max_attempts=2)
    first = claim(store)
    store.write_progress([checkpointed(first, range(3), {"next": 3}), items_update(first, range(3, 4))])
    clock.advance(LEASE_S + 1)
    [requeued] = store.recover_lost()
    assert (requeued.status, requeued.resume, requeued.items_count) == (JobStatus.QUEUED, True, 3)


def test_a_failure_resumes_only_under_retry_resume(store: StoreEngine) -> None:
    plain = submit(store, "a", max_attempts=2)
    resuming = submit(store, "b", max_attempts=2, retry_resume=True)
    for job_id, kind in ((plain.id, "a"), (resuming.id, "b")):
        running = claim(store, kinds=[kind])
        assert running.id == job_id
        store.write_progress([checkpointed(running, range(2), {"next": 2})])
        fail(store, running)
    assert not store.get(plain.id).resume
    assert store.get(resuming.id).resume


def test_resume_queues_a_cancelled_job_from_its_checkpoint(store: StoreEngine) -> None:
    job = submit(store)
    running = claim(store)
    store.write_progress([checkpointed(running, range(3), {"next": 3}), items_update(running, range(3, 5))])
    store.request_cancel(job.id, CancelReason.USER, "alice")
    cancelled = settle(store, running, Outcome(OutcomeKind.STOPPED, stop_method=StopMethod.COOPERATIVE))
    assert cancelled.status is JobStatus.CANCELLED
    assert seqs(store, job.id) == [0, 1, 2, 3, 4], "a cancel keeps every item"
    resumed = store.resume(job.id, "bob")
    assert (resumed.status, resumed.resume, resumed.items_count, resumed.cancel) == (JobStatus.QUEUED, True, 3, None)
    assert seqs(store, job.id) == [0, 1, 2]
    event = store.events(job.id)[-1]
    assert (event.type, event.actor, event.from_status, event.to_status) == (
        "resumed",
        "bob",
        JobStatus.CANCELLED,
        JobStatus.QUEUED,
    )
    assert "attempt 1" in (event.message or "")
    again = claim(store)
    assert (again.attempt, again.resume) == (2, True)
    assert_history_is_legal(store, job.id)


def test_only_a_stopped_job_with_a_checkpoint_can_be_resumed(store: StoreEngine) -> None:
    without = submit(store)
    settle(store, claim(store), Outcome(OutcomeKind.FAILED))
    with pytest.raises(andon.InvalidTransition, match="no checkpoint"):
        store.resume(without.id, "bob")
    running = submit(store)
    claim(store)
    with pytest.raises(andon.InvalidTransition, match="only a cancelled or failed job"):
        store.resume(running.id, "bob")
    with pytest.raises(andon.JobNotFound):
        store.resume("01900000-0000-7000-8000-000000000000", "bob")


def test_a_paused_kind_is_not_claimed_until_unpaused(store: StoreEngine) -> None:
    waiting = submit(store, "a")
    other = submit(store, "b")
    result = store.pause_kind("a", "ops", "maintenance", now=False)
    assert (result.changed, result.stopping) == (True, [])
    assert [p.kind for p in store.paused_kinds()] == ["a"]
    assert store.pause_kind("a", "ops", None, now=False).changed is False
    assert [j.id for j in store.claim_many("w1", ["a", "b"], LEASE_S, 5)] == [other.id]
    assert store.get(waiting.id).status is JobStatus.QUEUED
    assert store.unpause_kind("a", "ops") is True
    assert store.unpause_kind("a", "ops") is False
    assert claim(store, kinds=["a"]).id == waiting.id
    types = [event.type for event in store.events(waiting.id)]
    assert types[:3] == ["submitted", "kind paused", "kind unpaused"]
    assert_history_is_legal(store, waiting.id)


def test_pause_now_stops_running_jobs_which_go_back_to_resume(store: StoreEngine) -> None:
    job = submit(store)
    running = claim(store)
    store.write_progress([checkpointed(running, range(2), {"next": 2})])
    result = store.pause_kind("a", "ops", None, now=True)
    assert [j.id for j in result.stopping] == [job.id]
    stopping = store.get(job.id)
    assert stopping.status is JobStatus.CANCELLING
    assert stopping.cancel is not None
    assert stopping.cancel.reason is CancelReason.PAUSED
    assert [n.reason for n in store.cancel_notices("w1")] == [CancelReason.PAUSED]
    stopped = Outcome(OutcomeKind.STOPPED, stop_method=StopMethod.COOPERATIVE, stop_reason=CancelReason.PAUSED)
    back = settle(store, running, stopped)
    assert (back.status, back.resume, back.cancel) == (JobStatus.QUEUED, True, None)
    assert store.claim("w1", ["a"], LEASE_S) is None, "claimed while its kind is paused"
    store.unpause_kind("a", "ops")
    assert claim(store).resume
    assert_history_is_legal(store, job.id)
