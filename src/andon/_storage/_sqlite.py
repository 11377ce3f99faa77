"""The embedded store: one SQLite file in WAL mode, shared by any number of processes.

Every write is one short ``BEGIN IMMEDIATE`` transaction, retried when another process
holds the write lock, so callers never see "database is locked". The retries stop after
``busy_timeout_s`` in all (10 s by default), with :class:`~andon.StorageBusy` and nothing
written: a process stopped while it holds the lock (Ctrl-Z on a worker) must not hang
every other writer. Reads never wait for the lock. The operations are the engine's
(``_engine.py``); the statements are in ``queries_sqlite.sql``, the schema in
``schema_sqlite.sql``.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Final, TypeVar, final

from andon._clock import Clock, SystemClock
from andon._errors import (
    AndonError,
    ConfigurationError,
    LifecycleError,
    StorageBusy,
    StorageError,
    StorageUnavailable,
    UsageError,
)
from andon._output import ProgressUpdate
from andon._storage._async_watch import ThreadedChanges
from andon._storage._connector import Args, IfUnsure, Resolver, Tx
from andon._storage._engine import Engine
from andon._storage._port import Change
from andon._storage._records import CancelNotice, JobFilter, NewJob
from andon._storage._rows import Row
from andon._storage._sql import read_blocks, read_sql, sqlite_filter
from andon._storage._sqlite_watch import DataVersionWatcher
from andon._storage._wake import WOKEN_CHANGES, WakeFolder, wake_folder
from andon._workers import this_machine

__all__ = ["DEFAULT_BUSY_TIMEOUT_S", "SCHEMA_VERSION", "SqliteConnector", "SqliteStore"]

log = logging.getLogger("andon._storage._sqlite")

T = TypeVar("T")

DEFAULT_BUSY_TIMEOUT_S: Final = 10.0
# How long one attempt waits in SQLite's own busy handler before our loop looks at the
# clock: an operation overruns its busy timeout by at most this much.
_BUSY_ATTEMPT_S: Final = 0.25
SCHEMA_VERSION: Final = 9
_QUERIES: Final = read_blocks("queries_sqlite.sql")
# Each step from the version it starts at: 1 -> 2, 2 -> 3, 3 -> 4; the schema script then adds what is new.
_UPGRADES: Final = (
    (1, _QUERIES["upgrade_to_2"]),
    (2, _QUERIES["upgrade_to_3"]),
    (3, _QUERIES["upgrade_to_4"]),
    (4, _QUERIES["upgrade_to_5"]),
    (5, _QUERIES["upgrade_to_6"]),
    (6, _QUERIES["upgrade_to_7"]),
    (7, _QUERIES["upgrade_to_8"]),
    (8, _QUERIES["upgrade_to_9"]),
)
_SCHEMA_OBJECT: Final = re.compile(r"CREATE (?:TABLE|INDEX) IF NOT EXISTS (\w+)", re.IGNORECASE)


@final
class _SqliteTx:
    """A :class:`~andon._storage._engine.Tx` on one connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.changes: set[Change] = set()
        """What this transaction changed, for the wake-ups sent after its commit."""
        self.stopped: list[str] = []
        """The jobs it asked to stop (named in the wake-ups: a hint, the store says what)."""

    def _run(self, name: str, args: Args, fragments: dict[str, str]) -> sqlite3.Cursor:
        *before, last = _QUERIES[name]
        if fragments:
            before = [statement.format(**fragments) for statement in before]
            last = last.format(**fragments)
        for statement in before:
            self.conn.execute(statement, args)
        return self.conn.execute(last, args)

    def one(self, name: str, args: Args, **fragments: str) -> Row | None:
        row: Row | None = self._run(name, args, fragments).fetchone()
        return row

    def all(self, name: str, args: Args, **fragments: str) -> list[Row]:
        return self._run(name, args, fragments).fetchall()

    def scan(self, name: str, args: Args, **fragments: str) -> Iterator[Row]:
        # SQLite computes a row only when asked: rows past what the caller takes are never read.
        cursor = self._run(name, args, fragments)
        try:
            yield from cursor
        finally:
            cursor.close()

    def many(self, name: str, rows: Sequence[Args] | Sequence[Sequence[Any]]) -> None:
        (statement,) = _QUERIES[name]
        self.conn.executemany(statement, rows)

    def notify(self, changes: Collection[Change]) -> None:
        """Noted for after the commit: every commit changes ``PRAGMA data_version``, which
        watchers poll, and the connector pokes this machine's watchers of a cancel or an end
        at once (``_wake.py``)."""
        self.changes.update(changes)

    def stopping(self, notices: Collection[CancelNotice]) -> None:
        self.stopped.extend(notice.job_id for notice in notices)


