"""The PostgreSQL store: any number of workers and clients on any number of machines.

PostgreSQL is the whole distributed engine; there is no coordinator of our own:

* **State changes** are short transactions that lock the rows they decide on
  (``SELECT ... FOR UPDATE``) and apply the rules of ``andon._jobs`` (``decide_cancel``,
  ``decide_settlement``) in Python: the operations of ``_engine.py``, shared with SQLite.
* **Claims** take the next job with ``FOR UPDATE SKIP LOCKED`` in one statement, so workers
  never wait for one another and never take the same job; order is priority, then id
  (UUIDv7, so age). A partial index holds only queued jobs, so history does not slow it.
* **Cancel delivery**: every change that matters sends ``NOTIFY`` in its own transaction;
  each process keeps one ``LISTEN`` connection (``_pg_listener.py``) that wakes its
  watchers on commit. A cancel's notification names the attempts it stops, signed with the
  schema's key (``andon_notify_key``), so their workers flag them before any read. The
  listener probes its connection every second and reports a change after every
  reconnect, as notifications may have been lost meanwhile.
* **Connections** come from a ``psycopg_pool`` pool. A dropped connection (server restart,
  ``pg_terminate_backend``, network cut) is replaced and the operation retried with
  backoff for up to ``reconnect_timeout_s``, then :class:`~andon.StorageUnavailable` is
  raised. A failure while a commit was in flight is ambiguous; each operation says how to
  settle that (look whether it happened, run it again, or report it), so nothing is lost
  or applied twice.
* **Schema** lives in its own PostgreSQL schema (``andon`` unless the URL says
  ``?schema=...``) and is created and upgraded by versioned migrations
  (``migrations_postgres.sql``; :meth:`PostgresStore.upgrade`, ``andon db upgrade``),
  never implicitly.

Every statement is in ``queries_postgres.sql``, by name. Timestamps are unix seconds
(``double precision``) from the store's clock, like SQLite's; JSON is kept as text, byte
for byte as written. Leases alone are set and judged on the database server's clock, so
a worker machine whose wall clock steps (or drifts) cannot expire a healthy lease; other
timestamps come from each machine's clock, which should be kept in sync.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import select
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar, final

import psycopg
from psycopg import ConnectionInfo, sql
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolClosed

from andon._clock import Clock, SystemClock
from andon._errors import ConfigurationError, LifecycleError, StorageError, StorageUnavailable, UsageError
from andon._output import ProgressUpdate
from andon._storage._connector import IfUnsure, Resolution, Resolver, Tx
from andon._storage._engine import Engine
from andon._storage._pg_async_listener import AsyncListener
from andon._storage._pg_listener import Listener, StopHeard, Watcher
from andon._storage._pg_tx import QUERIES, CommitUnsure, Mode, PgTx, Transient, in_transaction
from andon._storage._port import Change
from andon._storage._records import JobFilter, NewJob
from andon._storage._rows import Row
from andon._storage._sql import postgres_filter, read_sql
from andon._storage._url import one_line, parse_postgres_url, redact_url

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "PostgresConnector", "PostgresStore", "redact_url"]

_jitter: Final = random.Random()
"""Jitter for backoffs and start-up spreads: a generator of andon's own, so the process-wide
``random`` state of the app andon runs in is never touched (nor read by a seeded test)."""

log = logging.getLogger("andon.postgres")

T = TypeVar("T")

_POOL_RECONNECT_S: Final = 2.0
"""How long the pool retries one lost connection before giving up on that attempt. Its
delays double (1 s, 2 s, 4 s...); giving up early lets the next request start a fresh
attempt at once, so after an outage a connection is back within about a second, not
after a delay as long as the outage itself."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def _read_migrations() -> tuple[Migration, ...]:
    """``migrations_postgres.sql``: blocks opened by ``-- migration N: name``, in order."""
    pieces = re.split(r"^-- migration (\d+): (.+)$", read_sql("migrations_postgres.sql"), flags=re.MULTILINE)
    found = tuple(
        Migration(int(version), name.strip(), code.strip())
        for version, name, code in zip(pieces[1::3], pieces[2::3], pieces[3::3], strict=True)
    )
    assert [m.version for m in found] == list(range(1, len(found) + 1)), "migrations are numbered 1, 2, 3..."
    return found


