"""The SQLite store checkpoints its WAL in a background thread, never inside a commit.

What is checked: the store's connections move SQLite's automatic checkpoint to 4,000
pages, where it still bounds the WAL; writes reach the database file without any other
connection checkpointing; the thread ends a
second after the last write and the next write starts another; a store that only reads
starts no thread; close() ends the thread; a store with a large WAL still opens, reads
and writes after a crash left the WAL behind (kill -9 of a writing process).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import andon
from andon._ids import new_job_id
from andon._storage import NewJob
from andon._storage._sqlite import SqliteConnector
from tests.support import wait_until

CHECKPOINTER = "andon-sqlite-checkpoint"


def checkpointers(path: Path) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"{CHECKPOINTER}:{path}"]


def submit(store: andon.SqliteStore, count: int) -> None:
    store.submit([NewJob(new_job_id(), "a", {"pad": "x" * 200}) for _ in range(count)], actor=None)


def wait_file_grown(path: Path, past: int) -> None:
    """Wait until the database file has grown by more than a megabyte past ``past`` bytes."""
    wait_until(
        lambda: path.stat().st_size > past + 1_000_000, 10, f"{path} to grow past {past + 1_000_000} bytes", 0.02
    )


def test_writes_reach_the_database_file_from_the_background(tmp_path: Path) -> None:
    path = tmp_path / "andon.db"
    with andon.SqliteStore(str(path)) as store:
        assert store._db._conn().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 4_000
        assert checkpointers(path) == []  # nothing written yet
        before = path.stat().st_size
        submit(store, 5_000)  # a few MB of WAL, under the 4,000-page mark: only the thread copies it
        [thread] = checkpointers(path)
        wait_file_grown(path, before)
        # what a fresh reader sees after the WAL went back into the file
        assert store.list_jobs(andon.JobFilter(), limit=10).items
    assert not thread.is_alive()
    assert checkpointers(path) == []
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM andon_jobs").fetchone()[0] == 5_000


@pytest.mark.slow
def test_the_thread_ends_when_writes_stop_and_the_next_write_starts_another(tmp_path: Path) -> None:
    path = tmp_path / "andon.db"
    with andon.SqliteStore(str(path)) as store:
        submit(store, 10)
        [first] = checkpointers(path)
        first.join(timeout=5)  # about a second without writes
        assert not first.is_alive()
        assert checkpointers(path) == []
        before = path.stat().st_size
        submit(store, 5_000)
        [second] = checkpointers(path)
        assert second is not first
        wait_file_grown(path, before)


def test_the_automatic_checkpoint_still_bounds_the_wal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the thread (here: never started), SQLite's own checkpoint at 4,000 pages
    keeps the WAL near 16 MB; with it turned off, the WAL grew with every write."""
    monkeypatch.setattr(SqliteConnector, "_wrote", lambda self: None)
    path = tmp_path / "andon.db"
    largest = 0
    with andon.SqliteStore(str(path)) as store:
        for _ in range(300):  # ~60 MB of pages written in all
            store.submit([NewJob(new_job_id(), "a", {"pad": "x" * 1_000}) for _ in range(100)], actor=None)
            largest = max(largest, Path(f"{path}-wal").stat().st_size)
        assert checkpointers(path) == []
    assert largest < 24 * 2**20, f"the WAL reached {largest / 2**20:.0f} MB"


def test_a_store_that_only_reads_starts_no_thread(tmp_path: Path) -> None:
    path = tmp_path / "andon.db"
    with andon.SqliteStore(str(path)) as writer:
        submit(writer, 10)
    with andon.SqliteStore(str(path)) as reader:
        assert len(reader.list_jobs(andon.JobFilter(), limit=100).items) == 10
        assert checkpointers(path) == []


@pytest.mark.slow
def test_after_a_crash_with_a_large_wal_the_store_opens_and_works(tmp_path: Path) -> None:
    path = tmp_path / "andon.db"
    script = (
        "import os, sys\n"
        "import andon\n"
        "from andon._ids import new_job_id\n"
        "from andon._storage import NewJob\n"
        "store = andon.SqliteStore(sys.argv[1]); store.open()\n"
        "store.submit([NewJob(new_job_id(), 'a', {'pad': 'x' * 200}) for _ in range(20_000)], actor=None)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(path)], check=False, timeout=120)
    assert proc.returncode == -9
    with andon.SqliteStore(str(path)) as store:
        assert len(store.list_jobs(andon.JobFilter(), limit=30_000).items) == 20_000
        submit(store, 1)
        assert len(store.list_jobs(andon.JobFilter(), limit=30_000).items) == 20_001
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
