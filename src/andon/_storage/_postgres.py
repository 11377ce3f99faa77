"""The PostgreSQL store: any number of workers and clients on any number of machines.

PostgreSQL is the whole distributed engine; there is no coordinator of our own:

* **State changes** are short transactions that lock the rows they decide on
  (``SELECT ... FOR UPDATE``) and apply the rules of ``andon._jobs`` (``decide_cancel``,
  ``decide_settlement``) in Python, exactly as the SQLite store does.
* **Claims** take the next job with ``FOR UPDATE SKIP LOCKED`` in one statement, so workers
  never wait for one another and never take the same job; order is priority, then id
  (UUIDv7, so age). A partial index holds only queued jobs, so history does not slow it.
* **Cancel delivery**: every change that matters sends ``NOTIFY`` in its own transaction;
  each process keeps one ``LISTEN`` connection (:class:`_Listener`) that wakes its
  watchers on commit. The listener probes its connection every second and reports a
  change after every reconnect, as notifications may have been lost meanwhile.
* **Connections** come from a ``psycopg_pool`` pool. A dropped connection (server restart,
  ``pg_terminate_backend``, network cut) is replaced and the operation retried with
  backoff for up to ``reconnect_timeout_s``, then :class:`~andon.StorageUnavailable` is
  raised. A failure while a commit was in flight is ambiguous; each operation says how to
  settle that (look whether it happened, run it again, or report it), so nothing is lost
  or applied twice.
* **Schema** lives in its own PostgreSQL schema (``andon`` unless the URL says
  ``?schema=...``) and is created and upgraded by versioned migrations
  (:meth:`PostgresStore.upgrade`, ``andon db upgrade``), never implicitly.

Every statement is in this file, named, in the SQL section below. Timestamps are unix
seconds (``double precision``) from the store's clock, like SQLite's; JSON is kept as
text, byte for byte as written. Leases alone are set and judged on the database server's
clock, so a worker machine whose wall clock steps (or drifts) cannot expire a healthy
lease; other timestamps come from each machine's clock, which should be kept in sync.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import logging
import os
import random
import re
import select
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar, final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolClosed

from andon._access import Role, TokenRecord
from andon._cancel import CancelReason
from andon._clock import Clock, SystemClock
from andon._errors import (
    ConfigurationError,
    InvalidTransition,
    JobNotFound,
    LifecycleError,
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

__all__ = ["SCHEMA_VERSION", "PostgresStore", "redact_url"]

log = logging.getLogger("andon.postgres")

T = TypeVar("T")
Cursor = psycopg.Cursor[DictRow]

DEFAULT_SCHEMA: Final = "andon"
DEFAULT_POOL_SIZE: Final = 16
PROBE_INTERVAL_S: Final = 1.0
"""How often an idle listener checks that its connection is alive (the fallback poll)."""
_POOL_RECONNECT_S: Final = 2.0
"""How long the pool retries one lost connection before giving up on that attempt. Its
delays double (1 s, 2 s, 4 s...); giving up early lets the next request start a fresh
attempt at once, so after an outage a connection is back within about a second, not
after a delay as long as the outage itself."""
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_OUR_QUERY_PARAMS: Final = frozenset({"schema", "pool_size", "reconnect_timeout"})
DEFAULT_RECONNECT_TIMEOUT_S: Final = 10.0
_CONNECT_DEFAULTS: Final = {
    "connect_timeout": "5",
    "application_name": "andon",
    # A silent network cut must turn into an error within seconds, not TCP's minutes.
    "keepalives": "1",
    "keepalives_idle": "5",
    "keepalives_interval": "2",
    "keepalives_count": "3",
    "tcp_user_timeout": "10000",
}


# == SQL ===================================================================================
#
# Tables are named as in SQLite. Statements run with ``search_path`` set to the store's
# schema (a connection option), so they name tables without a schema. ``%(name)s`` are
# parameters; a ``{where}`` is one of the fixed fragments built by ``_where``.


@dataclass(frozen=True, slots=True)
class _Migration:
    version: int
    name: str
    sql: str


_MIGRATIONS: Final = (
    _Migration(
        1,
        "jobs, events and results",
        """
CREATE TABLE andon_jobs (
    id                     text COLLATE "C" PRIMARY KEY,  -- UUIDv7: byte order is age order
    kind                   text NOT NULL,
    params                 text NOT NULL,                 -- JSON, as written
    status                 text NOT NULL CHECK (status IN
                               ('queued', 'running', 'cancelling', 'succeeded', 'failed', 'cancelled')),
    priority               bigint NOT NULL DEFAULT 0,
    created_at             double precision NOT NULL,
    available_at           double precision NOT NULL,
    attempt                integer NOT NULL DEFAULT 0,
    failures               integer NOT NULL DEFAULT 0,
    max_attempts           integer NOT NULL DEFAULT 1,
    retry_backoff_s        double precision NOT NULL DEFAULT 0,
    timeout_s              double precision,
    started_at             double precision,
    finished_at            double precision,
    worker_id              text,
    lease_expires_at       double precision,
    claim_token            text,                          -- tells an ambiguous claim apart
    progress_done          double precision,
    progress_total         double precision,
    progress_message       text,
    items_count            bigint NOT NULL DEFAULT 0,
    events_count           integer NOT NULL DEFAULT 0,
    result                 text,                          -- JSON, as written
    error_type             text,
    error_message          text,
    error_traceback        text,
    cancel_requested_at    double precision,
    cancel_reason          text,
    cancel_by              text,
    cancel_message         text,
    cancel_retry           boolean,
    cancel_acknowledged_at double precision,
    cancel_stopped_at      double precision,
    cancel_stop_method     text,
    retry_of               text
);
-- Partial indexes hold active jobs only: claims, notices, renewals and recovery stay cheap
-- however much history the table keeps.
CREATE INDEX andon_jobs_queue ON andon_jobs (priority DESC, id) WHERE status = 'queued';
CREATE INDEX andon_jobs_held ON andon_jobs (worker_id) WHERE status IN ('running', 'cancelling');
CREATE INDEX andon_jobs_leases ON andon_jobs (lease_expires_at) WHERE status IN ('running', 'cancelling');
CREATE INDEX andon_jobs_status ON andon_jobs (status, id);
CREATE INDEX andon_jobs_kind ON andon_jobs (kind, id);
CREATE TABLE andon_events (
    job_id      text COLLATE "C" NOT NULL,
    seq         integer NOT NULL,
    at          double precision NOT NULL,
    type        text NOT NULL,
    from_status text,
    to_status   text,
    actor       text,
    reason      text,
    message     text,
    attempt     integer NOT NULL,
    PRIMARY KEY (job_id, seq)
);
CREATE TABLE andon_items (
    job_id  text COLLATE "C" NOT NULL,
    seq     bigint NOT NULL,
    attempt integer NOT NULL,
    at      double precision NOT NULL,
    data    text NOT NULL,                                 -- JSON, as emitted
    PRIMARY KEY (job_id, seq)
);
""",
    ),
    _Migration(
        2,
        "job owners and API tokens",
        """
