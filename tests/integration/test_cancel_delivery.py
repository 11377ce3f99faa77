"""Cancel delivery without a poll (issue 20): the local wake-up of SQLite watchers, the stops
named in PostgreSQL's notification, and a stopped attempt settled without waiting for a flush.

Each delivery test takes the other paths away: the SQLite store polls ``data_version`` once
an hour and the worker's control tick is an hour too, so only the path under test can bring
the cancel within the test's bounds.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import sql

import andon
import andon._worker
from andon import Cancelled, CancelReason, JobStatus
from andon._ids import new_job_id
from andon._storage import CancelNotice, Change, NewJob
from andon._storage._engine import StoreEngine
from andon._storage._pg_listener import MAX_PAYLOAD, read_stops, stop_payloads
from andon._storage._postgres import PostgresStore
from andon._storage._sqlite_watch import DataVersionWatcher
from andon._storage._wake import MAX_DATAGRAM, WakeFolder, _private_dir, is_wake
from tests.postgres import admin_connection, fresh_schema
from tests.support import wait_until

HOUR = 3600.0

app = andon.App()
seen_messages: list[str | None] = []
started = threading.Event()


@app.job("looping")
def looping(ctx: andon.Context) -> None:
    """Emits one item, then checks for a cancel every millisecond (on the real clock)."""
    ctx.emit({"step": 0})
    started.set()
    try:
        while True:
            ctx.sleep(0.001)
    except Cancelled as stop:
        seen_messages.append(stop.message)
        raise


@pytest.fixture(autouse=True)
def _fresh_handler_state() -> None:
    started.clear()
    seen_messages.clear()


@pytest.fixture
def slow_control(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker reads its cancel notices only when its watcher reports a change."""
    monkeypatch.setattr(andon._worker, "_CONTROL_TICK_S", HOUR)


@pytest.fixture
def sqlite_path(tmp_path: Path) -> str:
    return str(tmp_path / "wake.db")


@pytest.fixture
def slow_sqlite(sqlite_path: str) -> Iterator[andon.SqliteStore]:
    """A SQLite store whose watchers poll once an hour: only a wake-up brings a change sooner."""
    with andon.SqliteStore(sqlite_path, poll_interval_s=HOUR) as store:
        yield store


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreEngine]:
    if request.param == "sqlite":
        with andon.SqliteStore(str(tmp_path / "any.db")) as store:
            yield store
    else:
        with fresh_schema() as url, PostgresStore(url) as pg_store:
            yield pg_store


def _cancel_from_another_process(path: str, job_id: str) -> None:
    code = (
        "import sys, andon\n"
        "store = andon.SqliteStore(sys.argv[1]); store.open()\n"
        "store.request_cancel(sys.argv[2], andon.CancelReason.USER, 'elsewhere', 'from another process')\n"
        "store.close()\n"
    )
    subprocess.run([sys.executable, "-c", code, path, job_id], check=True, timeout=60)


def _wake_socket(watcher: object) -> Path:
    assert isinstance(watcher, DataVersionWatcher)
    assert watcher.wake is not None, "no wake socket: the wake folder was refused"
    return watcher.wake.path


# -- SQLite: the local wake-up ---------------------------------------------------------------


@pytest.mark.usefixtures("slow_control")
def test_a_wake_up_delivers_a_cancel_written_by_another_process(slow_sqlite: andon.SqliteStore) -> None:
    client = andon.Client(slow_sqlite, app, actor="test")
    with andon.Worker(app, slow_sqlite, concurrency=1, shutdown_grace_s=0.5) as worker:
        job = client.submit("looping")
        assert started.wait(30)
        _cancel_from_another_process(slow_sqlite.path, job.id)
        # Both waits would take an hour without wake-ups: the worker's control thread and this
        # wait (woken by the worker's settlement, an ``ended`` change) are poked, not polling.
        finished = client.wait_finished(job.id, timeout=30)
        assert worker._watcher is not None
        assert isinstance(worker._watcher, DataVersionWatcher)
        assert worker._watcher.wake is not None
        assert worker._watcher.wake.received >= 1
    assert finished.status is JobStatus.CANCELLED
    assert finished.cancel is not None
    assert finished.cancel.message == "from another process"
    assert seen_messages == ["from another process"]


