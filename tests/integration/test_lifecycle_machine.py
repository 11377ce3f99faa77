"""The job lifecycle against real stores (SQLite, PostgreSQL), driven by random sequences of operations.

Two workers claim, emit, settle and get lost; clients cancel, force-fail and delete. After
every step the whole store is checked against the state table in ``andon._jobs``: only
allowed transitions, terminal states never change, a job is terminal at most once, a
cancelled job never runs again, no attempt is handed out twice, and the item counts add up.
Workers keep believing they hold attempts that were recovered from them (as real ones do
until they notice), so fencing is exercised as well.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import event as hypothesis_event
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from psycopg import sql

import andon
from andon import CancelReason, InvalidTransition, JobFinished, JobNotFound, JobStatus, ManualClock, StopMethod
from andon._errors import ParentStopping
from andon._ids import new_job_id
from andon._jobs import (
    ACTIVE_STATUSES,
    ALLOWED_TRANSITIONS,
    RESUMABLE_STATUSES,
    TERMINAL_STATUSES,
    CancelOutcome,
    ErrorInfo,
    Outcome,
    OutcomeKind,
    decide_cancel,
    decide_settlement,
    life_stage,
)
from andon._output import ProgressUpdate, SavedState
from andon._storage import JobFilter, NewJob
from andon._storage._engine import StoreEngine
from andon._storage._postgres import PostgresStore
from tests.postgres import admin_connection, fresh_schema

KINDS = ("a", "b")
WORKERS = ("w1", "w2")
LEASE_S = 10.0
HELD = (JobStatus.RUNNING, JobStatus.CANCELLING)
CANCEL_REASONS = (CancelReason.USER, CancelReason.TIMEOUT, CancelReason.DELETED, CancelReason.FORCED)


@dataclass(frozen=True)
class Attempt:
    """An attempt a worker believes it holds (it may have been recovered meanwhile)."""

    worker: str
    job_id: str
    number: int


class Lifecycle(RuleBasedStateMachine):
    postgres_url: str | None = None
    """Set by the test: run against this PostgreSQL schema (emptied per example), not SQLite."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.mkdtemp(prefix="andon-machine-")
        self.clock = ManualClock()
        self.store: StoreEngine
        if self.postgres_url is None:
            self.store = andon.SqliteStore(str(Path(self.folder) / "m.db"), clock=self.clock)
        else:
            with admin_connection() as conn:
                schema = PostgresStore(self.postgres_url).schema
                conn.execute(
                    sql.SQL("TRUNCATE {}.andon_jobs, {}.andon_events, {}.andon_items, {}.andon_paused").format(
                        *(sql.Identifier(schema) for _ in range(4))
                    )
                )
            self.store = PostgresStore(self.postgres_url, clock=self.clock)
        self.store.open()
        self.ids: list[str] = []
        self.deleted: set[str] = set()
        self.attempts: dict[Attempt, int] = {}  # -> the next item seq this worker will emit
        self.handed_out: set[tuple[str, int]] = set()
        self.last: dict[str, andon.Job] = {}  # every live job as of the end of the last step
        self.finished: dict[str, andon.Job] = {}  # the first snapshot of each terminal job
        self.paused: set[str] = set()

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _before(self, job_id: str) -> andon.Job | None:
        try:
            return self.store.get(job_id)
        except JobNotFound:
            assert job_id in self.deleted or job_id not in self.ids
            return None

    # -- clients -------------------------------------------------------------------

    @rule(
        kind=st.sampled_from(KINDS),
        max_attempts=st.integers(1, 3),
        backoff=st.sampled_from([0.0, 1.0, 4.0]),
        priority=st.integers(0, 2),
        count=st.integers(1, 2),
        delay=st.sampled_from([None, None, 3.0]),
    )
    def submit(
        self, kind: str, max_attempts: int, backoff: float, priority: int, count: int, delay: float | None
    ) -> None:
        new = [
            NewJob(
                new_job_id(),
                kind,
                {"n": i},
                max_attempts=max_attempts,
                retry_backoff_s=backoff,
                priority=priority,
                delay_s=delay,  # scheduled (issue 17): not claimable before clock + delay
            )
            for i in range(count)
        ]
        jobs = self.store.submit(new, actor="client")
        assert [j.status for j in jobs] == [JobStatus.QUEUED] * count
        assert all(j.available_at == self.clock.now() + (delay or 0.0) for j in jobs)
        self.ids.extend(j.id for j in jobs)

    @precondition(lambda self: bool(self.attempts))
    @rule(
        data=st.data(),
        kind=st.sampled_from(KINDS),
        count=st.integers(1, 2),
        detached=st.booleans(),
        fail_parent=st.booleans(),
    )
    def submit_child(self, data: st.DataObject, kind: str, count: int, detached: bool, fail_parent: bool) -> None:
        """A running handler submits children (issue 16); refused unless its attempt holds
        the parent and no stop of it has committed."""
        attempt = data.draw(st.sampled_from(sorted(self.attempts, key=repr)))
        before = self._before(attempt.job_id)
        allowed = (
            before is not None
            and before.status is JobStatus.RUNNING
            and before.awaiting is None
            and (before.worker_id, before.attempt) == (attempt.worker, attempt.number)
        )
        new = [NewJob(new_job_id(), kind, {"n": i}, detached=detached, fail_parent=fail_parent) for i in range(count)]
        try:
            jobs = self.store.submit_children(attempt.job_id, attempt.worker, attempt.number, new, "job")
        except (ParentStopping, JobNotFound):
            assert not allowed, "a running parent could not submit children"
            assert all(self._before(j.id) is None for j in new), "a refused child exists"
            return
        assert allowed, f"children were submitted under a {before.status if before else 'missing'} parent"
        assert before is not None
        hypothesis_event("children submitted")
        assert all(j.parent_id == before.id and j.root_id == before.tree_root for j in jobs)
        self.ids.extend(j.id for j in jobs)

    @precondition(lambda self: bool(self.ids))
    @rule(
        data=st.data(),
        reason=st.sampled_from(CANCEL_REASONS),
        retry=st.booleans(),
        unknown=st.booleans(),
    )
    def cancel(self, data: st.DataObject, reason: CancelReason, retry: bool, unknown: bool) -> None:
        job_id = new_job_id() if unknown else data.draw(st.sampled_from(self.ids))
        before = self._before(job_id)
        if before is None:
            try:
                self.store.request_cancel(job_id, reason, by="client", retry=retry)
            except JobNotFound:
                return
            raise AssertionError("cancel of a missing job did not raise JobNotFound")
        try:
            expected = decide_cancel(before, reason, retry=retry)
        except JobFinished:
            try:
                self.store.request_cancel(job_id, reason, by="client", retry=retry)
            except JobFinished:
                return
            raise AssertionError(f"cancel of a {before.status} job did not raise JobFinished") from None
        result = self.store.request_cancel(job_id, reason, by="client", retry=retry)
        if result.job.awaiting is not None:
            # Withdrawn while children of an earlier attempt still run: it waits for them.
            assert expected == (CancelOutcome.WITHDRAWN, result.job.awaiting)
            assert result.job.status is JobStatus.CANCELLING
            return
        assert (result.outcome, result.job.status) == expected
        if result.outcome is CancelOutcome.ALREADY:
            assert result.job == before

    @precondition(lambda self: bool(self.ids))
    @rule(
        data=st.data(),
        by=st.sampled_from(["status", "kind", "ids", "all"]),
        reason=st.sampled_from([CancelReason.USER, CancelReason.TIMEOUT, CancelReason.DELETED]),
    )
    def cancel_many(self, data: st.DataObject, by: str, reason: CancelReason) -> None:
        if by == "status":
            where = JobFilter(statuses=data.draw(st.sets(st.sampled_from(list(JobStatus)), min_size=1)))
        elif by == "kind":
            where = JobFilter(kinds=data.draw(st.sets(st.sampled_from(KINDS), min_size=1)))
        elif by == "ids":
            where = JobFilter(ids=data.draw(st.sets(st.sampled_from(self.ids), min_size=1)))
        else:
            where = JobFilter()
        before = {j.id: j for j in self.store.list_jobs(JobFilter(), limit=10_000).items}
        expected = {
            job.id: decide_cancel(job, reason)
            for job in before.values()
            if (job.status in (JobStatus.QUEUED, JobStatus.RUNNING) or _bulk_escalates(job, reason))
            and (not where.statuses or job.status in where.statuses)
            and (not where.kinds or job.kind in where.kinds)
            and (not where.ids or job.id in where.ids)
        }
        done = self.store.request_cancel_many(where, reason, by="client")
        got = {r.job.id: (r.outcome, r.job.status) for r in done.stopping}
        for job_id in done.withdrawn:  # answered by id: read what it became
            assert job_id not in got
            got[job_id] = (CancelOutcome.WITHDRAWN, self.store.get(job_id).status)
        for job_id in expected:
            if _requeued_parent(before[job_id], before):
                # It waits for the children still active after this cancel (a single cancel does
                # the same), or ends at once if the cancel withdrew them all. Found by this
                # machine: the bulk path had ended such a parent under its running child.
                after = self.store.get(job_id)
                assert got[job_id] in ((CancelOutcome.WITHDRAWN, JobStatus.CANCELLING), expected[job_id])
                assert (after.awaiting is not None) == (after.status is JobStatus.CANCELLING)
                expected[job_id] = got[job_id]
        assert got == expected
        reached = _descendants(before, set(expected))
        for job_id, job in before.items():
            if job_id not in expected and job_id not in reached:
                after = self.store.get(job_id)
                if job.awaiting is not None and after.status is job.awaiting:
                    continue  # a stopped parent whose last active child this cancel withdrew
                assert after == job

    @precondition(lambda self: bool(self.ids))
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(self.ids))
        before = self._before(job_id)
        if before is None:
            try:
                self.store.delete(job_id)
            except JobNotFound:
                return
            raise AssertionError("delete of a missing job did not raise JobNotFound")
        if before.status.is_active:
            try:
                self.store.delete(job_id)
            except JobFinished:
                raise AssertionError("delete of an active job raised JobFinished") from None
            except InvalidTransition:
                assert self.store.get(job_id) == before
                return
            raise AssertionError(f"delete of a {before.status} job did not raise InvalidTransition")
        self.store.delete(job_id)
        self.deleted.add(job_id)
        self.last.pop(job_id, None)
        self.finished.pop(job_id, None)
        try:
            self.store.get(job_id)
        except JobNotFound:
            return
        raise AssertionError("a deleted job is still there")

    @precondition(lambda self: bool(self.ids))
    @rule(data=st.data())
    def resume(self, data: st.DataObject) -> None:
        # Mostly a job that can be resumed (they are rare), sometimes any job.
        resumable = sorted(j.id for j in self.last.values() if j.status in RESUMABLE_STATUSES and j.checkpoint)
        prefer_resumable = bool(resumable) and data.draw(st.booleans())
        job_id = data.draw(st.sampled_from(resumable if prefer_resumable else self.ids))
        before = self._before(job_id)
        if before is None:
            with pytest.raises(JobNotFound):
                self.store.resume(job_id, "client")
            return
        orphaned = False
        if before.parent_id is not None and not before.detached:
            parent = self.last.get(before.parent_id)
            orphaned = parent is None or parent.status is not JobStatus.RUNNING
        if before.status not in RESUMABLE_STATUSES or before.checkpoint is None or orphaned:
            # (A child whose parent no longer runs stays stopped: found by this machine, which
            # saw one resumed under a failed parent.)
            with pytest.raises(InvalidTransition):
                self.store.resume(job_id, "client")
            assert self.store.get(job_id) == before
            return
        after = self.store.resume(job_id, "client")
        hypothesis_event("a job resumed")
        assert (after.status, after.resume, after.cancel) == (JobStatus.QUEUED, True, None)
        assert after.items_count == before.checkpoint.items
        assert after.attempt == before.attempt, "a resume is the next attempt of the same job"
        self.finished.pop(job_id, None)  # reopened on purpose: the one way out of a terminal state
        self.last[job_id] = after

    @rule(kind=st.sampled_from(KINDS), now=st.booleans())
    def pause(self, kind: str, now: bool) -> None:
        running = [j for j in self.last.values() if j.kind == kind and j.status is JobStatus.RUNNING]
        result = self.store.pause_kind(kind, "ops", None, now)
        assert result.changed == (kind not in self.paused)
        self.paused.add(kind)
        assert {j.id for j in result.stopping} == ({j.id for j in running} if now else set())
        for job in result.stopping:
            assert job.status is JobStatus.CANCELLING
            assert job.cancel is not None
            assert job.cancel.reason is CancelReason.PAUSED

    @rule(kind=st.sampled_from(KINDS))
    def unpause(self, kind: str) -> None:
        assert self.store.unpause_kind(kind, "ops") == (kind in self.paused)
        self.paused.discard(kind)
        assert kind not in {p.kind for p in self.store.paused_kinds()}

    # -- workers ---------------------------------------------------------------------

    @rule(
        worker=st.sampled_from(WORKERS),
        kinds=st.sampled_from([("a",), ("b",), ("a", "b")]),
        children=st.sampled_from([0, 1, 2]),
    )
    def claim(self, worker: str, kinds: tuple[str, ...], children: int) -> None:
        now = self.clock.now()
        available = [
            j
            for j in self.last.values()
            if j.status is JobStatus.QUEUED
            and j.kind in kinds
            and j.kind not in self.paused
            and j.available_at is not None
            and j.available_at <= now
        ]
        job = self.store.claim(worker, kinds, LEASE_S)
        if job is None:
            assert available == [], "claim found nothing although jobs were available"
            return
        before = self.last.get(job.id)
        assert before is not None, "claimed a job the test never saw queued"
        assert before.status is JobStatus.QUEUED, f"claimed a {before.status} job"
        first = min(available, key=lambda j: (-j.priority, j.id))
        assert job.id == first.id, "claim did not take the highest priority, oldest job"
        assert (job.status, job.worker_id, job.attempt) == (JobStatus.RUNNING, worker, before.attempt + 1)
        assert (job.id, job.attempt) not in self.handed_out, "an attempt was handed out twice"
        assert job.kind not in self.paused, "claimed a job of a paused kind"
        if job.resume:
            assert job.checkpoint is not None
            assert job.items_count == job.checkpoint.items, "a resumed attempt does not go on from its checkpoint"
        self.handed_out.add((job.id, job.attempt))
        self.attempts[Attempt(worker, job.id, job.attempt)] = job.items_count
        if children:
            # The handler starts children at once (issue 16): trees grow often enough to be
            # cancelled, stopped and ended in every order.
            new = [NewJob(new_job_id(), KINDS[i % 2], {"n": i}, fail_parent=i == 0) for i in range(children)]
            made = self.store.submit_children(job.id, worker, job.attempt, new, "job")
            hypothesis_event("children submitted")
            self.ids.extend(j.id for j in made)

    @precondition(lambda self: bool(self.attempts))
    @rule(data=st.data(), count=st.integers(0, 3), progress=st.booleans(), checkpoint=st.booleans())
    def emit(self, data: st.DataObject, count: int, progress: bool, checkpoint: bool) -> None:
        attempt = data.draw(st.sampled_from(sorted(self.attempts, key=repr)))
        update = self._update(attempt, count, progress)
        if checkpoint:
            next_seq = self.attempts[attempt]
            update.checkpoint = SavedState(next_seq, self.clock.now(), json.dumps({"next": next_seq}))
        before = self._before(attempt.job_id)
        refused = self.store.write_progress([update])
        if checkpoint and not refused:
            stored = self.store.get(attempt.job_id).checkpoint
            assert stored is not None
            assert (stored.items, stored.attempt) == (self.attempts[attempt], attempt.number)
        elif before is not None and refused:
            assert self.store.get(attempt.job_id).checkpoint == before.checkpoint, "a refused write stored a checkpoint"

    def _update(self, attempt: Attempt, count: int, progress: bool) -> ProgressUpdate:
        start = self.attempts[attempt]
        self.attempts[attempt] = start + count
        return ProgressUpdate(
            attempt.job_id,
            attempt.number,
            items=[(seq, self.clock.now(), f'{{"seq": {seq}}}') for seq in range(start, start + count)],
            progress=(float(start + count), None, attempt.worker) if progress else None,
        )

    @precondition(lambda self: bool(self.attempts))
    @rule(
        data=st.data(),
        kind=st.sampled_from([OutcomeKind.SUCCEEDED, OutcomeKind.FAILED, OutcomeKind.STOPPED]),
        stop_reason=st.sampled_from([None, CancelReason.SHUTDOWN, CancelReason.LEASE_LOST]),
        stop_method=st.sampled_from(list(StopMethod)),
        count=st.integers(0, 2),
    )
    def settle(
        self,
        data: st.DataObject,
        kind: OutcomeKind,
        stop_reason: CancelReason | None,
        stop_method: StopMethod,
        count: int,
    ) -> None:
        attempt = data.draw(st.sampled_from(sorted(self.attempts, key=repr)))
        outcome = Outcome(
            kind,
            result={"by": attempt.worker} if kind is OutcomeKind.SUCCEEDED else None,
            error=ErrorInfo("RuntimeError", "boom", "Traceback ...") if kind is OutcomeKind.FAILED else None,
            stop_method=stop_method if kind is OutcomeKind.STOPPED else None,
            stop_reason=stop_reason if kind is OutcomeKind.STOPPED else None,
            stopped_at=self.clock.now() if kind is OutcomeKind.STOPPED else None,
        )
        update = self._update(attempt, count, progress=False)
        del self.attempts[attempt]  # the worker is done with it, whatever the store says
        before = self._before(attempt.job_id)
        holds = (
            before is not None
            and before.status in HELD
            and (before.worker_id, before.attempt) == (attempt.worker, attempt.number)
        )
        try:
            after = self.store.settle(attempt.worker, attempt.number, attempt.job_id, outcome, update)
        except JobNotFound:
            assert before is None
            return
        except InvalidTransition:
            assert not holds, "the holder of an attempt could not settle it"
            return
        assert holds, "an attempt was settled by a worker that does not hold it"
        assert before is not None
        decided = decide_settlement(before, outcome).status
        if after.awaiting is not None:
            hypothesis_event("a stopped parent waits for its descendants")
            assert (after.status, after.awaiting) == (JobStatus.CANCELLING, decided)
        else:
            assert after.status is decided
        assert after.worker_id == attempt.worker, "who ran the last attempt stays on the job"

    @rule(worker=st.sampled_from(WORKERS))
    def renew(self, worker: str) -> None:
        self.store.renew_leases(worker, LEASE_S)
        for job in self.store.list_jobs(JobFilter(statuses=HELD), limit=10_000).items:
            # A stopped parent waiting for its descendants keeps its last worker's id but
            # holds no lease: its work has ended (found by this machine: it had asserted one).
            if job.worker_id == worker and job.awaiting is None:
                assert job.lease_expires_at == self.clock.now() + LEASE_S

    @rule(seconds=st.sampled_from([0.5, 2.0, 6.0, 11.0]))
    def advance_and_recover(self, seconds: float) -> None:
        self.clock.advance(seconds)
        now = self.clock.now()
        expected = {
            job.id: decide_settlement(job, Outcome(OutcomeKind.LOST)).status
            for job in self.last.values()
            if job.status in HELD and job.lease_expires_at is not None and job.lease_expires_at < now
        }
        recovered = self.store.recover_lost()
        assert {j.id: j.awaiting or j.status for j in recovered} == expected
        for job in recovered:
            assert job.worker_id == self.last[job.id].worker_id, "the lost worker stays named"
            assert job.error is not None or JobStatus.CANCELLED in (job.status, job.awaiting)

    # -- invariants --------------------------------------------------------------------

    @invariant()
    def store_is_consistent(self) -> None:
        jobs = {j.id: j for j in self.store.list_jobs(JobFilter(), limit=10_000).items}
        assert set(jobs) == set(self.ids) - self.deleted
        for job_id, job in jobs.items():
            assert isinstance(job.status, JobStatus)
            self._check_job(job)
            self._check_history(job)
            items = self.store.items(job_id)
            assert job.items_count == len(items), f"items_count {job.items_count} but {len(items)} items"
            assert [i.seq for i in items] == list(range(len(items)))
            assert all(1 <= i.attempt <= job.attempt for i in items)
            if job.status in TERMINAL_STATUSES:
                first = self.finished.setdefault(job_id, job)
                assert job == first, "a terminal job changed"
            else:
                assert job_id not in self.finished, "a terminal job became active again without a resume"
            previous = self.last.get(job_id)
            if previous is not None:
                assert life_stage(job) >= life_stage(previous), "a job's life stage went back"
            if job.checkpoint is not None and job.status is not JobStatus.QUEUED:
                assert job.checkpoint.items <= job.items_count, "a checkpoint ahead of the stored items"
        self._check_trees(jobs)
        self.last = jobs

    def _check_trees(self, jobs: dict[str, andon.Job]) -> None:
        """Cancelled means the tree stopped; a waiting parent waits for something; children
        a parent left behind are being stopped unless detached."""
        active_children: dict[str, list[andon.Job]] = {}
        for job in jobs.values():
            if job.parent_id is not None and job.status.is_active:
                active_children.setdefault(job.parent_id, []).append(job)
        for job in jobs.values():
            active = active_children.get(job.id, [])
            if job.awaiting is not None:
                assert job.status is JobStatus.CANCELLING, job
                assert active, f"job {job.id} waits for descendants but has no active child"
            if job.status is JobStatus.CANCELLED:
                assert not active, f"cancelled job {job.id} has active children: {active}"
            if job.status.is_terminal:
                for child in active:
                    assert child.detached or child.status is JobStatus.CANCELLING, (job, child)
            parent = jobs.get(job.parent_id) if job.parent_id else None
            if parent is not None:
                assert job.root_id == parent.tree_root

    def _check_job(self, job: andon.Job) -> None:
        held = job.status in HELD and job.awaiting is None
        # worker_id names the last attempt's worker, held or not; only a job never started lacks one.
        assert (job.worker_id is not None) == (job.attempt > 0)
        assert (job.lease_expires_at is not None) == held
        assert (job.finished_at is not None) == (job.status in TERMINAL_STATUSES)
        assert 0 <= job.failures <= job.max_attempts
        assert job.failures <= job.attempt
        if job.status is JobStatus.CANCELLING:
            assert job.cancel is not None
            assert job.cancel.stopped_at is None, "a job that is still cancelling has a stop time"
            if job.awaiting is None:
                assert job.cancel.stop_method is None, "a job that is still cancelling has a stop method"
        if job.status is JobStatus.CANCELLED:
            assert job.cancel is not None
            assert job.cancel.stopped_at is not None
        if job.status is JobStatus.SUCCEEDED:
            assert job.result is not None
            assert job.error is None
        if job.status is JobStatus.FAILED:
            assert job.error is not None

    def _check_history(self, job: andon.Job) -> None:
        events = self.store.events(job.id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert events[0].to_status is JobStatus.QUEUED
        chain = [JobStatus.QUEUED]
        for event in events[1:]:
            if event.from_status is not None and event.to_status is not None and event.from_status != event.to_status:
                assert (event.from_status, event.to_status) in ALLOWED_TRANSITIONS, event
                # One transition per change: each starts where the one before it ended.
                assert event.from_status is chain[-1], (event, chain)
            if event.to_status is not None and event.to_status != chain[-1]:
                chain.append(event.to_status)
        for old, new in itertools.pairwise(chain):
            assert (old, new) in ALLOWED_TRANSITIONS, chain
        assert chain[-1] is job.status, (chain, job.status)
        # Terminal more than once only through resumes, each taking the job back to the queue.
        terminal = [s for s in chain if s in TERMINAL_STATUSES]
        resumes = [e for e in events if e.type == "resumed"]
        assert len(terminal) <= len(resumes) + 1, f"terminal more than once: {chain}"
        for old, new in itertools.pairwise(chain):
            assert old in ACTIVE_STATUSES or (old in RESUMABLE_STATUSES and new is JobStatus.QUEUED), chain
        starts = [e.attempt for e in events if e.type == "started"]
        assert starts == list(range(1, job.attempt + 1))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def test_lifecycle_machine(backend: str) -> None:
    with contextlib.ExitStack() as cleanup:
        machine = Lifecycle
        if backend == "postgres":
            url = cleanup.enter_context(fresh_schema())

            class OnPostgres(Lifecycle):
                postgres_url = url

            machine = OnPostgres
        run_state_machine_as_test(
            machine,
            settings=settings(max_examples=60, stateful_step_count=40, deadline=None),
        )


def _descendants(jobs: dict[str, andon.Job], of: set[str]) -> set[str]:
    """The ids of every descendant of the jobs ``of`` among ``jobs``."""
    found: set[str] = set()
    frontier = set(of)
    while frontier:
        frontier = {j.id for j in jobs.values() if j.parent_id in frontier} - found
        found |= frontier
    return found


def _requeued_parent(job: andon.Job, jobs: dict[str, andon.Job]) -> bool:
    """Queued again (a shutdown, a lost worker) while children of an earlier attempt are active."""
    active_child = any(j.parent_id == job.id and j.status.is_active for j in jobs.values())
    return job.status is JobStatus.QUEUED and job.attempt > 0 and active_child


def _bulk_escalates(job: andon.Job, reason: CancelReason) -> bool:
    """A bulk cancel reaches a job already stopping only to outrank a retrying force-fail."""
    return (
        job.status is JobStatus.CANCELLING
        and job.cancel is not None
        and job.cancel.reason is CancelReason.FORCED
        and job.cancel.retry
        and decide_cancel(job, reason)[0] is CancelOutcome.ESCALATED
    )
