"""Job trees as every store must keep them (issue 16): children only from a running parent, a
stop that reaches the whole subtree in one transaction, a stopped parent that ends only once
its descendants have, children left behind by a parent that ended, and fail-fast.

Run against each store the contract suite runs against (SQLite on a file and in memory,
PostgreSQL), with time from a ``ManualClock``.
"""

from __future__ import annotations

import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import andon
from andon import CancelReason, JobStatus, StopMethod
from andon._errors import ParentStopping
from andon._jobs import ErrorInfo, Outcome, OutcomeKind
from andon._storage._engine import StoreEngine
from tests.integration.test_store_contract import assert_history_is_legal, claim, new_job, settle, submit, succeed

STOPPED = Outcome(OutcomeKind.STOPPED, stop_method=StopMethod.COOPERATIVE)
FAILED = Outcome(OutcomeKind.FAILED, error=ErrorInfo("RuntimeError", "boom"))


def children(store: StoreEngine, parent: andon.Job, n: int, **options: object) -> list[andon.Job]:
    assert parent.worker_id is not None
    jobs = [new_job("child", **options) for _ in range(n)]
    return store.submit_children(parent.id, parent.worker_id, parent.attempt, jobs, actor=f"job:{parent.id}")


def claim_child(store: StoreEngine, worker: str = "w2") -> andon.Job:
    return claim(store, worker, kinds=("child",))


def test_children_record_their_parent_and_root(store: StoreEngine) -> None:
    submit(store)
    parent = claim(store)
    [child] = children(store, parent, 1)
    assert (child.parent_id, child.root_id) == (parent.id, parent.id)
    running = claim_child(store)
    [grandchild] = children(store, running, 1)
    assert (grandchild.parent_id, grandchild.root_id) == (child.id, parent.id)
    stored = store.get(grandchild.id)
    assert (stored.parent_id, stored.root_id, stored.tree_root) == (child.id, parent.id, parent.id)
    assert store.child_counts([parent.id, child.id]) == {
        parent.id: {JobStatus.RUNNING: 1},
        child.id: {JobStatus.QUEUED: 1},
    }
    assert store.descendant_counts(parent.id) == {JobStatus.RUNNING: 1, JobStatus.QUEUED: 1}
    page = store.list_jobs(andon.JobFilter(roots=[parent.id]), limit=10)
    assert {j.id for j in page.items} == {child.id, grandchild.id}
    page = store.list_jobs(andon.JobFilter(parents=[parent.id]), limit=10)
    assert [j.id for j in page.items] == [child.id]


def test_a_job_that_is_not_running_cannot_submit_children(store: StoreEngine) -> None:
    submit(store)
    parent = claim(store)
    store.request_cancel(parent.id, CancelReason.USER, "tester")
    with pytest.raises(ParentStopping) as raised:
        children(store, parent, 3)
    assert raised.value.reason == "user"
    assert store.child_counts([parent.id]) == {}
    assert store.list_jobs(andon.JobFilter(kinds=["child"]), limit=10).items == []


def test_another_attempt_cannot_submit_children_for_the_job(store: StoreEngine) -> None:
    submit(store)
    parent = claim(store)
    with pytest.raises(ParentStopping):
        store.submit_children(parent.id, "someone-else", parent.attempt, [new_job("child")], actor=None)
    with pytest.raises(andon.JobNotFound):
        store.submit_children("no-such-job", None, None, [new_job("child")], actor=None)


def test_a_cancel_withdraws_queued_descendants_and_stops_running_ones_at_once(store: StoreEngine) -> None:
    submit(store)
    parent = claim(store)
    queued = children(store, parent, 3)
    running_child = claim_child(store)  # one of them now runs
    [grandchild] = children(store, running_child, 1)
    result = store.request_cancel(parent.id, CancelReason.USER, "alice", "enough")
    assert result.job.status is JobStatus.CANCELLING
    for job in [*queued, grandchild]:
        stored = store.get(job.id)
        assert stored.cancel is not None
        assert stored.cancel.reason is CancelReason.PARENT_CANCELLED
        assert stored.cancel.by == "alice"
        assert stored.cancel.origin == parent.id
        assert f"job {parent.id}" in (stored.cancel.message or "")
        if job.id == running_child.id:
            assert stored.status is JobStatus.CANCELLING
        else:
            assert stored.status is JobStatus.CANCELLED
            assert stored.cancel.stop_method is StopMethod.WITHDRAWN
    # Nothing of the tree can be claimed any more.
    assert store.claim("w3", ["child"], 30.0) is None
    # The parent's own work stops first: it waits, still cancelling, for its running child.
    waiting = settle(store, parent, STOPPED)
    assert waiting.status is JobStatus.CANCELLING
    assert waiting.awaiting is JobStatus.CANCELLED
    assert waiting.cancel is not None
    assert waiting.cancel.stop_method is StopMethod.COOPERATIVE
    assert waiting.cancel.stopped_at is None
    assert store.cancel_notices("w1") == []  # no worker holds it any more
    assert store.renew_leases("w1", 30.0) == []
    # The last child stops: the parent is cancelled in the same transaction.
    ended = settle(store, running_child, STOPPED)
    assert ended.status is JobStatus.CANCELLED
    parent_now = store.get(parent.id)
    assert parent_now.status is JobStatus.CANCELLED
    assert parent_now.awaiting is None
    assert parent_now.cancel is not None
    assert parent_now.cancel.stopped_at is not None
    assert parent_now.finished_at is not None
    for job_id in (parent.id, running_child.id, grandchild.id, *(j.id for j in queued)):
        assert_history_is_legal(store, job_id)
    types = [e.type for e in store.events(parent.id)]
    assert types[-2:] == ["awaiting descendants", "cancelled"]