def test_a_datagram_that_is_not_a_wake_up_changes_nothing(slow_sqlite: andon.SqliteStore) -> None:
    watcher = slow_sqlite.watch({Change.CANCEL})
    try:
        target = str(_wake_socket(watcher))
        assert isinstance(watcher, DataVersionWatcher)
        assert watcher.wake is not None
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            for bogus in (
                b"",
                b"hello",
                b"andon-wake 1 ",
                b"andon-wake 1 x job",
                b"andon-wake 1 c job;rm -rf /",
                b"andon-wake 1 c \xff\xfe",
                b"andon-wake 1 c " + b"a" * MAX_DATAGRAM,
            ):
                sender.sendto(bogus, target)
            assert not watcher.wait(0.2)
            assert watcher.wake.received == 0
            # A well-formed wake-up with no commit behind it: the watcher looks, sees that
            # nothing changed, and goes on waiting.
            sender.sendto(b"andon-wake 1 c 0000-job", target)
            assert not watcher.wait(0.2)
            assert watcher.wake.received == 1
    finally:
        watcher.close()
    assert not Path(target).exists(), "a closed watcher leaves no socket behind"


def test_an_end_wakes_its_waiter_and_a_stale_socket_is_cleared(slow_sqlite: andon.SqliteStore) -> None:
    watcher = slow_sqlite.watch({Change.ENDED})
    folder = _wake_socket(watcher).parent
    # The socket of a process that died without closing it: nobody is bound to it.
    stale = folder / f"e-{os.getpid()}-{'0' * 12}"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(stale))
    dead.close()
    try:
        job = slow_sqlite.submit([_new("looping")], actor="test")[0]
        slow_sqlite.request_cancel(job.id, CancelReason.USER, "test")  # queued: withdrawn, an end
        # The writer poked it after its commit (the datagram waits in the socket), and the
        # wake-up makes the watcher look at once.
        assert isinstance(watcher, DataVersionWatcher)
        assert watcher.wake is not None
        assert watcher.wake.drain()
        assert watcher.wait(30)
    finally:
        watcher.close()
    assert not stale.exists()
    info = os.lstat(folder)
    assert stat.S_IMODE(info.st_mode) == 0o700
    assert info.st_uid == os.getuid()


def test_only_a_private_folder_of_this_user_is_used(tmp_path: Path) -> None:
    private = tmp_path / "private"
    assert _private_dir(private)
    assert stat.S_IMODE(os.lstat(private).st_mode) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    assert not _private_dir(shared)
    link = tmp_path / "link"
    link.symlink_to(private)
    assert not _private_dir(link)


def test_a_writer_never_waits_for_a_full_socket(tmp_path: Path) -> None:
    folder = tmp_path / "wake"
    assert _private_dir(folder)
    wake = WakeFolder(folder)
    listener = wake.listen({Change.CANCEL})
    assert listener is not None
    try:
        for _ in range(5000):  # far past the socket's queue: the sends past it are dropped
            wake.poke({Change.CANCEL}, ["some-job"])
        assert listener.drain()
        assert 0 < listener.received < 5000
        assert is_wake(b"andon-wake 1 c some-job")
    finally:
        listener.close()
        wake.close()


# -- PostgreSQL: the stops named in the notification -------------------------------------------


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_schema() as url:
        yield url


def test_the_notification_names_the_attempts_asked_to_stop(pg_url: str) -> None:
    heard: list[CancelNotice] = []
    with PostgresStore(pg_url) as store, PostgresStore(pg_url) as elsewhere:
        watcher = store.watch({Change.CANCEL}, on_stop=heard.append)
        try:
            jobs = store.submit([_new("looping"), _new("looping"), _new("looping")], actor="test")
            assert len(store.claim_many("w1", ["looping"], 30.0, 3)) == 3
            elsewhere.request_cancel(jobs[0].id, CancelReason.USER, "someone", "one of them")
            wait_until(lambda: heard, 10, "the stop named in the notification")
            assert heard == [CancelNotice(jobs[0].id, 1, CancelReason.USER, "one of them")]
            heard.clear()
            elsewhere.request_cancel_many(andon.JobFilter(ids=[j.id for j in jobs[1:]]), CancelReason.USER, "bulk")
            wait_until(lambda: len(heard) == 2, 10, "both stops named in the notification")
            assert {n.job_id for n in heard} == {j.id for j in jobs[1:]}
        finally:
            watcher.close()


def _cancel_with_plain_sql(store: PostgresStore, job_id: str, payload: str) -> None:
    """Commit a cancel (message ``from the store``) and, in the same transaction, ``payload``."""
    with admin_connection() as conn, conn.transaction():
        conn.execute(
            sql.SQL(
                "UPDATE {}.andon_jobs SET status = 'cancelling', cancel_reason = 'user',"
                " cancel_message = 'from the store', cancel_requested_at = extract(epoch FROM now()),"
                " cancel_retry = true WHERE id = %s"
            ).format(sql.Identifier(store.schema)),
            (job_id,),
        )
        conn.execute("SELECT pg_notify(%s, %s)", (f"{store.schema}_changes", payload))


