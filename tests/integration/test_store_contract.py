"""The storage contract: one suite every store must pass.

The ``backend`` fixture is parametrized over store implementations: SQLite on a file,
SQLite in memory, and PostgreSQL (a fresh schema per test on the server ``tests/postgres.py``
names; skipped loudly when it is unreachable, failed under ``CI=true``). Time comes from a ``ManualClock``,
so leases and backoffs are tested without sleeping.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import pytest

import andon
from andon import CancelReason, JobStatus, ManualClock, StopMethod
from andon._ids import new_job_id
from andon._jobs import ALLOWED_TRANSITIONS, TERMINAL_STATUSES, CancelOutcome, ErrorInfo, Outcome, OutcomeKind
from andon._output import AttemptEnd, ProgressUpdate
from andon._storage import BulkCancel, CancelNotice, Change, JobFilter, NewJob, OffsetPage
from andon._storage._engine import StoreEngine
from tests.integration.conftest import Backend

LEASE_S = 30.0
T = TypeVar("T")


# -- helpers -------------------------------------------------------------------------


def new_job(kind: str = "a", **options: Any) -> NewJob:
    return NewJob(id=new_job_id(), kind=kind, params=options.pop("params", {"x": 1}), **options)


def submit(store: StoreEngine, kind: str = "a", **options: Any) -> andon.Job:
    return store.submit([new_job(kind, **options)], actor="tester")[0]


def claim(
    store: StoreEngine, worker: str = "w1", kinds: Collection[str] = ("a",), lease_s: float = LEASE_S
) -> andon.Job:
    job = store.claim(worker, kinds, lease_s)
    assert job is not None, "nothing to claim"
    return job


def settle(store: StoreEngine, job: andon.Job, outcome: Outcome, update: ProgressUpdate | None = None) -> andon.Job:
    assert job.worker_id is not None
    return store.settle(job.worker_id, job.attempt, job.id, outcome, update)


def items_update(job: andon.Job, seqs: range, at: float = 0.0) -> ProgressUpdate:
    return ProgressUpdate(job.id, job.attempt, items=[(seq, at, json.dumps({"i": seq})) for seq in seqs])


def succeed(store: StoreEngine, job: andon.Job, result: Any = None) -> andon.Job:
    return settle(store, job, Outcome(OutcomeKind.SUCCEEDED, result=result))


def fail(store: StoreEngine, job: andon.Job) -> andon.Job:
    return settle(store, job, Outcome(OutcomeKind.FAILED, error=ErrorInfo("RuntimeError", "boom", "Traceback...")))


def assert_history_is_legal(store: StoreEngine, job_id: str) -> None:
    """Events are numbered 1..n, in time order, every status change they record is allowed,
    and each change is recorded once: a transition starts from the state the one before it
    reached (``queued -> cancelled`` twice is two transitions for one change)."""
    events = store.events(job_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert all(a.at <= b.at for a, b in itertools.pairwise(events))
    assert events[0].type == "submitted"
    state = events[0].to_status
    for event in events[1:]:
        assert event.job_id == job_id
        if event.from_status is not None and event.to_status is not None and event.from_status != event.to_status:
            assert (event.from_status, event.to_status) in ALLOWED_TRANSITIONS, event
            assert event.from_status == state, f"{event} starts from {event.from_status}, the job was {state}"
            state = event.to_status
    assert state == store.get(job_id).status


# -- submit and get ------------------------------------------------------------------


def test_submit_creates_queued_jobs(store: StoreEngine, clock: ManualClock) -> None:
    wanted = [
        new_job("a", params={"n": 1, "nested": {"list": [1, 2.5, None, "x"]}}),
        new_job("b", max_attempts=3, retry_backoff_s=2.0, timeout_s=9.0, priority=5),
        new_job("a", retry_of="some-id"),
    ]
    created = store.submit(wanted, actor="alice")
    assert [j.id for j in created] == [w.id for w in wanted]
    for new, job in zip(wanted, created, strict=True):
        assert store.get(new.id) == job
        assert job.status is JobStatus.QUEUED
        assert (job.kind, job.params, job.priority, job.retry_of) == (new.kind, new.params, new.priority, new.retry_of)
        assert (job.max_attempts, job.retry_backoff_s, job.timeout_s) == (
            new.max_attempts,
            new.retry_backoff_s,
            new.timeout_s,
        )
        assert job.created_at == clock.now()
        assert (job.attempt, job.failures, job.items_count) == (0, 0, 0)
        assert job.worker_id is None
        assert job.started_at is None
        assert job.finished_at is None
        assert job.cancel is None
        assert job.error is None
        [event] = store.events(job.id)
        assert (event.seq, event.type, event.from_status, event.to_status) == (1, "submitted", None, JobStatus.QUEUED)
        assert event.actor == "alice"
        assert event.at == clock.now()
        assert store.items(job.id) == []


def test_submit_nothing(store: StoreEngine) -> None:
    assert store.submit([], actor=None) == []
    assert store.list_jobs(JobFilter(), limit=10).items == []


def test_submit_is_all_or_none(store: StoreEngine) -> None:
    existing = submit(store)
    fresh = new_job()
    raised: list[Exception] = []
    try:
        store.submit([fresh, NewJob(existing.id, "a", {})], actor=None)
    except Exception as exc:
        raised.append(exc)
    assert raised, "a duplicate id was accepted"
    with pytest.raises(andon.JobNotFound):
        store.get(fresh.id)
    assert store.get(existing.id) == existing
    assert len(store.events(existing.id)) == 1


def test_submit_failure_is_a_storage_error(store: StoreEngine) -> None:
    """A store reports its own failures as StorageError, not as its driver's exception type."""
    existing = submit(store)
    with pytest.raises(andon.StorageError):
        store.submit([NewJob(existing.id, "a", {})], actor=None)


def test_unknown_id_is_not_found(store: StoreEngine) -> None:
    unknown = new_job_id()
    with pytest.raises(andon.JobNotFound) as raised:
        store.get(unknown)
    assert raised.value.job_id == unknown
    with pytest.raises(andon.JobNotFound):
        store.events(unknown)
    with pytest.raises(andon.JobNotFound):
        store.items(unknown)


# -- claim ---------------------------------------------------------------------------


def test_claim_moves_the_job_to_running(store: StoreEngine, clock: ManualClock) -> None:
    job = submit(store)
    clock.advance(5)
    claimed = claim(store, "w1", lease_s=12.0)
    assert claimed.id == job.id
    assert claimed.status is JobStatus.RUNNING
    assert claimed.attempt == 1
    assert claimed.worker_id == "w1"
    assert claimed.started_at == clock.now()
    assert claimed.lease_expires_at == clock.now() + 12.0
    assert store.get(job.id) == claimed
    started = store.events(job.id)[-1]
    assert (started.type, started.from_status, started.to_status) == ("started", JobStatus.QUEUED, JobStatus.RUNNING)
    assert started.attempt == 1
    assert started.actor == "worker:w1"
    assert_history_is_legal(store, job.id)


def test_claim_returns_none_when_empty(store: StoreEngine) -> None:
    assert store.claim("w1", ["a"], LEASE_S) is None
    job = submit(store)
    claim(store)
    assert store.claim("w1", ["a"], LEASE_S) is None
    assert store.claim("w2", ["a"], LEASE_S) is None
    assert store.get(job.id).worker_id == "w1"


def test_claim_order_is_priority_then_oldest(store: StoreEngine, clock: ManualClock) -> None:
    low = submit(store, priority=-1)
    clock.advance(1)
    normal_old = submit(store)
    clock.advance(1)
    high_old = submit(store, priority=10)
    clock.advance(1)
    normal_new = submit(store)
    high_new = submit(store, priority=10)  # same time as normal_new: id order decides
    mid = submit(store, priority=3)
    order = [claim(store).id for _ in range(6)]
    assert order == [high_old.id, high_new.id, mid.id, normal_old.id, normal_new.id, low.id]
    assert store.claim("w1", ["a"], LEASE_S) is None


def test_claim_only_requested_kinds(store: StoreEngine) -> None:
    a = submit(store, "a")
    b = submit(store, "b")
    assert store.claim("w1", [], LEASE_S) is None
    assert store.claim("w1", ["c"], LEASE_S) is None
    assert claim(store, kinds=["b", "c"]).id == b.id
    assert store.claim("w1", ["b"], LEASE_S) is None
    assert claim(store, kinds=["c", "a"]).id == a.id


