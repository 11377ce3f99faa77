"""The SQLite store's background pieces: the WAL checkpointer and the watcher that sees
commits of other connections, each on a connection of its own."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, final

from andon._errors import AndonError, LifecycleError

if TYPE_CHECKING:
    from andon._storage._sqlite import SqliteConnector

__all__ = ["Checkpointer", "DataVersionWatcher"]

log = logging.getLogger("andon._storage._sqlite")


@final
class Checkpointer:
    """Copies the WAL back into the database file, in a thread of its own.

    SQLite's automatic checkpoint runs inside the COMMIT that takes the WAL past 1,000
    pages, so one unlucky write (a claim, a bulk cancel) waits ~15 ms for it. This thread
    runs the same PASSIVE checkpoint (it never waits for readers or writers) a little after
    writes, and the store's connections move the automatic one to 4,000 pages, where it
    only bounds the WAL. It ends after a second without writes, or when the store closes;
    the next write starts another.
    """

    INTERVAL_S: Final = 0.1
    IDLE_ROUNDS: Final = 10

    def __init__(self, store: SqliteConnector) -> None:
        self.writes = 0
        """Writes so far (the store counts them, holding its lock)."""
        self._store = store
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"andon-sqlite-checkpoint:{store.path}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        store = self._store
        try:
            conn = store._connect()
        except (AndonError, sqlite3.Error):  # the store closed meanwhile
            self._retire()
            return
        try:
            done, idle = 0, 0
            while not self._stopping.wait(self.INTERVAL_S):
                with store._lock:
                    writes = self.writes
                    if writes == done:
                        idle += 1
                        if idle >= self.IDLE_ROUNDS:
                            self._retire_locked()
                            return
                        continue
                idle = 0
                try:
                    store.checkpoint(conn)
                except (sqlite3.Error, AndonError) as exc:  # busy, or the store closing
                    log.debug("checkpoint of the SQLite WAL skipped: %s", exc)
                    continue
                done = writes
        finally:
            store._release(conn)

    def _retire(self) -> None:
        with self._store._lock:
            self._retire_locked()

    def _retire_locked(self) -> None:
        if self._store._checkpointer is self:
            self._store._checkpointer = None


@final
class DataVersionWatcher:
    """Sees commits by any other connection through ``PRAGMA data_version``."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        read_version: Callable[[], int],
        interval_s: float,
        release: Callable[[sqlite3.Connection], None],
    ) -> None:
        self._conn = conn
        self._read_version = read_version
        self._interval_s = interval_s
        self._release = release
        self._closed = threading.Event()
        self._version = read_version()

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self._closed.is_set():
            try:
                version = self._read_version()
            except LifecycleError:  # the store (or this watcher) was closed meanwhile
                return False
            if version != self._version:
                self._version = version
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._closed.wait(min(self._interval_s, remaining))
        return False

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._release(self._conn)