ALTER TABLE andon_jobs ADD COLUMN owner text;
CREATE INDEX andon_jobs_owner ON andon_jobs (owner, id);
CREATE TABLE andon_tokens (
    name       text PRIMARY KEY,
    role       text NOT NULL CHECK (role IN ('admin', 'user')),
    token_hash text NOT NULL UNIQUE,                       -- SHA-256 of the token, never the token
    created_at double precision NOT NULL,
    revoked_at double precision
);
""",
    ),
)
SCHEMA_VERSION: Final = _MIGRATIONS[-1].version

_CREATE_MIGRATIONS_TABLE: Final = """
CREATE TABLE IF NOT EXISTS andon_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at double precision NOT NULL
)"""
_SCHEMA_VERSION: Final = "SELECT COALESCE(MAX(version), 0) AS version FROM andon_migrations"
_RECORD_MIGRATION: Final = "INSERT INTO andon_migrations (version, name, applied_at) VALUES (%(v)s, %(name)s, %(at)s)"
_MIGRATION_LOCK: Final = "SELECT pg_advisory_xact_lock(hashtext('andon migrations ' || %(schema)s))"

_NOTIFY: Final = "SELECT pg_notify(%(channel)s, %(payload)s)"

_SUBMIT: Final = """
WITH new AS (
    INSERT INTO andon_jobs (id, kind, params, status, priority, created_at, available_at,
                            max_attempts, retry_backoff_s, timeout_s, retry_of, owner, events_count)
    SELECT id, kind, params, 'queued', priority, %(now)s, %(now)s,
           max_attempts, retry_backoff_s, timeout_s, retry_of, owner, 1
    FROM unnest(%(ids)s::text[], %(kinds)s::text[], %(params)s::text[], %(priorities)s::bigint[],
                %(max_attempts)s::integer[], %(backoffs)s::float8[], %(timeouts)s::float8[], %(retry_ofs)s::text[],
                %(owners)s::text[])
         AS new (id, kind, params, priority, max_attempts, retry_backoff_s, timeout_s, retry_of, owner)
    RETURNING id
)
INSERT INTO andon_events (job_id, seq, at, type, from_status, to_status, actor, reason, message, attempt)
SELECT id, 1, %(now)s, 'submitted', NULL, 'queued', %(actor)s, NULL, NULL, 0 FROM new
"""
_SUBMITTED_COUNT: Final = "SELECT count(*) AS n FROM andon_jobs WHERE id = ANY(%(ids)s) AND created_at = %(now)s"

_GET: Final = "SELECT * FROM andon_jobs WHERE id = %(id)s"
_GET_FOR_UPDATE: Final = "SELECT * FROM andon_jobs WHERE id = %(id)s FOR UPDATE"
_LOCK_MANY: Final = "SELECT * FROM andon_jobs WHERE id = ANY(%(ids)s::text[]) ORDER BY id FOR UPDATE"
_EXISTS: Final = "SELECT 1 FROM andon_jobs WHERE id = %(id)s"
_LIST: Final = "SELECT * FROM andon_jobs WHERE {where} ORDER BY {order} LIMIT %(limit)s"
_EVENTS: Final = "SELECT * FROM andon_events WHERE job_id = %(id)s ORDER BY seq"
_ITEMS: Final = "SELECT * FROM andon_items WHERE job_id = %(id)s ORDER BY seq LIMIT %(limit)s OFFSET %(offset)s"
# Pages bounded in bytes read the sizes of their candidate rows first, then only the rows
# that fit. octet_length of a TOASTed value reads its header, not the value.
_JOB_BYTES: Final = " + ".join(
    f"COALESCE(octet_length({column}), 0)"
    for column in (
        "kind", "params", "result", "error_type", "error_message", "error_traceback", "progress_message",
        "cancel_by", "cancel_message", "worker_id", "retry_of", "owner",
    )
)  # fmt: skip
_JOB_SIZES: Final = (
    "SELECT id, " + _JOB_BYTES + " AS size FROM andon_jobs WHERE {where} ORDER BY {order} LIMIT %(limit)s"
)
_JOBS_BY_IDS: Final = "SELECT * FROM andon_jobs WHERE id = ANY(%(ids)s::text[]) ORDER BY id DESC"
_EVENT_SIZES: Final = """
SELECT seq, octet_length(type) + COALESCE(octet_length(actor), 0) + COALESCE(octet_length(reason), 0)
       + COALESCE(octet_length(message), 0) AS size
FROM andon_events WHERE job_id = %(id)s AND seq > %(offset)s ORDER BY seq LIMIT %(limit)s
"""
_EVENTS_BETWEEN: Final = (
    "SELECT * FROM andon_events WHERE job_id = %(id)s AND seq BETWEEN %(first)s AND %(last)s ORDER BY seq"
)
_ITEM_SIZES: Final = """
SELECT seq, octet_length(data) AS size FROM andon_items WHERE job_id = %(id)s
ORDER BY seq LIMIT %(limit)s OFFSET %(offset)s
"""
_ITEMS_BETWEEN: Final = """
SELECT * FROM andon_items WHERE job_id = %(id)s AND seq BETWEEN %(first)s AND %(last)s ORDER BY seq LIMIT %(n)s
"""

_ADD_EVENT: Final = """
WITH numbered AS (
    UPDATE andon_jobs SET events_count = events_count + 1 WHERE id = %(job_id)s RETURNING events_count
)
INSERT INTO andon_events (job_id, seq, at, type, from_status, to_status, actor, reason, message, attempt)
SELECT %(job_id)s, events_count, %(at)s, %(type)s, %(from_status)s, %(to_status)s, %(actor)s, %(reason)s,
       %(message)s, %(attempt)s
FROM numbered
"""

_WITHDRAW: Final = """
UPDATE andon_jobs SET status = %(status)s, finished_at = %(now)s, cancel_requested_at = %(now)s,
    cancel_reason = %(reason)s, cancel_by = %(by)s, cancel_message = %(message)s, cancel_retry = false,
    cancel_stopped_at = %(now)s, cancel_stop_method = 'withdrawn', error_type = %(error_type)s,
    error_message = %(error_message)s
WHERE id = %(id)s
"""
_REQUEST_STOP: Final = """
UPDATE andon_jobs SET status = 'cancelling', cancel_requested_at = %(now)s, cancel_reason = %(reason)s,
    cancel_by = %(by)s, cancel_message = %(message)s, cancel_retry = %(retry)s, cancel_acknowledged_at = NULL,
    cancel_stopped_at = NULL, cancel_stop_method = NULL
WHERE id = %(id)s
"""
_ESCALATE: Final = """
UPDATE andon_jobs SET cancel_reason = %(reason)s, cancel_by = %(by)s, cancel_message = %(message)s,
    cancel_retry = %(retry)s
WHERE id = %(id)s
"""

# The rule of decide_cancel for many jobs at once, as two set-based statements: queued jobs
# are withdrawn (this one statement is the whole bulk cancel of a queue), running ones move
# to cancelling; everything else is left alone. Each writes its events in the same statement.
_WITHDRAW_MANY: Final = """
WITH withdrawn AS (
    UPDATE andon_jobs SET status = 'cancelled', finished_at = %(now)s, cancel_requested_at = %(now)s,
        cancel_reason = %(reason)s, cancel_by = %(by)s, cancel_message = %(message)s, cancel_retry = false,
        cancel_stopped_at = %(now)s, cancel_stop_method = 'withdrawn', events_count = events_count + 1
    WHERE status = 'queued' AND {where}
    RETURNING *
), events AS (
    INSERT INTO andon_events (job_id, seq, at, type, from_status, to_status, actor, reason, message, attempt)
    SELECT id, events_count, %(now)s, 'withdrawn', 'queued', 'cancelled', %(by)s, %(reason)s, %(message)s, attempt
    FROM withdrawn
)
SELECT id FROM withdrawn
"""
_REQUEST_STOP_MANY: Final = """
WITH requested AS (
    UPDATE andon_jobs SET status = 'cancelling', cancel_requested_at = %(now)s, cancel_reason = %(reason)s,
        cancel_by = %(by)s, cancel_message = %(message)s, cancel_retry = true, cancel_acknowledged_at = NULL,
        cancel_stopped_at = NULL, cancel_stop_method = NULL, events_count = events_count + 1
    WHERE status = 'running' AND {where}
    RETURNING *
), events AS (
    INSERT INTO andon_events (job_id, seq, at, type, from_status, to_status, actor, reason, message, attempt)
    SELECT id, events_count, %(now)s, 'cancel requested', 'running', 'cancelling', %(by)s, %(reason)s,
           %(message)s, attempt
    FROM requested
)
SELECT * FROM requested
"""
_RETRYING_FORCE_FAILS: Final = """
SELECT * FROM andon_jobs
WHERE status = 'cancelling' AND cancel_reason = 'forced' AND cancel_retry AND {where}
ORDER BY id FOR UPDATE
"""
_ACTIVE_FOR_UPDATE: Final = (
    "SELECT * FROM andon_jobs WHERE status IN ('queued', 'running', 'cancelling') AND {where} ORDER BY id FOR UPDATE"
)

_STATUS_FOR_UPDATE: Final = "SELECT status FROM andon_jobs WHERE id = %(id)s FOR UPDATE"
_DELETE: Final = """
WITH items AS (DELETE FROM andon_items WHERE job_id = %(id)s),
     events AS (DELETE FROM andon_events WHERE job_id = %(id)s)