def test_concurrent_claims_never_hand_out_a_job_twice(backend: Backend) -> None:
    store = backend.store
    threads_n, jobs_n = 8, 200
    submitted = store.submit([new_job() for _ in range(jobs_n)], actor=None)
    barrier = threading.Barrier(threads_n)
    claimed: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def work(worker: str) -> None:
        mine: list[str] = []
        claimed[worker] = mine
        try:
            barrier.wait(timeout=10)
            while (job := store.claim(worker, ["a"], LEASE_S)) is not None:
                mine.append(job.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
    assert errors == []
    every = [job_id for ids in claimed.values() for job_id in ids]
    assert sorted(every) == sorted(j.id for j in submitted)
    for worker, ids in claimed.items():
        for job_id in ids:
            job = store.get(job_id)
            assert (job.status, job.worker_id, job.attempt) == (JobStatus.RUNNING, worker, 1)


def test_retry_backoff_delays_the_next_claim(store: StoreEngine, clock: ManualClock) -> None:
    job = submit(store, max_attempts=3, retry_backoff_s=10.0)
    first = claim(store)
    requeued = fail(store, first)
    assert requeued.status is JobStatus.QUEUED
    assert requeued.available_at == clock.now() + 10.0
    assert requeued.failures == 1
    assert store.claim("w1", ["a"], LEASE_S) is None
    clock.advance(9.9)
    assert store.claim("w1", ["a"], LEASE_S) is None
    clock.advance(0.1)
    second = claim(store)
    assert (second.id, second.attempt) == (job.id, 2)
    fail(store, second)
    clock.advance(19.9)
    assert store.claim("w1", ["a"], LEASE_S) is None
    clock.advance(0.1)
    third = claim(store)
    assert third.attempt == 3
    final = fail(store, third)
    assert final.status is JobStatus.FAILED
    assert final.failures == 3
    clock.advance(1000)
    assert store.claim("w1", ["a"], LEASE_S) is None
    assert_history_is_legal(store, job.id)


# -- request_cancel ----------------------------------------------------------------


def test_cancel_of_a_queued_job_withdraws_it(store: StoreEngine, clock: ManualClock) -> None:
    job = submit(store)
    clock.advance(3)
    result = store.request_cancel(job.id, CancelReason.USER, by="alice", message="not needed")
    assert result.outcome is CancelOutcome.WITHDRAWN
    assert result.changed
    cancelled = result.job
    assert cancelled == store.get(job.id)
    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.finished_at == clock.now()
    assert cancelled.cancel is not None
    assert cancelled.cancel.reason is CancelReason.USER
    assert (cancelled.cancel.by, cancelled.cancel.message) == ("alice", "not needed")
    assert cancelled.cancel.stop_method is StopMethod.WITHDRAWN
    assert cancelled.cancel.requested_at == clock.now()
    assert cancelled.cancel.stopped_at == clock.now()
    assert cancelled.error is None
    assert cancelled.attempt == 0
    clock.advance(1000)
    assert store.claim("w1", ["a"], LEASE_S) is None
    assert [e.type for e in store.events(job.id)] == ["submitted", "withdrawn"]
    assert_history_is_legal(store, job.id)


@pytest.mark.parametrize("bulk", [False, True], ids=["one", "many"])
@pytest.mark.parametrize("reason", [CancelReason.USER, CancelReason.FORCED])
def test_withdrawing_a_queued_job_is_one_transition_that_names_the_request(
    store: StoreEngine, clock: ManualClock, bulk: bool, reason: CancelReason
) -> None:
    """Issue 12, item 9: a withdrawn job's history had ``queued -> cancelled`` twice (a
    "cancel requested" event and the end); it is one change, so one event, carrying who
    asked, why and their words."""
    job = submit(store)
    clock.advance(1)
    if bulk:
        done = store.request_cancel_many(JobFilter(ids=[job.id]), reason, by="alice", message="not needed")
        assert done.withdrawn == [job.id]
    else:
        assert store.request_cancel(job.id, reason, by="alice", message="not needed").changed
    end = JobStatus.FAILED if reason is CancelReason.FORCED else JobStatus.CANCELLED
    submitted, withdrawn = store.events(job.id)
    assert submitted.type == "submitted"
    assert withdrawn == andon.JobEvent(
        job.id, 2, clock.now(), "withdrawn", JobStatus.QUEUED, end, "alice", reason.value, "not needed", 0
    )
    ended = store.get(job.id)
    assert ended.status is end
    assert ended.cancel is not None
    assert (ended.cancel.by, ended.cancel.reason, ended.cancel.message) == ("alice", reason, "not needed")
    assert ended.cancel.stop_method is StopMethod.WITHDRAWN
    assert_history_is_legal(store, job.id)


def test_force_fail_of_a_queued_job_fails_it(store: StoreEngine) -> None:
    job = submit(store, max_attempts=3)
    result = store.request_cancel(job.id, CancelReason.FORCED, by="alice")
    assert result.outcome is CancelOutcome.WITHDRAWN
    assert result.job.status is JobStatus.FAILED
    assert result.job.error is not None
    assert result.job.error.type == "ForcedFailure"
    assert store.claim("w1", ["a"], LEASE_S) is None
    assert_history_is_legal(store, job.id)


def test_cancel_of_a_running_job_asks_its_worker(store: StoreEngine, clock: ManualClock) -> None:
    job = submit(store)
    other = submit(store)
    claim(store, "w1")
    claim(store, "w2")
    clock.advance(2)
    result = store.request_cancel(job.id, CancelReason.TIMEOUT, by="andon", message="ran too long")
    assert result.outcome is CancelOutcome.REQUESTED
    assert result.job.status is JobStatus.CANCELLING
    assert result.job.worker_id == "w1"
    assert result.job.finished_at is None
    assert result.job.cancel is not None
    assert result.job.cancel.reason is CancelReason.TIMEOUT
    assert result.job.cancel.requested_at == clock.now()
    assert result.job.cancel.stopped_at is None
    assert store.cancel_notices("w1") == [CancelNotice(job.id, 1, CancelReason.TIMEOUT, "ran too long")]
    assert store.cancel_notices("w2") == []
    assert store.cancel_notices("w3") == []
    assert store.get(other.id).status is JobStatus.RUNNING
    event = store.events(job.id)[-1]
    assert (event.type, event.from_status, event.to_status) == (
        "cancel requested",
        JobStatus.RUNNING,
        JobStatus.CANCELLING,
    )
    assert (event.actor, event.reason, event.message) == ("andon", "timeout", "ran too long")
    assert_history_is_legal(store, job.id)


@pytest.mark.parametrize("running", [True, False], ids=["cancelling", "cancelled"])
def test_cancel_twice_changes_nothing(store: StoreEngine, running: bool) -> None:
    job = submit(store)
    if running:
        claim(store)
    first = store.request_cancel(job.id, CancelReason.USER, by="alice")
    events = store.events(job.id)
    # A request of the same strength (stop_strength): a stronger one would take over.
    again = store.request_cancel(job.id, CancelReason.TIMEOUT, by="bob", message="second")
    assert again.outcome is CancelOutcome.ALREADY
    assert not again.changed
    assert again.job == first.job == store.get(job.id)
    assert store.events(job.id) == events


def test_force_fail_escalates_an_earlier_cancel(store: StoreEngine) -> None:
    job = submit(store)
    claim(store)
    store.request_cancel(job.id, CancelReason.USER, by="alice")
    result = store.request_cancel(job.id, CancelReason.FORCED, by="bob", message="now", retry=False)
    assert result.outcome is CancelOutcome.ESCALATED
    assert result.job.status is JobStatus.CANCELLING
    assert result.job.cancel is not None
    assert (result.job.cancel.reason, result.job.cancel.by, result.job.cancel.retry) == (
        CancelReason.FORCED,
        "bob",
        False,
    )
    assert store.cancel_notices("w1")[0].reason is CancelReason.FORCED
    again = store.request_cancel(job.id, CancelReason.FORCED, by="carol")
    assert again.outcome is CancelOutcome.ALREADY
    assert_history_is_legal(store, job.id)


@pytest.mark.parametrize("reason", [CancelReason.USER, CancelReason.FORCED])
@pytest.mark.parametrize("finish", ["succeeded", "failed"])
def test_cancel_of_a_finished_job_raises(store: StoreEngine, reason: CancelReason, finish: str) -> None:
    job = submit(store)
    running = claim(store)
    done = succeed(store, running) if finish == "succeeded" else fail(store, running)
    events = store.events(job.id)
    with pytest.raises(andon.JobFinished) as raised:
        store.request_cancel(job.id, reason, by="alice")
    assert raised.value.state == finish
    assert store.get(job.id) == done
    assert store.events(job.id) == events


def test_force_fail_of_a_cancelled_job_raises(store: StoreEngine) -> None:
    job = submit(store)
    cancelled = store.request_cancel(job.id, CancelReason.USER, by=None).job
    with pytest.raises(andon.JobFinished):
        store.request_cancel(job.id, CancelReason.FORCED, by=None)
    assert store.get(job.id) == cancelled


def test_cancel_of_an_unknown_job_raises(store: StoreEngine) -> None:
    with pytest.raises(andon.JobNotFound):
        store.request_cancel(new_job_id(), CancelReason.USER, by=None)


# -- request_cancel_many ------------------------------------------------------------


@dataclass
class Mix:
    queued: list[andon.Job]
    running: list[andon.Job]
    cancelling: andon.Job
    succeeded: andon.Job
    failed: andon.Job
    withdrawn: andon.Job
    other_kind: andon.Job


def make_mix(store: StoreEngine) -> Mix:
    finished = [submit(store) for _ in range(2)]
    succeeded = succeed(store, claim(store), {"ok": 1})
    failed = fail(store, claim(store))
    assert {succeeded.id, failed.id} == {j.id for j in finished}
    cancelling = submit(store)
    claim(store)
    store.request_cancel(cancelling.id, CancelReason.USER, by=None)
    withdrawn = submit(store)
    store.request_cancel(withdrawn.id, CancelReason.USER, by=None)
    running = [submit(store) for _ in range(2)]
    for _ in running:
        claim(store)
    queued = [submit(store) for _ in range(3)]
    other_kind = submit(store, "b")
    return Mix(
        queued=queued,
        running=[store.get(j.id) for j in running],
        cancelling=store.get(cancelling.id),
        succeeded=succeeded,
        failed=failed,
        withdrawn=store.get(withdrawn.id),
        other_kind=other_kind,
    )


def outcomes(done: BulkCancel) -> dict[str, CancelOutcome]:
    """Each changed job's outcome; withdrawn jobs are answered by id alone."""
    assert len(done) == len(done.ids) == len(set(done.ids))
    assert all(r.outcome is not CancelOutcome.WITHDRAWN for r in done.stopping)
    return {job_id: CancelOutcome.WITHDRAWN for job_id in done.withdrawn} | {r.job.id: r.outcome for r in done.stopping}


def test_cancel_many_by_kind(store: StoreEngine, clock: ManualClock) -> None:
    mix = make_mix(store)
    untouched = [mix.cancelling, mix.succeeded, mix.failed, mix.withdrawn, mix.other_kind]
    events_before = {j.id: store.events(j.id) for j in untouched}
    clock.advance(1)
    done = store.request_cancel_many(JobFilter(kinds=["a"]), CancelReason.USER, by="alice", message="all of a")
    assert outcomes(done) == {j.id: CancelOutcome.WITHDRAWN for j in mix.queued} | {
        j.id: CancelOutcome.REQUESTED for j in mix.running
    }
    for result in done.stopping:
        assert result.job == store.get(result.job.id)
    for job in [store.get(job_id) for job_id in done.ids]:
        assert job.cancel is not None
        assert (job.cancel.reason, job.cancel.by) == (CancelReason.USER, "alice")
        assert job.cancel.message == "all of a"
        assert job.cancel.requested_at == clock.now()
    for job in mix.queued:
        now = store.get(job.id)
        assert now.status is JobStatus.CANCELLED
        assert now.finished_at == clock.now()
        assert now.cancel is not None
        assert now.cancel.stop_method is StopMethod.WITHDRAWN
        submitted, withdrawn = store.events(job.id)
        assert (submitted.type, submitted.seq) == ("submitted", 1)
        assert withdrawn == andon.JobEvent(
            job.id, 2, clock.now(), "withdrawn", JobStatus.QUEUED, JobStatus.CANCELLED, "alice", "user", "all of a", 0
        )
        assert_history_is_legal(store, job.id)
    for job in mix.running:
        now = store.get(job.id)
        assert now.status is JobStatus.CANCELLING
        assert now.finished_at is None
        assert store.events(job.id)[-1].type == "cancel requested"
        assert_history_is_legal(store, job.id)
    assert {n.job_id for n in store.cancel_notices("w1")} == {j.id for j in mix.running} | {mix.cancelling.id}
    for job in untouched:
        assert store.get(job.id) == job
        assert store.events(job.id) == events_before[job.id]
    assert store.claim("w1", ["a"], LEASE_S) is None
    assert claim(store, kinds=["b"]).id == mix.other_kind.id


def test_cancel_many_by_status(store: StoreEngine) -> None:
    mix = make_mix(store)
    done = store.request_cancel_many(JobFilter(statuses=[JobStatus.QUEUED]), CancelReason.USER, by=None)
    assert outcomes(done) == {j.id: CancelOutcome.WITHDRAWN for j in [*mix.queued, mix.other_kind]}
    for job in mix.running:
        assert store.get(job.id) == job
    again = store.request_cancel_many(JobFilter(statuses=[JobStatus.QUEUED]), CancelReason.USER, by=None)
    assert (again, len(again)) == (BulkCancel([], []), 0)
    done = store.request_cancel_many(
        JobFilter(statuses=[JobStatus.RUNNING, JobStatus.SUCCEEDED]), CancelReason.USER, by=None
    )
    assert outcomes(done) == {j.id: CancelOutcome.REQUESTED for j in mix.running}
    assert store.get(mix.succeeded.id) == mix.succeeded


def test_cancel_many_by_ids(store: StoreEngine) -> None:
    mix = make_mix(store)
    chosen = [mix.queued[0], mix.running[1], mix.succeeded, mix.cancelling, mix.withdrawn]
    done = store.request_cancel_many(JobFilter(ids=[j.id for j in chosen]), CancelReason.USER, by=None)
    assert outcomes(done) == {
        mix.queued[0].id: CancelOutcome.WITHDRAWN,
        mix.running[1].id: CancelOutcome.REQUESTED,
    }
    assert store.get(mix.queued[1].id).status is JobStatus.QUEUED
    assert store.get(mix.running[0].id).status is JobStatus.RUNNING
    for job in (mix.succeeded, mix.cancelling, mix.withdrawn):
        assert store.get(job.id) == job
    assert not store.request_cancel_many(JobFilter(ids=[new_job_id()]), CancelReason.USER, by=None)


@pytest.mark.parametrize("reason", [CancelReason.USER, CancelReason.TIMEOUT, CancelReason.DELETED, CancelReason.FORCED])
def test_cancel_many_follows_the_same_rule_as_cancel(store: StoreEngine, reason: CancelReason) -> None:
    """Cancelling many jobs ends each one as cancelling it alone would."""
    many_running, one_running, many_queued, one_queued = (submit(store) for _ in range(4))
    assert {claim(store).id, claim(store).id} == {many_running.id, one_running.id}

    done = store.request_cancel_many(JobFilter(ids=[many_queued.id, many_running.id]), reason, by="x", message="m")
    alone_queued = store.request_cancel(one_queued.id, reason, by="x", message="m")
    alone_running = store.request_cancel(one_running.id, reason, by="x", message="m")
    assert done.withdrawn == [many_queued.id]
    assert alone_queued.outcome is CancelOutcome.WITHDRAWN
    [stopping] = done.stopping
    assert stopping.job.id == many_running.id
    assert stopping.outcome is alone_running.outcome
    assert stopping.job.status is alone_running.job.status
    assert stopping.job.cancel == alone_running.job.cancel
    for many, alone in ((many_queued, one_queued), (many_running, one_running)):
        assert store.get(many.id).status is store.get(alone.id).status
        assert store.get(many.id).cancel == store.get(alone.id).cancel
        assert [replace(e, job_id="") for e in store.events(many.id)] == [
            replace(e, job_id="") for e in store.events(alone.id)
        ]
        assert_history_is_legal(store, many.id)


# -- write_progress ---------------------------------------------------------------


def test_write_progress_stores_items_in_order(store: StoreEngine, clock: ManualClock) -> None:
    submit(store)
    job = claim(store)
    store.write_progress(
        [
            ProgressUpdate(
                job.id,
                1,
                items=[(0, 1.0, json.dumps({"i": 0})), (1, 2.0, json.dumps([1, "two"]))],
                progress=(2.0, 10.0, "two of ten"),
            )
        ]
    )
    now = store.get(job.id)
    assert now.items_count == 2
    assert (now.progress_done, now.progress_total, now.progress_message) == (2.0, 10.0, "two of ten")
    items = store.items(job.id)
    assert [(i.seq, i.attempt, i.at, i.data) for i in items] == [(0, 1, 1.0, {"i": 0}), (1, 1, 2.0, [1, "two"])]
    assert all(i.job_id == job.id for i in items)

    # progress without items keeps the items; items without progress keep the progress
    store.write_progress([ProgressUpdate(job.id, 1, progress=(3.0, None, None))])
    now = store.get(job.id)
    assert (now.progress_done, now.progress_total, now.progress_message, now.items_count) == (3.0, None, None, 2)
    store.write_progress([ProgressUpdate(job.id, 1, items=[(2, 3.0, "null")])])
    now = store.get(job.id)
    assert (now.progress_done, now.items_count) == (3.0, 3)
    assert store.items(job.id)[-1].data is None


def test_write_progress_resend_is_idempotent(store: StoreEngine) -> None:
    submit(store)
    job = claim(store)
    first = ProgressUpdate(job.id, 1, items=[(0, 1.0, '"a"'), (1, 1.0, '"b"')], progress=(2.0, 4.0, None))
    store.write_progress([first])
    # the same batch again (a retried write), then one overlapping the end
    store.write_progress([first])
    store.write_progress([ProgressUpdate(job.id, 1, items=[(1, 9.0, '"changed"'), (2, 2.0, '"c"')])])
    assert [i.data for i in store.items(job.id)] == ["a", "b", "c"]
    assert store.get(job.id).items_count == 3
    # a resend for one job beside fresh items of another, in one write: both stored once
    submit(store)
    other = claim(store)
    store.write_progress(
        [
            ProgressUpdate(job.id, 1, items=[(2, 2.0, '"c"'), (3, 3.0, '"d"')]),
            ProgressUpdate(other.id, 1, items=[(0, 0.0, '"x"')]),
        ]
    )
    assert [i.data for i in store.items(job.id)] == ["a", "b", "c", "d"]
    assert [i.data for i in store.items(other.id)] == ["x"]


def test_write_progress_of_many_jobs_at_once(store: StoreEngine) -> None:
    a, b = submit(store), submit(store)
    claim(store)
    claim(store)
    store.write_progress(
        [
            ProgressUpdate(a.id, 1, items=[(0, 0.0, "1")]),
            ProgressUpdate(b.id, 1),  # empty: skipped
            ProgressUpdate(b.id, 1, items=[(0, 0.0, "2"), (1, 0.0, "3")]),
        ]
    )
    assert [i.data for i in store.items(a.id)] == [1]
    assert [i.data for i in store.items(b.id)] == [2, 3]
    assert (store.get(a.id).items_count, store.get(b.id).items_count) == (1, 2)


def test_write_progress_records_the_first_acknowledgement(store: StoreEngine) -> None:
    job = submit(store)
    claim(store)
    store.request_cancel(job.id, CancelReason.USER, by=None)
    store.write_progress([ProgressUpdate(job.id, 1, acknowledged_at=5.0)])
    store.write_progress([ProgressUpdate(job.id, 1, acknowledged_at=7.0)])
    cancel = store.get(job.id).cancel
    assert cancel is not None
    assert cancel.acknowledged_at == 5.0


def test_write_progress_of_a_lost_attempt_changes_nothing(store: StoreEngine, clock: ManualClock) -> None:
    """A worker that lost its job (lease expired, job recovered) cannot write into it any more."""
    job = submit(store)
    stale = claim(store, "w1")
    store.write_progress([items_update(stale, range(2))])
    clock.advance(LEASE_S + 1)
    [failed] = store.recover_lost()
    assert failed.status is JobStatus.FAILED
    store.write_progress([ProgressUpdate(job.id, 1, items=[(2, 0.0, '"late"')], progress=(9.0, 9.0, "late"))])
    assert store.get(job.id) == failed
    assert [i.seq for i in store.items(job.id)] == [0, 1]


def test_write_progress_of_a_lost_attempt_does_not_mix_into_the_next(store: StoreEngine, clock: ManualClock) -> None:
    job = submit(store, max_attempts=2)
    stale = claim(store, "w1")
    clock.advance(LEASE_S + 1)
    [requeued] = store.recover_lost()
    assert requeued.status is JobStatus.QUEUED
    second = claim(store, "w2")
    assert (second.attempt, second.items_count) == (2, 0)
    # the first worker does not know yet and flushes what it had buffered
    store.write_progress([ProgressUpdate(job.id, stale.attempt, items=[(0, 0.0, '"stale"')])])
    store.write_progress([ProgressUpdate(job.id, second.attempt, items=[(0, 0.0, '"fresh"')])])
    assert [(i.attempt, i.data) for i in store.items(job.id)] == [(2, "fresh")]
    assert store.get(job.id).items_count == 1


# -- settle ----------------------------------------------------------------------------


def test_settle_succeeded_stores_the_result(store: StoreEngine, clock: ManualClock) -> None:
    job = submit(store)
    running = claim(store)
    clock.advance(4)
    done = settle(
        store,
        running,
        Outcome(OutcomeKind.SUCCEEDED, result={"answer": [42, None, "x"]}),
        ProgressUpdate(job.id, 1, items=[(0, 1.0, "1")], progress=(1.0, 1.0, "done")),
    )
    assert done == store.get(job.id)
    assert done.status is JobStatus.SUCCEEDED
    assert done.result == {"answer": [42, None, "x"]}
    assert done.finished_at == clock.now()
    assert (done.worker_id, done.lease_expires_at) == ("w1", None), "who ran it stays on the job"
    assert (done.items_count, done.progress_message) == (1, "done")
    assert [i.data for i in store.items(job.id)] == [1]
    assert done.error is None
    event = store.events(job.id)[-1]
    assert (event.type, event.from_status, event.to_status) == ("succeeded", JobStatus.RUNNING, JobStatus.SUCCEEDED)
    assert event.actor == "worker:w1"
    assert_history_is_legal(store, job.id)


def test_settle_failed_stores_the_error(store: StoreEngine) -> None:
    job = submit(store)
    running = claim(store)
    failed = settle(
        store, running, Outcome(OutcomeKind.FAILED, error=ErrorInfo("ValueError", "bad input", "Traceback: ..."))
    )
    assert failed.status is JobStatus.FAILED
    assert failed.error == ErrorInfo("ValueError", "bad input", "Traceback: ...")
    assert failed.failures == 1
    assert failed.result is None
    assert failed.finished_at is not None
    event = store.events(job.id)[-1]
    assert (event.type, event.to_status) == ("failed", JobStatus.FAILED)
    assert event.message is not None
    assert "bad input" in event.message
    assert_history_is_legal(store, job.id)


def test_settle_stopped_while_cancelling_is_cancelled(store: StoreEngine, clock: ManualClock) -> None:
    job = submit(store, max_attempts=3)
    running = claim(store)
    clock.advance(1)
    store.request_cancel(job.id, CancelReason.USER, by="alice")
    requested_at = clock.now()
    clock.advance(2)
    done = settle(
        store,
        running,
        Outcome(
            OutcomeKind.STOPPED,
            stop_method=StopMethod.INJECTED,
            acknowledged_at=requested_at + 0.5,
            stopped_at=requested_at + 1.5,
        ),
    )
    assert done.status is JobStatus.CANCELLED
    assert done.finished_at == clock.now()
    assert done.failures == 0
    assert done.cancel is not None
    assert done.cancel.stop_method is StopMethod.INJECTED
    assert done.cancel.acknowledged_at == requested_at + 0.5
    assert done.cancel.stopped_at == requested_at + 1.5
    assert done.cancel.stop_seconds == 1.5
    assert [e.type for e in store.events(job.id)][-2:] == ["stopped", "cancelled"]
    clock.advance(1000)
    assert store.claim("w1", ["a"], LEASE_S) is None, "a cancelled job must never be retried"
    assert_history_is_legal(store, job.id)


def test_settle_force_failed(store: StoreEngine) -> None:
    job = submit(store)
    running = claim(store)
    store.request_cancel(job.id, CancelReason.FORCED, by="alice")
    done = settle(store, running, Outcome(OutcomeKind.STOPPED, stop_method=StopMethod.TERMINATED))
    assert done.status is JobStatus.FAILED
    assert done.error is not None
    assert done.error.type == "ForcedFailure"
    assert done.cancel is not None
    assert done.cancel.stop_method is StopMethod.TERMINATED
    assert_history_is_legal(store, job.id)


def test_a_retry_after_a_force_fail_starts_a_fresh_cancel(store: StoreEngine, clock: ManualClock) -> None:
    """A cancel of the next attempt records its own acknowledgement and stop, not the old ones."""
    job = submit(store, max_attempts=2)
    first = claim(store, "w1")
    store.request_cancel(job.id, CancelReason.FORCED, by="alice")
    store.write_progress([ProgressUpdate(job.id, 1, acknowledged_at=clock.now())])
    clock.advance(1)
    requeued = settle(store, first, Outcome(OutcomeKind.STOPPED, stop_method=StopMethod.KILLED))
    assert requeued.status is JobStatus.QUEUED
    second = claim(store, "w2")
    clock.advance(10)
    cancelling = store.request_cancel(job.id, CancelReason.USER, by="bob").job
    assert cancelling.status is JobStatus.CANCELLING
    assert cancelling.cancel is not None
    assert cancelling.cancel.requested_at == clock.now()
    assert cancelling.cancel.acknowledged_at is None, "the first attempt's acknowledgement was kept"
    assert cancelling.cancel.stopped_at is None, "a job that is still cancelling has a stop time"
    assert cancelling.cancel.stop_method is None
    assert cancelling.cancel.stop_seconds is None
    clock.advance(2)
    done = settle(
        store,
        second,
        Outcome(
            OutcomeKind.STOPPED,
            stop_method=StopMethod.COOPERATIVE,
            acknowledged_at=clock.now() - 1,
            stopped_at=clock.now(),
        ),
    )
    assert done.status is JobStatus.CANCELLED
    assert done.cancel is not None
    assert (done.cancel.acknowledged_at, done.cancel.stopped_at) == (clock.now() - 1, clock.now())
    assert done.cancel.stop_method is StopMethod.COOPERATIVE
    assert done.cancel.stop_seconds == 2.0


def test_settle_succeeded_although_cancelling(store: StoreEngine) -> None:
    job = submit(store)
    running = claim(store)
    store.request_cancel(job.id, CancelReason.USER, by=None)
    done = succeed(store, running, 7)
    assert (done.status, done.result) == (JobStatus.SUCCEEDED, 7)
    assert_history_is_legal(store, job.id)


def test_settle_after_shutdown_requeues_without_a_failure(store: StoreEngine, clock: ManualClock) -> None:
    job = submit(store)
    running = claim(store)
    store.write_progress([items_update(running, range(2))])
    requeued = settle(
        store,
        running,
        Outcome(OutcomeKind.STOPPED, stop_method=StopMethod.COOPERATIVE, stop_reason=CancelReason.SHUTDOWN),
    )
    assert requeued.status is JobStatus.QUEUED
    assert requeued.failures == 0
    assert requeued.finished_at is None
    assert requeued.cancel is None
    assert requeued.available_at == clock.now()
    event = store.events(job.id)[-1]
    assert (event.type, event.reason) == ("requeued", "shutdown")
    assert requeued.worker_id == "w1", "the last worker stays named until the next claim"
    again = claim(store, "w2")
    assert (again.attempt, again.items_count, again.worker_id) == (2, 2, "w2")
    assert_history_is_legal(store, job.id)


def test_retry_keeps_earlier_items_with_their_attempt(store: StoreEngine) -> None:
    job = submit(store, max_attempts=2)
    first = claim(store)
    store.write_progress([items_update(first, range(2))])
    requeued = fail(store, first)
    assert (requeued.status, requeued.failures) == (JobStatus.QUEUED, 1)
    assert requeued.error is not None
    second = claim(store, "w2")
    assert (second.attempt, second.items_count) == (2, 2)
    done = settle(store, second, Outcome(OutcomeKind.SUCCEEDED, result=1), items_update(second, range(2, 3)))
    assert done.status is JobStatus.SUCCEEDED
    assert [(i.seq, i.attempt) for i in store.items(job.id)] == [(0, 1), (1, 1), (2, 2)]
    assert done.items_count == 3
    assert_history_is_legal(store, job.id)


def test_the_worker_of_the_last_attempt_stays_on_the_job_but_holds_nothing(store: StoreEngine) -> None:
    """``worker_id`` says who ran the job, not who holds it (issue 13): after a retry's
    requeue the job names its last worker until the next claim, and that worker can
    neither renew, settle nor hear of a cancel for it."""
    job = submit(store, max_attempts=2)
    first = claim(store, "w1")
    requeued = fail(store, first)
    assert (requeued.status, requeued.worker_id, requeued.lease_expires_at) == (JobStatus.QUEUED, "w1", None)
    assert store.get(job.id).worker_id == "w1"
    assert store.renew_leases("w1", LEASE_S) == []
    with pytest.raises(andon.InvalidTransition):
        store.settle("w1", first.attempt, job.id, Outcome(OutcomeKind.SUCCEEDED), None)
    assert store.recover_lost() == [], "a requeued job has no lease to lose"
    cancelled = store.request_cancel(job.id, CancelReason.USER, by="alice").job
    assert (cancelled.status, cancelled.worker_id) == (JobStatus.CANCELLED, "w1"), "withdrawn, not cancelling"
    assert store.cancel_notices("w1") == []
    assert_history_is_legal(store, job.id)


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome(OutcomeKind.SUCCEEDED, result=1),
        Outcome(OutcomeKind.FAILED, error=ErrorInfo("E", "boom")),
        Outcome(OutcomeKind.STOPPED, stop_method=StopMethod.COOPERATIVE),
    ],
    ids=["succeeded", "failed", "cancelled"],
)
def test_a_finished_job_names_the_worker_that_ran_it(store: StoreEngine, outcome: Outcome) -> None:
    job = submit(store, max_attempts=2)
    first = claim(store, "w1")
    fail(store, first)
    second = claim(store, "w2")
    if outcome.kind is OutcomeKind.STOPPED:
        store.request_cancel(job.id, CancelReason.USER, by="alice")
    done = settle(store, second, outcome)
    assert done.is_terminal, done
    assert (done.worker_id, done.lease_expires_at) == ("w2", None)
    assert store.get(job.id).worker_id == "w2"
    [listed] = store.list_jobs(JobFilter(), limit=10).items
    assert listed.worker_id == "w2"


