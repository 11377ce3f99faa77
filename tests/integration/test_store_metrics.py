"""The figures of ``GET /metrics`` (``Store.metrics``): every path that ends a job is counted
once, in its own transaction, by the store's trigger; active jobs are counted as they are;
pruning never lowers a counter; and a store of the version before the counters existed
counts the jobs it already holds when it is upgraded."""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from pathlib import Path

import psycopg
import pytest

import andon
from andon import CancelReason, JobStatus, ManualClock, StopMethod
from andon._jobs import TERMINAL_STATUSES, Outcome, OutcomeKind
from andon._output import ProgressUpdate, SavedState
from andon._storage import JobFilter, MetricsSnapshot
from andon._storage._engine import StoreEngine
from andon._storage._postgres import PostgresStore
from tests.integration.conftest import Backend
from tests.integration.test_store_contract import LEASE_S, claim, fail, settle, submit, succeed
from tests.postgres import fresh_schema
from tests.support import every_job


def stopped(store: StoreEngine, job: andon.Job, method: StopMethod, clock: ManualClock) -> andon.Job:
    return settle(store, job, Outcome(OutcomeKind.STOPPED, stop_method=method, stopped_at=clock.now()))


def bucket(bounds: tuple[float, ...], seconds: float) -> float:
    return next(le for le in bounds if seconds <= le)


def assert_counts_match_the_jobs(store: StoreEngine, figures: MetricsSnapshot) -> None:
    """The counters agree with the jobs as stored (none resumed, none deleted)."""
    jobs = every_job(store)
    ended = Counter((j.kind, j.status.value) for j in jobs if j.status in TERMINAL_STATUSES)
    assert figures.ended == dict(ended)
    stops: Counter[tuple[str, str, str, float]] = Counter()
    for job in jobs:
        cancel = job.cancel
        if job.status in TERMINAL_STATUSES and cancel and cancel.stopped_at is not None and cancel.stop_method:
            seconds = max(0.0, cancel.stopped_at - cancel.requested_at)
            stops[(job.kind, cancel.stop_method.value, cancel.reason.value, bucket(figures.bounds, seconds))] += 1
    assert {(s.kind, s.method, s.reason, s.le): s.stops for s in figures.stops} == dict(stops)
    active = Counter((j.kind, j.status) for j in jobs if j.status.is_active)
    assert {(a.kind, a.status): a.jobs for a in figures.active} == dict(active)


def end_jobs_every_way(store: StoreEngine, clock: ManualClock) -> None:
    """A job ended by each path there is, and a few left active."""
    submit(store)
    succeed(store, claim(store))
    submit(store)
    fail(store, claim(store))
    submit(store)  # withdrawn by a cancel of one job
    withdrawn = store.list_jobs(JobFilter(statuses=[JobStatus.QUEUED]), 10).items[0]
    store.request_cancel(withdrawn.id, CancelReason.USER, "alice")
    for _ in range(3):
        submit(store, "b")
    store.request_cancel_many(JobFilter(kinds=["b"]), CancelReason.USER, "bob")  # withdrawn by a filter
    submit(store, "c")
    store.request_cancel_many(JobFilter(kinds=["c"]), CancelReason.FORCED, "carol")  # force-failed while queued
    for method, seconds in ((StopMethod.COOPERATIVE, 0.004), (StopMethod.INJECTED, 1.2), (StopMethod.KILLED, 7.0)):
        submit(store)
        job = claim(store)
        store.request_cancel(job.id, CancelReason.USER, "alice")
        clock.advance(seconds)
        stopped(store, job, method, clock)
    submit(store)
    forced = claim(store)
    store.request_cancel(forced.id, CancelReason.FORCED, "carol", retry=False)
    clock.advance(0.3)
    stopped(store, forced, StopMethod.INJECTED, clock)  # failed, with its stop
    submit(store)
    lost = claim(store)
    submit(store)
    lost_stopping = claim(store)
    store.request_cancel(lost_stopping.id, CancelReason.TIMEOUT, None)
    clock.advance(LEASE_S + 1)
    assert {j.id for j in store.recover_lost()} == {lost.id, lost_stopping.id}  # failed; cancelled (worker_lost)
    submit(store)
    submit(store)
    running = claim(store)
    submit(store)
    store.request_cancel(claim(store).id, CancelReason.USER, "alice")  # left cancelling
    submit(store, available_at=clock.now() + 60)  # scheduled
    assert running.status is JobStatus.RUNNING


def test_every_way_a_job_ends_is_counted_once(store: StoreEngine, clock: ManualClock) -> None:
    end_jobs_every_way(store, clock)
    figures = store.metrics()
    assert_counts_match_the_jobs(store, figures)
    assert figures.ended == {
        ("a", "succeeded"): 1,
        ("a", "failed"): 3,
        ("a", "cancelled"): 5,
        ("b", "cancelled"): 3,
        ("c", "failed"): 1,
    }
    methods = Counter[tuple[str, str]]()
    for s in figures.stops:
        methods[(s.kind, s.method)] += s.stops
    assert methods == {
        ("a", "withdrawn"): 1,
        ("b", "withdrawn"): 3,
        ("c", "withdrawn"): 1,
        ("a", "cooperative"): 1,
        ("a", "injected"): 2,
        ("a", "killed"): 1,
        ("a", "worker_lost"): 1,
    }
    killed = next(s for s in figures.stops if s.method == "killed")
    assert (killed.le, killed.reason) == (10.0, "user")
    assert killed.seconds == pytest.approx(7.0)
    assert figures.bounds[-1] == float("inf")
    queued = next(a for a in figures.active if a.status is JobStatus.QUEUED)
    assert (queued.jobs, queued.scheduled) == (2, 1)
    assert queued.oldest_due_at is not None
    assert queued.oldest_due_at <= clock.now()
    cancelling = next(a for a in figures.active if a.status is JobStatus.CANCELLING)
    assert cancelling.oldest_request_at == clock.now()


