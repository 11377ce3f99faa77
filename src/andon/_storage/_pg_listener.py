"""The PostgreSQL store's notifications: one ``LISTEN`` connection per store, on a thread
of its own, and the watchers it wakes.

A notification's payload is the :class:`Change` it reports, or, for a cancel, ``cancel:``,
a signature and a JSON object naming the attempts asked to stop (:func:`stop_payloads`), so
that a worker can flag them before it reads anything: PostgreSQL delivers a notification only
once its transaction has committed. Any role that may connect to the database may send a
notification on any channel, so the stops are signed (HMAC-SHA256) with the store's key
(``andon_notify_key``, which only roles that can read andon's tables can read); a payload
without a valid signature still counts as a cancel change, but names nothing. Anything else
is read as "every change".
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import math
import os
import select
import threading
import time
from collections.abc import Callable, Collection, Iterable
from typing import Any, Final, final

import psycopg
from psycopg import sql

from andon._cancel import CancelReason
from andon._errors import StorageUnavailable
from andon._storage._port import ALL_CHANGES, Change
from andon._storage._records import CancelNotice
from andon._storage._url import one_line

__all__ = ["PROBE_INTERVAL_S", "Listener", "StopHeard", "Watcher", "read_stops", "stop_payloads"]

log = logging.getLogger("andon.postgres")

PROBE_INTERVAL_S: Final = 1.0
"""How often an idle listener checks that its connection is alive (the fallback poll)."""
MAX_PAYLOAD: Final = 7900
"""Bytes of one payload at most (PostgreSQL's limit is 8000)."""
_STOPS: Final = "cancel:"

StopHeard = Callable[[CancelNotice], None]
"""Called on the listener's thread with each stop request a notification names."""


_SIGNATURE_CHARS: Final = 32


def _signature(key: bytes, body: str) -> str:
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()[:_SIGNATURE_CHARS]


def stop_payloads(notices: Iterable[CancelNotice], key: bytes) -> tuple[list[str], int]:
    """Payloads naming ``notices``, signed with ``key``: one per reason and message, split to
    fit; and how many notices were left out, too large for any payload (a very long message):
    a plain ``cancel`` change must then go with them."""
    groups: dict[tuple[str, str | None, float | None], list[list[Any]]] = {}  # Any: a job id and its attempt
    for notice in notices:
        key_of = (notice.reason.value, notice.message, notice.grace_s)
        groups.setdefault(key_of, []).append([notice.job_id, notice.attempt])
    bodies = []
    left_out = 0
    room = MAX_PAYLOAD - len(_STOPS) - _SIGNATURE_CHARS - 1
    for (reason, message, grace_s), attempts in groups.items():
        head = (
            f'{{"reason":{json.dumps(reason)},"message":{json.dumps(message)},'
            f'"grace_s":{json.dumps(grace_s)},"attempts":['
        )
        if len(head.encode()) + 2 > room:
            left_out += len(attempts)
            continue
        chunk: list[str] = []
        size = len(head.encode()) + 2
        for attempt in attempts:
            one = json.dumps(attempt)
            if chunk and size + len(one) + 1 > room:
                bodies.append(head + ",".join(chunk) + "]}")
                chunk, size = [], len(head.encode()) + 2
            if size + len(one) + 1 <= room:
                chunk.append(one)
                size += len(one) + 1
            else:
                left_out += 1
        if chunk:
            bodies.append(head + ",".join(chunk) + "]}")
    return [f"{_STOPS}{_signature(key, body)}:{body}" for body in bodies], left_out


def read_stops(payload: str, key: bytes | None) -> list[CancelNotice] | None:
    """The stop requests a ``cancel:`` payload names; ``None`` if it is not one. One that is
    malformed, or not signed with ``key`` (``None``: no key known), names none: ``[]``."""
    if not payload.startswith(_STOPS):
        return None
    signature, _, text = payload[len(_STOPS) :].partition(":")
    if key is None or not hmac.compare_digest(signature, _signature(key, text)):
        return []
    try:
        body = json.loads(text)
        reason = CancelReason(body["reason"])
        message = body["message"]
        if message is not None and not isinstance(message, str):
            return []
        grace_s = body.get("grace_s")
        if grace_s is not None and (type(grace_s) not in (int, float) or not 0 <= grace_s < math.inf):
            return []
        notices = []
        for job_id, attempt in body["attempts"]:
            if not isinstance(job_id, str) or type(attempt) is not int:
                return []
            notices.append(CancelNotice(job_id, attempt, reason, message, None if grace_s is None else float(grace_s)))
        return notices
    except (ValueError, KeyError, TypeError):
        return []


@final
class Listener:
    """One ``LISTEN`` connection per store, on a thread of its own; wakes the watchers.

    It counts notifications per :class:`Change` (the payload); a (re)connection counts as
    every change, since what was notified while nobody listened is lost. The thread waits
    on the socket and on a wake-up pipe (so :meth:`close` is prompt), and probes the
    connection after :data:`PROBE_INTERVAL_S` of silence, so a connection that died without
    a word (network cut) is noticed and replaced within a second or two.
    """

    def __init__(
        self, connect: Callable[[], psycopg.Connection[Any]], channel: str, display: str, key: bytes | None = None
    ) -> None:
        self._connect = connect
        self._key = key
        self._listen = sql.SQL("LISTEN {}").format(sql.Identifier(channel))
        self._display = display
        self._changed = threading.Condition()
        self._counts = dict.fromkeys(Change, 0)
        self._hearers: dict[int, StopHeard] = {}
        self.unnamed_cancels = 0
        """Cancel changes counted that did not name their stops (a plain ``cancel``, a payload
        not signed with this store's key, a reconnection): whoever waits must read them."""
        self.connected = threading.Event()
        self._closed = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._thread = threading.Thread(target=self._run, name="andon-pg-listener", daemon=True)
        self._thread.start()

    def watcher(self, changes: frozenset[Change], timeout: float, on_stop: StopHeard | None = None) -> Watcher:
        if not self.connected.wait(timeout):
            raise StorageUnavailable(f"cannot listen for changes on PostgreSQL at {self._display}")
        watcher = Watcher(self, changes, self.seen(changes))
        if on_stop is not None:
            with self._changed:
                self._hearers[id(watcher)] = on_stop
        return watcher

    def forget(self, watcher: Watcher) -> None:
        with self._changed:
            self._hearers.pop(id(watcher), None)
            self._changed.notify_all()

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

    def _count(self, changes: Collection[Change], *, named: bool = False) -> None:
        """Count ``changes``; ``named``: their cancels all came as signed stops, already heard."""
        if changes:
            with self._changed:
                for change in changes:
                    self._counts[change] += 1
                if Change.CANCEL in changes and not named:
                    self.unnamed_cancels += 1
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
        """Count the notifications received so far, and pass on the stops they name;
        ``True`` if there were any."""
        changes: set[Change] = set()
        stops: list[CancelNotice] = []
        unnamed = False
        received = False
        for notification in conn.notifies(timeout=0):
            received = True
            named = read_stops(notification.payload, self._key)
            if named:
                stops += named
                changes.add(Change.CANCEL)
                continue
            unnamed = True
            if named is not None:  # a stop payload we cannot trust: a cancel, but no names
                changes.add(Change.CANCEL)
                continue
            try:
                changes.add(Change(notification.payload))
            except ValueError:  # from a newer andon: it may be anything
                changes.update(ALL_CHANGES)
        if stops:
            self._hear(stops)
        self._count(changes, named=not unnamed)
        return received

    def _hear(self, stops: list[CancelNotice]) -> None:
        with self._changed:
            hearers = list(self._hearers.values())
        for hearer in hearers:
            for notice in stops:
                try:
                    hearer(notice)
                except Exception:  # a bug of the hearer's: the store read after still delivers
                    log.exception("a stop named in a notification could not be passed on")

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
        self._unnamed_seen = listener.unnamed_cancels
        self._closed = False
        self.cancels_named = False
        """After a :meth:`wait` that saw a change: every cancel since the one before came
        with its stops named (and heard), so a worker need not read its notices for them."""

    def wait(self, timeout: float) -> bool:
        found = self._listener.wait_change(self._changes, self._seen, timeout, lambda: self._closed)
        if found is None:
            return False
        self._seen = found
        # Read after the wait: an unnamed cancel counted meanwhile is read now, not missed.
        unnamed = self._listener.unnamed_cancels
        self.cancels_named = unnamed == self._unnamed_seen
        self._unnamed_seen = unnamed
        return True

    def close(self) -> None:
        self._closed = True
        self._listener.forget(self)