def test_settle_by_someone_else_is_an_invalid_transition(store: StoreEngine) -> None:
    job = submit(store, max_attempts=2)
    running = claim(store)
    with pytest.raises(andon.InvalidTransition):
        store.settle("w2", running.attempt, job.id, Outcome(OutcomeKind.SUCCEEDED), None)
    with pytest.raises(andon.InvalidTransition):
        store.settle("w1", running.attempt + 1, job.id, Outcome(OutcomeKind.SUCCEEDED), None)
    assert store.get(job.id) == running
    fail(store, running)
    with pytest.raises(andon.InvalidTransition):  # already settled (and queued again)
        settle(store, running, Outcome(OutcomeKind.SUCCEEDED))
    second = claim(store)
    with pytest.raises(andon.InvalidTransition):  # the first attempt is over
        settle(store, running, Outcome(OutcomeKind.SUCCEEDED), items_update(running, range(1)))
    assert store.items(job.id) == []
    succeed(store, second)
    with pytest.raises(andon.InvalidTransition):
        settle(store, second, Outcome(OutcomeKind.FAILED))
    with pytest.raises(andon.JobNotFound):
        store.settle("w1", 1, new_job_id(), Outcome(OutcomeKind.SUCCEEDED), None)
    assert_history_is_legal(store, job.id)


