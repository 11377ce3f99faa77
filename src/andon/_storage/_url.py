"""Opening a store from a URL: ``sqlite:///relative.db``, ``sqlite:////abs/path.db``."""

from __future__ import annotations

import os

from andon._errors import ConfigurationError
from andon._storage._port import Store

__all__ = ["DEFAULT_DATABASE_URL", "database_url", "open_store"]

DEFAULT_DATABASE_URL = "sqlite:///andon.db"


def database_url(explicit: str | None = None) -> str:
    """The URL to use: ``explicit``, else ``$ANDON_DATABASE_URL``, else ``sqlite:///andon.db``."""
    return explicit or os.environ.get("ANDON_DATABASE_URL") or DEFAULT_DATABASE_URL


def open_store(url: str | None = None) -> Store:
    """Create and open the store a URL names.

    Raises:
        ConfigurationError: the URL's scheme is not supported or it names no file.
        StorageUnavailable: the database cannot be opened.
    """
    url = database_url(url)
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigurationError(f"not a database URL: {url!r} (expected e.g. sqlite:///andon.db)")
    if scheme == "sqlite":
        from andon._storage._sqlite import SqliteStore

        path = rest[1:] if rest.startswith("/") else rest
        if not path:
            raise ConfigurationError(f"{url!r} names no file (expected e.g. sqlite:///andon.db)")
        store = SqliteStore(path)
        store.open()
        return store
    if scheme in ("postgres", "postgresql"):
        raise ConfigurationError("the PostgreSQL store is not part of this version of andon yet")
    raise ConfigurationError(f"unsupported database URL scheme {scheme!r} (supported: sqlite)")