def _notify_key(store: PostgresStore) -> bytes:
    with admin_connection() as conn:
        row = conn.execute(
            sql.SQL("SELECT key FROM {}.andon_notify_key").format(sql.Identifier(store.schema))
        ).fetchone()
    assert row is not None
    return str(row[0]).encode()


@pytest.mark.usefixtures("slow_control")
@pytest.mark.parametrize("signed", [True, False], ids=["signed", "forged"])
def test_a_signed_stop_in_the_notification_flags_the_attempt_before_any_read(pg_url: str, signed: bool) -> None:
    """The cancel is committed with plain SQL, its notification naming it with a message of its
    own. Signed with the store's key, the handler sees that message: the notification flagged
    the attempt before the worker read the store. Signed with another key (anyone may NOTIFY),
    it names nothing, and the handler sees the store's message: delivered by the read."""
    with PostgresStore(pg_url) as store:
        client = andon.Client(store, app, actor="test")
        key = _notify_key(store) if signed else b"not the store's key"
        with andon.Worker(app, store, concurrency=1, shutdown_grace_s=0.5):
            job = client.submit("looping")
            assert started.wait(30)
            notice = CancelNotice(job.id, 1, CancelReason.USER, "from the notification")
            (payload,), _ = stop_payloads([notice], key)
            _cancel_with_plain_sql(store, job.id, payload)
            finished = client.wait_finished(job.id, timeout=30)
    assert seen_messages == ["from the notification" if signed else "from the store"]
    assert finished.status is JobStatus.CANCELLED
    assert finished.cancel is not None
    assert finished.cancel.message == "from the store"


def test_stop_payloads_fit_and_anything_else_is_not_read_as_stops() -> None:
    many = [CancelNotice(f"job-{n:06d}", 1, CancelReason.PARENT_CANCELLED, "parent stopped") for n in range(2000)]
    key = b"a key"
    payloads, left_out = stop_payloads(many, key)
    assert left_out == 0
    assert len(payloads) > 1
    assert all(len(p.encode()) <= MAX_PAYLOAD for p in payloads)
    assert [n for p in payloads for n in (read_stops(p, key) or [])] == many
    assert all(read_stops(p, b"another key") == [] for p in payloads)
    assert all(read_stops(p, None) == [] for p in payloads)
    # A message too long for any payload: left out (the plain ``cancel`` change covers it).
    assert stop_payloads([CancelNotice("job", 1, CancelReason.USER, "x" * MAX_PAYLOAD)], key) == ([], 1)
    assert read_stops("cancel", key) is None
    assert read_stops("ended", key) is None
    # A request's own grace (cancel(..., grace=0), --now) rides with its stop, per group.
    hurried = [
        CancelNotice("job-a", 1, CancelReason.USER, None, 0.0),
        CancelNotice("job-b", 2, CancelReason.USER, None, None),
        CancelNotice("job-c", 1, CancelReason.USER, None, 1.5),
    ]
    hurried_payloads, _ = stop_payloads(hurried, key)
    assert sorted((n for p in hurried_payloads for n in (read_stops(p, key) or [])), key=repr) == sorted(
        hurried, key=repr
    )
    for body in (
        "",
        "[]",
        '{"reason":"nope","message":null,"attempts":[["j",1]]}',
        '{"reason":"user","message":3,"attempts":[["j",1]]}',
        '{"reason":"user","message":null,"attempts":[["j","1"]]}',
        '{"reason":"user","message":null,"attempts":[[1,1]]}',
        '{"reason":"user","message":null}',
        '{"reason":"user","message":null,"grace_s":-1,"attempts":[["j",1]]}',
        '{"reason":"user","message":null,"grace_s":"0","attempts":[["j",1]]}',
        '{"reason":"user","message":null,"grace_s":true,"attempts":[["j",1]]}',
    ):
        signature = hmac.new(key, body.encode(), hashlib.sha256).hexdigest()[:32]
        assert read_stops(f"cancel:{signature}:{body}", key) == [], body


# -- settled at once, not at the next flush ------------------------------------------------------


def test_a_stopped_attempt_is_settled_without_waiting_for_a_flush(any_store: StoreEngine) -> None:
    """With a flush interval of an hour, the cancelled status (and the item emitted before it)
    can only have been written by the settlement the stop itself triggered."""
    client = andon.Client(any_store, app, actor="test")
    with andon.Worker(app, any_store, concurrency=2, flush_interval_s=HOUR, shutdown_grace_s=0.5):
        job = client.submit("looping")
        assert started.wait(30)
        finished = client.cancel(job.id, wait=True, timeout=30).job
    assert finished.status is JobStatus.CANCELLED
    assert finished.items_count == 1


def _new(kind: str) -> NewJob:
    return NewJob(new_job_id(), kind, {})
