"""Enqueue inside the application's own transaction (issue 19): on PostgreSQL,
``submit(..., connection=conn)`` inserts the job on the caller's psycopg connection without
committing. The job exists if and only if that transaction commits, no worker can claim it
before, and a worker that was already waiting hears of it at the commit. On SQLite it is
refused with a clear error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

import andon
from andon import JobStatus
from andon._storage._postgres import PostgresStore
from andon.examples import app as example_app
from tests.postgres import admin_connection, fresh_schema

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_schema() as url:
        yield url


def admin_url() -> str:
    """The test server's URL as libpq takes it (andon's own parameters left out)."""
    with admin_connection() as conn:
        return conn.info.dsn


def app_connection(*, autocommit: bool = False) -> psycopg.Connection[tuple[object, ...]]:
    conn = admin_connection()
    conn.autocommit = autocommit
    return conn


@pytest.fixture
def app_conn() -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """The application's own connection: default search path, autocommit off."""
    with app_connection() as conn:
        conn.execute("CREATE TEMP TABLE orders (id serial PRIMARY KEY, what text)")
        conn.commit()
        yield conn


def test_a_rolled_back_job_never_exists_and_never_runs(
    url: str, app_conn: psycopg.Connection[tuple[object, ...]]
) -> None:
    with andon.connect(url, example_app) as client, andon.Worker(example_app, client.store, concurrency=2):
        app_conn.execute("INSERT INTO orders (what) VALUES ('book')")
        job = client.submit("count", {"n": 1, "interval_s": 0.01}, connection=app_conn)
        # Inside the transaction the job is there for the caller, and for nobody else.
        schema = PostgresStore(url).schema
        row = app_conn.execute(
            sql.SQL("SELECT status FROM {}.andon_jobs WHERE id = %s").format(sql.Identifier(schema)), (job.id,)
        ).fetchone()
        assert row == ("queued",)
        with pytest.raises(andon.JobNotFound):
            client.get(job.id)
        time.sleep(0.5)  # a worker that could see it would claim it now
        app_conn.rollback()
        with pytest.raises(andon.JobNotFound):
            client.get(job.id)
        assert app_conn.execute("SELECT count(*) FROM orders").fetchone() == (0,)
        # The application's own search path is untouched by the submit.
        assert app_conn.execute("SHOW search_path").fetchone() == ('"$user", public',)


def test_a_committed_job_runs_and_a_waiting_worker_wakes_at_the_commit(
    url: str, app_conn: psycopg.Connection[tuple[object, ...]]
) -> None:
    with andon.connect(url, example_app) as client, andon.Worker(example_app, client.store, concurrency=2):
        time.sleep(0.3)  # the worker is idle, waiting on its notifications
        with app_conn.transaction():
            app_conn.execute("INSERT INTO orders (what) VALUES ('pen')")
            jobs = client.submit_many("count", [{"n": 1, "interval_s": 0.01}] * 3, connection=app_conn)
            time.sleep(0.3)
            with pytest.raises(andon.JobNotFound):
                client.get(jobs[0].id)  # not committed: no worker can have claimed it
        committed = time.time()
        for job in jobs:
            ended = client.wait_finished(job.id, timeout=30)
            assert ended.status is JobStatus.SUCCEEDED
        started = min(client.get(job.id).started_at or 0 for job in jobs)
        wake = started - committed
        print(f"first start {wake * 1000:.1f} ms after the commit")
        assert wake < 1.0, "the worker waited for its poll instead of hearing the commit"
        assert client.events(jobs[0].id)[0].type == "submitted"


def test_a_keyed_submit_in_the_callers_transaction_supersedes_only_if_it_commits(
    url: str, app_conn: psycopg.Connection[tuple[object, ...]]
) -> None:
    with andon.connect(url, example_app) as client:
        first = client.submit("count", {"n": 5}, key="order-7")
        second = client.submit("count", {"n": 5}, key="order-7", on_conflict="supersede", connection=app_conn)
        assert second.id != first.id
        assert client.get(first.id).status is JobStatus.QUEUED  # the supersede is not committed
        app_conn.rollback()
        assert client.get(first.id).status is JobStatus.QUEUED
        third = client.submit("count", {"n": 5}, key="order-7", on_conflict="supersede", connection=app_conn)
        app_conn.commit()
        assert client.get(first.id).status is JobStatus.CANCELLED
        assert client.get(third.id).status is JobStatus.QUEUED


def test_a_connection_that_cannot_hold_the_job_is_refused(url: str) -> None:
    with andon.connect(url, example_app) as client:
        with app_connection(autocommit=True) as auto, pytest.raises(andon.UsageError, match="autocommit"):
            client.submit("count", connection=auto)
        with app_connection() as failed:
            with pytest.raises(psycopg.errors.DivisionByZero):
                failed.execute("SELECT 1 / 0")
            with pytest.raises(andon.UsageError, match="inerror"):
                client.submit("count", connection=failed)
        with pytest.raises(andon.UsageError, match=r"psycopg\.Connection"):
            client.submit("count", connection="not a connection")
        assert client.list_jobs().items == []


def test_sqlite_refuses_it_and_says_why(tmp_path: Path) -> None:
    with andon.connect(f"sqlite:///{tmp_path / 'a.db'}", example_app) as client:
        with app_connection() as conn, pytest.raises(andon.UsageError, match="needs PostgreSQL"):
            client.submit("count", connection=conn)
        assert client.list_jobs().items == []


def test_the_async_client_enqueues_in_an_async_transaction(url: str) -> None:
    async def run() -> tuple[str, str]:
        async with andon.connect_async(url, example_app) as client:
            conn = await psycopg.AsyncConnection.connect(admin_url())
            async with conn:
                rolled_back = await client.submit("count", {"n": 1}, connection=conn)
                await conn.rollback()
                committed = await client.submit_many("count", [{"n": 1}], connection=conn, delay=30)
                await conn.commit()
                with pytest.raises(andon.UsageError, match="no key"):
                    await client.submit("count", key="k", connection=conn)
            with pytest.raises(andon.JobNotFound):
                await client.get(rolled_back.id)
            assert (await client.get(committed[0].id)).status is JobStatus.QUEUED
            return rolled_back.id, committed[0].id

    asyncio.run(run())