def test_a_stopped_parent_waits_for_a_chain_of_descendants(store: StoreEngine) -> None:
    submit(store)
    parent = claim(store)
    children(store, parent, 1)
    child = claim_child(store, "w2")
    children(store, child, 1)
    grandchild = claim_child(store, "w3")
    store.request_cancel(parent.id, CancelReason.TIMEOUT, "andon")
    assert settle(store, parent, STOPPED).status is JobStatus.CANCELLING
    assert settle(store, child, STOPPED).status is JobStatus.CANCELLING
    assert store.get(parent.id).status is JobStatus.CANCELLING
    assert settle(store, grandchild, STOPPED).status is JobStatus.CANCELLED
    assert store.get(child.id).status is JobStatus.CANCELLED
    assert store.get(parent.id).status is JobStatus.CANCELLED
    parent_cancel = store.get(parent.id).cancel
    assert parent_cancel is not None
    assert parent_cancel.reason is CancelReason.TIMEOUT


def test_a_parent_that_ends_cancels_the_children_it_left_unless_detached(store: StoreEngine) -> None:
    submit(store)
    parent = claim(store)
    attached = children(store, parent, 2)
    [detached] = children(store, parent, 1, detached=True)
    done = succeed(store, parent, {"ok": True})
    assert done.status is JobStatus.SUCCEEDED
    for job in attached:
        stored = store.get(job.id)
        assert stored.status is JobStatus.CANCELLED
        assert stored.cancel is not None
        assert stored.cancel.reason is CancelReason.PARENT_ENDED
        assert stored.cancel.origin == parent.id
    assert store.get(detached.id).status is JobStatus.QUEUED
    notes = [e for e in store.events(parent.id) if e.type == "children left running"]
    assert len(notes) == 1
    assert detached.id in (notes[0].message or "")
    assert_history_is_legal(store, parent.id)


def test_a_fail_fast_child_fails_its_parent_and_stops_its_siblings(store: StoreEngine) -> None:
    submit(store)
    parent = claim(store)
    siblings = children(store, parent, 2, fail_parent=True)
    failing = claim_child(store, "w2")
    sibling = next(j for j in siblings if j.id != failing.id)
    assert settle(store, failing, FAILED).status is JobStatus.FAILED
    parent_now = store.get(parent.id)
    assert parent_now.status is JobStatus.CANCELLING
    assert parent_now.cancel is not None
    assert parent_now.cancel.reason is CancelReason.CHILD_FAILED
    assert parent_now.cancel.origin == failing.id
    sibling_now = store.get(sibling.id)
    assert sibling_now.status is JobStatus.CANCELLED
    assert sibling_now.cancel is not None
    assert sibling_now.cancel.reason is CancelReason.PARENT_CANCELLED
    ended = settle(store, parent, STOPPED)
    assert ended.status is JobStatus.FAILED
    assert ended.error is not None
    assert ended.error.type == "ChildFailed"
    assert failing.id in ended.error.message
    assert ended.attempt == 1  # a failed child is never a reason to retry


def test_a_child_that_fails_without_fail_fast_leaves_its_parent_running(store: StoreEngine) -> None:
    submit(store)
    parent = claim(store)
    children(store, parent, 1)
    failing = claim_child(store)
    settle(store, failing, FAILED)
    assert store.get(parent.id).status is JobStatus.RUNNING


def test_a_bulk_cancel_reaches_the_trees_of_the_jobs_it_stops(store: StoreEngine) -> None:
    submit(store)
    parent = claim(store)
    kids = children(store, parent, 4)
    bulk = store.request_cancel_many(andon.JobFilter(kinds=["a"]), CancelReason.USER, "bob")
    assert [r.job.id for r in bulk.stopping] == [parent.id]
    assert all(store.get(k.id).status is JobStatus.CANCELLED for k in kids)
    assert settle(store, parent, STOPPED).status is JobStatus.CANCELLED