# -- reading ---------------------------------------------------------------------------


def test_items_offset_and_limit(store: StoreEngine) -> None:
    job = submit(store)
    running = claim(store)
    store.write_progress([items_update(running, range(10))])
    assert [i.seq for i in store.items(job.id)] == list(range(10))
    assert [i.seq for i in store.items(job.id, offset=3, limit=4)] == [3, 4, 5, 6]
    assert [i.seq for i in store.items(job.id, offset=8)] == [8, 9]
    assert [i.seq for i in store.items(job.id, limit=2)] == [0, 1]
    assert store.items(job.id, offset=10) == []
    assert store.items(job.id, limit=0) == []


# -- pages bounded in bytes (issue 12, item 8) ----------------------------------------------
#
# A page ends at ``limit`` rows or at ``max_bytes`` of stored values, whichever comes first,
# and always holds at least one row, so a reader makes progress whatever the sizes.


def _follow_offsets(read: Callable[[int], OffsetPage[T]]) -> list[OffsetPage[T]]:
    pages = [read(0)]
    while (offset := pages[-1].next_offset) is not None:
        assert offset == sum(len(page.items) for page in pages), "next_offset is not the first row left out"
        pages.append(read(offset))
        assert len(pages) < 1000, "pages do not end"
    return pages


def test_items_pages_end_at_the_byte_budget_and_resume_where_they_ended(store: StoreEngine) -> None:
    job = submit(store)
    running = claim(store)
    padded = [json.dumps({"i": seq, "pad": "x" * 1000}) for seq in range(20)]
    huge = json.dumps({"i": 20, "pad": "y" * 20_000})  # alone over the budget: a page of its own
    rows = [(seq, 0.0, data) for seq, data in enumerate([*padded, huge, json.dumps({"i": 21})])]
    store.write_progress([ProgressUpdate(job.id, running.attempt, items=rows)])

    pages = _follow_offsets(lambda offset: store.items_page(job.id, offset, 1000, max_bytes=5_000))
    assert [item.data["i"] for page in pages for item in page.items] == list(range(22)), "each item once, in order"
    assert len(pages) >= 6, [len(page.items) for page in pages]
    for page in pages:
        assert page.items, "a page without a row makes no progress"
        size = sum(len(json.dumps(item.data)) for item in page.items)
        assert size <= 5_000 or len(page.items) == 1, (size, len(page.items))
    assert [item.data["i"] for item in store.items_page(job.id, 20, 1000, max_bytes=5_000).items] == [20]
    assert store.items_page(job.id, 0, 3, max_bytes=10**9).items == store.items(job.id, 0, 3)
    assert store.items_page(job.id, 0, 3, max_bytes=10**9).next_offset == 3
    last = store.items_page(job.id, 19, 1000, max_bytes=10**9)
    assert ([item.seq for item in last.items], last.next_offset) == ([19, 20, 21], None)
    assert store.items_page(job.id, 22, 10, max_bytes=5_000) == OffsetPage([], None)
    with pytest.raises(andon.JobNotFound):
        store.items_page(new_job_id(), 0, 10, max_bytes=5_000)


