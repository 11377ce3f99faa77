"""Pruning history on every store: tombstones that still answer "who cancelled job X and how
did it stop", purges, the jobs a prune must leave alone, batches, and a prune running while
other connections keep submitting and claiming."""

from __future__ import annotations

import threading
import time

import pytest

import andon
from andon import CancelReason, JobStatus, StopMethod
from andon._errors import UsageError
from andon._jobs import ErrorInfo, Outcome, OutcomeKind
from andon._output import AttemptEnd
from andon._storage import JobFilter, NewJob
from andon._storage._engine import StoreEngine
from tests import trees
from tests.integration.conftest import Backend
from tests.integration.test_store_contract import (
    LEASE_S,
    claim,
    fail,
    items_update,
    new_job,
    settle,
    submit,
    succeed,
)

DAY = 86_400.0


def cancelled_while_running(store: StoreEngine) -> andon.Job:
    """A job stopped by a user's cancel while it ran, terminated, with items and history."""
    submit(store, params={"secret": "x" * 100})
    job = claim(store)
    store.write_progress([items_update(job, range(3))])
    store.request_cancel(job.id, CancelReason.USER, by="alice", message="wrong input file")
    at = store.get(job.id).cancel
    assert at is not None
    outcome = Outcome(
        OutcomeKind.STOPPED,
        stop_method=StopMethod.TERMINATED,
        acknowledged_at=at.requested_at + 0.5,
        stopped_at=at.requested_at + 1.5,
    )
    return settle(store, job, outcome)


def test_tombstone_keeps_who_cancelled_and_how_it_stopped(backend: Backend) -> None:
    store, clock = backend.store, backend.clock
    job = cancelled_while_running(store)
    before = store.get(job.id)
    assert before.cancel is not None
    assert before.status is JobStatus.CANCELLED
    assert store.items(job.id)
    assert store.events(job.id)
    clock.advance(2 * DAY)

    result = store.prune(DAY)

    assert (result.jobs, result.items, result.purged) == (1, 3, False)
    assert result.events == before.events_count
    after = store.get(job.id)
    assert after.pruned_at == clock.now()
    assert after.params == {}
    assert after.result is None
    assert after.items_count == 0
    assert store.items(job.id) == []
    assert store.events(job.id) == []
    # The tombstone: who, why, how it stopped, and when, as before.
    assert after.cancel == before.cancel
    assert after.cancel is not None
    assert (after.cancel.by, after.cancel.reason, after.cancel.message) == (
        "alice",
        CancelReason.USER,
        "wrong input file",
    )
    assert after.cancel.stop_method is StopMethod.TERMINATED
    for field in ("id", "kind", "status", "created_at", "started_at", "finished_at", "attempt", "worker_id", "owner"):
        assert getattr(after, field) == getattr(before, field), field


def test_tombstone_keeps_a_short_error(backend: Backend) -> None:
    store, clock = backend.store, backend.clock
    submit(store)
    job = settle(
        store, claim(store), Outcome(OutcomeKind.FAILED, error=ErrorInfo("ValueError", "m" * 5000, "Traceback..."))
    )
    clock.advance(2 * DAY)
    store.prune(DAY)
    after = store.get(job.id)
    assert after.error is not None
    assert after.error.type == "ValueError"
    assert after.error.message == "m" * 500
    assert not after.error.traceback


def test_the_clock_decides_what_is_old(backend: Backend) -> None:
    store, clock = backend.store, backend.clock
    submit(store)
    old = succeed(store, claim(store))
    clock.advance(DAY)
    submit(store)
    young = succeed(store, claim(store))
    clock.advance(DAY / 2)

    assert store.prune(DAY).jobs == 1
    assert store.get(old.id).pruned_at is not None
    assert store.get(young.id).pruned_at is None
    # Pruned already: a second prune finds nothing more to do.
    assert store.prune(DAY).jobs == 0
    assert store.prune(0).jobs == 1


def test_active_jobs_are_never_pruned(backend: Backend) -> None:
    store, clock = backend.store, backend.clock
    queued = submit(store)
    submit(store)
    running = claim(store)
    clock.advance(10 * DAY)
    assert store.prune(0).jobs == 0
    assert store.get(queued.id).pruned_at is None
    assert store.get(running.id).pruned_at is None
    assert store.get(queued.id).params == {"x": 1}


def test_jobs_of_a_tree_that_is_still_active_are_kept(backend: Backend) -> None:
    store, clock = backend.store, backend.clock
    store.submit([trees.new_job(trees.ROOT_KIND)], actor="test")
    root = trees.hold(store, trees.ROOT_KIND)
    kids = trees.submit_children(store, root, trees.CHILD_KIND, 2)
    kid = trees.hold(store, trees.CHILD_KIND)
    store.settle(trees.HOLDER, kid.attempt, kid.id, Outcome(OutcomeKind.SUCCEEDED, result=1), None)
    clock.advance(2 * DAY)

    # The finished child waits for its tree: its root is running and a sibling is queued.
    assert store.prune(DAY).jobs == 0
    assert store.get(kids[0].id).pruned_at is None

    store.request_cancel(root.id, CancelReason.USER, by="alice")
    cancelling = store.get(root.id)
    assert cancelling.status is JobStatus.CANCELLING
    clock.advance(2 * DAY)
    assert store.prune(DAY).jobs == 0