@final
class SqliteConnector:
    """How the engine reaches one SQLite file (``path`` or ``":memory:"``); see :class:`SqliteStore`."""

    def __init__(self, path: str, clock: Clock, poll_interval_s: float, busy_timeout_s: float) -> None:
        if not 0 < busy_timeout_s < float("inf"):
            raise ConfigurationError(f"bad busy timeout {busy_timeout_s!r}: use a positive number of seconds")
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self._clock = clock
        self._poll_interval_s = poll_interval_s
        self._local = threading.local()
        # One lock per connection, held while it is in use: close() takes it before closing,
        # because closing a sqlite3 connection another thread is reading from crashes the
        # interpreter (a segfault seen when an app shut down under its event broadcaster).
        self._connections: dict[sqlite3.Connection, threading.Lock] = {}
        self._lock = threading.Lock()
        # Writers of this process queue here rather than in SQLite's busy handler, which
        # sleeps in steps of milliseconds while another connection of ours holds the lock.
        self._write_lock = threading.Lock()
        self._opened = False
        self._closed = False
        self._checkpointer: Checkpointer | None = None
        self._wake: WakeFolder | None = None
        if path == ":memory:":
            # A private in-memory database shared by this store's connections.
            self._target = f"file:andon-{id(self)}?mode=memory&cache=shared"
        else:
            self._target = f"file:{path}"

    @property
    def url(self) -> str:
        query = "" if self.busy_timeout_s == DEFAULT_BUSY_TIMEOUT_S else f"?busy_timeout={self.busy_timeout_s:g}"
        return f"sqlite:///{self.path}{query}"

    # -- lifecycle ------------------------------------------------------------

    def open(self) -> None:
        if self._closed:
            raise LifecycleError("this store was closed; open a new one")
        if self._opened:
            return
        conn = self._connect()
        self._create_schema(conn)
        self._wake = wake_folder(self.path)  # the file exists now: its identity names the folder
        self._opened = True

    def upgrade(self) -> tuple[int, int]:
        """Create the schema where it is missing; returns (version before, after).

        :meth:`open` does the same (SQLite files upgrade themselves); this reports it for
        ``andon db upgrade``. Works on an unopened store.
        """
        if self._closed:
            raise LifecycleError("this store was closed; open a new one")
        conn = self._connect()
        try:
            before = self._schema_version(conn)
            self._create_schema(conn)
            return before, self._schema_version(conn)
        finally:
            self._release(conn)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.stop()
        if self._wake is not None:
            self._wake.close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            self._release(conn)

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self._target,
                uri=True,
                isolation_level=None,
                check_same_thread=False,
                timeout=min(_BUSY_ATTEMPT_S, self.busy_timeout_s),
            )
            if self.path != ":memory:":
                tx = _SqliteTx(conn)
                self._retry_busy(lambda: tx.one("wal_mode", {}))
                tx.one("connection_settings", {})
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"cannot open SQLite database {self.path!r}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        with self._lock:
            if self._closed:
                conn.close()
                raise LifecycleError("this store is closed")
            self._connections[conn] = threading.Lock()
        return conn

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if not self._opened:
                raise LifecycleError("open the store first (store.open() or a with block)")
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _retry_busy(self, action: Callable[[], T], deadline: float | None = None) -> T:
        """Run ``action``, again while the database is locked, until ``deadline``
        (``time.monotonic()``; default: ``busy_timeout_s`` from now)."""
        if deadline is None:
            deadline = time.monotonic() + self.busy_timeout_s
        attempt = 0
        while True:
            try:
                return action()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise StorageError(f"SQLite error: {exc}") from exc
            except sqlite3.Error as exc:
                raise StorageError(f"SQLite error: {exc}") from exc
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StorageBusy(self.path, self.busy_timeout_s)
            time.sleep(min(0.05, 0.001 * 2 ** min(attempt, 6), remaining))
            attempt += 1

    def _use(self, conn: sqlite3.Connection, action: Callable[[], T]) -> T:
        """Run ``action`` on ``conn`` holding its lock, unless the store closed it meanwhile."""
        lock = self._connections.get(conn)
        if lock is None:
            raise LifecycleError("this store is closed")
        with lock:
            if conn not in self._connections:
                raise LifecycleError("this store is closed")
            return action()

    def write(
        self,
        body: Callable[[_SqliteTx], T],
        if_unsure: IfUnsure | Resolver[T] = IfUnsure.RAISE,
        *,
        single: bool = False,
    ) -> T:
        """Run ``body`` in one ``BEGIN IMMEDIATE`` transaction, retrying on lock contention
        for ``busy_timeout_s`` in all, the wait for this process's other writers included.
        (A commit's outcome is never in doubt here: ``if_unsure`` and ``single`` do not apply.)"""
        conn = self._conn()
        deadline = time.monotonic() + self.busy_timeout_s
        committed = _SqliteTx(conn)

        def attempt() -> T:
            nonlocal committed
            if not self._write_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise StorageBusy(self.path, self.busy_timeout_s)
            try:
                committed = _SqliteTx(conn)
                return _transaction(committed, body)
            finally:
                self._write_lock.release()

        value = self._retry_busy(lambda: self._use(conn, attempt), deadline)
        if self._wake is not None and committed.changes & WOKEN_CHANGES:
            self._wake.poke(committed.changes, committed.stopped)
        self._wrote()
        return value

    def read(self, body: Callable[[_SqliteTx], T]) -> T:
        conn = self._conn()
        return self._retry_busy(lambda: self._use(conn, lambda: body(_SqliteTx(conn))))

    def _wrote(self) -> None:
        """Tell the checkpointer (started here at need: a store that only reads has none)."""
        if self.path == ":memory:":
            return
        with self._lock:
            if self._closed:
                return
            if self._checkpointer is None:
                self._checkpointer = Checkpointer(self)
            self._checkpointer.writes += 1

    def watch(
        self, changes: frozenset[Change], on_stop: Callable[[CancelNotice], None] | None = None
    ) -> DataVersionWatcher:
        """A watcher woken by every commit of any connection (whatever ``changes`` it asks for),
        at once when a writer of this machine pokes it. ``on_stop`` is never called: a
        wake-up is not trusted to say what was cancelled, the watcher's owner reads it."""
        conn = self._connect()
        tx = _SqliteTx(conn)

        def read_version() -> int:
            return int(
                self._retry_busy(lambda: self._use(conn, lambda: _first(tx.one("data_version", {}), "data_version")))
            )

        wake = self._wake.listen(changes) if self._wake is not None else None
        return DataVersionWatcher(conn, read_version, self._poll_interval_s, self._release, wake)

    def watch_async(self, changes: frozenset[Change]) -> ThreadedChanges:
        """The blocking watcher on a thread of its own, its wake-ups handed to the loop."""
        return ThreadedChanges(lambda: self.watch(changes))

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        """Copy the WAL back into the database file as far as nobody needs it (PASSIVE)."""
        self._use(conn, lambda: _SqliteTx(conn).all("wal_checkpoint", {}))

    def _release(self, conn: sqlite3.Connection) -> None:
        """Close one connection once nobody is using it (give up after 5 s rather than crash)."""
        lock = self._connections.get(conn)
        if lock is None or not lock.acquire(timeout=5.0):
            return
        try:
            with self._lock:
                self._connections.pop(conn, None)
            conn.close()
        finally:
            lock.release()

    # -- what SQLite does its own way -----------------------------------------

    async def insert_jobs_async(
        self, connection: object, jobs: Sequence[NewJob], now: float, actor: str | None
    ) -> None:
        self.caller_tx(connection)  # raises: SQLite cannot join the caller's transaction

    def caller_tx(self, connection: object) -> AbstractContextManager[Tx]:
        raise UsageError(
            "submit(connection=...) enqueues inside your own database transaction, which needs"
            " PostgreSQL (psycopg): a SQLite store has one file and its own connections, so a job"
            " cannot commit or roll back with a transaction of yours. Submit after your commit"
            " instead (a job submitted then is durable at once)."
        )

    def subtree_clause(self, *, root: bool = False) -> str:
        (clause,) = _QUERIES["tree_clause" if root else "subtree_clause"]
        return clause

    def job_filter(self, where: JobFilter, cursor: str | None, now: float = 0.0) -> tuple[str, str, dict[str, Any]]:
        return sqlite_filter(where, cursor, now)

    def array(self, values: Collection[str]) -> str:
        return json.dumps(list(values))

    def lease_base(self) -> float:
        """Leases are judged on ``CLOCK_BOOTTIME``, which never steps: a jump of the wall
        clock cannot expire a healthy lease."""
        now = self._clock.lease_now()
        return time.clock_gettime(time.CLOCK_BOOTTIME) if now is None else now

    def insert_jobs(self, tx: Tx, jobs: Sequence[NewJob], now: float, actor: str | None) -> None:
        rows = [
            {
                "id": j.id,
                "kind": j.kind,
                "params": json.dumps(j.params),
                "priority": j.priority,
                "now": now,
                "max_attempts": j.max_attempts,
                "retry_backoff_s": j.retry_backoff_s,
                "timeout_s": j.timeout_s,
                "retry_of": j.retry_of,
                "owner": j.owner,
                "retry_resume": j.retry_resume,
                "actor": actor,
                "parent_id": j.parent_id,
                "root_id": j.root_id,
                "detached": j.detached,
                "fail_parent": j.fail_parent,
                "job_key": j.key,
                "schedule_name": j.schedule,
                "available_at": j.available_at,
            }
            for j in jobs
        ]
        tx.many("insert_job", rows)
        tx.many("insert_submitted", rows)

    def insert_items(self, tx: Tx, update: ProgressUpdate) -> None:
        tx.many("insert_item", [(update.job_id, seq, update.attempt, at, data) for seq, at, data in update.items])

    def settle_rows(
        self, tx: Tx, rows: Sequence[dict[str, Any]], at: float, events: Sequence[dict[str, Any]]
    ) -> list[Row]:
        settled = [row for row in (tx.one("settle", row) for row in rows) if row is not None]
        after = {row["id"]: row["events_count"] for row in settled}
        numbered = [
            {key: value for key, value in event.items() if key not in ("k", "n")}
            | {"seq": after[event["job_id"]] - event["n"] + event["k"], "at": at}
            for event in events
        ]
        tx.many("insert_event", numbered)
        return settled

    def expired_args(self, tx: Tx) -> dict[str, Any]:
        """Every worker of an earlier boot of this machine is gone: a reboot expires every lease."""
        boot = tx.one("boot_id", {})
        boot_id = this_machine().boot_id  # "unknown" without /proc: a reboot is then found by lease expiry alone
        if boot is None or boot["value"] != boot_id:
            tx.one("set_boot_id", {"boot_id": boot_id})
        return {"lease_base": self.lease_base(), "rebooted": boot is not None and boot["value"] != boot_id}

    # -- schema ---------------------------------------------------------------

    def _schema_version(self, conn: sqlite3.Connection) -> int:
        def read() -> int:
            try:
                row = _SqliteTx(conn).one("schema_version", {})
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return 0
                raise
            return int(row["value"]) if row else 0

        return self._retry_busy(read)

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        """Create the schema, or bring a file of an older version up to this one in place."""
        version = self._schema_version(conn)
        if version > SCHEMA_VERSION:
            raise ConfigurationError(
                f"{self.path!r} has andon schema version {version}, newer than this andon knows"
                f" ({SCHEMA_VERSION}); upgrade andon"
            )
        for start, statements in _UPGRADES:
            if 0 < version <= start:
                self._retry_busy(functools.partial(self._upgrade, conn, start, statements))
        schema = read_sql("schema_sqlite.sql")
        # Only when something is missing: the script's INSERT takes the write lock even
        # when it inserts nothing, and a process that only reads (`andon ls`) must open
        # while another process holds that lock.
        if version != SCHEMA_VERSION or not self._retry_busy(lambda: _has_every_object(conn, schema)):
            self._retry_busy(lambda: conn.executescript(schema))

    def _upgrade(self, conn: sqlite3.Connection, start: int, statements: tuple[str, ...]) -> None:
        """Version ``start`` -> ``start + 1`` in place, unless another process did it first."""
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Another process may have upgraded the file since we looked.
                row = _SqliteTx(conn).one("schema_version", {})
                if row is not None and int(row["value"]) == start:
                    for statement in statements:
                        conn.execute(statement)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")


