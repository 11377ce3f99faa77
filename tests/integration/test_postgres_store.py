"""What only the PostgreSQL store has: URLs, migrations, connections that drop, LISTEN/NOTIFY.

The behaviour both stores share is in ``test_store_contract.py``. Here the server is real
and the faults are real: backends are terminated with ``pg_terminate_backend``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import psycopg
import pytest
from psycopg import sql
from psycopg_pool import ConnectionPool

import andon
from andon import CancelReason, JobStatus
from andon._ids import new_job_id
from andon._jobs import CancelOutcome, Outcome, OutcomeKind
from andon._storage import Change, JobFilter, NewJob
from andon._storage._pg_tx import PgTx
from andon._storage._postgres import SCHEMA_VERSION, PostgresStore
from andon.examples import app
from tests.postgres import (
    SERVER_URL,
    admin_connection,
    backend_pids,
    fresh_schema,
    require_postgres,
    terminate_backends,
    with_schema,
)
from tests.support import wait_until


@pytest.fixture
def url() -> Iterator[str]:
    """A fresh schema, reached with an ``application_name`` of its own to find its backends by."""
    with fresh_schema() as migrated:
        yield f"{migrated}&application_name={PostgresStore(migrated).schema}"


@pytest.fixture
def store(url: str) -> Iterator[PostgresStore]:
    with PostgresStore(url) as opened:
        yield opened


def backends(url: str) -> list[int]:
    """Server pids of every connection made with ``url`` (pooled and listening)."""
    return backend_pids(dict(parse_qsl(urlsplit(url).query))["application_name"])


# -- URLs and errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("postgresql://root@127.0.0.1/test?schema=Bad-Name", "bad schema name"),
        ("postgresql://root@127.0.0.1/test?schema=x&pool_size=one", "bad pool_size"),
        ("postgresql://root@127.0.0.1/test?no_such_libpq_option=1", "not a valid PostgreSQL URL"),
        ("postgresql://root@127.0.0.1/test?reconnect_timeout=soon", "bad reconnect_timeout"),
        ("postgresql://root@127.0.0.1/test?reconnect_timeout=0", "bad reconnect_timeout"),
    ],
)
def test_bad_urls_are_configuration_errors(url: str, fragment: str) -> None:
    with pytest.raises(andon.ConfigurationError, match=fragment):
        PostgresStore(url)


def test_an_unreachable_server_is_unavailable_and_the_password_stays_secret() -> None:
    store = PostgresStore("postgresql://root:s3cret@127.0.0.1:1/test?connect_timeout=2")
    with pytest.raises(andon.StorageUnavailable) as raised:
        store.open()
    message = str(raised.value)
    assert "127.0.0.1:1" in message
    assert "s3cret" not in message
    assert "\n" not in message
    assert store.url == "postgresql://root@127.0.0.1:1/test?connect_timeout=2"


def test_libpq_parameters_in_the_url_pass_through_intact(url: str) -> None:
    """``options`` with an encoded space reaches the server as written (a space, not a '+')."""
    with PostgresStore(url.replace("?", "?options=-c%20statement_timeout%3D12345&", 1)) as store:
        row = store._db.read(lambda tx: tx.cur.execute("SHOW statement_timeout").fetchone())
        assert row is not None
        assert row["statement_timeout"] == "12345ms"
        assert store.list_jobs(JobFilter(), 1).items == []  # the schema option still applies


def test_open_store_reads_postgres_urls(url: str) -> None:
    store = andon.open_store(url)
    try:
        assert isinstance(store, PostgresStore)
        assert store.schema == PostgresStore(url).schema
    finally:
        store.close()


# -- migrations --------------------------------------------------------------------------


def test_open_without_a_schema_says_how_to_create_it() -> None:
    with fresh_schema(migrate=False) as url:
        with pytest.raises(andon.ConfigurationError, match="andon db upgrade"):
            PostgresStore(url).open()
        first = andon.upgrade_database(url)
        assert (first.before, first.after, first.changed) == (0, SCHEMA_VERSION, True)
        assert first.url == PostgresStore(url).url
        again = andon.upgrade_database(url)
        assert (again.before, again.after, again.changed) == (SCHEMA_VERSION, SCHEMA_VERSION, False)
        with PostgresStore(url) as store:
            assert store.list_jobs(JobFilter(), 10).items == []


def test_concurrent_upgrades_apply_each_migration_once() -> None:
    with fresh_schema(migrate=False) as url:
        results: list[tuple[int, int]] = []
        errors: list[BaseException] = []

        def upgrade() -> None:
            try:
                results.append(PostgresStore(url).upgrade())
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=upgrade) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        assert sorted(results) == [(0, SCHEMA_VERSION)] + [(SCHEMA_VERSION, SCHEMA_VERSION)] * 3
        schema = PostgresStore(url).schema
        with admin_connection() as conn:
            versions = conn.execute(
                sql.SQL("SELECT version FROM {}.andon_migrations").format(sql.Identifier(schema))
            ).fetchall()
        assert [row[0] for row in versions] == list(range(1, SCHEMA_VERSION + 1))


def test_a_schema_newer_than_this_andon_is_refused(url: str) -> None:
    schema = PostgresStore(url).schema
    with admin_connection() as conn:
        conn.execute(
            sql.SQL("INSERT INTO {}.andon_migrations VALUES (%s, 'from the future', 0)").format(sql.Identifier(schema)),
            (SCHEMA_VERSION + 1,),
        )
    with pytest.raises(andon.ConfigurationError, match="newer than this andon"):
        PostgresStore(url).open()
    with pytest.raises(andon.ConfigurationError, match="newer than this andon"):
        PostgresStore(url).upgrade()


def test_schemas_keep_their_jobs_apart(url: str) -> None:
    with fresh_schema() as other_url, PostgresStore(url) as one, PostgresStore(other_url) as other:
        job = one.submit([NewJob(new_job_id(), "a", {})], actor=None)[0]
        with pytest.raises(andon.JobNotFound):
            other.get(job.id)
        assert other.claim("w", ["a"], 30) is None
        watcher = other.watch()
        try:
            one.submit([NewJob(new_job_id(), "a", {})], actor=None)
            assert watcher.wait(0.3) is False, "a change in another schema woke this one"
        finally:
            watcher.close()


# -- the claim's plan ----------------------------------------------------------------------


def test_a_claim_after_a_burst_reads_the_queue_index_not_the_queue(store: PostgresStore) -> None:
    """Statistics taken while the table was empty, then a burst of submits: the claim still
    walks the queue index in order and stops at the first rows it can lock (migration 8),
    where a plan from those statistics would read and sort the whole queue for each claim."""
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(store.schema)))
        conn.execute("ANALYZE andon_jobs")
        queued = 3_000
        jobs = [NewJob(new_job_id(), "noop", {}, priority=i % 3) for i in range(queued)]
        store.submit(jobs, "test")
        best = sorted(jobs, key=lambda j: (-j.priority, j.id))
        for _ in range(6):  # past the first plans of a connection, to its cached one
            with conn.transaction():
                conn.execute(
                    "SELECT * FROM andon_claim(%s, ARRAY['noop'], 2, 'w', NULL, 30.0, 't', 'worker:w')", [time.time()]
                )
                row = conn.execute(
                    "SELECT pg_stat_get_xact_tuples_returned('andon_jobs'::regclass)"
                    " + pg_stat_get_xact_tuples_fetched('andon_jobs'::regclass)"
                ).fetchone()
            assert row is not None
            assert row[0] < 100, f"one claim of 2 read {row[0]} rows of a queue of {queued}"
    claimed = store.claim_many("w", ["noop"], 30.0, 3)
    assert [job.id for job in claimed] == [job.id for job in best[12:15]]


def test_settling_after_a_burst_reads_the_jobs_it_ends_not_the_table(url: str) -> None:
    """The same burst: claiming and ending jobs one at a time never reads the whole table
    (the settlement's plan once did, as the planner cannot see into its JSON)."""
    queued = 3_000
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(PostgresStore(url).schema)))
        conn.execute("ANALYZE andon_jobs")
        with PostgresStore(url) as store:
            store.submit([NewJob(new_job_id(), "noop", {}) for _ in range(queued)], "test")
            before = _rows_scanned(conn)
            for _ in range(8):  # past the first plans of a connection, to its cached ones
                (job,) = store.claim_many("w", ["noop"], 30.0, 1)
                store.settle("w", job.attempt, job.id, Outcome(OutcomeKind.SUCCEEDED), None)
        # The store's connections are closed: their counters have reached the server.
        assert _rows_scanned(conn) - before < queued


