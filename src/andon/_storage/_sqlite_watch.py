"""The watcher that sees commits of other connections to a SQLite file, on a connection of
its own (the WAL checkpointer, the connector's other background piece, is in ``_sqlite.py``)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from typing import final

from andon._errors import LifecycleError

__all__ = ["DataVersionWatcher"]


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