def test_statuses_and_kinds_narrow_the_prune(backend: Backend) -> None:
    store, clock = backend.store, backend.clock
    submit(store)
    ok = succeed(store, claim(store))
    submit(store)
    bad = fail(store, claim(store))
    submit(store, kind="b")
    other = succeed(store, claim(store, kinds=("b",)))
    clock.advance(2 * DAY)

    assert store.prune(DAY, statuses=[JobStatus.FAILED]).jobs == 1
    assert store.get(bad.id).pruned_at is not None
    assert store.prune(DAY, kinds=["b"]).jobs == 1
    assert store.get(other.id).pruned_at is not None
    assert store.get(ok.id).pruned_at is None


def test_dry_run_changes_nothing(backend: Backend) -> None:
    store, clock = backend.store, backend.clock
    job = cancelled_while_running(store)
    clock.advance(2 * DAY)
    result = store.prune(DAY, dry_run=True)
    assert (result.jobs, result.items, result.dry_run, result.batches) == (1, 3, True, 0)
    assert store.get(job.id).pruned_at is None
    assert len(store.items(job.id)) == 3


def test_purge_deletes_jobs_and_tombstones(backend: Backend) -> None:
    store, clock = backend.store, backend.clock
    first = cancelled_while_running(store)
    clock.advance(2 * DAY)
    store.prune(DAY)
    submit(store)
    second = succeed(store, claim(store))
    clock.advance(2 * DAY)

    result = store.prune(DAY, purge=True)

    assert (result.jobs, result.purged) == (2, True)
    for job_id in (first.id, second.id):
        with pytest.raises(andon.JobNotFound):
            store.get(job_id)
        with pytest.raises(andon.JobNotFound):
            store.events(job_id)


def test_batches_are_bounded(backend: Backend) -> None:
    store, clock = backend.store, backend.clock
    store.submit([new_job_for(i) for i in range(25)], actor="t")
    for _ in range(25):
        succeed(store, claim(store))
    clock.advance(2 * DAY)
    result = store.prune(DAY, batch=10)
    assert (result.jobs, result.batches) == (25, 3)
    assert all(j.pruned_at is not None for j in store.list_jobs(JobFilter(), 100).items)


def new_job_for(i: int) -> NewJob:
    return new_job(params={"i": i})


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"older_than_s": -1}, "0 or more"),
        ({"older_than_s": float("nan")}, "0 or more"),
        ({"older_than_s": 1, "batch": 0}, "batch"),
        ({"older_than_s": 1, "statuses": [JobStatus.RUNNING]}, "only finished"),
        ({"older_than_s": 1, "statuses": []}, "statuses is empty"),
    ],
)
def test_bad_arguments_are_refused(store: StoreEngine, kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(UsageError, match=words):
        store.prune(**kwargs)  # type: ignore[arg-type]  # the values are what is under test


def test_prune_runs_while_others_submit_and_claim(backend: Backend) -> None:
    """Other writers go on between the prune's batches: no errors, no long stall."""
    store, clock = backend.store, backend.clock
    jobs = [new_job_for(i) for i in range(600)]
    store.submit(jobs, actor="t")
    ended = store.claim_many("w1", ("a",), LEASE_S, 600)
    for job in ended:
        store.write_progress([items_update(job, range(2))])
    store.settle_many("w1", [end_of(job) for job in ended])
    clock.advance(2 * DAY)

    other = backend.peer()
    stop = threading.Event()
    slowest = [0.0]
    errors: list[BaseException] = []

    def keep_working() -> None:
        try:
            while not stop.is_set():
                started = time.perf_counter()
                other.submit([new_job_for(-1)], actor="t")
                claimed = other.claim("w2", ("a",), LEASE_S)
                assert claimed is not None
                other.settle("w2", claimed.attempt, claimed.id, Outcome(OutcomeKind.SUCCEEDED), None)
                slowest[0] = max(slowest[0], time.perf_counter() - started)
        except BaseException as error:  # reported by the test below
            errors.append(error)

    worker = threading.Thread(target=keep_working)
    worker.start()
    try:
        result = store.prune(DAY, batch=50)
    finally:
        stop.set()
        worker.join(30)
        if other is not store:
            other.close()
    assert not errors, errors
    assert result.jobs == 600
    assert result.items == 1200
    assert result.batches == 12
    assert slowest[0] < 5.0, f"a submit+claim+settle took {slowest[0]:.2f} s during the prune"


def end_of(job: andon.Job) -> AttemptEnd:
    return AttemptEnd(job.id, job.attempt, Outcome(OutcomeKind.SUCCEEDED, result={"i": 1}))