def _rows_scanned(conn: psycopg.Connection[Any]) -> int:
    """Rows of andon_jobs read by sequential scans so far (every backend's, as reported)."""
    conn.execute("SELECT pg_stat_clear_snapshot()")
    row = conn.execute(
        "SELECT seq_tup_read FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname = 'andon_jobs'"
    ).fetchone()
    assert row is not None
    return int(row[0])


# -- dropped connections ------------------------------------------------------------------


def test_dropped_pool_connections_are_replaced_without_the_caller_noticing(store: PostgresStore, url: str) -> None:
    job = store.submit([NewJob(new_job_id(), "a", {})], actor=None)[0]
    before = backends(url)
    assert before
    terminate_backends(before)
    assert store.get(job.id).id == job.id
    claimed = store.claim("w1", ["a"], 30)
    assert claimed is not None
    assert claimed.id == job.id
    after = backends(url)
    assert after
    assert not set(after) & set(before)


def test_a_claim_whose_commit_is_in_doubt_is_looked_up_by_its_token(store: PostgresStore, url: str) -> None:
    """The connection breaks after the claim statement ran: the store finds the job it took."""
    job = store.submit([NewJob(new_job_id(), "a", {})], actor=None)[0]
    original = psycopg.Cursor.execute
    broken = threading.Event()

    # Any: whatever the real execute takes and returns is passed through.
    def execute_then_break(self: psycopg.Cursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, query, *args, **kwargs)
        text = query.decode() if isinstance(query, bytes) else query  # the store's queries are bytes
        if isinstance(text, str) and "andon_claim(" in text and not broken.is_set():
            broken.set()
            raise psycopg.OperationalError("connection lost just after the claim committed (simulated)")
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(psycopg.Cursor, "execute", execute_then_break)
        claimed = store.claim("w1", ["a"], 30)
    assert broken.is_set()
    assert claimed is not None
    assert (claimed.id, claimed.worker_id, claimed.attempt) == (job.id, "w1", 1)
    assert [e.type for e in store.events(job.id)] == ["submitted", "started"]
    assert store.claim("w1", ["a"], 30) is None