DELETE FROM andon_jobs WHERE id = %(id)s
"""

_COUNTS_BY_KIND: Final = "SELECT kind, status, count(*) AS n FROM andon_jobs GROUP BY kind, status"
_STOPS_BY_KIND: Final = """
SELECT kind, count(*) AS stops,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY GREATEST(0, cancel_stopped_at - cancel_requested_at)) AS p50,
       max(GREATEST(0, cancel_stopped_at - cancel_requested_at)) AS slowest
FROM andon_jobs
WHERE cancel_stopped_at IS NOT NULL AND cancel_stop_method != 'withdrawn'
GROUP BY kind
"""
_STOP_METHODS_BY_KIND: Final = """
SELECT kind, cancel_stop_method AS method, count(*) AS n
FROM andon_jobs
WHERE cancel_stopped_at IS NOT NULL AND cancel_stop_method != 'withdrawn'
GROUP BY kind, cancel_stop_method
"""

# One statement, one transaction: take the best queued job nobody else is taking, start
# it, and write its event. SKIP LOCKED passes over rows another claim (or a cancel) holds.
# The plan must walk andon_jobs_queue in order and stop at the first row it can lock.
# ``kind COLLATE "C"`` (equality is the same under any deterministic collation) keeps the
# kind index out of it: with statistics taken while the queue was empty, the planner would
# otherwise AND both indexes, fetch the whole queue and sort it, for every claim.
_CLAIM: Final = """
WITH next AS (
    SELECT id FROM andon_jobs
    WHERE status = 'queued' AND available_at <= %(now)s AND kind COLLATE "C" = ANY(%(kinds)s)
    ORDER BY priority DESC, id
    LIMIT %(n)s
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE andon_jobs AS job SET status = 'running', attempt = job.attempt + 1, started_at = %(now)s,
        worker_id = %(worker)s, lease_expires_at =
            COALESCE(%(lease_base)s::double precision, extract(epoch FROM clock_timestamp())) + %(lease_s)s,
        claim_token = %(token)s,
        events_count = job.events_count + 1, progress_done = NULL, progress_total = NULL, progress_message = NULL
    FROM next
    WHERE job.id = next.id
    RETURNING job.*
), started AS (
    INSERT INTO andon_events (job_id, seq, at, type, from_status, to_status, actor, reason, message, attempt)
    SELECT id, events_count, %(now)s, 'started', 'queued', 'running', %(actor)s, NULL, NULL, attempt
    FROM claimed
)
SELECT * FROM claimed
"""
_CLAIMED_WITH_TOKEN: Final = """
SELECT * FROM andon_jobs
WHERE worker_id = %(worker)s AND status IN ('running', 'cancelling') AND claim_token = %(token)s
"""

_WRITE_PROGRESS: Final = """
UPDATE andon_jobs SET items_count = GREATEST(items_count, %(items_count)s),
    progress_done = CASE WHEN %(has_progress)s THEN %(done)s ELSE progress_done END,
    progress_total = CASE WHEN %(has_progress)s THEN %(total)s ELSE progress_total END,
    progress_message = CASE WHEN %(has_progress)s THEN %(progress_message)s ELSE progress_message END,
    cancel_acknowledged_at = COALESCE(cancel_acknowledged_at, %(acknowledged_at)s)
WHERE id = %(job_id)s AND attempt = %(attempt)s AND status IN ('running', 'cancelling')
RETURNING id
"""
_INSERT_ITEMS: Final = """
INSERT INTO andon_items (job_id, seq, attempt, at, data)
SELECT %(job_id)s, seq, %(attempt)s, at, data
FROM unnest(%(seqs)s::bigint[], %(ats)s::float8[], %(datas)s::text[]) AS item (seq, at, data)
ON CONFLICT (job_id, seq) DO NOTHING
"""

_COPY_ITEMS: Final = "COPY andon_items (job_id, seq, attempt, at, data) FROM STDIN"

# Every attempt a worker ends in one statement: the per-job values arrive as one JSON array
# of objects (psycopg adapts one text parameter far faster than fifteen Python lists).
_SETTLE_ALL: Final = """
UPDATE andon_jobs AS job SET status = v.status, finished_at = v.finished, lease_expires_at = NULL,
    claim_token = NULL, result = v.result, error_type = v.error_type, error_message = v.error_message,
    error_traceback = v.error_traceback, failures = job.failures + v.failed, available_at = v.available,
    events_count = job.events_count + v.events,
    cancel_acknowledged_at = CASE WHEN v.clear_cancel THEN NULL
                                  ELSE COALESCE(job.cancel_acknowledged_at, v.acknowledged_at) END,
    cancel_stopped_at = CASE WHEN v.clear_cancel THEN NULL
                             WHEN v.has_cancel THEN v.stopped ELSE job.cancel_stopped_at END,
    cancel_stop_method = CASE WHEN v.clear_cancel THEN NULL
                              WHEN v.has_cancel THEN v.method ELSE job.cancel_stop_method END,
    cancel_requested_at = CASE WHEN v.clear_cancel THEN NULL ELSE job.cancel_requested_at END,
    cancel_reason = CASE WHEN v.clear_cancel THEN NULL ELSE job.cancel_reason END,
    cancel_by = CASE WHEN v.clear_cancel THEN NULL ELSE job.cancel_by END,
    cancel_message = CASE WHEN v.clear_cancel THEN NULL ELSE job.cancel_message END,
    cancel_retry = CASE WHEN v.clear_cancel THEN NULL ELSE job.cancel_retry END
FROM jsonb_to_recordset(%(rows)s::jsonb) AS v (
    id text, status text, finished float8, result text, error_type text, error_message text,
    error_traceback text, failed int, available float8, acknowledged_at float8, has_cancel bool,
    clear_cancel bool, stopped float8, method text, events int)
WHERE job.id = v.id
RETURNING job.*
"""
_INSERT_EVENTS: Final = """
INSERT INTO andon_events (job_id, seq, at, type, from_status, to_status, actor, reason, message, attempt)
SELECT e.job_id, e.seq, %(at)s, e.type, e.from_status, e.to_status, e.actor, e.reason, e.message, e.attempt
FROM jsonb_to_recordset(%(events)s::jsonb) AS e (
    job_id text, seq int, attempt int, type text, from_status text, to_status text, actor text, reason text,
    message text)
"""

_CANCEL_NOTICES: Final = """
SELECT id, attempt, cancel_reason, cancel_message FROM andon_jobs
WHERE worker_id = %(worker)s AND status = 'cancelling'
"""
_RENEW_LEASES: Final = """
UPDATE andon_jobs SET lease_expires_at =
    COALESCE(%(lease_base)s::double precision, extract(epoch FROM clock_timestamp())) + %(lease_s)s
WHERE worker_id = %(worker)s AND status IN ('running', 'cancelling')
  AND (%(ids)s::text[] IS NULL OR id = ANY(%(ids)s::text[]))
RETURNING id
"""
# SKIP LOCKED: a row locked right now is being settled by its (living) worker.
_EXPIRED_FOR_UPDATE: Final = """
SELECT * FROM andon_jobs
WHERE status IN ('running', 'cancelling')
  AND lease_expires_at < COALESCE(%(lease_base)s::double precision, extract(epoch FROM clock_timestamp()))
