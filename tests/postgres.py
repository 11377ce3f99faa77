"""PostgreSQL for the tests: the server, a fresh schema per test, and loud skips.

The server comes from ``$ANDON_TEST_POSTGRES_URL`` (default: ``postgresql://root@127.0.0.1:5432/test``).
Every test gets a schema of its own, named ``andon_test_<pid>_<n>_<random>``, migrated with
the store's own migrations and dropped afterwards; a schema left behind by a test process
that died is dropped by the next session. When the server cannot be reached, tests skip
with a loud reason, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
import pytest

from andon._storage._postgres import PostgresStore, redact_url

SERVER_URL = os.environ.get("ANDON_TEST_POSTGRES_URL") or "postgresql://root@127.0.0.1:5432/test"
_SCHEMA_PREFIX = "andon_test_"
_numbers = itertools.count()


def with_schema(url: str, schema: str) -> str:
    """``url`` with its ``schema`` query parameter set to ``schema``."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "schema"]
    return urlunsplit(
        (parts.scheme, parts.netloc, parts.path, urlencode([*query, ("schema", schema)], quote_via=quote), "")
    )


def admin_connection() -> psycopg.Connection[tuple[object, ...]]:
    """A plain autocommit connection to the test server (no schema on its search path)."""
    parts = urlsplit(SERVER_URL)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ("schema", "pool_size")]
    url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query, quote_via=quote), ""))
    return psycopg.connect(url, autocommit=True, connect_timeout=5)


def backend_pids(application_name: str) -> list[int]:
    """Server pids of every connection made with this ``application_name`` (pooled and listening)."""
    with admin_connection() as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (application_name,)
        ).fetchall()
    return [int(str(row[0])) for row in rows]


def terminate_backends(pids: list[int]) -> None:
    """End those server connections (``pg_terminate_backend``), as a server fault would."""
    with admin_connection() as conn:
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


@functools.cache
def _unreachable() -> str | None:
    """Why the server cannot be used, or ``None``; checked once per session."""
    try:
        with admin_connection() as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL at {redact_url(SERVER_URL)} is unreachable: {' '.join(str(exc).split())}"
    _drop_stale_schemas()
    return None


def require_postgres() -> None:
    """Skip (locally) or fail (``CI=true``) the calling test when the server is unreachable."""
    reason = _unreachable()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; under CI=true the PostgreSQL tests must run")
    pytest.skip(f"!!! {reason}: PostgreSQL tests SKIPPED (set ANDON_TEST_POSTGRES_URL or start the server)")


@contextlib.contextmanager
def fresh_schema(*, migrate: bool = True) -> Iterator[str]:
    """A new schema for one test (migrated unless told not to); yields its URL, then drops it."""
    require_postgres()
    name = f"{_SCHEMA_PREFIX}{os.getpid()}_{next(_numbers)}_{secrets.token_hex(3)}"
    url = with_schema(SERVER_URL, name)
    if migrate:
        PostgresStore(url).upgrade()
    try:
        yield url
    finally:
        drop_schema(name)


@contextlib.contextmanager
def fresh_database(kind: str, folder: Path) -> Iterator[str]:
    """A fresh database for one test: ``sqlite`` (a file in ``folder``) or ``postgres`` (a
    schema of its own, dropped afterwards); yields its URL."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'andon.db'}"
    else:
        with fresh_schema() as url:
            yield url


def drop_schema(name: str) -> None:
    with admin_connection() as conn:
        # A worker process killed by a test may still have a backend finishing up.
        conn.execute("SET lock_timeout = '20s'")
        conn.execute(psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psycopg.sql.Identifier(name)))


def _drop_stale_schemas() -> None:
    """Drop test schemas of test processes (on this machine) that are gone."""
    pattern = re.compile(rf"{_SCHEMA_PREFIX}(\d+)_")
    with admin_connection() as conn:
        names = [
            str(row[0])
            for row in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (f"{_SCHEMA_PREFIX}%",)
            ).fetchall()
        ]
    for name in names:
        match = pattern.match(name)
        if match and not os.path.exists(f"/proc/{match.group(1)}"):
            with contextlib.suppress(psycopg.Error):
                drop_schema(name)