@contextlib.contextmanager
def connection_lost_after(marker: str) -> Iterator[threading.Event]:
    """The first statement containing ``marker`` runs (and, on its own, commits), then its
    connection reports itself lost, as if the answer never came back."""
    original = psycopg.Cursor.execute
    broken = threading.Event()

    # Any: whatever the real execute takes and returns is passed through.
    def execute_then_break(self: psycopg.Cursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, query, *args, **kwargs)
        text = query.decode() if isinstance(query, bytes) else query  # the store's queries are bytes
        if isinstance(text, str) and marker in text and not broken.is_set():
            broken.set()
            raise psycopg.OperationalError("connection lost just after the statement committed (simulated)")
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(psycopg.Cursor, "execute", execute_then_break)
        yield broken
    assert broken.is_set()


def test_an_unknown_submit_commit_is_checked_not_repeated(store: PostgresStore) -> None:
    """A plain submit is one self-committing statement: its connection lost as it answered,
    the store looks whether the jobs are there rather than inserting them again."""
    new = [NewJob(new_job_id(), "a", {"n": i}) for i in range(3)]
    with connection_lost_after("INSERT INTO andon_jobs"):
        jobs = store.submit(new, actor="x")
    assert [j.id for j in jobs] == [n.id for n in new]
    for job in jobs:
        assert [e.type for e in store.events(job.id)] == ["submitted"]


def test_a_cancel_of_a_queued_job_in_doubt_is_withdrawn_once(store: PostgresStore) -> None:
    """A queued job's cancel is one self-committing statement: asked again after its answer
    was lost, it reports the job as it is (withdrawn), with one withdrawal in its history."""
    job = store.submit([NewJob(new_job_id(), "a", {})], actor=None)[0]
    with connection_lost_after("cancel_stop_method = 'withdrawn'"):
        result = store.request_cancel(job.id, CancelReason.USER, "alice")
    assert result.job.status is JobStatus.CANCELLED
    assert result.outcome in (CancelOutcome.WITHDRAWN, CancelOutcome.ALREADY)
    assert [e.type for e in store.events(job.id)] == ["submitted", "withdrawn"]


def test_bulk_cancel_whose_commit_is_in_doubt_is_reported(store: PostgresStore) -> None:
    store.submit([NewJob(new_job_id(), "a", {})], actor=None)
    commit_original = PgTx.commit

    def commit_then_fail(self: PgTx) -> None:
        commit_original(self)
        raise psycopg.OperationalError("connection lost while committing (simulated)")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PgTx, "commit", commit_then_fail)
        with pytest.raises(andon.StorageUnavailable, match="may or may not have been applied"):
            store.request_cancel_many(JobFilter(), CancelReason.USER, by=None)