ORDER BY id
FOR UPDATE SKIP LOCKED
"""


# == URLs ==================================================================================


@dataclass(frozen=True, slots=True)
class _Target:
    """Where to connect, parsed from a ``postgresql://`` URL."""

    conninfo: str
    schema: str
    pool_size: int
    reconnect_timeout_s: float
    display: str
    """The URL without its password, for messages and logs."""


def redact_url(url: str) -> str:
    """``url`` without a password (in the user part or the query)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}@{host}"
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "password"], quote_via=quote
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _parse_url(url: str, schema: str | None, pool_size: int | None, reconnect_timeout_s: float | None) -> _Target:
    display = redact_url(url)
    try:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError as exc:
        raise ConfigurationError(f"not a valid PostgreSQL URL: {display} ({exc})") from None
    ours = {k: v for k, v in query if k in _OUR_QUERY_PARAMS}
    libpq_url = urlunsplit(
        (
            parts.scheme,
            parts.netloc,
            parts.path,
            urlencode([(k, v) for k, v in query if k not in ours], quote_via=quote),
            "",
        )
    )
    try:
        params = psycopg.conninfo.conninfo_to_dict(libpq_url)
    except psycopg.Error as exc:
        raise ConfigurationError(f"not a valid PostgreSQL URL: {display} ({_one_line(exc)})") from None
    schema = schema or ours.get("schema") or DEFAULT_SCHEMA
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ConfigurationError(
            f"bad schema name {schema!r} in {display}: use lower-case letters, digits and '_' (at most 63)"
        )
    if pool_size is None:
        text = ours.get("pool_size", str(DEFAULT_POOL_SIZE))
        if not text.isdigit() or int(text) < 2:
            raise ConfigurationError(f"bad pool_size {text!r} in {display}: use a whole number of at least 2")
        pool_size = int(text)
    if reconnect_timeout_s is None:
        text = ours.get("reconnect_timeout", str(DEFAULT_RECONNECT_TIMEOUT_S))
        try:
            reconnect_timeout_s = float(text)
        except ValueError:
            reconnect_timeout_s = -1.0
        if not 0 < reconnect_timeout_s < float("inf"):
            raise ConfigurationError(f"bad reconnect_timeout {text!r} in {display}: use a positive number of seconds")
    for key, value in _CONNECT_DEFAULTS.items():
        params.setdefault(key, value)
    # The schema is a connection option, so every statement (and every prepared plan) of
    # every pooled connection resolves table names in it.
    params["options"] = f"{params.get('options') or ''} -c search_path={schema}".strip()
    return _Target(psycopg.conninfo.make_conninfo("", **params), schema, pool_size, reconnect_timeout_s, display)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# == the store =============================================================================


class _IfUnsure(enum.Enum):
    """What to do when the connection broke while a commit may have been under way."""

    RETRY = "retry"
    """Run the operation again: doing it twice is the same as doing it once."""
    RAISE = "raise"
    """Report it to the caller (StorageUnavailable saying so)."""


class _Resolution(enum.Enum):
    NOT_APPLIED = "not applied"
    """A resolver found that the ambiguous commit did not happen: run the operation again."""


_Resolver = Callable[[Cursor], T | _Resolution]


class _Mode(enum.Enum):
    READ = "read"
    """No transaction; nothing to be unsure about."""
    TRANSACTION = "transaction"
    """BEGIN ... COMMIT around the body; only a failing COMMIT leaves the outcome unknown."""
    STATEMENT = "statement"
    """One self-committing statement; a connection lost during it leaves the outcome unknown."""


class _Transient(Exception):
    """The connection failed before anything could have been committed: try again."""


class _CommitUnsure(Exception):
    """The connection failed while a commit may have been under way."""


@final
class PostgresStore:
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
        self._target = _parse_url(url, schema, pool_size, reconnect_timeout_s)
        self.schema = self._target.schema
        self._clock = clock or SystemClock()
        self._reconnect_timeout_s = self._target.reconnect_timeout_s
        self._channel = f"{self.schema}_changes"
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._listener: _Listener | None = None
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
                    conn.execute(_MIGRATION_LOCK, {"schema": self.schema})
                    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
                    conn.execute(_CREATE_MIGRATIONS_TABLE)
                    before = _schema_version(conn)
                    if before > SCHEMA_VERSION:
                        raise ConfigurationError(self._version_problem(before))
                    for migration in _MIGRATIONS:
                        if migration.version > before:
                            conn.execute(migration.sql.encode())
                            conn.execute(
                                _RECORD_MIGRATION,
                                {"v": migration.version, "name": migration.name, "at": time.time()},
                            )
            except psycopg.OperationalError as exc:
                raise StorageUnavailable(f"lost PostgreSQL at {self.url} while upgrading: {_one_line(exc)}") from exc
            except psycopg.Error as exc:
                raise StorageError(f"upgrading schema {self.schema!r} failed: {_one_line(exc)}") from exc
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

    def __enter__(self) -> PostgresStore:
        self.open()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _connect(self) -> psycopg.Connection[Any]:
        """A connection of its own (not from the pool), for migrations and listening."""
        try:
            return psycopg.connect(self._target.conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise StorageUnavailable(f"cannot connect to PostgreSQL at {self.url}: {_one_line(exc)}") from exc

    # -- running statements ---------------------------------------------------

    def _run(
        self,
        body: Callable[[Cursor], T],
        mode: _Mode,
        if_unsure: _IfUnsure | _Resolver[T] = _IfUnsure.RAISE,
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
                    found = self._attempt(if_unsure, _Mode.READ, deadline)
                    resolving = False
                    if found is not _Resolution.NOT_APPLIED:
                        self._reachable_again()
                        return found
                value = self._attempt(body, mode, deadline)
                self._reachable_again()
                return value
            except _CommitUnsure as exc:
                if if_unsure is _IfUnsure.RAISE:
                    raise StorageUnavailable(
                        f"lost PostgreSQL at {self.url} while committing; the change may or may not"
                        f" have been applied: {_one_line(exc.__cause__ or exc)}"
                    ) from exc
                resolving = callable(if_unsure)
                cause: BaseException = exc.__cause__ or exc
            except _Transient as exc:
                cause = exc.__cause__ or exc
            failures += 1
            if time.monotonic() >= deadline:
                raise StorageUnavailable(f"PostgreSQL at {self.url} is unreachable: {_one_line(cause)}") from cause
            self._unreachable(cause)
            pause = min(1.0, 0.02 * 2**failures) * random.uniform(0.5, 1.0)
            time.sleep(max(0.0, min(pause, deadline - time.monotonic())))

    def _attempt(self, body: Callable[[Cursor], T], mode: _Mode, deadline: float) -> T:
        try:
            with self._connection(deadline) as conn, conn.cursor(row_factory=dict_row) as cur:
                if mode is _Mode.READ:
                    return body(cur)
                if mode is _Mode.STATEMENT:
                    try:
                        return body(cur)
                    except psycopg.errors.TransactionRollback:
                        raise
                    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                        raise _CommitUnsure() from exc
                committing = False
                try:
                    with conn.transaction():
                        value = body(cur)
                        committing = True  # the COMMIT is sent when the block exits
                except psycopg.errors.TransactionRollback:
                    raise
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    if committing:
                        raise _CommitUnsure() from exc
                    raise
                return value
        except PoolClosed as exc:
            raise LifecycleError("this store is closed") from exc
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            # Includes deadlocks and serialization failures (rolled back for sure) and
            # PoolTimeout (no connection came free or could be made in time).
            raise _Transient() from exc
        except psycopg.Error as exc:
            raise StorageError(f"PostgreSQL error: {_one_line(exc)}") from exc

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
            log.warning("lost PostgreSQL at %s (%s); reconnecting", self.url, _one_line(cause))

    def _reachable_again(self) -> None:
        if self._outage_since is None:
            return
        with self._lock:
            since, self._outage_since = self._outage_since, None
        if since is not None:
            log.warning("PostgreSQL at %s is reachable again after %.1f s", self.url, time.monotonic() - since)

    def _notify(self, cur: Cursor, *changes: Change) -> None:
        """Tell every listener, at commit, what kind of change this transaction made."""
        for change in changes:
            cur.execute(_NOTIFY, {"channel": self._channel, "payload": change.value})

    # -- clients --------------------------------------------------------------

    def submit(self, jobs: Sequence[NewJob], actor: str | None) -> list[Job]:
        if not jobs:
            return []
        now = self._clock.now()
        args = {
            "now": now,
            "actor": actor,
            "ids": [j.id for j in jobs],
            "kinds": [j.kind for j in jobs],
            "params": [_json(j.params) for j in jobs],
            "priorities": [j.priority for j in jobs],
            "max_attempts": [j.max_attempts for j in jobs],
            "backoffs": [float(j.retry_backoff_s) for j in jobs],
            "timeouts": [None if j.timeout_s is None else float(j.timeout_s) for j in jobs],
            "retry_ofs": [j.retry_of for j in jobs],
            "owners": [j.owner for j in jobs],
        }

        def body(cur: Cursor) -> None:
            cur.execute(_SUBMIT, args)
            self._notify(cur, Change.WORK)

        def applied(cur: Cursor) -> _Resolution | None:
            cur.execute(_SUBMITTED_COUNT, {"ids": args["ids"], "now": now})
            row = cur.fetchone()
            return _Resolution.NOT_APPLIED if row is None or row["n"] == 0 else None

        self._run(body, _Mode.TRANSACTION, applied)
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
        row = self._run(lambda cur: cur.execute(_GET, {"id": job_id}).fetchone(), _Mode.READ)
        if row is None:
            raise JobNotFound(job_id)
        return job_from_row(row)

    def list_jobs(self, where: JobFilter, limit: int, cursor: str | None = None, max_bytes: int | None = None) -> Page:
        clause, args = _where(where)
        if cursor is not None:
            clause += " AND id < %(cursor)s"
        # Filtered on one status (or else one kind), order by that column too: the result is
        # the same, and the planner then reads the (status, id) index backwards and stops
        # after one page. Ordered by id alone it may walk the table newest-first, filtering,
        # when the newest jobs are of another status: 100,000 queued jobs before the first
        # succeeded one took 80 ms a page at a million jobs.
        order = "id DESC"
        if len(where.statuses) == 1:
            order = "status DESC, id DESC"
        elif len(where.kinds) == 1:
            order = "kind DESC, id DESC"
        args |= {"cursor": cursor, "limit": limit + 1}
        if max_bytes is not None:
            return self._list_within(_JOB_SIZES.format(where=clause, order=order), args, limit, max_bytes)
        query = _LIST.format(where=clause, order=order)
        rows = self._run(lambda cur: cur.execute(query.encode(), args).fetchall(), _Mode.READ)
        jobs = [job_from_row(r) for r in rows[:limit]]
        return Page(jobs, jobs[-1].id if len(rows) > limit else None)

    def _list_within(self, sizes: str, args: dict[str, Any], limit: int, max_bytes: int) -> Page:
        def body(cur: Cursor) -> tuple[list[DictRow], list[str], bool]:
            candidates = ((r["id"], r["size"]) for r in cur.execute(sizes.encode(), args))
            ids, more = rows_that_fit(candidates, limit, max_bytes)
            return cur.execute(_JOBS_BY_IDS, {"ids": ids}).fetchall(), ids, more

        rows, ids, more = self._run(body, _Mode.READ)
        return Page([job_from_row(r) for r in rows], ids[-1] if more else None)

    def events(self, job_id: str) -> list[JobEvent]:
        def body(cur: Cursor) -> list[DictRow] | None:
            rows = cur.execute(_EVENTS, {"id": job_id}).fetchall()
            if not rows and cur.execute(_EXISTS, {"id": job_id}).fetchone() is None:
                return None
            return rows

        rows = self._run(body, _Mode.READ)
        if rows is None:
            raise JobNotFound(job_id)
        return [event_from_row(r) for r in rows]

    def events_page(self, job_id: str, offset: int, limit: int, max_bytes: int) -> OffsetPage[JobEvent]:
        # Events are numbered 1..n, so the first ``offset`` are those up to seq ``offset``.
        args = {"id": job_id, "offset": offset, "limit": limit + 1}
        rows, seqs, more = self._page_within(_EVENT_SIZES, _EVENTS_BETWEEN, args, limit, max_bytes)
        return OffsetPage([event_from_row(r) for r in rows], offset + len(seqs) if more else None)

    def items_page(self, job_id: str, offset: int, limit: int, max_bytes: int) -> OffsetPage[ResultItem]:
        args = {"id": job_id, "offset": offset, "limit": limit + 1}
        rows, seqs, more = self._page_within(_ITEM_SIZES, _ITEMS_BETWEEN, args, limit, max_bytes)
        return OffsetPage([item_from_row(r) for r in rows], offset + len(seqs) if more else None)

    def _page_within(
        self, sizes: str, rows_between: str, args: dict[str, Any], limit: int, max_bytes: int
    ) -> tuple[list[DictRow], list[int], bool]:
        """The rows of one job's page (by seq) that fit in ``max_bytes``, their seqs, and
        whether rows are left. Raises :class:`~andon.JobNotFound`."""

        def body(cur: Cursor) -> tuple[list[DictRow], list[int], bool] | None:
            seqs, more = rows_that_fit(((r["seq"], r["size"]) for r in cur.execute(sizes, args)), limit, max_bytes)
            if not seqs:
                return None if cur.execute(_EXISTS, args).fetchone() is None else ([], [], False)
            between = {**args, "first": seqs[0], "last": seqs[-1], "n": len(seqs)}
            return cur.execute(rows_between, between).fetchall(), seqs, more

        page = self._run(body, _Mode.READ)
        if page is None:
            raise JobNotFound(str(args["id"]))
        return page

    def items(self, job_id: str, offset: int = 0, limit: int | None = None) -> list[ResultItem]:
        def body(cur: Cursor) -> list[DictRow] | None:
            rows = cur.execute(_ITEMS, {"id": job_id, "limit": limit, "offset": offset}).fetchall()
            if not rows and cur.execute(_EXISTS, {"id": job_id}).fetchone() is None:
                return None
            return rows

        rows = self._run(body, _Mode.READ)
        if rows is None:
            raise JobNotFound(job_id)
        return [item_from_row(r) for r in rows]

    def request_cancel(
        self,
        job_id: str,
        reason: CancelReason,
        by: str | None,
        message: str | None = None,
        retry: bool = True,
    ) -> CancelResult:
        def body(cur: Cursor) -> CancelResult:
            row = cur.execute(_GET_FOR_UPDATE, {"id": job_id}).fetchone()
            if row is None:
                raise JobNotFound(job_id)
            job = job_from_row(row)
            outcome, status = decide_cancel(job, reason, retry=retry)
            if outcome is not CancelOutcome.ALREADY:
                self._apply_cancel(cur, job, outcome, status, reason, by, message, retry)
                job = _reread(cur, job_id)
                self._notify(cur, Change.ENDED if outcome is CancelOutcome.WITHDRAWN else Change.CANCEL)
            return CancelResult(job, outcome)

        # Asking again after an unknown commit is harmless: it reports the state as it is.
        return self._run(body, _Mode.TRANSACTION, _IfUnsure.RETRY)

    def _apply_cancel(
        self,
        cur: Cursor,
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
        self._event(cur, job, what, job.status, status, by, reason.value, message, now)
        args = {"id": job.id, "now": now, "reason": reason.value, "by": by, "message": message, "retry": retry}
        if outcome is CancelOutcome.WITHDRAWN:
            forced = status is JobStatus.FAILED
            cur.execute(
                _WITHDRAW,
                {
                    **args,
                    "status": status.value,
                    "error_type": "ForcedFailure" if forced else None,
                    "error_message": f"force-failed before it started{_by(by)}" if forced else None,
                },
            )
        elif outcome is CancelOutcome.REQUESTED:
            cur.execute(_REQUEST_STOP, args)
        else:  # ESCALATED: a stronger request takes over the one in force (stop_strength)
            cur.execute(_ESCALATE, args)

    def request_cancel_many(
        self, where: JobFilter, reason: CancelReason, by: str | None, message: str | None = None
    ) -> BulkCancel:
        if reason is CancelReason.FORCED:
            return self._force_fail_many(where, by, message)
        clause, args = _where(where)
        args |= {"now": self._clock.now(), "reason": reason.value, "by": by, "message": message}
        withdraw = _WITHDRAW_MANY.format(where=clause).encode()
        request = _REQUEST_STOP_MANY.format(where=clause).encode()
        retrying = _RETRYING_FORCE_FAILS.format(where=clause).encode()

        def body(cur: Cursor) -> BulkCancel:
            withdrawn = [row["id"] for row in cur.execute(withdraw, args).fetchall()]
            requested = cur.execute(request, args).fetchall()
            stopping = [CancelResult(job_from_row(r), CancelOutcome.REQUESTED) for r in requested]
            # A cancel outranks a retrying force-fail in flight (stop_strength); such jobs
            # are rare, so they take the one-job path.
            for row in cur.execute(retrying, args).fetchall():
                job = job_from_row(row)
                self._apply_cancel(cur, job, CancelOutcome.ESCALATED, job.status, reason, by, message, True)
                stopping.append(CancelResult(_reread(cur, job.id), CancelOutcome.ESCALATED))
            self._notify(cur, *([Change.ENDED] if withdrawn else []), *([Change.CANCEL] if stopping else []))
            return BulkCancel(withdrawn=withdrawn, stopping=stopping)

        return self._run(body, _Mode.TRANSACTION, _IfUnsure.RAISE)

    def _force_fail_many(self, where: JobFilter, by: str | None, message: str | None) -> BulkCancel:
        """Bulk force-fail, job by job through ``decide_cancel`` (rare; no set-based shortcut)."""
        clause, args = _where(where)
        query = _ACTIVE_FOR_UPDATE.format(where=clause).encode()

        def body(cur: Cursor) -> BulkCancel:
            withdrawn: list[str] = []
            stopping: list[CancelResult] = []
            for row in cur.execute(query, args).fetchall():
                job = job_from_row(row)
                outcome, status = decide_cancel(job, CancelReason.FORCED)
                if outcome is CancelOutcome.ALREADY:
                    continue
                self._apply_cancel(cur, job, outcome, status, CancelReason.FORCED, by, message, True)
                if outcome is CancelOutcome.WITHDRAWN:
                    withdrawn.append(job.id)
                else:
                    stopping.append(CancelResult(_reread(cur, job.id), outcome))
            self._notify(cur, *([Change.ENDED] if withdrawn else []), *([Change.CANCEL] if stopping else []))
            return BulkCancel(withdrawn, stopping)

        return self._run(body, _Mode.TRANSACTION, _IfUnsure.RAISE)

    def delete(self, job_id: str) -> None:
        def body(cur: Cursor) -> None:
            row = cur.execute(_STATUS_FOR_UPDATE, {"id": job_id}).fetchone()
            if row is None:
                raise JobNotFound(job_id)
            if JobStatus(row["status"]).is_active:
                raise InvalidTransition(
                    job_id, row["status"], "delete", f"job {job_id} is {row['status']}; cancel it first"
                )
            cur.execute(_DELETE, {"id": job_id})

        def gone(cur: Cursor) -> _Resolution | None:
            return _Resolution.NOT_APPLIED if cur.execute(_EXISTS, {"id": job_id}).fetchone() else None

        self._run(body, _Mode.TRANSACTION, gone)

    def kind_stats(self) -> list[KindStats]:
        def body(cur: Cursor) -> tuple[list[DictRow], list[DictRow], list[DictRow]]:
            return (
                cur.execute(_COUNTS_BY_KIND).fetchall(),
                cur.execute(_STOPS_BY_KIND).fetchall(),
                cur.execute(_STOP_METHODS_BY_KIND).fetchall(),
            )

        count_rows, stop_rows, method_rows = self._run(body, _Mode.READ)
        counts: dict[str, dict[str, int]] = {}
        for row in count_rows:
            counts.setdefault(row["kind"], {})[row["status"]] = row["n"]
        stops = {row["kind"]: row for row in stop_rows}
        methods: dict[str, dict[str, int]] = {}
        for row in method_rows:
            methods.setdefault(row["kind"], {})[row["method"]] = row["n"]
        result = []
        for kind in sorted(counts):
            stop = stops.get(kind)
            result.append(
                KindStats(
                    kind=kind,
                    counts=counts[kind],
                    stops=stop["stops"] if stop else 0,
                    stop_p50_s=stop["p50"] if stop else None,
                    stop_max_s=stop["slowest"] if stop else None,
                    stop_methods=methods.get(kind, {}),
                )
            )
        return result

    def watch(self, changes: Collection[Change] = ALL_CHANGES) -> _Watcher:
        """A watcher woken by NOTIFY of ``changes`` from any process (one LISTEN connection per store).

        Waits until that connection listens, so no change after this call is missed.

        Raises:
            StorageUnavailable: the server could not be reached in time.
        """
        with self._lock:
            if self._pool is None:
                raise LifecycleError(
                    "this store is closed" if self._closed else "open the store first (store.open() or a with block)"
                )
            if self._listener is None:
                self._listener = _Listener(self._connect, self._channel, self.url)
            listener = self._listener
        return listener.watcher(frozenset(changes), timeout=self._reconnect_timeout_s)

    # -- workers --------------------------------------------------------------

    def claim(self, worker_id: str, kinds: Collection[str], lease_s: float) -> Job | None:
        claimed = self.claim_many(worker_id, kinds, lease_s, 1)
        return claimed[0] if claimed else None

    def claim_many(self, worker_id: str, kinds: Collection[str], lease_s: float, limit: int) -> list[Job]:
        if not kinds or limit < 1:
            return []
        args = self._claim_args(worker_id, kinds, lease_s, limit)

        def claimed(cur: Cursor) -> list[Job] | _Resolution:
            # Only this call knows its token: the jobs are ours if the commit happened.
            return _claimed_with_token(cur, args) or _Resolution.NOT_APPLIED

        return self._run(lambda cur: _claim_rows(cur, args), _Mode.STATEMENT, claimed)

    def _claim_args(self, worker_id: str, kinds: Collection[str], lease_s: float, limit: int) -> dict[str, Any]:
        now = self._clock.now()
        return {
            "now": now,
            "kinds": list(kinds),
            "worker": worker_id,
            **self._lease_args(lease_s),
            "token": uuid.uuid4().hex,
            "actor": f"worker:{worker_id}",
            "n": limit,
        }

    def write_progress(self, updates: Sequence[ProgressUpdate]) -> list[str]:
        pending = [u for u in updates if not u.is_empty]
        if not pending:
            return []
        return self._run(lambda cur: self._write_updates(cur, pending), _Mode.TRANSACTION, _IfUnsure.RETRY)

    def _write_updates(self, cur: Cursor, updates: Sequence[ProgressUpdate]) -> list[str]:
        refused: list[str] = []
        # Rows are locked in id order, the order recovery and bulk cancels lock them in.
        for update in sorted(updates, key=lambda u: u.job_id):
            progress = update.progress or (None, None, None)
            held = cur.execute(
                _WRITE_PROGRESS,
                {
                    "job_id": update.job_id,
                    "attempt": update.attempt,
                    "items_count": update.items[-1][0] + 1 if update.items else 0,
                    "has_progress": update.progress is not None,
                    "done": progress[0],
                    "total": progress[1],
                    "progress_message": progress[2],
                    "acknowledged_at": update.acknowledged_at,
                },
            ).fetchone()
            if held is None:
                # The attempt lost the job (recovered, requeued, settled): what it still sends
                # must not change a finished job or mix into the next attempt's results.
                refused.append(update.job_id)
                continue
            if update.items:
                _insert_items(cur, update)
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
        return self._run(
            lambda cur: self._settle_held(cur, worker_id, settlements),
            _Mode.TRANSACTION,
            lambda cur: _settled_now(cur, worker_id, settlements),
        )

    def _settle_held(
        self, cur: Cursor, worker_id: str, settlements: Sequence[Settlement]
    ) -> list[Job | InvalidTransition | JobNotFound]:
        # Rows are locked in id order, the order recovery and bulk cancels lock them in.
        ids = sorted({s.job_id for s in settlements})
        locked = {row["id"]: job_from_row(row) for row in cur.execute(_LOCK_MANY, {"ids": ids}).fetchall()}
        results: list[Job | InvalidTransition | JobNotFound | None] = [None] * len(settlements)
        ending: list[tuple[int, Job, Settlement]] = []
        for i, s in enumerate(settlements):
            job = locked.get(s.job_id)
            if job is None:
                results[i] = JobNotFound(s.job_id)
            elif not _held_by(job, worker_id, s.attempt):
                results[i] = InvalidTransition(
                    s.job_id, job.status.value, "settle", f"worker {worker_id} no longer holds job {s.job_id}"
                )
            else:
                ending.append((i, job, s))
        updates = [s.update for _, _, s in ending if s.update is not None and not s.update.is_empty]
        if updates:
            self._write_updates(cur, updates)
        settled = self._settle_all(cur, [(job, s.outcome) for _, job, s in ending], f"worker:{worker_id}")
        for (i, _, _), job in zip(ending, settled, strict=True):
            results[i] = job
        return [r for r in results if r is not None]

    def settle_and_claim(
        self,
        worker_id: str,
        settlements: Sequence[Settlement],
        kinds: Collection[str],
        lease_s: float,
        limit: int,
    ) -> tuple[list[Job | InvalidTransition | JobNotFound], list[Job]]:
        if not kinds or limit < 1:
            return self.settle_many(worker_id, settlements), []
        args = self._claim_args(worker_id, kinds, lease_s, limit)

        def body(cur: Cursor) -> tuple[list[Job | InvalidTransition | JobNotFound], list[Job]]:
            return self._settle_held(cur, worker_id, settlements), _claim_rows(cur, args)

        def resolved(cur: Cursor) -> tuple[list[Job | InvalidTransition | JobNotFound], list[Job]] | _Resolution:
            # One transaction: the settlements tell whether it committed, the token finds
            # the jobs it claimed if it did.
            found = _settled_now(cur, worker_id, settlements)
            if found is _Resolution.NOT_APPLIED:
                return found
            return found, _claimed_with_token(cur, args)

        return self._run(body, _Mode.TRANSACTION, resolved)

    def _settle(self, cur: Cursor, job: Job, outcome: Outcome, actor: str) -> Job:
        return self._settle_all(cur, [(job, outcome)], actor)[0]

    def _settle_all(self, cur: Cursor, ending: Sequence[tuple[Job, Outcome]], actor: str) -> list[Job]:
        """End attempts of jobs locked by this transaction: three statements for any number."""
        if not ending:
            return []
        now = self._clock.now()
        rows: list[dict[str, Any]] = []
        events: list[tuple[str, int, str, JobStatus, JobStatus, str | None, str | None]] = []
        changes = {Change.ENDED}
        for job, outcome in ending:
            write = settlement_write(job, outcome, now, _json)
            if write.status is JobStatus.QUEUED:
                changes.add(Change.WORK)
            rows.append({"id": job.id, **write.columns})
            events.extend((job.id, job.attempt, *event) for event in write.events)
        settled = {row["id"]: row for row in cur.execute(_SETTLE_ALL, {"rows": _json(rows)}).fetchall()}
        # Each job's new events are the last ``events`` of its (now raised) events_count.
        next_seq = {row["id"]: settled[row["id"]]["events_count"] - row["events"] for row in rows}
        numbered = []
        for job_id, attempt, type_, from_, to, why, text in events:
            next_seq[job_id] += 1
            numbered.append(
                {
                    "job_id": job_id,
                    "seq": next_seq[job_id],
                    "attempt": attempt,
                    "type": type_,
                    "from_status": from_.value,
                    "to_status": to.value,
                    "actor": actor,
                    "reason": why,
                    "message": text,
                }
            )
        cur.execute(_INSERT_EVENTS, {"at": now, "events": _json(numbered)})
        self._notify(cur, *sorted(changes))
        return [job_from_row(settled[job.id]) for job, _ in ending]

    def cancel_notices(self, worker_id: str) -> list[CancelNotice]:
        rows = self._run(lambda cur: cur.execute(_CANCEL_NOTICES, {"worker": worker_id}).fetchall(), _Mode.READ)
        return [
            CancelNotice(r["id"], r["attempt"], CancelReason(r["cancel_reason"]), r["cancel_message"]) for r in rows
        ]

    def renew_leases(self, worker_id: str, lease_s: float, job_ids: Collection[str] | None = None) -> list[str]:
        args = {
            **self._lease_args(lease_s),
            "worker": worker_id,
            "ids": None if job_ids is None else list(job_ids),
        }
        rows = self._run(lambda cur: cur.execute(_RENEW_LEASES, args).fetchall(), _Mode.STATEMENT, _IfUnsure.RETRY)
        return [row["id"] for row in rows]

    def record_lost_attempt(self, job_id: str, attempt: int, worker_id: str, outcome: Outcome, lost_items: int) -> None:
        reason, message = lost_attempt_event(attempt, worker_id, outcome, lost_items)

        def body(cur: Cursor) -> None:
            row = cur.execute(_GET_FOR_UPDATE, {"id": job_id}).fetchone()
            if row is None:
                raise JobNotFound(job_id)
            job = dataclasses.replace(job_from_row(row), attempt=attempt)
            actor = f"worker:{worker_id}"
            now = self._clock.now()
            self._event(cur, job, LOST_ATTEMPT_EVENT, job.status, job.status, actor, reason, message, now)

        # Not repeated after an unknown commit: a second copy of the event would be wrong.
        self._run(body, _Mode.TRANSACTION, _IfUnsure.RAISE)

    def _lease_args(self, lease_s: float) -> dict[str, Any]:
        """Leases are set and judged on the database server's clock (``lease_base`` NULL):
        a step of a worker's wall clock cannot expire a healthy lease. A test clock that
        has a lease time of its own replaces the server's."""
        base = self._clock.lease_now()
        return {"lease_base": base, "lease_s": lease_s}

    def recover_lost(self) -> list[Job]:
        def body(cur: Cursor) -> list[Job]:
            rows = cur.execute(_EXPIRED_FOR_UPDATE, self._lease_args(0.0)).fetchall()
            return self._settle_all(cur, [(job_from_row(r), Outcome(OutcomeKind.LOST)) for r in rows], "andon")

        # Run again after an unknown commit, it finds what is still expired; it only misses
        # reporting what the first run recovered.
        return self._run(body, _Mode.TRANSACTION, _IfUnsure.RETRY)

    # -- tokens ---------------------------------------------------------------

    def create_token(self, name: str, role: Role, token_hash: str) -> TokenRecord:
        args = {"name": name, "role": role.value, "hash": token_hash, "now": self._clock.now()}

        def body(cur: Cursor) -> DictRow | None:
            return cur.execute(_INSERT_TOKEN, args).fetchone()

        def applied(cur: Cursor) -> DictRow | _Resolution | None:
            row = cur.execute(_FIND_TOKEN, args).fetchone()
            return row if row is not None and row["name"] == name else _Resolution.NOT_APPLIED

        row = self._run(body, _Mode.STATEMENT, applied)
        if row is None:
            raise UsageError(f"a token named {name!r} exists already (names are never reused); pick another")
        return _token_from_row(row)

    def find_token(self, token_hash: str) -> TokenRecord | None:
        row = self._run(lambda cur: cur.execute(_FIND_TOKEN, {"hash": token_hash}).fetchone(), _Mode.READ)
        return _token_from_row(row) if row is not None else None

    def list_tokens(self) -> list[TokenRecord]:
        rows = self._run(lambda cur: cur.execute(_LIST_TOKENS).fetchall(), _Mode.READ)
        return [_token_from_row(r) for r in rows]

    def revoke_token(self, name: str) -> TokenRecord:
        args = {"name": name, "now": self._clock.now()}
        row = self._run(lambda cur: cur.execute(_REVOKE_TOKEN, args).fetchone(), _Mode.STATEMENT, _IfUnsure.RETRY)
        if row is None:
            raise UsageError(f"no token is named {name!r} (see: andon token ls)")
        return _token_from_row(row)

    # -- helpers --------------------------------------------------------------

    def _event(
        self,
        cur: Cursor,
        job: Job,
        type_: str,
        from_status: JobStatus,
        to_status: JobStatus,
        actor: str | None,
        reason: str | None,
        message: str | None,
        at: float,
    ) -> None:
        cur.execute(
            _ADD_EVENT,
            {
                "job_id": job.id,
                "at": at,
                "type": type_,
                "from_status": from_status.value,
                "to_status": to_status.value,
                "actor": actor,
                "reason": reason,
                "message": message,
                "attempt": job.attempt,
            },
        )


