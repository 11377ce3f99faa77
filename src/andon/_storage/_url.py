"""Opening a store from a URL: ``sqlite:///relative.db``, ``sqlite:////abs/path.db``,
``postgresql://user:password@host:5432/dbname[?schema=andon]``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import final

from andon._errors import ConfigurationError
from andon._storage._port import Store

__all__ = ["DEFAULT_DATABASE_URL", "SchemaUpgrade", "database_url", "open_store", "upgrade_database"]

DEFAULT_DATABASE_URL = "sqlite:///andon.db"
_POSTGRES_SCHEMES = ("postgres", "postgresql")


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


def database_url(explicit: str | None = None) -> str:
    """The URL to use: ``explicit``, else ``$ANDON_DATABASE_URL``, else ``sqlite:///andon.db``."""
    return explicit or os.environ.get("ANDON_DATABASE_URL") or DEFAULT_DATABASE_URL


def _split(url: str) -> tuple[str, str]:
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigurationError(
            f"not a database URL: {url!r} (expected e.g. sqlite:///andon.db or postgresql://user@host/dbname)"
        )
    if scheme != "sqlite" and scheme not in _POSTGRES_SCHEMES:
        raise ConfigurationError(f"unsupported database URL scheme {scheme!r} (supported: sqlite, postgresql)")
    return scheme, rest


def _sqlite_path(url: str, rest: str) -> str:
    path = rest[1:] if rest.startswith("/") else rest
    if not path:
        raise ConfigurationError(f"{url!r} names no file (expected e.g. sqlite:///andon.db)")
    return path


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
    scheme, rest = _split(url)
    store: Store
    if scheme == "sqlite":
        from andon._storage._sqlite import SqliteStore

        store = SqliteStore(_sqlite_path(url, rest))
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
    scheme, rest = _split(url)
    if scheme == "sqlite":
        from andon._storage._sqlite import SqliteStore

        sqlite = SqliteStore(_sqlite_path(url, rest))
        try:
            return SchemaUpgrade(sqlite.url, *sqlite.upgrade())
        finally:
            sqlite.close()
    from andon._storage._postgres import PostgresStore

    postgres = PostgresStore(url)
    return SchemaUpgrade(postgres.url, *postgres.upgrade())
