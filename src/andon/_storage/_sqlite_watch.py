"""The watcher that sees commits of other connections to a SQLite file, on a connection of
its own (the WAL checkpointer, the connector's other background piece, is in ``_sqlite.py``)."""

from __future__ import annotations

import select
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import final

from andon._errors import LifecycleError
from andon._storage._wake import WakeSocket

__all__ = ["DataVersionWatcher"]


@final
class DataVersionWatcher:
    """Sees commits by any other connection through ``PRAGMA data_version``, polled every
    ``interval_s``; with a ``wake`` socket (``_wake.py``), also at once when a writer of this
    machine pokes it. A wake-up only makes it look: a change is reported when
    ``data_version`` says so, never on the datagram's word."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        read_version: Callable[[], int],
        interval_s: float,
        release: Callable[[sqlite3.Connection], None],
        wake: WakeSocket | None = None,
    ) -> None:
        self._conn = conn
        self._read_version = read_version
        self._interval_s = interval_s
        self._release = release
        self._wake = wake
        self._closed = threading.Event()
        self._version = read_version()
        self.cancels_named = False
        """Never: a wake-up names nothing the watcher's owner may act on without reading."""

    @property
    def wake(self) -> WakeSocket | None:
        """Its wake socket, if this machine's writers can poke it."""
        return self._wake

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
            self._pause(min(self._interval_s, remaining))
        return False

    def _pause(self, seconds: float) -> None:
        """Until the next poll, or a wake-up (or close) before it."""
        if self._wake is None:
            self._closed.wait(seconds)
            return
        until = time.monotonic() + seconds
        while not self._closed.is_set():
            left = until - time.monotonic()
            if left <= 0:
                return
            try:
                readable, _, _ = select.select([self._wake], [], [], left)
            except (OSError, ValueError):  # closed meanwhile by close()
                return
            if readable and self._wake.drain():
                return

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            if self._wake is not None:
                self._wake.nudge()
                self._wake.close()
            self._release(self._conn)