_HELD: Final = (JobStatus.RUNNING, JobStatus.CANCELLING)
_TOKEN_COLUMNS: Final = "name, role, created_at, revoked_at"
# ON CONFLICT without a target: a taken name (or, never in practice, hash) inserts nothing.
_INSERT_TOKEN: Final = f"""
INSERT INTO andon_tokens (name, role, token_hash, created_at) VALUES (%(name)s, %(role)s, %(hash)s, %(now)s)
ON CONFLICT DO NOTHING RETURNING {_TOKEN_COLUMNS}
"""
_FIND_TOKEN: Final = f"SELECT {_TOKEN_COLUMNS} FROM andon_tokens WHERE token_hash = %(hash)s"
_LIST_TOKENS: Final = f"SELECT {_TOKEN_COLUMNS} FROM andon_tokens ORDER BY created_at, name"
_REVOKE_TOKEN: Final = f"""
UPDATE andon_tokens SET revoked_at = COALESCE(revoked_at, %(now)s) WHERE name = %(name)s RETURNING {_TOKEN_COLUMNS}
"""


def _token_from_row(row: DictRow) -> TokenRecord:
    return TokenRecord(row["name"], Role(row["role"]), row["created_at"], row["revoked_at"])


def _schema_version(conn: psycopg.Connection[Any]) -> int:
    """The schema's migration version; 0 if it has none (or does not exist)."""
    try:
        with conn.transaction():
            row = conn.execute(_SCHEMA_VERSION).fetchone()
    except psycopg.errors.UndefinedTable:
        return 0
    return int(row[0]) if row else 0


