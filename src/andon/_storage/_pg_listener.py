"""The PostgreSQL store's notifications: one ``LISTEN`` connection per store, on a thread
of its own, and the watchers it wakes."""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from collections.abc import Callable, Collection
from typing import Any, Final, final

import psycopg
from psycopg import sql

from andon._errors import StorageUnavailable
from andon._storage._port import ALL_CHANGES, Change
from andon._storage._url import one_line

__all__ = ["PROBE_INTERVAL_S", "Listener", "Watcher"]

log = logging.getLogger("andon.postgres")

PROBE_INTERVAL_S: Final = 1.0
"""How often an idle listener checks that its connection is alive (the fallback poll)."""


@final
class Listener:
    """One ``LISTEN`` connection per store, on a thread of its own; wakes the watchers.

    It counts notifications per :class:`Change` (the payload); a (re)connection counts as
    every change, since what was notified while nobody listened is lost. The thread waits
    on the socket and on a wake-up pipe (so :meth:`close` is prompt), and probes the
    connection after :data:`PROBE_INTERVAL_S` of silence, so a connection that died without
    a word (network cut) is noticed and replaced within a second or two.
    """

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]], channel: str, display: str) -> None:
        self._connect = connect
        self._listen = sql.SQL("LISTEN {}").format(sql.Identifier(channel))
        self._display = display
        self._changed = threading.Condition()
        self._counts = dict.fromkeys(Change, 0)
        self.connected = threading.Event()
        self._closed = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._thread = threading.Thread(target=self._run, name="andon-pg-listener", daemon=True)
        self._thread.start()

    def watcher(self, changes: frozenset[Change], timeout: float) -> Watcher:
        if not self.connected.wait(timeout):
            raise StorageUnavailable(f"cannot listen for changes on PostgreSQL at {self._display}")
        return Watcher(self, changes, self.seen(changes))

    def seen(self, changes: frozenset[Change]) -> int:
        with self._changed:
            return sum(self._counts[change] for change in changes)

    def wait_change(
        self, changes: frozenset[Change], seen: int, timeout: float, closed: Callable[[], bool]
    ) -> int | None:
        """Block until one of ``changes`` was counted since ``seen``; the new count, or ``None``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self._closed and not closed():
                now = sum(self._counts[change] for change in changes)
                if now != seen:
                    return now
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)
            return None

    def wake_all(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def _count(self, changes: Collection[Change]) -> None:
        if changes:
            with self._changed:
                for change in changes:
                    self._counts[change] += 1
                self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        failures = 0
        try:
            while not self._closed:
                if conn is None:
                    try:
                        conn = self._connect()
                        conn.execute(self._listen)
                    except (psycopg.Error, StorageUnavailable) as exc:
                        if conn is not None:
                            conn.close()
                            conn = None
                        failures += 1
                        if failures == 1:
                            log.warning("cannot listen on %s (%s); retrying", self._display, one_line(exc))
                        self._pause(min(1.0, 0.05 * 2**failures))
                        continue
                    if failures:
                        log.warning("listening on %s again", self._display)
                    failures = 0
                    # Whatever was notified while nobody listened is lost: report every change.
                    self._count(ALL_CHANGES)
                    self.connected.set()
                try:
                    self._listen_once(conn)
                except (psycopg.Error, OSError, ValueError) as exc:
                    if not self._closed:
                        log.warning("lost the listening connection to %s (%s)", self._display, one_line(exc))
                    conn.close()
                    conn = None
        finally:
            if conn is not None:
                conn.close()

    def _listen_once(self, conn: psycopg.Connection[Any]) -> None:
        readable, _, _ = select.select([conn.fileno(), self._wake_r], [], [], PROBE_INTERVAL_S)
        if self._wake_r in readable:
            return
        if readable and self._drain(conn):
            return
        # Silence, or something that was not a notification (the server saying goodbye):
        # a probe raises on a dead connection. Notifications arriving with its answer wait
        # in psycopg's backlog, which the drain reads first.
        conn.execute("SELECT 1")
        self._drain(conn)

    def _drain(self, conn: psycopg.Connection[Any]) -> bool:
        """Count the notifications received so far; ``True`` if there were any."""
        changes: set[Change] = set()
        received = False
        for notification in conn.notifies(timeout=0):
            received = True
            try:
                changes.add(Change(notification.payload))
            except ValueError:  # from a newer andon: it may be anything
                changes.update(ALL_CHANGES)
        self._count(changes)
        return received

    def _pause(self, seconds: float) -> None:
        with contextlib.suppress(OSError, ValueError):
            select.select([self._wake_r], [], [], seconds)


@final
class Watcher:
    """A :class:`~andon._storage.ChangeWatcher` on the store's listener."""

    def __init__(self, listener: Listener, changes: frozenset[Change], seen: int) -> None:
        self._listener = listener
        self._changes = changes
        self._seen = seen
        self._closed = False

    def wait(self, timeout: float) -> bool:
        found = self._listener.wait_change(self._changes, self._seen, timeout, lambda: self._closed)
        if found is None:
            return False
        self._seen = found
        return True

    def close(self) -> None:
        self._closed = True
        self._listener.wake_all()