def test_events_pages_end_at_the_byte_budget_and_resume_where_they_ended(store: StoreEngine) -> None:
    job = submit(store, max_attempts=6)
    for _ in range(6):
        running = claim(store)
        settle(store, running, Outcome(OutcomeKind.FAILED, error=ErrorInfo("RuntimeError", "m" * 3_000)))
    events = store.events(job.id)
    assert len(events) == 13

    pages = _follow_offsets(lambda offset: store.events_page(job.id, offset, 1000, max_bytes=8_000))
    assert [event for page in pages for event in page.items] == events, "each event once, in order"
    assert len(pages) >= 3, [len(page.items) for page in pages]
    assert all(page.items for page in pages)
    assert store.events_page(job.id, 0, 5, max_bytes=10**9) == OffsetPage(events[:5], 5)
    assert store.events_page(job.id, 10, 5, max_bytes=10**9) == OffsetPage(events[10:], None)
    assert store.events_page(job.id, 13, 5, max_bytes=8_000) == OffsetPage([], None)
    with pytest.raises(andon.JobNotFound):
        store.events_page(new_job_id(), 0, 10, max_bytes=8_000)


def test_job_pages_end_at_the_byte_budget_and_resume_at_the_cursor(store: StoreEngine) -> None:
    small = [submit(store, params={"pad": "p" * 2_000}) for _ in range(12)]
    big = submit(store, params={"pad": "q" * 30_000})  # alone over the budget: listed on its own
    last = submit(store)
    succeed(store, claim(store), {"r": "r" * 5_000})  # the first of ``small`` now has a result too
    newest_first = [j.id for j in reversed([*small, big, last])]

    seen: list[list[str]] = []
    cursor: str | None = None
    while True:
        page = store.list_jobs(JobFilter(), limit=1000, cursor=cursor, max_bytes=10_000)
        assert page.items, "a page without a row makes no progress"
        seen.append([j.id for j in page.items])
        if page.next_cursor is None:
            break
        assert page.next_cursor == page.items[-1].id
        cursor = page.next_cursor
    assert [job_id for ids in seen for job_id in ids] == newest_first, "each job once, newest first"
    assert [big.id] in seen
    assert len(seen) >= 5, seen
    everything = store.list_jobs(JobFilter(), limit=1000)
    assert [j.id for j in everything.items] == newest_first  # no budget: as before
    assert store.list_jobs(JobFilter(), limit=2, max_bytes=10**9).next_cursor == newest_first[1]