def _held_by(job: Job, worker_id: str, attempt: int) -> bool:
    return job.worker_id == worker_id and job.attempt == attempt and job.status in _HELD


def _claim_rows(cur: Cursor, args: dict[str, Any]) -> list[Job]:
    return _in_claim_order(cur.execute(_CLAIM, args).fetchall())


def _claimed_with_token(cur: Cursor, args: dict[str, Any]) -> list[Job]:
    return _in_claim_order(cur.execute(_CLAIMED_WITH_TOKEN, args).fetchall())


def _in_claim_order(rows: Sequence[DictRow]) -> list[Job]:
    return sorted((job_from_row(row) for row in rows), key=lambda job: (-job.priority, job.id))


def _settled_now(
    cur: Cursor, worker_id: str, settlements: Sequence[Settlement]
) -> list[Job | InvalidTransition | JobNotFound] | _Resolution:
    """After a commit in doubt: if any of these attempts is still held, the transaction did
    not commit (those recovered meanwhile are refused when it runs again); if none is, it
    did (or they were recovered), and the jobs as they are now are the answer."""
    found: list[Job | InvalidTransition | JobNotFound] = []
    for s in settlements:
        row = cur.execute(_GET, {"id": s.job_id}).fetchone()
        if row is None:
            found.append(JobNotFound(s.job_id))
            continue
        job = job_from_row(row)
        if _held_by(job, worker_id, s.attempt):
            return _Resolution.NOT_APPLIED
        found.append(job)
    return found