def test_pruning_and_deleting_history_lowers_no_counter(store: StoreEngine, clock: ManualClock) -> None:
    end_jobs_every_way(store, clock)
    before = store.metrics()
    clock.advance(10)
    store.prune(0)
    assert store.metrics().ended == before.ended
    store.prune(0, purge=True)
    ended = store.list_jobs(JobFilter(statuses=list(TERMINAL_STATUSES)), 10).items
    assert ended == []
    after = store.metrics()
    assert (after.ended, after.stops) == (before.ended, before.stops)


def test_a_resumed_job_that_ends_again_counts_each_end(store: StoreEngine, clock: ManualClock) -> None:
    submit(store)
    job = claim(store)
    store.write_progress([ProgressUpdate(job.id, job.attempt, checkpoint=SavedState(0, clock.now(), "{}"))])
    store.request_cancel(job.id, CancelReason.USER, "alice")
    stopped(store, job, StopMethod.COOPERATIVE, clock)
    store.resume(job.id, "alice")
    succeed(store, claim(store))
    assert store.metrics().ended == {("a", "cancelled"): 1, ("a", "succeeded"): 1}


def _drop_counters_sqlite(path: str) -> None:
    """Make the file what version 7 was: no counters, no trigger (and no version 9 column)."""
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            DROP TRIGGER andon_jobs_ended;
            DROP TABLE andon_ended_counts;
            DROP TABLE andon_stop_counts;
            DROP TABLE andon_stop_buckets;
            ALTER TABLE andon_jobs DROP COLUMN cancel_grace_s;
            UPDATE andon_meta SET value = '7' WHERE key = 'schema_version';
            """
        )


def test_a_version_7_sqlite_file_counts_its_jobs_when_upgraded(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    clock = ManualClock()
    with andon.SqliteStore(path, clock=clock) as store:
        end_jobs_every_way(store, clock)
        expected = store.metrics()
    _drop_counters_sqlite(path)
    done = andon.upgrade_database(f"sqlite:///{path}")
    assert (done.before, done.after) == (7, 9)
    with andon.SqliteStore(path, clock=clock) as store:
        figures = store.metrics()
        assert (figures.ended, figures.stops) == (expected.ended, expected.stops)
        # And the trigger counts what ends after the upgrade.
        succeed(store, claim(store))
        assert store.metrics().ended[("a", "succeeded")] == expected.ended[("a", "succeeded")] + 1


def test_a_postgres_schema_before_migration_7_counts_its_jobs_when_upgraded() -> None:
    clock = ManualClock()
    with fresh_schema() as url:
        with PostgresStore(url, clock=clock) as store:
            end_jobs_every_way(store, clock)
            expected = store.metrics()
            schema = store.schema
        with psycopg.connect(url.split("?")[0], autocommit=True) as conn:
            conn.execute(f"SET search_path = {schema}")
            conn.execute(
                "DROP TRIGGER andon_jobs_ended ON andon_jobs; DROP FUNCTION andon_count_ends();"
                " DROP TABLE andon_ended_counts, andon_stop_counts, andon_stop_buckets;"
                # the rest of migration 7: the stop-statistics index, sessions, the workers registry
                " DROP INDEX andon_jobs_stopped; DROP TABLE andon_sessions, andon_workers;"
                # and migration 8 after it: the claim function, a stop's own grace, the notify key
                " DROP FUNCTION andon_claim; ALTER TABLE andon_jobs DROP COLUMN cancel_grace_s;"
                " DROP TABLE andon_notify_key;"
                " DELETE FROM andon_migrations WHERE version >= 7"
            )
        assert PostgresStore(url).upgrade() == (6, 8)
        with PostgresStore(url, clock=clock) as store:
            figures = store.metrics()
            assert (figures.ended, sorted(figures.stops, key=repr)) == (
                expected.ended,
                sorted(expected.stops, key=repr),
            )
            succeed(store, claim(store))
            assert store.metrics().ended[("a", "succeeded")] == expected.ended[("a", "succeeded")] + 1


def test_concurrent_ends_on_postgres_are_counted_exactly(backend: Backend) -> None:
    """Many connections ending jobs of one kind at once: every end counted, across shards."""
    if not isinstance(backend.store, PostgresStore):
        pytest.skip("shards are PostgreSQL's")
    store = backend.store
    for _ in range(200):
        submit(store)
    jobs = [claim(store) for _ in range(200)]
    peers = [backend.peer() for _ in range(4)]
    try:

        def end(peer: StoreEngine, mine: list[andon.Job]) -> None:
            for job in mine:
                succeed(peer, job)

        threads = [threading.Thread(target=end, args=(peer, jobs[i::4])) for i, peer in enumerate(peers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        for peer in peers:
            peer.close()
    assert store.metrics().ended == {("a", "succeeded"): 200}
