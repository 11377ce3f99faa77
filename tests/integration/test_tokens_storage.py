"""Tokens at rest and schema upgrades: the raw token is never stored; old files upgrade in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

import andon
from andon._access import hash_token
from andon._storage import NewJob
from andon._storage._postgres import MIGRATIONS, PostgresStore
from andon._storage._postgres import SCHEMA_VERSION as POSTGRES_SCHEMA_VERSION
from andon._storage._sqlite import SCHEMA_VERSION as SQLITE_SCHEMA_VERSION
from andon.examples import app as example_app
from tests.postgres import fresh_schema

# The SQLite schema as andon 0.1 shipped it (version 1): no owners, no tokens.
SCHEMA_V1 = """
-- andon schema for SQLite, version 1. Timestamps are unix seconds (REAL).
CREATE TABLE IF NOT EXISTS andon_jobs (
    id                     TEXT PRIMARY KEY,
    kind                   TEXT NOT NULL,
    params                 TEXT NOT NULL,
    status                 TEXT NOT NULL,
    priority               INTEGER NOT NULL DEFAULT 0,
    created_at             REAL NOT NULL,
    available_at           REAL NOT NULL,
    attempt                INTEGER NOT NULL DEFAULT 0,
    failures               INTEGER NOT NULL DEFAULT 0,
    max_attempts           INTEGER NOT NULL DEFAULT 1,
    retry_backoff_s        REAL NOT NULL DEFAULT 0,
    timeout_s              REAL,
    started_at             REAL,
    finished_at            REAL,
    worker_id              TEXT,
    lease_expires_at       REAL,
    progress_done          REAL,
    progress_total         REAL,
    progress_message       TEXT,
    items_count            INTEGER NOT NULL DEFAULT 0,
    events_count           INTEGER NOT NULL DEFAULT 0,
    result                 TEXT,
    error_type             TEXT,
    error_message          TEXT,
    error_traceback        TEXT,
    cancel_requested_at    REAL,
    cancel_reason          TEXT,
    cancel_by              TEXT,
    cancel_message         TEXT,
    cancel_retry           INTEGER,
    cancel_acknowledged_at REAL,
    cancel_stopped_at      REAL,
    cancel_stop_method     TEXT,
    retry_of               TEXT
);
CREATE INDEX IF NOT EXISTS andon_jobs_queue ON andon_jobs (priority DESC, id) WHERE status = 'queued';
CREATE INDEX IF NOT EXISTS andon_jobs_held ON andon_jobs (worker_id) WHERE status IN ('running', 'cancelling');
CREATE INDEX IF NOT EXISTS andon_jobs_status ON andon_jobs (status, id);
CREATE INDEX IF NOT EXISTS andon_jobs_kind ON andon_jobs (kind, id);
CREATE TABLE IF NOT EXISTS andon_events (
    job_id      TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    at          REAL NOT NULL,
    type        TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT,
    actor       TEXT,
    reason      TEXT,
    message     TEXT,
    attempt     INTEGER NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS andon_items (
    job_id  TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    at      REAL NOT NULL,
    data    TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS andon_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT OR IGNORE INTO andon_meta (key, value) VALUES ('schema_version', '1');
"""


def test_sqlite_file_keeps_only_the_hash(tmp_path: Path) -> None:
    path = tmp_path / "andon.db"
    with andon.SqliteStore(str(path)) as store:
        issued = andon.Client(store).create_token("alice", "user")
        assert issued.token.startswith("andon_")
        assert len(issued.token) >= 6 + 43
        assert issued.token not in repr(issued)
        row = sqlite3.connect(path).execute("SELECT * FROM andon_tokens").fetchone()
        assert issued.token not in [str(value) for value in row]
        assert hash_token(issued.token) in row
        # The database files on disk (WAL included) hold no trace of the token.
        on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir())
        assert issued.token.encode() not in on_disk
        assert hash_token(issued.token).encode() in on_disk


def test_postgres_table_keeps_only_the_hash() -> None:
    with fresh_schema() as url, PostgresStore(url) as store:
        issued = andon.Client(store).create_token("alice", "user")
        with psycopg.connect(url.partition("?")[0]) as conn:
            schema = store.schema
            rows = conn.execute(f'SELECT * FROM "{schema}".andon_tokens').fetchall()
        assert len(rows) == 1
        assert issued.token not in [str(value) for value in rows[0]]
        assert hash_token(issued.token) in rows[0]


def test_sqlite_version_1_file_upgrades_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA_V1)
    conn.execute(
        "INSERT INTO andon_jobs (id, kind, params, status, created_at, available_at)"
        " VALUES ('0190a0b0-0000-7000-8000-000000000001', 'count', '{}', 'succeeded', 1.0, 1.0)"
    )
    conn.commit()
    conn.close()
    with andon.SqliteStore(str(path)) as store:
        old = store.get("0190a0b0-0000-7000-8000-000000000001")
        assert old.owner is None
        assert old.status is andon.JobStatus.SUCCEEDED
        andon.Client(store).create_token("alice", "user")
        alice = andon.Client(store, example_app).acting_as(andon.Principal("alice", andon.Role.USER))
        job = alice.submit("count", {"n": 1})
        assert store.get(job.id).owner == "alice"
    check = sqlite3.connect(path)
    assert check.execute("SELECT value FROM andon_meta WHERE key = 'schema_version'").fetchone() == (
        str(SQLITE_SCHEMA_VERSION),
    )
    assert check.execute("SELECT count(*) FROM andon_jobs").fetchone() == (2,)
    check.close()
    # Opening again (and `andon db upgrade`) finds nothing left to do.
    assert andon.upgrade_database(f"sqlite:///{path}").changed is False


def test_sqlite_upgrade_reports_versions(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA_V1)
    done = andon.upgrade_database(f"sqlite:///{path}")
    assert (done.before, done.after, done.changed) == (1, SQLITE_SCHEMA_VERSION, True)


def test_sqlite_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    with andon.SqliteStore(str(path)):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE andon_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(andon.ConfigurationError, match="newer than this andon"), andon.SqliteStore(str(path)):
        pass


def test_postgres_version_1_schema_upgrades_to_the_latest() -> None:
    with fresh_schema(migrate=False) as url:
        schema = url.rpartition("schema=")[2]
        with psycopg.connect(url.partition("?")[0], autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
            conn.execute(f'SET search_path TO "{schema}"')
            conn.execute(MIGRATIONS[0].sql.encode())
            conn.execute("CREATE TABLE andon_migrations (version integer PRIMARY KEY, name text, applied_at float8)")
            conn.execute("INSERT INTO andon_migrations VALUES (1, 'v1', 0)")
            conn.execute(
                "INSERT INTO andon_jobs (id, kind, params, status, created_at, available_at)"
                " VALUES ('0190a0b0-0000-7000-8000-000000000002', 'a', '{}', 'queued', 1.0, 1.0)"
            )
        with pytest.raises(andon.ConfigurationError, match="version 1"), PostgresStore(url):
            pass
        store = PostgresStore(url)
        assert store.upgrade() == (1, POSTGRES_SCHEMA_VERSION)
        with store:
            assert store.get("0190a0b0-0000-7000-8000-000000000002").owner is None
            job = store.submit(
                [NewJob(id="0190a0b0-0000-7000-8000-000000000003", kind="a", params={}, owner="bob")], None
            )
            assert store.get(job[0].id).owner == "bob"
            store.create_token("bob", andon.Role.USER, "d" * 64)