def _reread(cur: Cursor, job_id: str) -> Job:
    row = cur.execute(_GET, {"id": job_id}).fetchone()
    assert row is not None, f"job {job_id} vanished inside its own transaction"
    return job_from_row(row)


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


def _insert_items(cur: Cursor, update: ProgressUpdate) -> None:
    """Store an attempt's items: COPY (2-3x the rows per second of an INSERT here), in a
    savepoint. Items already stored (a flush that committed but was not confirmed, then
    sent again) make the COPY fail on the primary key; then the savepoint is rolled back
    and an INSERT that skips the stored ones does the work."""
    try:
        with cur.connection.transaction(), cur.copy(_COPY_ITEMS) as copy:
            for seq, at, data in update.items:
                copy.write_row((update.job_id, seq, update.attempt, at, data))
    except psycopg.errors.UniqueViolation:
        cur.execute(
            _INSERT_ITEMS,
            {
                "job_id": update.job_id,
                "attempt": update.attempt,
                "seqs": [seq for seq, _, _ in update.items],
                "ats": [at for _, at, _ in update.items],
                "datas": [data for _, _, data in update.items],
            },
        )


def _where(where: JobFilter) -> tuple[str, dict[str, Any]]:
    """A SQL condition (fixed text, values as parameters) for a filter; ``true`` when empty."""
    parts = ["true"]
    args: dict[str, Any] = {}
    for column, values in (
        ("status", [str(s) for s in where.statuses]),
        ("kind", list(where.kinds)),
        ("id", list(where.ids)),
        ("owner", list(where.owners)),
    ):
        if len(values) == 1:
            # One value: written as a range (the same rows) so that the planner keeps
            # "ORDER BY column, id" (see list_jobs) and reads the (column, id) index in order.
            parts.append(f"{column} BETWEEN %(f_{column})s AND %(f_{column})s")
            args[f"f_{column}"] = values[0]
        elif values:
            parts.append(f"{column} = ANY(%(f_{column})s::text[])")
            args[f"f_{column}"] = values
    return " AND ".join(parts), args


def _json(value: Any) -> str:  # Any: a JSON value
    return json.dumps(value)


def _by(actor: str | None) -> str:
    return f" by {actor}" if actor else ""


# == notifications =========================================================================


@final
class _Listener:
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

    def watcher(self, changes: frozenset[Change], timeout: float) -> _Watcher:
        if not self.connected.wait(timeout):
            raise StorageUnavailable(f"cannot listen for changes on PostgreSQL at {self._display}")
        return _Watcher(self, changes, self.seen(changes))

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
                            log.warning("cannot listen on %s (%s); retrying", self._display, _one_line(exc))
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
                        log.warning("lost the listening connection to %s (%s)", self._display, _one_line(exc))
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
class _Watcher:
    """A :class:`~andon._storage.ChangeWatcher` on the store's listener."""

    def __init__(self, listener: _Listener, changes: frozenset[Change], seen: int) -> None:
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