def test_events_tell_the_whole_story(store: StoreEngine, clock: ManualClock) -> None:
    job = submit(store, max_attempts=2)
    first = claim(store)
    clock.advance(1)
    fail(store, first)
    second = claim(store)
    clock.advance(1)
    store.request_cancel(job.id, CancelReason.USER, by="alice")
    store.request_cancel(job.id, CancelReason.FORCED, by="bob", retry=False)
    clock.advance(1)
    settle(store, second, Outcome(OutcomeKind.STOPPED, stop_method=StopMethod.COOPERATIVE))
    events = store.events(job.id)
    assert [(e.type, e.attempt) for e in events] == [
        ("submitted", 0),
        ("started", 1),
        ("retry scheduled", 1),
        ("started", 2),
        ("cancel requested", 2),
        ("cancel requested", 2),
        ("stopped", 2),
        ("force-failed", 2),
    ]
    assert store.get(job.id).status is JobStatus.FAILED
    assert_history_is_legal(store, job.id)


def test_list_jobs_pages_newest_first(store: StoreEngine, clock: ManualClock) -> None:
    jobs = []
    for i in range(23):
        jobs.append(submit(store, "a" if i % 3 else "b"))
        clock.advance(1)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = store.list_jobs(JobFilter(), limit=5, cursor=cursor)
        pages += 1
        assert len(page.items) <= 5
        seen.extend(j.id for j in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 5
    assert seen == [j.id for j in reversed(jobs)]
    exact = store.list_jobs(JobFilter(), limit=23)
    assert exact.next_cursor is None
    assert len(exact.items) == 23
    assert store.list_jobs(JobFilter(), limit=22).next_cursor is not None


def test_list_jobs_filters(store: StoreEngine) -> None:
    mix = make_mix(store)

    def listed(where: JobFilter) -> list[str]:
        return [j.id for j in store.list_jobs(where, limit=100).items]

    def newest_first(jobs: list[andon.Job]) -> list[str]:
        return sorted((j.id for j in jobs), reverse=True)

    assert listed(JobFilter(statuses=[JobStatus.QUEUED])) == newest_first([*mix.queued, mix.other_kind])
    assert listed(JobFilter(statuses=[JobStatus.QUEUED], kinds=["a"])) == newest_first(mix.queued)
    assert listed(JobFilter(kinds=["b"])) == [mix.other_kind.id]
    assert listed(JobFilter(kinds=["zzz"])) == []
    assert listed(JobFilter(statuses=[JobStatus.SUCCEEDED, JobStatus.FAILED])) == newest_first(
        [mix.succeeded, mix.failed]
    )
    assert listed(JobFilter(statuses=[JobStatus.RUNNING, JobStatus.CANCELLING])) == newest_first(
        [*mix.running, mix.cancelling]
    )
    assert listed(JobFilter(ids=[mix.failed.id, mix.queued[0].id, new_job_id()])) == newest_first(
        [mix.failed, mix.queued[0]]
    )
    assert listed(JobFilter(ids=[mix.failed.id], statuses=[JobStatus.QUEUED])) == []
    assert len(listed(JobFilter())) == 10
    # paging with a filter visits each matching job once
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = store.list_jobs(JobFilter(kinds=["a"]), limit=2, cursor=cursor)
        seen.extend(j.id for j in page.items)
        if (cursor := page.next_cursor) is None:
            break
    assert seen == listed(JobFilter(kinds=["a"]))
    assert len(seen) == 9


# -- delete ----------------------------------------------------------------------------


def test_delete_an_active_job_is_refused(store: StoreEngine) -> None:
    running = submit(store)
    cancelling = submit(store)
    queued = submit(store)
    assert [claim(store).id, claim(store).id] == [running.id, cancelling.id]
    store.request_cancel(cancelling.id, CancelReason.USER, by=None)
    for job in (queued, running, cancelling):
        before = store.get(job.id)
        with pytest.raises(andon.InvalidTransition):
            store.delete(job.id)
        assert store.get(job.id) == before


@pytest.mark.parametrize("end", ["succeeded", "failed", "cancelled"])
def test_delete_a_finished_job_removes_it_with_its_history(store: StoreEngine, end: str) -> None:
    job = submit(store)
    keep = submit(store)
    running = claim(store)
    store.write_progress([items_update(running, range(3))])
    if end == "succeeded":
        succeed(store, running)
    elif end == "failed":
        fail(store, running)
    else:
        store.request_cancel(job.id, CancelReason.USER, by=None)
        settle(store, running, Outcome(OutcomeKind.STOPPED, stop_method=StopMethod.COOPERATIVE))
    store.delete(job.id)
    with pytest.raises(andon.JobNotFound):
        store.get(job.id)
    with pytest.raises(andon.JobNotFound):
        store.events(job.id)
    with pytest.raises(andon.JobNotFound):
        store.items(job.id)
    with pytest.raises(andon.JobNotFound):
        store.delete(job.id)
    assert [j.id for j in store.list_jobs(JobFilter(), limit=10).items] == [keep.id]
    # nothing of the old job is left behind: a job created again under its id starts clean
    store.submit([NewJob(job.id, "a", {})], actor=None)
    assert [e.type for e in store.events(job.id)] == ["submitted"]
    assert store.items(job.id) == []


def test_delete_an_unknown_job(store: StoreEngine) -> None:
    with pytest.raises(andon.JobNotFound):
        store.delete(new_job_id())


# -- leases ------------------------------------------------------------------------------


def test_lost_worker_fails_its_job_and_keeps_partial_items(store: StoreEngine, clock: ManualClock) -> None:
    job = submit(store)
    other = submit(store)
    running = claim(store, "w1", lease_s=30)
    claim(store, "w2", lease_s=30)
    store.write_progress([items_update(running, range(3))])
    clock.advance(20)
    store.renew_leases("w1", 30)
    assert store.get(job.id).lease_expires_at == clock.now() + 30
    clock.advance(20)  # w2's lease expired, w1's did not
    recovered = store.recover_lost()
    assert [j.id for j in recovered] == [other.id]
    assert store.get(job.id).status is JobStatus.RUNNING
    clock.advance(11)
    [lost] = store.recover_lost()
    assert lost == store.get(job.id)
    assert lost.status is JobStatus.FAILED
    assert lost.error is not None
    assert lost.error.type == "WorkerLost"
    assert "w1" in lost.error.message
    assert (lost.worker_id, lost.lease_expires_at) == ("w1", None), "the worker that was lost stays named"
    assert lost.finished_at == clock.now()
    assert lost.failures == 1
    assert [i.seq for i in store.items(job.id)] == [0, 1, 2]
    assert lost.items_count == 3
    event = store.events(job.id)[-1]
    assert (event.type, event.reason, event.to_status) == ("worker lost", "worker_lost", JobStatus.FAILED)
    assert store.recover_lost() == []
    with pytest.raises(andon.InvalidTransition):
        settle(store, running, Outcome(OutcomeKind.SUCCEEDED))
    assert_history_is_legal(store, job.id)


def test_lost_worker_job_is_retried_if_the_policy_allows(store: StoreEngine, clock: ManualClock) -> None:
    job = submit(store, max_attempts=2, retry_backoff_s=5)
    running = claim(store, "w1", lease_s=10)
    store.write_progress([items_update(running, range(1))])
    clock.advance(11)
    [requeued] = store.recover_lost()
    assert requeued.status is JobStatus.QUEUED
    assert requeued.failures == 1
    assert requeued.available_at == clock.now() + 5
    assert store.claim("w2", ["a"], LEASE_S) is None
    clock.advance(5)
    second = claim(store, "w2")
    assert (second.id, second.attempt, second.items_count) == (job.id, 2, 1)
    with pytest.raises(andon.InvalidTransition):
        settle(store, running, Outcome(OutcomeKind.FAILED))
    assert store.get(job.id) == second
    assert_history_is_legal(store, job.id)


def test_lost_worker_of_a_cancelling_job(store: StoreEngine, clock: ManualClock) -> None:
    """A job whose worker is killed (kill -9) while it is cancelling ends ``cancelled`` when
    its lease runs out, and its record says how it ended (issue 12, item 9: it had no stop
    method at all)."""
    job = submit(store, max_attempts=3)
    claim(store, "w1", lease_s=10)
    store.request_cancel(job.id, CancelReason.USER, by=None)
    clock.advance(11)
    [lost] = store.recover_lost()
    assert lost.status is JobStatus.CANCELLED
    assert lost.finished_at == clock.now()
    assert lost.cancel is not None
    assert lost.cancel.stop_method is StopMethod.WORKER_LOST
    assert lost.cancel.stopped_at == clock.now()
    stopped, cancelled = store.events(job.id)[-2:]
    assert (stopped.type, stopped.message) == ("stopped", "stopped by: worker_lost")
    assert (cancelled.type, cancelled.to_status) == ("cancelled", JobStatus.CANCELLED)
    clock.advance(100)
    assert store.claim("w1", ["a"], LEASE_S) is None
    assert_history_is_legal(store, job.id)


def test_lost_worker_of_a_force_failed_job_says_so(store: StoreEngine, clock: ManualClock) -> None:
    job = submit(store, max_attempts=3)
    claim(store, "w1", lease_s=10)
    store.request_cancel(job.id, CancelReason.FORCED, by="alice", retry=False)
    clock.advance(11)
    [lost] = store.recover_lost()
    assert lost.status is JobStatus.FAILED
    assert lost.cancel is not None
    assert (lost.cancel.reason, lost.cancel.stop_method) == (CancelReason.FORCED, StopMethod.WORKER_LOST)
    assert lost.cancel.stopped_at == clock.now()
    assert_history_is_legal(store, job.id)


def test_renew_leases_touches_only_that_workers_jobs(store: StoreEngine, clock: ManualClock) -> None:
    submit(store)
    submit(store)
    mine = claim(store, "w1", lease_s=10)
    theirs = claim(store, "w2", lease_s=10)
    clock.advance(5)
    store.renew_leases("w1", 10)
    assert store.get(mine.id).lease_expires_at == clock.now() + 10
    assert store.get(theirs.id).lease_expires_at == theirs.lease_expires_at


def test_renew_leases_of_named_jobs_says_which_it_renewed(store: StoreEngine, clock: ManualClock) -> None:
    first, second, third = submit(store), submit(store), submit(store, max_attempts=2)
    for _ in range(3):
        claim(store, "w1", lease_s=10)
    clock.advance(5)
    assert store.renew_leases("w1", 10, [first.id]) == [first.id]
    assert store.get(first.id).lease_expires_at == clock.now() + 10
    assert store.get(second.id).lease_expires_at == clock.now() + 5, "a job left out was renewed"
    assert store.renew_leases("w1", 10, []) == []
    clock.advance(6)  # the second and third jobs' leases ran out
    recovered = {job.id for job in store.recover_lost()}
    assert recovered == {second.id, third.id}
    again = claim(store, "w1")  # the third job, retried: a new attempt of the same worker
    assert again.id == third.id
    # The worker still names the jobs it believes it holds: only those it does are renewed.
    renewed = store.renew_leases("w1", 10, [first.id, second.id, third.id, new_job_id()])
    assert sorted(renewed) == sorted([first.id, third.id])
    assert store.get(second.id).status is JobStatus.FAILED
    assert store.renew_leases("w2", 10) == []


# -- statistics -------------------------------------------------------------------------


def test_kind_stats(store: StoreEngine, clock: ManualClock) -> None:
    for _ in range(2):
        submit(store)
        succeed(store, claim(store))
    submit(store)  # stays queued
    withdrawn = submit(store)
    store.request_cancel(withdrawn.id, CancelReason.USER, by=None)  # withdrawn: not a stop
    for seconds, method in ((1.0, StopMethod.COOPERATIVE), (6.0, StopMethod.INJECTED), (2.0, StopMethod.COOPERATIVE)):
        job = submit(store, priority=1)
        running = claim(store)
        store.request_cancel(job.id, CancelReason.USER, by=None)
        clock.advance(seconds)
        settle(store, running, Outcome(OutcomeKind.STOPPED, stop_method=method, stopped_at=clock.now()))
    submit(store, "b")
    fail(store, claim(store, kinds=["b"]))

    stats = {s.kind: s for s in store.kind_stats()}
    assert set(stats) == {"a", "b"}
    a, b = stats["a"], stats["b"]
    assert a.counts == {"succeeded": 2, "queued": 1, "cancelled": 4}
    assert a.stops == 3
    assert a.stop_p50_s == pytest.approx(2.0)
    assert a.stop_max_s == pytest.approx(6.0)
    assert a.stop_methods == {"cooperative": 2, "injected": 1}
    assert b.counts == {"failed": 1}
    assert (b.stops, b.stop_p50_s, b.stop_p99_s, b.stop_max_s, b.stop_methods) == (0, None, None, None, {})
    assert (b.forced_stops, b.needs_force) == (0, False)


def stop_one(store: StoreEngine, clock: ManualClock, kind: str, seconds: float, method: StopMethod) -> None:
    job = submit(store, kind)
    running = claim(store, kinds=[kind])
    store.request_cancel(job.id, CancelReason.USER, by=None)
    clock.advance(seconds)
    settle(store, running, Outcome(OutcomeKind.STOPPED, stop_method=method, stopped_at=clock.now()))


def near(value: float) -> Any:  # Any: pytest's approx object
    """Equal to about a microsecond: stop times are differences of stamps near 1.7e9 s."""
    return pytest.approx(value, abs=1e-6)


def percentile_cont(values: list[float], p: float) -> float:
    """PostgreSQL's percentile_cont, by hand: linear between the two values around (n - 1) * p."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * p
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def test_kind_stats_percentiles_and_needs_force(store: StoreEngine, clock: ManualClock) -> None:
    """p50 and p99 are PostgreSQL's percentile_cont on both stores (SQLite computes it in its
    query); a kind needs force when more than half of at least three stops were forced."""
    a = [
        (4.0, StopMethod.INJECTED),
        (0.5, StopMethod.COOPERATIVE),
        (10.0, StopMethod.KILLED),
        (1.0, StopMethod.COOPERATIVE),
        (2.0, StopMethod.COOPERATIVE),
    ]
    b = [(1.0, StopMethod.INJECTED), (3.0, StopMethod.INJECTED)]  # all forced, but only two stops
    c = [(0.25, StopMethod.ABANDONED), (0.75, StopMethod.WORKER_LOST), (0.5, StopMethod.TERMINATED)]
    d = [(0.001 * (i + 1), StopMethod.COOPERATIVE) for i in range(23)] + [(9.0, StopMethod.INJECTED)]
    for kind, stops in (("a", a), ("b", b), ("c", c), ("d", d)):
        for seconds, method in stops:
            stop_one(store, clock, kind, seconds, method)

    stats = {s.kind: s for s in store.kind_stats()}
    assert (stats["a"].stop_p50_s, stats["a"].stop_p99_s) == (near(2.0), near(4 + 0.96 * 6))
    assert (stats["b"].stop_p50_s, stats["b"].stop_p99_s) == (near(2.0), near(2.98))
    for kind, stops in (("a", a), ("b", b), ("c", c), ("d", d)):
        values = [seconds for seconds, _ in stops]
        got = stats[kind]
        assert got.stops == len(stops)
        assert got.stop_p50_s == near(percentile_cont(values, 0.5)), kind
        assert got.stop_p99_s == near(percentile_cont(values, 0.99)), kind
        assert got.stop_max_s == near(max(values)), kind
    assert stats["d"].stop_p99_s == near(0.023 + 0.77 * (9.0 - 0.023))
    assert stats["a"].stop_methods == {"cooperative": 3, "injected": 1, "killed": 1}
    assert [stats[k].forced_stops for k in "abcd"] == [2, 2, 2, 1]
    assert [stats[k].needs_force for k in "abcd"] == [False, False, True, False]
    # The cheap read (only stopped jobs) says the same, kind by kind.
    assert store.stop_stats() == [stats[k].stop_stats for k in "abcd"]


def test_kind_stats_of_one_stop(store: StoreEngine, clock: ManualClock) -> None:
    stop_one(store, clock, "a", 0.007, StopMethod.INJECTED)
    (only,) = store.kind_stats()
    assert (only.stops, only.forced_stops, only.needs_force) == (1, 1, False)
    assert only.stop_p50_s == only.stop_p99_s == only.stop_max_s == near(0.007)


def test_kind_stats_of_an_empty_store(store: StoreEngine) -> None:
    assert store.kind_stats() == []
    assert store.stop_stats() == []


# -- watch --------------------------------------------------------------------------------


def test_watch_sees_a_commit_by_another_connection(backend: Backend) -> None:
    watcher = backend.store.watch()
    try:
        assert watcher.wait(0.02) is False
        other = backend.peer()
        try:
            done = threading.Event()

            def commit() -> None:
                other.submit([new_job()], actor="elsewhere")
                done.set()

            thread = threading.Thread(target=commit)
            thread.start()
            assert watcher.wait(10.0) is True
            thread.join(timeout=10)
            assert done.is_set()
            # the change was reported once; without another commit the watcher stays quiet
            assert watcher.wait(0.02) is False
            other.request_cancel_many(JobFilter(), CancelReason.USER, by=None)
            assert watcher.wait(10.0) is True
        finally:
            if other is not backend.store:
                other.close()
    finally:
        watcher.close()


@pytest.mark.parametrize(
    ("change", "make"),
    [
        (Change.WORK, "submit"),
        (Change.WORK, "requeue"),
        (Change.CANCEL, "cancel a running job"),
        (Change.ENDED, "settle"),
        (Change.ENDED, "withdraw"),
        (Change.ENDED, "recover"),
    ],
)
def test_a_watcher_never_misses_the_change_it_waits_for(backend: Backend, change: Change, make: str) -> None:
    store, clock = backend.store, backend.clock
    submit(store, max_attempts=2)
    running = claim(store)
    queued = submit(store)
    watcher = store.watch({change})
    try:
        other = backend.peer()
        try:
            if make == "submit":
                submit(other)
            elif make == "requeue":
                fail(other, running)
            elif make == "cancel a running job":
                other.request_cancel(running.id, CancelReason.USER, by=None)
            elif make == "settle":
                succeed(other, running)
            elif make == "withdraw":
                other.request_cancel(queued.id, CancelReason.USER, by=None)
            else:
                clock.advance(LEASE_S + 1)
                assert other.recover_lost()
            assert watcher.wait(10.0) is True
        finally:
            if other is not store:
                other.close()
    finally:
        watcher.close()


def test_watch_close_wakes_nothing_and_is_idempotent(store: StoreEngine) -> None:
    watcher = store.watch()
    watcher.close()
    watcher.close()
    assert watcher.wait(0.01) is False


def test_job_fields_agree_with_the_status(store: StoreEngine) -> None:
    mix = make_mix(store)
    for job in store.list_jobs(JobFilter(), limit=100).items:
        held = job.status in (JobStatus.RUNNING, JobStatus.CANCELLING)
        assert (job.lease_expires_at is not None) == held, job
        # The worker of the last attempt stays on the job after it: only "never started" lacks one.
        assert (job.worker_id is not None) == (job.attempt > 0), job
        assert (job.finished_at is not None) == (job.status in TERMINAL_STATUSES), job
        assert_history_is_legal(store, job.id)
    assert mix.succeeded.result == {"ok": 1}


# -- batches: a worker's hot path -----------------------------------------------------


def test_claim_many_takes_up_to_limit_in_claim_order(store: StoreEngine) -> None:
    low = [submit(store) for _ in range(3)]
    high = submit(store, priority=5)
    submit(store, kind="other")
    assert store.claim_many("w1", ["a"], LEASE_S, 0) == []
    assert store.claim_many("w1", [], LEASE_S, 3) == []
    first = store.claim_many("w1", ["a"], LEASE_S, 3)
    assert [j.id for j in first] == [high.id, low[0].id, low[1].id]
    assert all(j.status is JobStatus.RUNNING and j.worker_id == "w1" and j.attempt == 1 for j in first)
    assert [store.get(j.id) for j in first] == first
    rest = store.claim_many("w2", ["a"], LEASE_S, 10)
    assert [j.id for j in rest] == [low[2].id]
    assert store.claim_many("w2", ["a"], LEASE_S, 10) == []
    for job in first + rest:
        assert [e.type for e in store.events(job.id)] == ["submitted", "started"]
        assert_history_is_legal(store, job.id)


def test_settle_many_settles_each_and_refuses_only_what_it_must(store: StoreEngine) -> None:
    jobs = [submit(store) for _ in range(3)]
    mine = store.claim_many("w1", ["a"], LEASE_S, 2)
    theirs = claim(store, "w2")
    assert {j.id for j in [*mine, theirs]} == {j.id for j in jobs}
    unknown = new_job_id()
    results = store.settle_many(
        "w1",
        [
            AttemptEnd(
                mine[0].id, mine[0].attempt, Outcome(OutcomeKind.SUCCEEDED, result=1), items_update(mine[0], range(2))
            ),
            AttemptEnd(theirs.id, theirs.attempt, Outcome(OutcomeKind.SUCCEEDED)),
            AttemptEnd(unknown, 1, Outcome(OutcomeKind.SUCCEEDED)),
            AttemptEnd(mine[1].id, mine[1].attempt, Outcome(OutcomeKind.FAILED, error=ErrorInfo("E", "boom", None))),
        ],
    )
    assert isinstance(results[0], andon.Job)
    assert results[0].status is JobStatus.SUCCEEDED
    assert results[0].result == 1
    assert isinstance(results[1], andon.InvalidTransition)
    assert isinstance(results[2], andon.JobNotFound)
    assert isinstance(results[3], andon.Job)
    assert results[3].status is JobStatus.FAILED
    assert store.get(mine[0].id) == results[0]
    assert [i.seq for i in store.items(mine[0].id)] == [0, 1]
    assert store.get(mine[1].id) == results[3]
    assert store.get(theirs.id) == theirs  # another worker's attempt is untouched
    assert store.settle_many("w1", []) == []
    for job in jobs:
        assert_history_is_legal(store, job.id)


def test_settle_and_claim_frees_and_refills_slots(store: StoreEngine) -> None:
    first = [submit(store) for _ in range(2)]
    running = store.claim_many("w1", ["a"], LEASE_S, 2)
    waiting = [submit(store) for _ in range(3)]
    settled, claimed = store.settle_and_claim(
        "w1",
        [AttemptEnd(j.id, j.attempt, Outcome(OutcomeKind.SUCCEEDED)) for j in running],
        ["a"],
        LEASE_S,
        2,
    )
    assert [s.status for s in settled if isinstance(s, andon.Job)] == [JobStatus.SUCCEEDED] * 2
    assert {s.id for s in settled if isinstance(s, andon.Job)} == {j.id for j in first}
    assert [j.id for j in claimed] == [waiting[0].id, waiting[1].id]
    assert all(store.get(j.id).status is JobStatus.RUNNING for j in claimed)
    settled, claimed = store.settle_and_claim("w1", [], ["a"], LEASE_S, 0)
    assert (settled, claimed) == ([], [])
    assert store.get(waiting[2].id).status is JobStatus.QUEUED


# -- owners and tokens ----------------------------------------------------------------


def test_owner_is_stored_and_filters_listings_and_bulk_cancel(store: StoreEngine) -> None:
    alice = submit(store, owner="alice")
    bob = submit(store, owner="bob")
    nobody = submit(store)
    assert (alice.owner, bob.owner, nobody.owner) == ("alice", "bob", None)
    assert store.get(alice.id).owner == "alice"
    assert store.get(nobody.id).owner is None
    assert [j.id for j in store.list_jobs(JobFilter(owners=["alice"]), 10).items] == [alice.id]
    both = store.list_jobs(JobFilter(owners=["alice", "bob"]), 10).items
    assert {j.id for j in both} == {alice.id, bob.id}
    assert len(store.list_jobs(JobFilter(), 10).items) == 3
    done = store.request_cancel_many(JobFilter(owners=["bob"]), CancelReason.USER, "user:bob")
    assert done.ids == [bob.id]
    assert store.get(alice.id).status is JobStatus.QUEUED
    assert store.get(nobody.id).status is JobStatus.QUEUED


def test_tokens_are_created_found_listed_and_revoked(store: StoreEngine, clock: ManualClock) -> None:
    created = store.create_token("alice", andon.Role.USER, "a" * 64)
    assert created == andon.TokenRecord("alice", andon.Role.USER, clock.now(), None)
    store.create_token("root", andon.Role.ADMIN, "b" * 64)
    assert store.find_token("a" * 64) == created
    assert store.find_token("c" * 64) is None
    assert [(t.name, t.role) for t in store.list_tokens()] == [("alice", "user"), ("root", "admin")]
    clock.advance(5)
    revoked = store.revoke_token("alice")
    assert revoked.revoked_at == clock.now()
    assert not revoked.is_active
    clock.advance(5)
    assert store.revoke_token("alice").revoked_at == revoked.revoked_at  # a second revoke changes nothing
    found = store.find_token("a" * 64)
    assert found is not None
    assert not found.is_active
    assert [t.is_active for t in store.list_tokens()] == [False, True]


def test_token_names_are_unique_even_after_revoke(store: StoreEngine) -> None:
    store.create_token("alice", andon.Role.USER, "a" * 64)
    with pytest.raises(andon.UsageError, match="exists already"):
        store.create_token("alice", andon.Role.ADMIN, "b" * 64)
    store.revoke_token("alice")
    with pytest.raises(andon.UsageError, match="exists already"):
        store.create_token("alice", andon.Role.USER, "c" * 64)
    assert [t.name for t in store.list_tokens()] == ["alice"]
    with pytest.raises(andon.UsageError, match="no token is named"):
        store.revoke_token("carol")