def test_a_cancel_of_a_child_does_not_reach_its_parent(store: StoreEngine) -> None:
    submit(store)
    parent = claim(store)
    [child] = children(store, parent, 1)
    store.request_cancel(child.id, CancelReason.USER, "carol")
    assert store.get(child.id).status is JobStatus.CANCELLED
    assert store.get(parent.id).status is JobStatus.RUNNING
    assert succeed(store, parent).status is JobStatus.SUCCEEDED


# -- the race: a parent submits children while it is cancelled ------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    submits=st.integers(min_value=1, max_value=8),
    cancel_after=st.integers(min_value=0, max_value=6),
    claims=st.booleans(),
)
def test_a_child_submitted_while_its_parent_is_cancelled_never_runs_after_the_cancel(
    store: StoreEngine, submits: int, cancel_after: int, claims: bool
) -> None:
    """Three threads race: the parent's handler submits children one by one, someone cancels
    the parent, and (when ``claims``) a worker claims children as fast as it can. However
    they interleave, every child that exists ends withdrawn or is being stopped: none runs
    on after the cancel committed, and none is created after it."""
    parent = submit(store)
    running = store.claim("w1", ["a"], 30.0)
    assert running is not None
    assert running.id == parent.id
    created: list[str] = []
    refused: list[BaseException] = []
    cancelled = threading.Event()
    stop_claiming = threading.Event()
    claimed: list[str] = []

    def parent_handler() -> None:
        for i in range(submits):
            if i == cancel_after:
                cancelled.set()
            try:
                created.extend(j.id for j in children(store, running, 1))
            except ParentStopping as exc:
                refused.append(exc)
                return
        cancelled.set()

    def cancel() -> None:
        cancelled.wait(10)
        store.request_cancel(parent.id, CancelReason.USER, "race")

    def claimer() -> None:
        while not stop_claiming.is_set():
            job = store.claim("w2", ["child"], 30.0)
            if job is not None:
                claimed.append(job.id)

    threads = [threading.Thread(target=parent_handler), threading.Thread(target=cancel)]
    if claims:
        threads.append(threading.Thread(target=claimer))
    for thread in threads:
        thread.start()
    for thread in threads[:2]:
        thread.join(30)
    stop_claiming.set()
    for thread in threads[2:]:
        thread.join(30)
    assert store.get(parent.id).status is JobStatus.CANCELLING
    stored = store.list_jobs(andon.JobFilter(parents=[parent.id]), limit=100).items
    assert sorted(j.id for j in stored) == sorted(created), "a child was created that its submit did not report"
    for child in stored:
        assert child.cancel is not None, child
        assert child.cancel.reason is CancelReason.PARENT_CANCELLED
        # Withdrawn (it never started), or claimed before the cancel and asked to stop.
        assert child.status in (JobStatus.CANCELLED, JobStatus.CANCELLING), child
        assert (child.status is JobStatus.CANCELLING) == (child.id in claimed), child
    assert store.claim("w3", ["child"], 30.0) is None
    if refused:
        assert len(created) < submits


def test_a_cancel_of_an_inner_job_reaches_its_subtree_and_nothing_else(store: StoreEngine) -> None:
    submit(store)
    root = claim(store)
    first, second = children(store, root, 2)
    inner = claim_child(store)
    sibling = second if inner.id == first.id else first
    assert inner.worker_id is not None
    grandchildren = store.submit_children(inner.id, inner.worker_id, 1, [new_job("grand") for _ in range(3)], None)
    running_grandchild = claim(store, "w3", kinds=("grand",))
    [great] = children(store, running_grandchild, 1)
    store.request_cancel(inner.id, CancelReason.USER, "dave")
    for job in [*grandchildren, great]:
        stored = store.get(job.id)
        assert stored.cancel is not None, stored
        assert stored.cancel.reason is CancelReason.PARENT_CANCELLED
        assert stored.cancel.origin == inner.id
    assert store.get(running_grandchild.id).status is JobStatus.CANCELLING
    assert store.get(great.id).status is JobStatus.CANCELLED
    assert store.get(sibling.id).status is JobStatus.QUEUED
    assert store.get(root.id).status is JobStatus.RUNNING


def test_a_stronger_stop_of_a_waiting_parent_changes_how_it_ends(store: StoreEngine) -> None:
    submit(store)
    parent = claim(store)
    children(store, parent, 1)
    child = claim_child(store)
    store.request_cancel(parent.id, CancelReason.USER, "erin")
    assert settle(store, parent, STOPPED).awaiting is JobStatus.CANCELLED
    result = store.request_cancel(parent.id, CancelReason.FORCED, "frank", retry=False)
    assert result.job.awaiting is JobStatus.FAILED
    settle(store, child, STOPPED)
    ended = store.get(parent.id)
    assert ended.status is JobStatus.FAILED
    assert ended.error is not None
    assert ended.error.type == "ForcedFailure"
    assert "frank" in ended.error.message
    assert_history_is_legal(store, parent.id)