def test_an_unreachable_server_makes_calls_fail_after_the_reconnect_timeout(url: str) -> None:
    store = PostgresStore(url, reconnect_timeout_s=1.0)
    store.open()
    try:
        # Point the pool at a port where nothing listens, as if the server had gone away.
        dead = PostgresStore(with_schema("postgresql://root@127.0.0.1:1/test", store.schema))
        assert store._db._pool is not None
        store._db._pool.close()
        store._db._pool = ConnectionPool(dead._db._target.conninfo, min_size=1, max_size=2, open=True, timeout=0.5)
        began = time.monotonic()
        with pytest.raises(andon.StorageUnavailable, match="unreachable") as raised:
            store.get(new_job_id())
        assert 0.9 <= time.monotonic() - began < 10
        assert "\n" not in str(raised.value)
    finally:
        store.close()


# -- notifications -------------------------------------------------------------------------


def test_the_listener_reconnects_and_reports_a_change(store: PostgresStore, url: str) -> None:
    watcher = store.watch()
    try:
        assert watcher.wait(0.05) is False
        terminate_backends(backends(url))
        # After a reconnect anything may have been missed: the watcher reports a change.
        assert watcher.wait(10.0) is True
        with PostgresStore(url) as other:
            other.submit([NewJob(new_job_id(), "a", {})], actor=None)
        assert watcher.wait(10.0) is True
        assert watcher.wait(0.05) is False
    finally:
        watcher.close()


def test_a_watcher_is_woken_only_by_the_changes_it_asked_for(store: PostgresStore, url: str) -> None:
    """A worker is not woken each time a job ends elsewhere; a waiter not by each submit."""
    cancels = store.watch({Change.CANCEL})
    ends = store.watch({Change.ENDED})
    try:
        with PostgresStore(url) as other:
            job = other.submit([NewJob(new_job_id(), "a", {})], actor=None)[0]
            assert cancels.wait(0.2) is False
            assert ends.wait(0.2) is False
            claimed = other.claim("w", ["a"], 30)
            assert claimed is not None
            other.settle("w", 1, job.id, Outcome(OutcomeKind.SUCCEEDED), None)
            assert ends.wait(5.0) is True
            assert cancels.wait(0.2) is False
    finally:
        cancels.close()
        ends.close()


def test_a_cancel_without_notification_still_reaches_the_worker(store: PostgresStore, url: str) -> None:
    """The fallback path alone: the cancel is written with plain SQL, no NOTIFY at all."""
    client = andon.Client(store, app, actor="test")
    with andon.Worker(app, store, concurrency=1, shutdown_grace_s=0.5):
        job = client.submit("count", {"n": 100_000, "interval_s": 0.005})
        wait_until(lambda: client.get(job.id).items_count >= 1, 15, "the job to run")
        schema = PostgresStore(url).schema
        with admin_connection() as conn:
            conn.execute(
                sql.SQL(
                    "UPDATE {}.andon_jobs SET status = 'cancelling', cancel_requested_at = extract(epoch FROM now()),"
                    " cancel_reason = 'user', cancel_retry = true WHERE id = %s"
                ).format(sql.Identifier(schema)),
                (job.id,),
            )
        began = time.monotonic()
        finished = client.wait_finished(job.id, timeout=10)
        assert time.monotonic() - began < 1.5
    assert finished.status is JobStatus.CANCELLED
    assert finished.cancel is not None
    assert finished.cancel.stop_method is andon.StopMethod.COOPERATIVE


def test_a_cancel_from_another_process_arrives_by_notification(store: PostgresStore, url: str) -> None:
    """The notification path: a store of its own (no in-process hand-over) and no waiting for
    the worker's poll, which would take a control tick (250 ms) on average half the time."""
    samples = []
    with PostgresStore(url) as elsewhere, andon.Worker(app, store, concurrency=1, shutdown_grace_s=0.5):
        client = andon.Client(elsewhere, app, actor="elsewhere")
        for _ in range(8):
            job = client.submit("count", {"n": 100_000, "interval_s": 0.001})
            wait_until(lambda job=job: client.get(job.id).items_count >= 1, 15, "the job to run")  # type: ignore[misc]
            called = time.time()
            elsewhere.request_cancel(job.id, CancelReason.USER, by="elsewhere")
            finished = client.wait_finished(job.id, timeout=10)
            assert finished.cancel is not None
            assert finished.cancel.acknowledged_at is not None
            samples.append(finished.cancel.acknowledged_at - called)
    samples.sort()
    assert samples[len(samples) // 2] < 0.05, f"cancel reached the handler after {samples} s"


def test_require_postgres_names_the_server() -> None:
    require_postgres()
    assert SERVER_URL.startswith("postgres")
