"""Database URLs: ``sqlite:///relative.db[?busy_timeout=10]``, ``sqlite:////abs/path.db``,
``postgresql://user:password@host:5432/dbname[?schema=andon]``: which one to use, and what a
PostgreSQL URL says (``_open.py`` opens the store a URL names)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from andon._errors import ConfigurationError

__all__ = [
    "DEFAULT_DATABASE_URL",
    "PostgresTarget",
    "database_url",
    "one_line",
    "parse_postgres_url",
    "redact_url",
    "split_url",
]

DEFAULT_DATABASE_URL = "sqlite:///andon.db"
_POSTGRES_SCHEMES = ("postgres", "postgresql")
DEFAULT_SCHEMA: Final = "andon"
DEFAULT_POOL_SIZE: Final = 16
DEFAULT_RECONNECT_TIMEOUT_S: Final = 10.0
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_OUR_QUERY_PARAMS: Final = frozenset({"schema", "pool_size", "reconnect_timeout"})
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


def database_url(explicit: str | None = None) -> str:
    """The URL to use: ``explicit``, else ``$ANDON_DATABASE_URL``, else ``sqlite:///andon.db``."""
    return explicit or os.environ.get("ANDON_DATABASE_URL") or DEFAULT_DATABASE_URL


def split_url(url: str) -> tuple[str, str]:
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigurationError(
            f"not a database URL: {url!r} (expected e.g. sqlite:///andon.db or postgresql://user@host/dbname)"
        )
    if scheme != "sqlite" and scheme not in _POSTGRES_SCHEMES:
        raise ConfigurationError(f"unsupported database URL scheme {scheme!r} (supported: sqlite, postgresql)")
    return scheme, rest


# -- PostgreSQL URLs ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PostgresTarget:
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


def parse_postgres_url(
    url: str, schema: str | None, pool_size: int | None, reconnect_timeout_s: float | None
) -> PostgresTarget:
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
    import psycopg  # here: opening a SQLite store must not load the PostgreSQL driver

    try:
        params = psycopg.conninfo.conninfo_to_dict(libpq_url)
    except psycopg.Error as exc:
        raise ConfigurationError(f"not a valid PostgreSQL URL: {display} ({one_line(exc)})") from None
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
    return PostgresTarget(psycopg.conninfo.make_conninfo("", **params), schema, pool_size, reconnect_timeout_s, display)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (libpq's span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__
