"""Keyed jobs and idempotency keys as every store must keep them (issue 16): one active job per
kind and key whatever the policy, a superseded job stopped in the submit's transaction and its
successor not started before it stopped, and idempotency records answered within their window.

Run against each store the contract suite runs against (SQLite on a file and in memory,
PostgreSQL), with time from a ``ManualClock``; the races run 100 submits at once, from
threads on one store object and, on PostgreSQL, from separate store objects (connections).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import andon
from andon import CancelReason, JobStatus, OnConflict, StopMethod
from andon._jobs import Outcome, OutcomeKind
from andon._keys import IDEMPOTENCY_WINDOW_S
from andon._storage import IdempotencyKey, Submission
from andon._storage._engine import StoreEngine
from andon._storage._postgres import PostgresStore
from tests.integration.conftest import Backend
from tests.integration.test_store_contract import assert_history_is_legal, claim, new_job, settle, submit, succeed

STOPPED = Outcome(OutcomeKind.STOPPED, stop_method=StopMethod.COOPERATIVE)
ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELLING)


def keyed(store: StoreEngine, on_conflict: OnConflict, key: str = "k", kind: str = "a", **options: Any) -> Submission:
    return store.submit_one(new_job(kind, key=key, **options), "tester", on_conflict=on_conflict)


def active_with_key(store: StoreEngine, key: str = "k", kind: str = "a") -> list[andon.Job]:
    page = store.list_jobs(andon.JobFilter(statuses=ACTIVE, kinds=[kind]), limit=1000)
    return sorted((job for job in page.items if job.key == key), key=lambda job: job.id)


@pytest.mark.parametrize("policy", list(OnConflict))
def test_a_first_keyed_submit_creates_the_job(store: StoreEngine, policy: OnConflict) -> None:
    first = keyed(store, policy)
    assert first.created
    assert first.superseded == ()
    assert (first.job.status, first.job.key) == (JobStatus.QUEUED, "k")
    assert store.get(first.job.id).key == "k"


def test_skip_answers_the_active_job_and_creates_nothing(store: StoreEngine) -> None:
    first = keyed(store, OnConflict.SKIP)
    again = keyed(store, OnConflict.SKIP)
    assert not again.created
    assert again.job.id == first.job.id
    running = claim(store)
    assert keyed(store, OnConflict.SKIP).job.id == running.id
    assert [job.id for job in active_with_key(store)] == [first.job.id]
    # Another kind, or another key, is another job.
    assert keyed(store, OnConflict.SKIP, kind="b").created
    assert keyed(store, OnConflict.SKIP, key="other").created
    # Once the job has ended, the key is free again.
    succeed(store, running)
    assert keyed(store, OnConflict.SKIP).created


def test_queue_lets_one_job_wait_behind_the_running_one(store: StoreEngine) -> None:
    first = keyed(store, OnConflict.QUEUE)
    # While the first has not started, it is the one waiting: nothing more is queued.
    assert keyed(store, OnConflict.QUEUE).job.id == first.job.id
    running = claim(store)
    waiting = keyed(store, OnConflict.QUEUE)
    assert waiting.created
    again = keyed(store, OnConflict.QUEUE)
    assert not again.created
    assert again.job.id == waiting.job.id
    assert [job.id for job in active_with_key(store)] == [running.id, waiting.job.id]
    # The waiting job does not start while the first runs...
    assert store.claim("w2", ["a"], 30.0) is None
    succeed(store, running)
    # ...and does once it has ended.
    assert claim(store, "w2").id == waiting.job.id


def test_supersede_withdraws_a_queued_job(store: StoreEngine) -> None:
    old = keyed(store, OnConflict.SUPERSEDE).job
    new = keyed(store, OnConflict.SUPERSEDE)
    assert new.created
    [stopped] = new.superseded
    assert stopped.id == old.id
    assert stopped.status is JobStatus.CANCELLED
    stored = store.get(old.id)
    assert stored.status is JobStatus.CANCELLED
    assert stored.cancel is not None
    assert stored.cancel.reason is CancelReason.SUPERSEDED
    assert stored.cancel.stop_method is StopMethod.WITHDRAWN
    assert stored.cancel.origin == new.job.id
    assert stored.cancel.message is not None
    assert new.job.id in stored.cancel.message
    assert_history_is_legal(store, old.id)
    assert claim(store).id == new.job.id


def test_supersede_stops_a_running_job_and_the_new_one_waits_for_it(store: StoreEngine) -> None:
    keyed(store, OnConflict.SUPERSEDE)
    running = claim(store)
    new = keyed(store, OnConflict.SUPERSEDE)
    [stopping] = new.superseded
    assert stopping.status is JobStatus.CANCELLING
    assert stopping.cancel is not None
    assert (stopping.cancel.reason, stopping.cancel.origin) == (CancelReason.SUPERSEDED, new.job.id)
    assert [n.job_id for n in store.cancel_notices("w1")] == [running.id]
    # Not before the old one has stopped: "cancelled means stopped" reaches its successor.
    assert store.claim("w2", ["a"], 30.0) is None
    ended = settle(store, running, STOPPED)
    assert ended.status is JobStatus.CANCELLED
    assert ended.cancel is not None
    assert ended.cancel.reason is CancelReason.SUPERSEDED
    assert claim(store, "w2").id == new.job.id
    assert_history_is_legal(store, running.id)


def test_supersede_reaches_the_children_of_the_job_it_stops(store: StoreEngine) -> None:
    keyed(store, OnConflict.SUPERSEDE)
    parent = claim(store)
    assert parent.worker_id is not None
    [child] = store.submit_children(parent.id, parent.worker_id, parent.attempt, [new_job("child")], "job")
    new = keyed(store, OnConflict.SUPERSEDE)
    stored = store.get(child.id)
    assert stored.status is JobStatus.CANCELLED
    assert stored.cancel is not None
    assert stored.cancel.reason is CancelReason.PARENT_CANCELLED
    assert store.claim("w2", ["a"], 30.0) is None
    settle(store, parent, STOPPED)
    assert claim(store, "w2").id == new.job.id


def test_a_claim_never_starts_two_jobs_of_one_key(store: StoreEngine) -> None:
    first = keyed(store, OnConflict.QUEUE)
    claim(store)
    keyed(store, OnConflict.QUEUE)
    store.request_cancel(first.job.id, CancelReason.USER, "tester")  # cancelling: not stopped yet
    assert store.claim_many("w2", ["a"], 30.0, 10) == []
    plain = submit(store)  # an unkeyed job is not held up by any of it
    assert [job.id for job in store.claim_many("w2", ["a"], 30.0, 10)] == [plain.id]


def test_of_two_queued_jobs_of_one_key_a_claim_starts_the_older(store: StoreEngine) -> None:
    # A job sent back to the queue (a shutdown, a lost worker) while one waits behind it:
    # both are queued, and one claim of many must not start both.
    keyed(store, OnConflict.QUEUE)
    running = claim(store)
    waiting = keyed(store, OnConflict.QUEUE).job
    shutdown = Outcome(OutcomeKind.STOPPED, stop_method=StopMethod.COOPERATIVE, stop_reason=CancelReason.SHUTDOWN)
    assert settle(store, running, shutdown).status is JobStatus.QUEUED
    assert [job.id for job in store.claim_many("w2", ["a"], 30.0, 10)] == [running.id]
    assert waiting.id not in {job.id for job in store.claim_many("w3", ["a"], 30.0, 10)}


def test_unkeyed_and_keyed_jobs_cannot_mix_in_a_bulk_submit(store: StoreEngine) -> None:
    with pytest.raises(andon.UsageError, match="one at a time"):
        store.submit([new_job(), new_job(key="k")], "tester")
    assert store.list_jobs(andon.JobFilter(), limit=10).items == []


def test_a_key_held_by_another_owner_is_refused(store: StoreEngine) -> None:
    store.submit_one(new_job(key="k", owner="alice"), "alice", on_conflict=OnConflict.SKIP, visible_owner="alice")
    for policy in OnConflict:
        with pytest.raises(andon.NotAllowed):
            store.submit_one(new_job(key="k", owner="bob"), "bob", on_conflict=policy, visible_owner="bob")
    [held] = active_with_key(store)
    assert held.owner == "alice"
    assert held.status is JobStatus.QUEUED


# -- idempotency keys ---------------------------------------------------------------------


def idempotent(store: StoreEngine, key: str = "idem-1", scope: str = "", request: str = "r1", **kw: Any) -> Submission:
    return store.submit_one(new_job(**kw), "tester", idempotency=IdempotencyKey(scope, key, request))


def test_an_idempotency_key_answers_the_first_request(backend: Backend) -> None:
    store, clock = backend.store, backend.clock
    first = idempotent(store)
    assert first.created
    again = idempotent(store)
    assert (again.job.id, again.created) == (first.job.id, True)
    assert len(store.list_jobs(andon.JobFilter(), limit=10).items) == 1
    # Another caller's key of the same text is another key.
    assert idempotent(store, scope="bob").job.id != first.job.id
    with pytest.raises(andon.IdempotencyKeyReused) as raised:
        idempotent(store, request="r2")
    assert raised.value.job_id == first.job.id
    # After the window the key is free again.
    clock.advance(IDEMPOTENCY_WINDOW_S + 1)
    later = idempotent(store, request="r2")
    assert later.created
    assert later.job.id != first.job.id


def test_an_idempotent_skip_answers_not_created_again(store: StoreEngine) -> None:
    existing = keyed(store, OnConflict.SKIP).job
    args = IdempotencyKey("", "idem", "r")
    first = store.submit_one(new_job(key="k"), "t", on_conflict=OnConflict.SKIP, idempotency=args)
    again = store.submit_one(new_job(key="k"), "t", on_conflict=OnConflict.SKIP, idempotency=args)
    assert (first.job.id, first.created) == (again.job.id, again.created) == (existing.id, False)


def test_an_idempotency_key_of_a_deleted_job_says_so(store: StoreEngine) -> None:
    first = idempotent(store)
    store.request_cancel(first.job.id, CancelReason.USER, "tester")
    store.delete(first.job.id)
    with pytest.raises(andon.JobNotFound):
        idempotent(store)


# -- races --------------------------------------------------------------------------------

SUBMITS = 100


def race(backend: Backend, submit_one: Callable[[StoreEngine], Submission]) -> list[Submission]:
    """``SUBMITS`` submits at once, from 20 threads; on PostgreSQL over 4 store objects (each
    its own pool of connections), else over the one store."""
    stores = [backend.store]
    if isinstance(backend.store, PostgresStore):
        stores += [backend.peer() for _ in range(3)]
    start = threading.Barrier(20)

    def one(i: int) -> Submission:
        if i < 20:
            start.wait(timeout=30)
        return submit_one(stores[i % len(stores)])

    try:
        with ThreadPoolExecutor(20) as pool:
            return list(pool.map(one, range(SUBMITS)))
    finally:
        for other in stores[1:]:
            other.close()


@pytest.mark.parametrize("policy", list(OnConflict))
def test_concurrent_keyed_submits_leave_one_active_job(backend: Backend, policy: OnConflict) -> None:
    store = backend.store
    keyed(store, policy)
    running = claim(store)  # so that queue has something to wait behind
    answers = race(backend, lambda s: keyed(s, policy))
    active = active_with_key(store)
    created = [a.job.id for a in answers if a.created]
    if policy is OnConflict.SKIP:
        assert created == []
        assert [job.id for job in active] == [running.id]
    elif policy is OnConflict.QUEUE:
        assert len(created) == 1
        assert [job.id for job in active] == [running.id, created[0]]
    else:
        assert len(created) == SUBMITS
        # Each superseded the one before it: the running one is stopping, the last one waits.
        assert len(active) == 2
        assert active[0].id == running.id
        assert active[1].id in created
        assert active[0].status is JobStatus.CANCELLING
        withdrawn = store.list_jobs(andon.JobFilter(statuses=[JobStatus.CANCELLED]), limit=1000).items
        assert len(withdrawn) == SUBMITS - 1
        assert {job.cancel.origin for job in withdrawn if job.cancel} <= set(created)
    assert store.claim_many("w2", ["a"], 30.0, 10) == []


def test_concurrent_idempotent_submits_create_one_job(backend: Backend) -> None:
    answers = race(backend, lambda s: idempotent(s))
    assert len({a.job.id for a in answers}) == 1
    assert all(a.created for a in answers)
    assert len(backend.store.list_jobs(andon.JobFilter(), limit=1000).items) == 1