MIGRATIONS: Final = _read_migrations()
SCHEMA_VERSION: Final = MIGRATIONS[-1].version


@final
class PostgresConnector:
    """How the engine reaches one PostgreSQL schema; see :class:`PostgresStore`."""

    def __init__(
        self, url: str, clock: Clock, schema: str | None, pool_size: int | None, reconnect_timeout_s: float | None
    ) -> None:
        self._target = parse_postgres_url(url, schema, pool_size, reconnect_timeout_s)
        self.schema = self._target.schema
        self._clock = clock
        self._reconnect_timeout_s = self._target.reconnect_timeout_s
        self._channel = f"{self.schema}_changes"
        self._dbname = psycopg.conninfo.conninfo_to_dict(self._target.conninfo).get("dbname")
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._listener: Listener | None = None
        self._notify_key: bytes | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._outage_since: float | None = None

    @property
    def url(self) -> str:
        """The URL without its password."""
        return self._target.display

    # -- lifecycle ------------------------------------------------------------

    def open(self) -> None:
        """Connect and check that the schema is at this andon's version.

        Raises:
            StorageUnavailable: the server cannot be reached.
            ConfigurationError: the schema is missing or at another version (run
                ``andon db upgrade``).
        """
        with self._lock:
            if self._closed:
                raise LifecycleError("this store was closed; open a new one")
            if self._pool is not None:
                return
        with self._connect() as conn:
            version = _schema_version(conn)
            if version != SCHEMA_VERSION:
                raise ConfigurationError(self._version_problem(version))
            key = _notify_key(conn)
        pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            self._target.conninfo,
            kwargs={"autocommit": True},
            min_size=1,
            max_size=self._target.pool_size,
            open=False,
            name=f"andon:{self.schema}",
            timeout=self._reconnect_timeout_s,
            reconnect_timeout=_POOL_RECONNECT_S,
        )
        pool.open(wait=False)
        with self._lock:
            if self._closed or self._pool is not None:
                pool.close()
                if self._closed:
                    raise LifecycleError("this store was closed while it opened")
                return
            self._pool = pool
            self._notify_key = key

    def _version_problem(self, version: int) -> str:
        where = f"schema {self.schema!r} of {self.url}"
        command = f"andon db upgrade --db '{self.url}'"
        if version == 0:
            return f"{where} has no andon tables yet; create them with: {command}"
        if version < SCHEMA_VERSION:
            return f"{where} is at version {version}, this andon needs {SCHEMA_VERSION}; upgrade it with: {command}"
        return f"{where} is at version {version}, newer than this andon knows ({SCHEMA_VERSION}); upgrade andon"

    def upgrade(self) -> tuple[int, int]:
        """Apply the migrations this schema has not had yet; returns (version before, after).

        Idempotent and safe to run from many processes at once (they take turns on an
        advisory lock; each migration and its record commit together).

        Raises:
            StorageUnavailable: the server cannot be reached.
            ConfigurationError: the schema is newer than this andon.
            StorageError: a migration failed (nothing of it was applied).
        """
        with self._connect() as conn:
            try:
                with conn.transaction():
                    conn.execute(QUERIES["migration_lock"], {"schema": self.schema})
                    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
                    conn.execute(QUERIES["create_migrations_table"])
                    before = _schema_version(conn)
                    if before > SCHEMA_VERSION:
                        raise ConfigurationError(self._version_problem(before))
                    for migration in MIGRATIONS:
                        if migration.version > before:
                            conn.execute(migration.sql.encode())
                            conn.execute(
                                QUERIES["record_migration"],
                                {"v": migration.version, "name": migration.name, "at": time.time()},
                            )
            except psycopg.OperationalError as exc:
                raise StorageUnavailable(f"lost PostgreSQL at {self.url} while upgrading: {one_line(exc)}") from exc
            except psycopg.Error as exc:
                raise StorageError(f"upgrading schema {self.schema!r} failed: {one_line(exc)}") from exc
        if before < SCHEMA_VERSION:
            log.info("schema %s of %s: upgraded from version %d to %d", self.schema, self.url, before, SCHEMA_VERSION)
        return before, SCHEMA_VERSION

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if pool is not None:
            pool.close(timeout=5.0)

    def _connect(self) -> psycopg.Connection[Any]:
        """A connection of its own (not from the pool), for migrations and listening."""
        try:
            return psycopg.connect(self._target.conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise StorageUnavailable(f"cannot connect to PostgreSQL at {self.url}: {one_line(exc)}") from exc

    def read(self, body: Callable[[PgTx], T]) -> T:
        return self._run(body, Mode.READ)

    def write(
        self, body: Callable[[PgTx], T], if_unsure: IfUnsure | Resolver[T] = IfUnsure.RAISE, *, single: bool = False
    ) -> T:
        mode = Mode.STATEMENT if single else Mode.TRANSACTION
        return self._run(body, mode, if_unsure)

    # -- running statements ---------------------------------------------------

    def _run(
        self,
        body: Callable[[PgTx], T],
        mode: Mode,
        if_unsure: IfUnsure | Resolver[T] = IfUnsure.RAISE,
    ) -> T:
        """Run ``body`` on a pooled connection, through dropped connections and restarts.

        Transient failures (connection lost before a commit, deadlock, pool exhausted) are
        retried with backoff until ``reconnect_timeout_s`` has passed.
        """
        deadline = time.monotonic() + self._reconnect_timeout_s
        resolving = False
        failures = 0
        while True:
            try:
                if resolving:
                    assert callable(if_unsure)
                    found = self._attempt(if_unsure, Mode.READ, deadline)
                    resolving = False
                    if found is not Resolution.NOT_APPLIED:
                        self._reachable_again()
                        return found
                value = self._attempt(body, mode, deadline)
                self._reachable_again()
                return value
            except CommitUnsure as exc:
                if if_unsure is IfUnsure.RAISE:
                    raise StorageUnavailable(
                        f"lost PostgreSQL at {self.url} while committing; the change may or may not"
                        f" have been applied: {one_line(exc.__cause__ or exc)}"
                    ) from exc
                resolving = callable(if_unsure)
                cause: BaseException = exc.__cause__ or exc
            except Transient as exc:
                cause = exc.__cause__ or exc
            failures += 1
            if time.monotonic() >= deadline:
                raise StorageUnavailable(f"PostgreSQL at {self.url} is unreachable: {one_line(cause)}") from cause
            self._unreachable(cause)
            pause = min(1.0, 0.02 * 2**failures) * _jitter.uniform(0.5, 1.0)
            time.sleep(max(0.0, min(pause, deadline - time.monotonic())))

    def _attempt(self, body: Callable[[PgTx], T], mode: Mode, deadline: float) -> T:
        try:
            with self._connection(deadline) as conn, conn.cursor(row_factory=dict_row) as cur:
                tx = PgTx(cur, self._channel, self._notify_key)
                if mode is Mode.READ:
                    return body(tx)
                if mode is Mode.STATEMENT:
                    try:
                        value = body(tx)
                        tx.send_notifications()
                        return value
                    except psycopg.errors.TransactionRollback:
                        raise
                    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                        raise CommitUnsure() from exc
                return in_transaction(conn, tx, body)
        except PoolClosed as exc:
            raise LifecycleError("this store is closed") from exc
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            # Includes deadlocks and serialization failures (rolled back for sure) and
            # PoolTimeout (no connection came free or could be made in time).
            raise Transient() from exc
        except psycopg.Error as exc:
            raise StorageError(f"PostgreSQL error: {one_line(exc)}") from exc

    @contextlib.contextmanager
    def _connection(self, deadline: float) -> Iterator[psycopg.Connection[Any]]:
        pool = self._pool
        if pool is None:
            raise LifecycleError(
                "this store is closed" if self._closed else "open the store first (store.open() or a with block)"
            )
        conn = _live_connection(pool, max(0.05, min(2.0, deadline - time.monotonic())))
        try:
            yield conn
        finally:
            pool.putconn(conn)

    def _unreachable(self, cause: BaseException) -> None:
        with self._lock:
            first = self._outage_since is None
            if first:
                self._outage_since = time.monotonic()
        if first:
            log.warning("lost PostgreSQL at %s (%s); reconnecting", self.url, one_line(cause))

    def _reachable_again(self) -> None:
        if self._outage_since is None:
            return
        with self._lock:
            since, self._outage_since = self._outage_since, None
        if since is not None:
            log.warning("PostgreSQL at %s is reachable again after %.1f s", self.url, time.monotonic() - since)

    def watch(self, changes: frozenset[Change], on_stop: StopHeard | None = None) -> Watcher:
        """A watcher woken by NOTIFY of ``changes`` from any process (one LISTEN connection per store).

        Waits until that connection listens, so no change after this call is missed.
        ``on_stop`` hears, on the listener's thread, each stop request a notification names.

        Raises:
            StorageUnavailable: the server could not be reached in time.
        """
        with self._lock:
            if self._pool is None:
                raise LifecycleError(
                    "this store is closed" if self._closed else "open the store first (store.open() or a with block)"
                )
            if self._listener is None:
                self._listener = Listener(self._connect, self._channel, self.url, self._notify_key)
            listener = self._listener
        return listener.watcher(changes, timeout=self._reconnect_timeout_s, on_stop=on_stop)

    def watch_async(self, changes: frozenset[Change]) -> AsyncListener:
        """A feed woken by NOTIFY of ``changes``: ``LISTEN`` on an async connection of its own."""
        return AsyncListener(self._target.conninfo, self._channel, self.url, changes, self._reconnect_timeout_s)

    # -- what PostgreSQL does its own way -------------------------------------

    def _check_caller(self, autocommit: bool, info: ConnectionInfo) -> None:
        """The caller's connection can hold the job until their commit, or UsageError says why."""
        if autocommit:
            raise UsageError(
                "connection is in autocommit mode: the job would commit on its own. Turn autocommit off or"
                " submit inside `with connection.transaction():`"
            )
        status = info.transaction_status
        if status not in (TransactionStatus.IDLE, TransactionStatus.INTRANS):
            raise UsageError(f"connection cannot take the job: its transaction is {status.name.lower()}")
        if info.dbname != self._dbname:
            raise UsageError(f"connection is to database {info.dbname!r}, this store's is {self._dbname!r}")

    @contextlib.contextmanager
    def caller_tx(self, connection: object) -> Iterator[Tx]:
        """The body runs on the caller's psycopg connection, in the transaction it has open
        (or that its first statement opens), with this store's schema on the search path for
        its statements only; nothing is committed here. Its NOTIFY is delivered at the
        caller's commit, so workers wake then, and only if it commits."""
        if not isinstance(connection, psycopg.Connection):
            raise UsageError(
                f"connection must be a psycopg.Connection with a transaction open, not {type(connection).__name__}"
                " (an AsyncConnection goes to AsyncClient)"
            )
        self._check_caller(connection.autocommit, connection.info)
        with connection.cursor(row_factory=dict_row) as cur:
            row = cur.execute(QUERIES["search_path"]).fetchone()
            assert row is not None
            saved = row["path"]
            cur.execute(QUERIES["set_search_path"], {"path": self.schema})
            tx = PgTx(cur, self._channel, self._notify_key)
            yield tx
            tx.send_notifications()  # delivered at the caller's commit, if it comes
            # The caller's own statements after this see their search path again.
            cur.execute(QUERIES["set_search_path"], {"path": saved})

    def subtree_clause(self, *, root: bool = False) -> str:
        return QUERIES["tree_clause" if root else "subtree_clause"].decode()

    def job_filter(self, where: JobFilter, cursor: str | None, now: float = 0.0) -> tuple[str, str, dict[str, Any]]:
        return postgres_filter(where, cursor, now)

    def array(self, values: Collection[str]) -> list[str]:
        return list(values)

    def lease_base(self) -> float | None:
        """Leases are set and judged on the database server's clock (``None``): a step of
        a worker's wall clock cannot expire a healthy lease. A test clock that has a lease
        time of its own replaces the server's."""
        return self._clock.lease_now()

    def insert_jobs(self, tx: Tx, jobs: Sequence[NewJob], now: float, actor: str | None) -> None:
        """Every job, its first event and the ``work`` notification in one statement, the
        values as arrays."""
        tx.one("submit", _submit_args(jobs, now, actor))

    async def insert_jobs_async(
        self, connection: object, jobs: Sequence[NewJob], now: float, actor: str | None
    ) -> None:
        """:meth:`insert_jobs` and its NOTIFY on the caller's psycopg ``AsyncConnection``, in
        the transaction it has open (as :meth:`caller_tx`, which tells what is checked)."""
        if not isinstance(connection, psycopg.AsyncConnection):
            raise UsageError(
                f"connection must be a psycopg.AsyncConnection with a transaction open, not {type(connection).__name__}"
                " (a psycopg.Connection goes to Client)"
            )
        self._check_caller(connection.autocommit, connection.info)
        async with connection.cursor(row_factory=dict_row) as cur:
            await cur.execute(QUERIES["search_path"])
            row = await cur.fetchone()
            assert row is not None
            await cur.execute(QUERIES["set_search_path"], {"path": self.schema})
            await cur.execute(QUERIES["submit"], {**_submit_args(jobs, now, actor), "channel": self._channel})
            await cur.execute(QUERIES["set_search_path"], {"path": row["path"]})

    def insert_items(self, tx: Tx, update: ProgressUpdate) -> None:
        """Store an attempt's items: COPY (2-3x the rows per second of an INSERT here), in a
        savepoint. Items already stored (a flush that committed but was not confirmed, then
        sent again) make the COPY fail on the primary key; then the savepoint is rolled back
        and an INSERT that skips the stored ones does the work."""
        assert isinstance(tx, PgTx)
        cur = tx.cur
        try:
            with cur.connection.transaction(), cur.copy(QUERIES["copy_items"]) as copy:
                for seq, at, data in update.items:
                    copy.write_row((update.job_id, seq, update.attempt, at, data))
        except psycopg.errors.UniqueViolation:
            args = {
                "job_id": update.job_id,
                "attempt": update.attempt,
                "seqs": [seq for seq, _, _ in update.items],
                "ats": [at for _, at, _ in update.items],
                "datas": [data for _, _, data in update.items],
            }
            tx.one("insert_items", args)

    def settle_rows(
        self, tx: Tx, rows: Sequence[dict[str, Any]], at: float, events: Sequence[dict[str, Any]]
    ) -> list[Row]:
        """Every attempt and its events in one statement: rows and events travel as JSON texts."""
        args = {"rows": json.dumps(rows), "ids": [row["id"] for row in rows], "at": at, "events": json.dumps(events)}
        return tx.all("settle_all", args)

    def expired_args(self, tx: Tx) -> dict[str, Any]:
        return {"lease_base": self.lease_base(), "lease_s": 0.0}


@final
class PostgresStore(Engine[PostgresConnector]):
    """A :class:`~andon.Store` on PostgreSQL, shared by any number of processes and machines.

    Args:
        url: ``postgresql://user:password@host:port/dbname``; libpq query parameters
            (``sslmode``, ``connect_timeout``...) pass through. Ours: ``schema`` (default
            ``andon``), ``pool_size`` (connections per process, default 16) and
            ``reconnect_timeout`` (seconds, default 10).
        clock: where timestamps come from (tests use a ``ManualClock``).
        schema: overrides the URL's ``schema``.
        pool_size: overrides the URL's ``pool_size``.
        reconnect_timeout_s: how long an operation keeps retrying through a dropped
            connection or a database restart before it raises ``StorageUnavailable``
            (overrides the URL's ``reconnect_timeout``).

    Raises:
        ConfigurationError: the URL cannot be parsed or names a bad schema.
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Clock | None = None,
        schema: str | None = None,
        pool_size: int | None = None,
        reconnect_timeout_s: float | None = None,
    ) -> None:
        clock = clock or SystemClock()
        super().__init__(PostgresConnector(url, clock, schema, pool_size, reconnect_timeout_s), clock)

    @property
    def schema(self) -> str:
        return self._db.schema

    def __enter__(self) -> PostgresStore:
        self.open()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _schema_version(conn: psycopg.Connection[Any]) -> int:
    """The schema's migration version; 0 if it has none (or does not exist)."""
    try:
        with conn.transaction():
            row = conn.execute(QUERIES["schema_version"]).fetchone()
    except psycopg.errors.UndefinedTable:
        return 0
    return int(row[0]) if row else 0


def _live_connection(pool: ConnectionPool[psycopg.Connection[Any]], timeout: float) -> psycopg.Connection[Any]:
    """A pooled connection that is not known to be dead.

    A connection the server dropped while it sat in the pool (restart, terminated backend)
    has the server's goodbye, or end-of-file, waiting to be read; such connections are
    closed and handed back (the pool replaces them) before any statement is sent, so that
    statement's outcome is never in doubt.
    """
    for _ in range((pool.max_size or 1) + 1):
        conn = pool.getconn(timeout=timeout)
        if not conn.closed and not conn.broken:
            try:
                readable, _, _ = select.select([conn.fileno()], [], [], 0)
            except (OSError, ValueError, psycopg.Error):
                readable = [True]
            if not readable:
                return conn
        conn.close()
        pool.putconn(conn)
    raise psycopg.OperationalError("every pooled connection was found dead")


def _submit_args(jobs: Sequence[NewJob], now: float, actor: str | None) -> dict[str, Any]:
    """The arrays of the ``submit`` statement."""
    return {
        "now": now,
        "actor": actor,
        "ids": [j.id for j in jobs],
        "kinds": [j.kind for j in jobs],
        "params": [json.dumps(j.params) for j in jobs],
        "priorities": [j.priority for j in jobs],
        "max_attempts": [j.max_attempts for j in jobs],
        "backoffs": [float(j.retry_backoff_s) for j in jobs],
        "timeouts": [None if j.timeout_s is None else float(j.timeout_s) for j in jobs],
        "retry_ofs": [j.retry_of for j in jobs],
        "owners": [j.owner for j in jobs],
        "retry_resumes": [j.retry_resume for j in jobs],
        "parent_ids": [j.parent_id for j in jobs],
        "root_ids": [j.root_id for j in jobs],
        "detacheds": [j.detached for j in jobs],
        "fail_parents": [j.fail_parent for j in jobs],
        "job_keys": [j.key for j in jobs],
        "schedule_names": [j.schedule for j in jobs],
        "available_ats": [j.available_at for j in jobs],
    }


def _notify_key(conn: psycopg.Connection[Any]) -> bytes | None:
    """The key that signs the stops named in notifications; ``None`` if this role cannot read
    it (its notifications then name none, and it acts on none: the store read still delivers)."""
    try:
        with conn.transaction():
            row = conn.execute(QUERIES["notify_key"]).fetchone()
    except psycopg.errors.InsufficientPrivilege:
        return None
    return str(row[0]).encode() if row else None
