"""Opening the store a URL names, and creating or upgrading its schema."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, final
from urllib.parse import parse_qsl

from andon._errors import ConfigurationError
from andon._storage._port import Store
from andon._storage._url import database_url, split_url

if TYPE_CHECKING:
    from andon._storage._sqlite import SqliteStore

__all__ = ["SchemaUpgrade", "open_store", "upgrade_database"]


@final
@dataclass(frozen=True, slots=True)
class SchemaUpgrade:
    """What :func:`upgrade_database` did."""

    url: str
    """The database, without its password."""
    before: int
    """The schema version found (0: there was none)."""
    after: int
    """The schema version now."""

    @property
    def changed(self) -> bool:
        return self.before != self.after


def _sqlite_store(url: str, rest: str) -> SqliteStore:
    """The (unopened) store a ``sqlite://`` URL names; ``busy_timeout`` is its one parameter."""
    from andon._storage._sqlite import DEFAULT_BUSY_TIMEOUT_S, SqliteStore

    path, _, query = rest.partition("?")
    path = path[1:] if path.startswith("/") else path
    if not path:
        raise ConfigurationError(f"{url!r} names no file (expected e.g. sqlite:///andon.db)")
    busy_timeout_s = DEFAULT_BUSY_TIMEOUT_S
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name != "busy_timeout":
            raise ConfigurationError(f"unknown parameter {name!r} in {url!r} (SQLite takes only busy_timeout)")
        try:
            busy_timeout_s = float(value)
        except ValueError:
            busy_timeout_s = math.nan
        if not 0 < busy_timeout_s < math.inf:
            raise ConfigurationError(f"bad busy_timeout {value!r} in {url!r}: use a positive number of seconds")
    return SqliteStore(path, busy_timeout_s=busy_timeout_s)


def open_store(url: str | None = None) -> Store:
    """Create and open the store a URL names.

    A PostgreSQL schema must have been created first (``andon db upgrade``, or
    :func:`upgrade_database`); SQLite creates its own.

    Raises:
        ConfigurationError: the URL's scheme is not supported, it names no file, or the
            PostgreSQL schema is missing or at another version.
        StorageUnavailable: the database cannot be opened or reached.
    """
    url = database_url(url)
    scheme, rest = split_url(url)
    store: Store
    if scheme == "sqlite":
        store = _sqlite_store(url, rest)
    else:
        from andon._storage._postgres import PostgresStore

        store = PostgresStore(url)
    store.open()
    return store


def upgrade_database(url: str | None = None) -> SchemaUpgrade:
    """Create or upgrade the schema of the database a URL names.

    Idempotent: at the current version it changes nothing. Safe to run from several
    processes at once. ``andon db upgrade`` and ``andon worker --upgrade-db`` call it.

    Raises:
        ConfigurationError: a bad URL, or a schema newer than this andon.
        StorageUnavailable: the database cannot be reached.
        StorageError: a migration failed (PostgreSQL applies none of it then).
    """
    url = database_url(url)
    scheme, rest = split_url(url)
    if scheme == "sqlite":
        sqlite = _sqlite_store(url, rest)
        try:
            return SchemaUpgrade(sqlite.url, *sqlite.upgrade())
        finally:
            sqlite.close()
    from andon._storage._postgres import PostgresStore

    postgres = PostgresStore(url)
    return SchemaUpgrade(postgres.url, *postgres.upgrade())