@final
class SqliteStore(Engine[SqliteConnector]):
    """A :class:`~andon._storage.Store` on one SQLite file (``path`` or ``":memory:"``).

    Thread-safe: each thread gets its own connection. ``poll_interval_s`` is how often a
    :meth:`watch` watcher looks for commits by other connections (``PRAGMA data_version``,
    which costs no disk read). ``busy_timeout_s`` is how long one operation may wait, in
    all, while another process holds the write lock; then it raises
    :class:`~andon.StorageBusy` and has written nothing (URL: ``?busy_timeout=``).
    """

    def __init__(
        self,
        path: str,
        *,
        clock: Clock | None = None,
        poll_interval_s: float = 0.002,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    ) -> None:
        clock = clock or SystemClock()
        super().__init__(SqliteConnector(path, clock, poll_interval_s, busy_timeout_s), clock)

    @property
    def path(self) -> str:
        return self._db.path

    @property
    def busy_timeout_s(self) -> float:
        return self._db.busy_timeout_s

    def __enter__(self) -> SqliteStore:
        self.open()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _transaction(tx: _SqliteTx, body: Callable[[_SqliteTx], T]) -> T:
    """``body`` in one ``BEGIN IMMEDIATE`` transaction, committed whole or rolled back."""
    conn = tx.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        value = body(tx)
        conn.execute("COMMIT")
    except BaseException:
        # A COMMIT that failed (busy) leaves the transaction open: end it here, or the next
        # attempt's BEGIN would fail and a later COMMIT could keep half of this one.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return value


def _has_every_object(conn: sqlite3.Connection, schema: str) -> bool:
    """Whether every table and index ``schema`` creates exists already."""
    wanted = set(_SCHEMA_OBJECT.findall(schema))
    present = {row["name"] for row in _SqliteTx(conn).all("schema_objects", {})}
    return wanted <= present


def _first(row: Row | None, column: str) -> Any:  # Any: whatever the column holds
    assert row is not None
    return row[column]


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
