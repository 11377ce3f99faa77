"""The embedded store: one SQLite file in WAL mode, shared by any number of processes.

Every write is one short ``BEGIN IMMEDIATE`` transaction, retried when another process
holds the write lock, so callers never see "database is locked". The retries stop after
``busy_timeout_s`` in all (10 s by default), with :class:`~andon.StorageBusy` and nothing
written: a process stopped while it holds the lock (Ctrl-Z on a worker) must not hang
every other writer. Reads never wait for the lock. The state rules come from
``andon._jobs``; the SQL that applies them is all in this file.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import re
import sqlite3
import statistics
import threading
import time
from collections.abc import Callable, Collection, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Final, TypeVar, final

from andon._access import Role, TokenRecord
from andon._cancel import CancelReason
from andon._clock import Clock, SystemClock
from andon._errors import (
    AndonError,
    ConfigurationError,
    InvalidTransition,
    JobNotFound,
    LifecycleError,
    StorageBusy,
    StorageError,
    StorageUnavailable,
    UsageError,
)
from andon._jobs import (
    CancelOutcome,
    Job,
    JobEvent,
    JobStatus,
    Outcome,
    OutcomeKind,
    ResultItem,
    check_transition,
    decide_cancel,
)
from andon._storage._port import (
    ALL_CHANGES,
    BulkCancel,
    CancelNotice,
    CancelResult,
    Change,
    JobFilter,
    KindStats,
    NewJob,
    OffsetPage,
    Page,
    ProgressUpdate,
    Settlement,
)
from andon._storage._rows import (
    LOST_ATTEMPT_EVENT,
    event_from_row,
    item_from_row,
    job_from_row,
    lost_attempt_event,
    rows_that_fit,
    settlement_write,
)

__all__ = ["SqliteStore"]

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_BUSY_TIMEOUT_S: Final = 10.0
# How long one attempt waits in SQLite's own busy handler before our loop looks at the
# clock: an operation overruns its busy timeout by at most this much.
_BUSY_ATTEMPT_S: Final = 0.25
_WAL_AUTOCHECKPOINT_PAGES: Final = 4_000
_ACTIVE_RUN: Final = ("running", "cancelling")
SCHEMA_VERSION: Final = 3


@final
class SqliteStore:
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
        if not 0 < busy_timeout_s < float("inf"):
            raise ConfigurationError(f"bad busy timeout {busy_timeout_s!r}: use a positive number of seconds")
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self._clock = clock or SystemClock()
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
        self._checkpointer: _Checkpointer | None = None
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

    def _schema_version(self, conn: sqlite3.Connection) -> int:
        def read() -> int:
            try:
                row = conn.execute("SELECT value FROM andon_meta WHERE key = 'schema_version'").fetchone()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return 0
                raise
            return int(row[0]) if row else 0

        return self._retry_busy(read)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.stop()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            self._release(conn)

    def __enter__(self) -> SqliteStore:
        self.open()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

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
                self._retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL"))
                conn.execute("PRAGMA synchronous = NORMAL")
                # Checkpoints run in this store's checkpointer thread, not in the commit of
                # whichever write happens to push the WAL past SQLite's usual 1,000 pages.
                # The automatic one stays on at a higher mark as a bound: only a writer can
                # start the WAL over, and under steady writes and reads a WAL with no
                # automatic checkpoint grew by ~50 MB a second here, without end.
                conn.execute(f"PRAGMA wal_autocheckpoint = {_WAL_AUTOCHECKPOINT_PAGES}")
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

    def _write(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``body`` in one ``BEGIN IMMEDIATE`` transaction, retrying on lock contention
        for ``busy_timeout_s`` in all, the wait for this process's other writers included."""
        conn = self._conn()
        deadline = time.monotonic() + self.busy_timeout_s

        def attempt() -> T:
            if not self._write_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise StorageBusy(self.path, self.busy_timeout_s)
            try:
                return _transaction(conn, body)
            finally:
                self._write_lock.release()

        value = self._retry_busy(lambda: self._use(conn, attempt), deadline)
        self._wrote()
        return value

    def _wrote(self) -> None:
        """Tell the checkpointer (started here at need: a store that only reads has none)."""
        if self.path == ":memory:":
            return
        with self._lock:
            if self._closed:
                return
            if self._checkpointer is None:
                self._checkpointer = _Checkpointer(self)
            self._checkpointer.writes += 1

    def _read(self, sql: str, args: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        conn = self._conn()
        return self._retry_busy(lambda: self._use(conn, lambda: conn.execute(sql, args).fetchall()))

    # -- clients --------------------------------------------------------------

    def submit(self, jobs: Sequence[NewJob], actor: str | None) -> list[Job]:
        now = self._clock.now()
        rows = [
            (
                j.id,
                j.kind,
                json.dumps(j.params),
                j.priority,
                now,
                now,
                j.max_attempts,
                j.retry_backoff_s,
                j.timeout_s,
                j.retry_of,
                j.owner,
            )
            for j in jobs
        ]
        events = [(j.id, 1, now, "submitted", None, "queued", actor, None, None, 0) for j in jobs]

        def body(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO andon_jobs (id, kind, params, status, priority, created_at, available_at,"
                " max_attempts, retry_backoff_s, timeout_s, retry_of, owner, events_count)"
                " VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                rows,
            )
            conn.executemany(_INSERT_EVENT, events)

        self._write(body)
        return [
            Job(
                id=j.id,
                kind=j.kind,
                params=j.params,
                status=JobStatus.QUEUED,
                created_at=now,
                available_at=now,
                max_attempts=j.max_attempts,
                retry_backoff_s=j.retry_backoff_s,
                timeout_s=j.timeout_s,
                priority=j.priority,
                retry_of=j.retry_of,
                owner=j.owner,
            )
            for j in jobs
        ]

    def get(self, job_id: str) -> Job:
        rows = self._read("SELECT * FROM andon_jobs WHERE id = ?", (job_id,))
        if not rows:
            raise JobNotFound(job_id)
        return job_from_row(rows[0])

    def list_jobs(self, where: JobFilter, limit: int, cursor: str | None = None, max_bytes: int | None = None) -> Page:
        clause, args = _where(where)
        if cursor is not None:
            clause += " AND id < :cursor"
        args |= {"cursor": cursor, "limit": limit + 1}
        if max_bytes is None:
            rows = self._read(f"SELECT * FROM andon_jobs WHERE {clause} ORDER BY id DESC LIMIT :limit", args)
            jobs = [job_from_row(r) for r in rows[:limit]]
            return Page(jobs, jobs[-1].id if len(rows) > limit else None)
        sizes = f"SELECT id, {_JOB_BYTES} FROM andon_jobs WHERE {clause} ORDER BY id DESC LIMIT :limit"
        ids, more = self._fit(sizes, args, limit, max_bytes)
        rows = self._read(_JOBS_BY_IDS, (json.dumps(ids),))
        return Page([job_from_row(r) for r in rows], ids[-1] if more else None)

    def events(self, job_id: str) -> list[JobEvent]:
        self._require(job_id)
        rows = self._read("SELECT * FROM andon_events WHERE job_id = ? ORDER BY seq", (job_id,))
        return [event_from_row(r) for r in rows]

    def events_page(self, job_id: str, offset: int, limit: int, max_bytes: int) -> OffsetPage[JobEvent]:
        self._require(job_id)
        # Events are numbered 1..n, so the first ``offset`` are those up to seq ``offset``.
        args = {"id": job_id, "offset": offset, "limit": limit + 1}
        seqs, more = self._fit(_EVENT_SIZES, args, limit, max_bytes)
        rows = self._read(_EVENTS_BETWEEN, (job_id, seqs[0], seqs[-1])) if seqs else []
        return OffsetPage([event_from_row(r) for r in rows], offset + len(seqs) if more else None)

    def items(self, job_id: str, offset: int = 0, limit: int | None = None) -> list[ResultItem]:
        self._require(job_id)
        rows = self._read(
            "SELECT * FROM andon_items WHERE job_id = ? ORDER BY seq LIMIT ? OFFSET ?",
            (job_id, -1 if limit is None else limit, offset),
        )
        return [item_from_row(r) for r in rows]

    def items_page(self, job_id: str, offset: int, limit: int, max_bytes: int) -> OffsetPage[ResultItem]:
        self._require(job_id)
        seqs, more = self._fit(_ITEM_SIZES, {"id": job_id, "offset": offset, "limit": limit + 1}, limit, max_bytes)
        rows = self._read(_ITEMS_BETWEEN, (job_id, seqs[0], seqs[-1], len(seqs))) if seqs else []
        return OffsetPage([item_from_row(r) for r in rows], offset + len(seqs) if more else None)

    def _fit(self, sizes_sql: str, args: dict[str, Any], limit: int, max_bytes: int) -> tuple[list[Any], bool]:
        """:func:`rows_that_fit` over ``sizes_sql`` (``key, bytes`` rows), stepped lazily: SQLite
        computes a row only when asked, so rows past the budget are never read."""
        conn = self._conn()

        def fit() -> tuple[list[Any], bool]:  # Any: the page's keys (ids or seqs)
            cursor = conn.execute(sizes_sql, args)
            try:
                return rows_that_fit(((row[0], row[1]) for row in cursor), limit, max_bytes)
            finally:
                cursor.close()

        return self._retry_busy(lambda: self._use(conn, fit))

    def _require(self, job_id: str) -> None:
        if not self._read("SELECT 1 FROM andon_jobs WHERE id = ?", (job_id,)):
            raise JobNotFound(job_id)

    def request_cancel(
        self,
        job_id: str,
        reason: CancelReason,
        by: str | None,
        message: str | None = None,
        retry: bool = True,
    ) -> CancelResult:
        def body(conn: sqlite3.Connection) -> CancelResult:
            row = conn.execute("SELECT * FROM andon_jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise JobNotFound(job_id)
            job = job_from_row(row)
            outcome, status = decide_cancel(job, reason, retry=retry)
            if outcome is not CancelOutcome.ALREADY:
                self._apply_cancel(conn, job, outcome, status, reason, by, message, retry)
                job = job_from_row(conn.execute("SELECT * FROM andon_jobs WHERE id = ?", (job_id,)).fetchone())
            return CancelResult(job, outcome)

        return self._write(body)

    def _apply_cancel(
        self,
        conn: sqlite3.Connection,
        job: Job,
        outcome: CancelOutcome,
        status: JobStatus,
        reason: CancelReason,
        by: str | None,
        message: str | None,
        retry: bool,
    ) -> None:
        now = self._clock.now()
        check_transition(job.status, status)
        # One event per change: withdrawing a queued job is its request and its end at once.
        what = "withdrawn" if outcome is CancelOutcome.WITHDRAWN else "cancel requested"
        self._event(conn, job, what, job.status, status, by, reason.value, message, now)
        if outcome is CancelOutcome.WITHDRAWN:
            error = (
                ("ForcedFailure", f"force-failed before it started{_by(by)}")
                if status is JobStatus.FAILED
                else (None, None)
            )
            conn.execute(
                "UPDATE andon_jobs SET status = ?, finished_at = ?, cancel_requested_at = ?, cancel_reason = ?,"
                " cancel_by = ?, cancel_message = ?, cancel_retry = 0, cancel_stopped_at = ?,"
                " cancel_stop_method = 'withdrawn', error_type = ?, error_message = ? WHERE id = ?",
                (status.value, now, now, reason.value, by, message, now, *error, job.id),
            )
        elif outcome is CancelOutcome.REQUESTED:
            conn.execute(
                "UPDATE andon_jobs SET status = 'cancelling', cancel_requested_at = ?, cancel_reason = ?,"
                " cancel_by = ?, cancel_message = ?, cancel_retry = ?, cancel_acknowledged_at = NULL,"
                " cancel_stopped_at = NULL, cancel_stop_method = NULL WHERE id = ?",
                (now, reason.value, by, message, int(retry), job.id),
            )
        else:  # ESCALATED: a stronger request takes over the one in force (stop_strength)
            conn.execute(
                "UPDATE andon_jobs SET cancel_reason = ?, cancel_by = ?, cancel_message = ?, cancel_retry = ?"
                " WHERE id = ?",
                (reason.value, by, message, int(retry), job.id),
            )

    def request_cancel_many(
        self, where: JobFilter, reason: CancelReason, by: str | None, message: str | None = None
    ) -> BulkCancel:
        if reason is CancelReason.FORCED:
            return self._force_fail_many(where, by, message)
        clause, args = _where(where)
        now = self._clock.now()
        args |= {"now": now, "reason": reason.value, "by": by, "message": message}

        def body(conn: sqlite3.Connection) -> BulkCancel:
            # The same rule as decide_cancel, set-based: queued jobs are withdrawn (their
            # history event written first, by the same filter, under the same write lock),
            # running ones move to cancelling; everything else is left alone.
            conn.execute(_WITHDRAW_MANY_EVENTS.format(where=clause), args)
            withdrawn = conn.execute(_WITHDRAW_MANY.format(where=clause), args).fetchall()
            requested = conn.execute(_REQUEST_STOP_MANY.format(where=clause), args).fetchall()
            conn.executemany(
                _INSERT_EVENT,
                [
                    (
                        r["id"],
                        r["events_count"],
                        now,
                        "cancel requested",
                        "running",
                        "cancelling",
                        by,
                        reason.value,
                        message,
                        r["attempt"],
                    )
                    for r in requested
                ],
            )
            stopping = [CancelResult(job_from_row(r), CancelOutcome.REQUESTED) for r in requested]
            # A cancel outranks a retrying force-fail in flight (stop_strength); such jobs
            # are rare, so they take the one-job path.
            for row in conn.execute(_RETRYING_FORCE_FAILS.format(where=clause), args).fetchall():
                job = job_from_row(row)
                self._apply_cancel(conn, job, CancelOutcome.ESCALATED, job.status, reason, by, message, True)
                row = conn.execute("SELECT * FROM andon_jobs WHERE id = ?", (job.id,)).fetchone()
                stopping.append(CancelResult(job_from_row(row), CancelOutcome.ESCALATED))
            return BulkCancel(withdrawn=[row[0] for row in withdrawn], stopping=stopping)

        return self._write(body)

    def _force_fail_many(self, where: JobFilter, by: str | None, message: str | None) -> BulkCancel:
        """Bulk force-fail, job by job through ``decide_cancel`` (rare; no set-based shortcut)."""
        clause, args = _where(where)

        def body(conn: sqlite3.Connection) -> BulkCancel:
            rows = conn.execute(
                f"SELECT * FROM andon_jobs WHERE status IN ('queued', 'running', 'cancelling') AND {clause}", args
            ).fetchall()
            withdrawn: list[str] = []
            stopping: list[CancelResult] = []
            for row in rows:
                job = job_from_row(row)
                outcome, status = decide_cancel(job, CancelReason.FORCED)
                if outcome is CancelOutcome.ALREADY:
                    continue
                self._apply_cancel(conn, job, outcome, status, CancelReason.FORCED, by, message, True)
                if outcome is CancelOutcome.WITHDRAWN:
                    withdrawn.append(job.id)
                else:
                    job = job_from_row(conn.execute("SELECT * FROM andon_jobs WHERE id = ?", (job.id,)).fetchone())
                    stopping.append(CancelResult(job, outcome))
            return BulkCancel(withdrawn, stopping)

        return self._write(body)

    def delete(self, job_id: str) -> None:
        def body(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT status FROM andon_jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise JobNotFound(job_id)
            if JobStatus(row["status"]).is_active:
                raise InvalidTransition(
                    job_id,
                    row["status"],
                    "delete",
                    f"job {job_id} is {row['status']}; cancel it first",
                )
            for table in ("andon_items", "andon_events", "andon_jobs"):
                conn.execute(
                    f"DELETE FROM {table} WHERE {'id' if table == 'andon_jobs' else 'job_id'} = ?",
                    (job_id,),
                )

        self._write(body)

    def kind_stats(self) -> list[KindStats]:
        counts: dict[str, dict[str, int]] = {}
        for row in self._read("SELECT kind, status, COUNT(*) AS n FROM andon_jobs GROUP BY kind, status"):
            counts.setdefault(row["kind"], {})[row["status"]] = row["n"]
        stops: dict[str, list[float]] = {}
        methods: dict[str, dict[str, int]] = {}
        rows = self._read(
            "SELECT kind, cancel_stop_method AS method, cancel_stopped_at - cancel_requested_at AS seconds"
            " FROM andon_jobs WHERE cancel_stopped_at IS NOT NULL AND cancel_stop_method != 'withdrawn'"
        )
        for row in rows:
            stops.setdefault(row["kind"], []).append(max(0.0, row["seconds"]))
            per_kind = methods.setdefault(row["kind"], {})
            per_kind[row["method"]] = per_kind.get(row["method"], 0) + 1
        result = []
        for kind in sorted(counts):
            seconds = stops.get(kind, [])
            result.append(
                KindStats(
                    kind=kind,
                    counts=counts[kind],
                    stops=len(seconds),
                    stop_p50_s=statistics.median(seconds) if seconds else None,
                    stop_max_s=max(seconds) if seconds else None,
                    stop_methods=methods.get(kind, {}),
                )
            )
        return result

    def watch(self, changes: Collection[Change] = ALL_CHANGES) -> _DataVersionWatcher:
        """A watcher woken by every commit of any connection (whatever ``changes`` it asks for)."""
        conn = self._connect()

        def read_version() -> int:
            return int(
                self._retry_busy(lambda: self._use(conn, lambda: conn.execute("PRAGMA data_version").fetchone()[0]))
            )

        return _DataVersionWatcher(conn, read_version, self._poll_interval_s, self._release)

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

    # -- workers --------------------------------------------------------------

    def claim(self, worker_id: str, kinds: Collection[str], lease_s: float) -> Job | None:
        claimed = self.claim_many(worker_id, kinds, lease_s, 1)
        return claimed[0] if claimed else None

    def claim_many(self, worker_id: str, kinds: Collection[str], lease_s: float, limit: int) -> list[Job]:
        if limit < 1 or not kinds:
            return []
        return self._write(lambda conn: self._claim_rows(conn, worker_id, kinds, lease_s, limit))

    def settle_and_claim(
        self,
        worker_id: str,
        settlements: Sequence[Settlement],
        kinds: Collection[str],
        lease_s: float,
        limit: int,
    ) -> tuple[list[Job | InvalidTransition | JobNotFound], list[Job]]:
        def body(conn: sqlite3.Connection) -> tuple[list[Job | InvalidTransition | JobNotFound], list[Job]]:
            settled = self._settle_rows(conn, worker_id, settlements)
            claimed = self._claim_rows(conn, worker_id, kinds, lease_s, limit) if limit > 0 and kinds else []
            return settled, claimed

        return self._write(body)

    def _claim_rows(
        self, conn: sqlite3.Connection, worker_id: str, kinds: Collection[str], lease_s: float, limit: int
    ) -> list[Job]:
        now = self._clock.now()
        args = {
            "now": now,
            "worker": worker_id,
            "lease": now + lease_s,
            "deadline": self._lease_now() + lease_s,
            "kinds": json.dumps(list(kinds)),
            "n": limit,
        }
        rows = conn.execute(_CLAIM, args).fetchall()
        actor = f"worker:{worker_id}"
        conn.executemany(
            _INSERT_EVENT,
            [
                (r["id"], r["events_count"], now, "started", "queued", "running", actor, None, None, r["attempt"])
                for r in rows
            ],
        )
        return sorted((job_from_row(r) for r in rows), key=lambda job: (-job.priority, job.id))

    def write_progress(self, updates: Sequence[ProgressUpdate]) -> list[str]:
        updates = [u for u in updates if not u.is_empty]
        if not updates:
            return []
        return self._write(lambda conn: self._write_updates(conn, updates))

    def _write_updates(self, conn: sqlite3.Connection, updates: Sequence[ProgressUpdate]) -> list[str]:
        refused: list[str] = []
        for update in updates:
            held = conn.execute(
                "SELECT 1 FROM andon_jobs WHERE id = ? AND attempt = ? AND status IN ('running', 'cancelling')",
                (update.job_id, update.attempt),
            ).fetchone()
            if held is None:
                # The attempt lost the job (recovered, requeued, settled): what it still sends
                # must not change a finished job or mix into the next attempt's results.
                refused.append(update.job_id)
                continue
            if update.items:
                conn.executemany(
                    "INSERT OR IGNORE INTO andon_items (job_id, seq, attempt, at, data) VALUES (?, ?, ?, ?, ?)",
                    [(update.job_id, seq, update.attempt, at, data) for seq, at, data in update.items],
                )
            progress = update.progress or (None, None, None)
            conn.execute(
                "UPDATE andon_jobs SET items_count = MAX(items_count, ?),"
                " progress_done = CASE WHEN ? THEN ? ELSE progress_done END,"
                " progress_total = CASE WHEN ? THEN ? ELSE progress_total END,"
                " progress_message = CASE WHEN ? THEN ? ELSE progress_message END,"
                " cancel_acknowledged_at = COALESCE(cancel_acknowledged_at, ?)"
                " WHERE id = ? AND attempt = ?",
                (
                    update.items[-1][0] + 1 if update.items else 0,
                    update.progress is not None,
                    progress[0],
                    update.progress is not None,
                    progress[1],
                    update.progress is not None,
                    progress[2],
                    update.acknowledged_at,
                    update.job_id,
                    update.attempt,
                ),
            )
        return refused

    def settle(
        self,
        worker_id: str,
        attempt: int,
        job_id: str,
        outcome: Outcome,
        update: ProgressUpdate | None,
    ) -> Job:
        (settled,) = self.settle_many(worker_id, [Settlement(job_id, attempt, outcome, update)])
        if isinstance(settled, (InvalidTransition, JobNotFound)):
            raise settled
        return settled

    def settle_many(
        self, worker_id: str, settlements: Sequence[Settlement]
    ) -> list[Job | InvalidTransition | JobNotFound]:
        if not settlements:
            return []
        return self._write(lambda conn: self._settle_rows(conn, worker_id, settlements))

    def _settle_rows(
        self, conn: sqlite3.Connection, worker_id: str, settlements: Sequence[Settlement]
    ) -> list[Job | InvalidTransition | JobNotFound]:
        results: list[Job | InvalidTransition | JobNotFound] = []
        for s in settlements:
            row = conn.execute("SELECT * FROM andon_jobs WHERE id = ?", (s.job_id,)).fetchone()
            if row is None:
                results.append(JobNotFound(s.job_id))
                continue
            job = job_from_row(row)
            if job.worker_id != worker_id or job.attempt != s.attempt or job.status.value not in _ACTIVE_RUN:
                results.append(
                    InvalidTransition(
                        s.job_id, job.status.value, "settle", f"worker {worker_id} no longer holds job {s.job_id}"
                    )
                )
                continue
            if s.update is not None and not s.update.is_empty:
                self._write_updates(conn, [s.update])
            results.append(self._settle(conn, job, s.outcome, f"worker:{worker_id}"))
        return results

    def _settle(self, conn: sqlite3.Connection, job: Job, outcome: Outcome, actor: str) -> Job:
        now = self._clock.now()
        write = settlement_write(job, outcome, now, json.dumps)
        events = write.events
        row = conn.execute(_SETTLE, {**write.columns, "id": job.id}).fetchone()
        first_seq = row["events_count"] - len(events) + 1
        conn.executemany(
            _INSERT_EVENT,
            [
                (job.id, first_seq + i, now, type_, from_.value, to.value, actor, why, text, job.attempt)
                for i, (type_, from_, to, why, text) in enumerate(events)
            ],
        )
        return job_from_row(row)

    def cancel_notices(self, worker_id: str) -> list[CancelNotice]:
        rows = self._read(
            "SELECT id, attempt, cancel_reason, cancel_message FROM andon_jobs"
            " WHERE worker_id = ? AND status = 'cancelling'",
            (worker_id,),
        )
        return [
            CancelNotice(r["id"], r["attempt"], CancelReason(r["cancel_reason"]), r["cancel_message"]) for r in rows
        ]

    def renew_leases(self, worker_id: str, lease_s: float, job_ids: Collection[str] | None = None) -> list[str]:
        now = self._clock.now()
        rows = self._write(
            lambda conn: conn.execute(
                "UPDATE andon_jobs SET lease_expires_at = :until, lease_deadline = :deadline"
                " WHERE worker_id = :worker AND status IN ('running', 'cancelling')"
                " AND (:ids IS NULL OR id IN (SELECT value FROM json_each(:ids))) RETURNING id",
                {
                    "until": now + lease_s,
                    "deadline": self._lease_now() + lease_s,
                    "worker": worker_id,
                    "ids": None if job_ids is None else json.dumps(list(job_ids)),
                },
            ).fetchall()
        )
        return [row["id"] for row in rows]

    def recover_lost(self) -> list[Job]:
        """Leases are judged on ``CLOCK_BOOTTIME``, which never steps: a jump of the wall
        clock cannot expire a healthy lease. Every worker of an earlier boot of this machine
        is gone, so their jobs are recovered at once."""

        def body(conn: sqlite3.Connection) -> list[Job]:
            boot = conn.execute("SELECT value FROM andon_meta WHERE key = 'boot_id'").fetchone()
            if boot is None or boot[0] != _BOOT_ID:
                conn.execute("INSERT OR REPLACE INTO andon_meta (key, value) VALUES ('boot_id', ?)", (_BOOT_ID,))
            rebooted = boot is not None and boot[0] != _BOOT_ID
            rows = conn.execute(_EXPIRED, {"now": self._lease_now(), "rebooted": rebooted}).fetchall()
            return [self._settle(conn, job_from_row(r), Outcome(OutcomeKind.LOST), "andon") for r in rows]

        return self._write(body)

    def record_lost_attempt(self, job_id: str, attempt: int, worker_id: str, outcome: Outcome, lost_items: int) -> None:
        reason, message = lost_attempt_event(attempt, worker_id, outcome, lost_items)

        def body(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT * FROM andon_jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise JobNotFound(job_id)
            job = dataclasses.replace(job_from_row(row), attempt=attempt)
            actor = f"worker:{worker_id}"
            self._event(
                conn, job, LOST_ATTEMPT_EVENT, job.status, job.status, actor, reason, message, self._clock.now()
            )

        self._write(body)

    def _lease_now(self) -> float:
        now = self._clock.lease_now()
        return time.clock_gettime(time.CLOCK_BOOTTIME) if now is None else now

    # -- schema ---------------------------------------------------------------

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        """Create the schema, or bring a file of an older version up to this one in place."""
        version = self._schema_version(conn)
        if version > SCHEMA_VERSION:
            raise ConfigurationError(
                f"{self.path!r} has andon schema version {version}, newer than this andon knows"
                f" ({SCHEMA_VERSION}); upgrade andon"
            )
        for start, statements in ((1, _UPGRADE_TO_2), (2, _UPGRADE_TO_3)):
            if 0 < version <= start:
                self._retry_busy(functools.partial(self._upgrade, conn, start, statements))
        schema = resources.files("andon._storage").joinpath("schema_sqlite.sql").read_text()
        # Only when something is missing: the script's INSERT takes the write lock even
        # when it inserts nothing, and a process that only reads (`andon ls`) must open
        # while another process holds that lock.
        if version != SCHEMA_VERSION or not self._retry_busy(lambda: _has_every_object(conn, schema)):
            self._retry_busy(lambda: conn.executescript(schema))

    def _upgrade(self, conn: sqlite3.Connection, start: int, statements: tuple[str, ...]) -> None:
        """Version ``start`` -> ``start + 1`` in place; the schema script then adds what is new.

        1 -> 2: jobs get an ``owner`` (and the script the tokens table); 2 -> 3: jobs get a
        ``lease_deadline`` on the boot-time clock.
        """
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Another process may have upgraded the file since we looked.
                row = conn.execute("SELECT value FROM andon_meta WHERE key = 'schema_version'").fetchone()
                if row is not None and int(row[0]) == start:
                    for statement in statements:
                        conn.execute(statement)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- tokens ---------------------------------------------------------------

    def create_token(self, name: str, role: Role, token_hash: str) -> TokenRecord:
        now = self._clock.now()

        def body(conn: sqlite3.Connection) -> None:
            if conn.execute(_TOKEN_NAMED, (name,)).fetchone() is not None:
                raise UsageError(f"a token named {name!r} exists already (names are never reused); pick another")
            conn.execute(_INSERT_TOKEN, (name, role.value, token_hash, now))

        self._write(body)
        return TokenRecord(name, role, now)

    def find_token(self, token_hash: str) -> TokenRecord | None:
        rows = self._read(_FIND_TOKEN, (token_hash,))
        return _token_from_row(rows[0]) if rows else None

    def list_tokens(self) -> list[TokenRecord]:
        return [_token_from_row(r) for r in self._read(_LIST_TOKENS)]

    def revoke_token(self, name: str) -> TokenRecord:
        now = self._clock.now()

        def body(conn: sqlite3.Connection) -> TokenRecord:
            row = conn.execute(_REVOKE_TOKEN, (now, name)).fetchone()
            if row is None:
                raise UsageError(f"no token is named {name!r} (see: andon token ls)")
            return _token_from_row(row)

        return self._write(body)

    # -- helpers --------------------------------------------------------------

    def _event(
        self,
        conn: sqlite3.Connection,
        job: Job,
        type_: str,
        from_status: JobStatus,
        to_status: JobStatus,
        actor: str | None,
        reason: str | None,
        message: str | None,
        at: float,
    ) -> None:
        seq = conn.execute(
            "UPDATE andon_jobs SET events_count = events_count + 1 WHERE id = ? RETURNING events_count",
            (job.id,),
        ).fetchone()[0]
        conn.execute(
            _INSERT_EVENT,
            (
                job.id,
                seq,
                at,
                type_,
                from_status.value,
                to_status.value,
                actor,
                reason,
                message,
                job.attempt,
            ),
        )


# Claims walk the queue index in order and stop at ``:n`` rows; without INDEXED BY the
# planner prefers the status index and sorts every queued row for each claim.
_CLAIM: Final = (
    "UPDATE andon_jobs SET status = 'running', attempt = attempt + 1, started_at = :now,"
    " worker_id = :worker, lease_expires_at = :lease, lease_deadline = :deadline, events_count = events_count + 1,"
    " progress_done = NULL, progress_total = NULL, progress_message = NULL"
    " WHERE id IN (SELECT id FROM andon_jobs INDEXED BY andon_jobs_queue"
    " WHERE status = 'queued' AND available_at <= :now AND kind IN (SELECT value FROM json_each(:kinds))"
    " ORDER BY priority DESC, id LIMIT :n)"
    " RETURNING *"
)
_SETTLE: Final = (
    "UPDATE andon_jobs SET status = :status, finished_at = :finished,"
    " lease_expires_at = NULL, lease_deadline = NULL, events_count = events_count + :events,"
    " result = :result, error_type = :error_type, error_message = :error_message,"
    " error_traceback = :error_traceback,"
    " failures = failures + :failed, available_at = :available,"
    " cancel_acknowledged_at = CASE WHEN :clear_cancel THEN NULL"
    " ELSE COALESCE(cancel_acknowledged_at, :acknowledged_at) END,"
    " cancel_stopped_at = CASE WHEN :clear_cancel THEN NULL WHEN :has_cancel THEN :stopped ELSE cancel_stopped_at END,"
    " cancel_stop_method = CASE WHEN :clear_cancel THEN NULL WHEN :has_cancel THEN :method"
    " ELSE cancel_stop_method END,"
    " cancel_requested_at = CASE WHEN :clear_cancel THEN NULL ELSE cancel_requested_at END,"
    " cancel_reason = CASE WHEN :clear_cancel THEN NULL ELSE cancel_reason END,"
    " cancel_by = CASE WHEN :clear_cancel THEN NULL ELSE cancel_by END,"
    " cancel_message = CASE WHEN :clear_cancel THEN NULL ELSE cancel_message END,"
    " cancel_retry = CASE WHEN :clear_cancel THEN NULL ELSE cancel_retry END"
    " WHERE id = :id RETURNING *"
)
# Pages bounded in bytes read the sizes of their candidate rows first (no row is read in
# full), then only the rows that fit. Sizes are bytes of the stored text (CAST to BLOB).
_JOB_BYTES: Final = " + ".join(
    f"COALESCE(length(CAST({column} AS BLOB)), 0)"
    for column in (
        "kind", "params", "result", "error_type", "error_message", "error_traceback", "progress_message",
        "cancel_by", "cancel_message", "worker_id", "retry_of", "owner",
    )
)  # fmt: skip
_JOBS_BY_IDS: Final = "SELECT * FROM andon_jobs WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id DESC"
_EVENT_SIZES: Final = (
    "SELECT seq, length(CAST(type AS BLOB)) + COALESCE(length(CAST(actor AS BLOB)), 0)"
    " + COALESCE(length(CAST(reason AS BLOB)), 0) + COALESCE(length(CAST(message AS BLOB)), 0)"
    " FROM andon_events WHERE job_id = :id AND seq > :offset ORDER BY seq LIMIT :limit"
)
_EVENTS_BETWEEN: Final = "SELECT * FROM andon_events WHERE job_id = ? AND seq BETWEEN ? AND ? ORDER BY seq"
_ITEM_SIZES: Final = (
    "SELECT seq, length(CAST(data AS BLOB)) FROM andon_items WHERE job_id = :id"
    " ORDER BY seq LIMIT :limit OFFSET :offset"
)
_ITEMS_BETWEEN: Final = "SELECT * FROM andon_items WHERE job_id = ? AND seq BETWEEN ? AND ? ORDER BY seq LIMIT ?"
_INSERT_EVENT: Final = (
    "INSERT INTO andon_events (job_id, seq, at, type, from_status, to_status, actor, reason, message, attempt)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# Bulk cancel: the withdrawn jobs' one event each (seq events_count + 1), then the jobs
# themselves; both by the same filter, inside one write transaction.
_WITHDRAW_MANY_EVENTS: Final = (
    "INSERT INTO andon_events (job_id, seq, at, type, from_status, to_status, actor, reason, message, attempt)"
    " SELECT id, events_count + 1, :now, 'withdrawn', 'queued', 'cancelled', :by, :reason, :message, attempt"
    " FROM andon_jobs WHERE status = 'queued' AND {where}"
)
_WITHDRAW_MANY: Final = (
    "UPDATE andon_jobs SET status = 'cancelled', finished_at = :now, cancel_requested_at = :now,"
    " cancel_reason = :reason, cancel_by = :by, cancel_message = :message, cancel_retry = 0,"
    " cancel_stopped_at = :now, cancel_stop_method = 'withdrawn', events_count = events_count + 1"
    " WHERE status = 'queued' AND {where} RETURNING id"
)
_REQUEST_STOP_MANY: Final = (
    "UPDATE andon_jobs SET status = 'cancelling', cancel_requested_at = :now,"
    " cancel_reason = :reason, cancel_by = :by, cancel_message = :message, cancel_retry = 1,"
    " cancel_acknowledged_at = NULL, cancel_stopped_at = NULL, cancel_stop_method = NULL,"
    " events_count = events_count + 1 WHERE status = 'running' AND {where} RETURNING *"
)
_RETRYING_FORCE_FAILS: Final = (
    "SELECT * FROM andon_jobs WHERE status = 'cancelling' AND cancel_reason = 'forced' AND cancel_retry = 1 AND {where}"
)
_SCHEMA_OBJECT: Final = re.compile(r"CREATE (?:TABLE|INDEX) IF NOT EXISTS (\w+)", re.IGNORECASE)


def _read_boot_id() -> str:
    """This boot of the machine (the kernel's random boot id); a reboot changes it."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:  # no /proc: a reboot is then found by lease expiry alone
        return "unknown"


# A lease with no deadline was written by andon before schema 3: judged expired.
_EXPIRED: Final = (
    "SELECT * FROM andon_jobs WHERE status IN ('running', 'cancelling')"
    " AND (:rebooted OR lease_deadline IS NULL OR lease_deadline < :now)"
)
_BOOT_ID: Final = _read_boot_id()
_UPGRADE_TO_3: Final = (
    "ALTER TABLE andon_jobs ADD COLUMN lease_deadline REAL",
    "UPDATE andon_meta SET value = '3' WHERE key = 'schema_version'",
)
_UPGRADE_TO_2: Final = (
    "ALTER TABLE andon_jobs ADD COLUMN owner TEXT",
    "UPDATE andon_meta SET value = '2' WHERE key = 'schema_version'",
)
_TOKEN_COLUMNS: Final = "name, role, created_at, revoked_at"
_TOKEN_NAMED: Final = "SELECT 1 FROM andon_tokens WHERE name = ?"
_INSERT_TOKEN: Final = "INSERT INTO andon_tokens (name, role, token_hash, created_at) VALUES (?, ?, ?, ?)"
_FIND_TOKEN: Final = f"SELECT {_TOKEN_COLUMNS} FROM andon_tokens WHERE token_hash = ?"
_LIST_TOKENS: Final = f"SELECT {_TOKEN_COLUMNS} FROM andon_tokens ORDER BY created_at, name"
_REVOKE_TOKEN: Final = (
    f"UPDATE andon_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE name = ? RETURNING {_TOKEN_COLUMNS}"
)


def _transaction(conn: sqlite3.Connection, body: Callable[[sqlite3.Connection], T]) -> T:
    """``body`` in one ``BEGIN IMMEDIATE`` transaction, committed whole or rolled back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        value = body(conn)
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
    present = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    return wanted <= present


def _token_from_row(row: sqlite3.Row) -> TokenRecord:
    return TokenRecord(row["name"], Role(row["role"]), row["created_at"], row["revoked_at"])


def _by(actor: str | None) -> str:
    return f" by {actor}" if actor else ""


def _where(where: JobFilter) -> tuple[str, dict[str, Any]]:
    """A SQL condition (with ``:fN`` placeholders) for a filter; ``1`` when it is empty."""
    parts: list[str] = ["1"]
    args: dict[str, Any] = {}
    for column, values in (
        ("status", [str(s) for s in where.statuses]),
        ("kind", where.kinds),
        ("id", where.ids),
        ("owner", where.owners),
    ):
        if values:
            name = f"f{len(args)}"
            parts.append(f"{column} IN (SELECT value FROM json_each(:{name}))")
            args[name] = json.dumps(list(values))
    return " AND ".join(parts), args


@final
class _Checkpointer:
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

    def __init__(self, store: SqliteStore) -> None:
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
                    store._use(conn, lambda: conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall())
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
class _DataVersionWatcher:
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
