"""A job that ends while the store is away keeps its outcome, result and items (issue 12,
item 3), and the outage costs no living worker its leases.

Real outages, each longer than the lease, while a job finishes:

* SQLite on a real full filesystem (a 256 MB tmpfs that a filler file fills up);
* PostgreSQL refusing every connection to the database (``ALLOW_CONNECTIONS false`` and
  the backends terminated), as a database that is down does.

A second worker watches the same store the whole time: before, it recovered the job as
``worker_lost`` once the store was back, and the first worker's result was dropped.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

import andon
from andon._storage import Store
from andon._storage._postgres import PostgresStore
from tests.postgres import SERVER_URL, admin_connection, require_postgres, with_schema
from tests.support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

LEASE_S = 3.0
OUTAGE_S = 2.5 * LEASE_S
ITEMS = 30

app = andon.App(default_grace=0.5)
may_finish = threading.Event()


emitted: dict[str, int] = {}


@app.job("flood", retry=andon.Retry(max_attempts=2))
def flood(ctx: andon.Context) -> None:
    """Emits 1 KB items, a thousand a second, until it is stopped (attempt 1 only)."""
    if ctx.attempt > 1:
        return
    while True:
        ctx.emit({"pad": "x" * 1000})
        emitted[ctx.job_id] = emitted.get(ctx.job_id, 0) + 1
        ctx.sleep(0.001)


@app.job("finisher")
def finisher(ctx: andon.Context) -> dict[str, int]:
    for i in range(ITEMS // 2):
        ctx.emit({"i": i})
    may_finish.wait(60)  # the test takes the store away, then lets the job end
    for i in range(ITEMS // 2, ITEMS):
        ctx.emit({"i": i})
    return {"items": ITEMS}


@contextlib.contextmanager
def workers(*stores: Store) -> Iterator[list[andon.Worker]]:
    started = [andon.Worker(app, s, concurrency=1, lease_s=LEASE_S, shutdown_grace_s=1.0) for s in stores]
    for worker in started:
        worker.start()
    try:
        yield started
    finally:
        may_finish.set()
        for worker in started:
            worker.stop()


def run_through_outage(
    client: andon.Client, stores: tuple[Store, Store], outage: contextlib.AbstractContextManager[None]
) -> None:
    may_finish.clear()
    job = client.submit("finisher", {})
    with workers(*stores):
        wait_until(lambda: client.get(job.id).items_count >= ITEMS // 2, timeout=30, what="the first items")
        with outage:
            may_finish.set()  # the job ends now, while nothing can be written
            time.sleep(OUTAGE_S)
        ended = client.wait_finished(job.id, timeout=60)
    assert ended.status is andon.JobStatus.SUCCEEDED, ended.error
    assert ended.result == {"items": ITEMS}
    assert ended.attempt == 1
    assert [item.data["i"] for item in client.results(job.id)] == list(range(ITEMS))
    assert not any(e.reason == "worker_lost" for e in client.events(job.id))


# -- SQLite: the disk is full -------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256M", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        reason = f"cannot mount a tmpfs to fill up ({done.stderr.decode().strip()}): run the suite as root"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@contextlib.contextmanager
def disk_full(mount: Path) -> Iterator[None]:
    """Fills ``mount`` to the last byte, then frees it again.

    Unbuffered writes until ENOSPC: a buffered file kept the tail of a short write in its
    buffer and raised ENOSPC again from ``close``, so under load (the worker taking the last
    pages first) the outage failed to begin and the test hung in ``worker.stop``, whose
    journal could never drain. A disk the worker filled already counts as full."""
    filler = mount / "filler"
    try:
        with contextlib.suppress(OSError), open(filler, "wb", buffering=0) as out:
            while True:
                out.write(b"\0" * 65536)
        yield
    finally:
        filler.unlink(missing_ok=True)


def test_sqlite_a_job_that_ends_while_the_disk_is_full_keeps_everything(small_disk: Path) -> None:
    path = str(small_disk / "andon.db")
    with andon.SqliteStore(path) as one, andon.SqliteStore(path) as two, andon.SqliteStore(path) as reader:
        run_through_outage(andon.Client(reader, app, actor="test"), (one, two), disk_full(small_disk))


# -- PostgreSQL: the database refuses connections ---------------------------------


@contextlib.contextmanager
def own_database() -> Iterator[tuple[str, str]]:
    """A database of this test's own (migrated), so refusing its connections never locks
    out another test or a suite running beside this one; dropped afterwards."""
    require_postgres()
    name = f"andon_outage_{os.getpid()}_{secrets.token_hex(3)}"
    with admin_connection() as probe:
        dsn = probe.info.dsn
    with psycopg.connect(dsn, dbname="postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(SERVER_URL)
    url = with_schema(urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, "")), "andon")
    try:
        PostgresStore(url).upgrade()
        yield url, name
    finally:
        with psycopg.connect(dsn, dbname="postgres", autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def refusing_connections(database: str) -> Iterator[None]:
    with admin_connection() as probe:
        dsn = probe.info.dsn
    # A database cannot lock itself out: do it from another one.
    with psycopg.connect(dsn, dbname="postgres", autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false')
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            )
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true')


def test_postgres_a_job_that_ends_while_the_database_refuses_connections_keeps_everything() -> None:
    with (
        own_database() as (url, name),
        PostgresStore(url) as one,
        PostgresStore(url) as two,
        PostgresStore(url) as reader,
    ):
        run_through_outage(andon.Client(reader, app, actor="test"), (one, two), refusing_connections(name))


def test_output_beyond_the_memory_budget_waits_in_a_journal_and_is_all_stored(
    small_disk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A handler emitting 1 MB a second through a full-disk outage: the worker holds at
    most its budget in memory, the rest waits in a journal on another disk, and every item
    the handler emitted is stored, in order, once the disk has room again."""
    from andon import _output

    monkeypatch.setattr(_output, "MAX_BUFFER_BYTES", 256 * 1024)
    spool = tmp_path / "spool"
    path = str(small_disk / "andon.db")
    with andon.SqliteStore(path) as store:
        client = andon.Client(store, app, actor="test")
        worker = andon.Worker(app, store, concurrency=1, lease_s=LEASE_S, shutdown_grace_s=1.0, spool_dir=spool)
        worker.start()
        try:
            job = client.submit("flood", {})
            wait_until(lambda: client.get(job.id).items_count >= 100, timeout=30, what="the first items")
            with disk_full(small_disk):
                wait_until(lambda: any(spool.glob("*.jsonl")), timeout=30, what="a journal to be started")
                time.sleep(OUTAGE_S)
            ended = client.cancel(job.id, wait=True, timeout=60).job
        finally:
            worker.stop()
        items = client.results(job.id)
    # However the stop came (the cancel, or lease_lost if no renewal got through the full
    # disk), every item the handler emitted is stored once, in order.
    assert ended.status in (andon.JobStatus.CANCELLED, andon.JobStatus.SUCCEEDED)
    first = [item for item in items if item.attempt == 1]
    assert [item.seq for item in first] == list(range(emitted[job.id]))
    assert emitted[job.id] * 1000 > 4 * 256 * 1024, "too little output to need the journal"
    assert "the store is not taking its output" in caplog.text
    assert not spool.exists() or not any(spool.iterdir()), "a journal was left behind"
