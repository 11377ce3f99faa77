"""One PostgreSQL transaction: the named statements it runs, the notifications that ride
with its COMMIT, and what a failure during it means (tried again, or in doubt).

The connector (``_postgres.py``) decides when to open one and how to settle a doubt; this
module is the part every operation goes through on every round trip.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any, Final, TypeVar, final

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow

from andon._storage._connector import Args
from andon._storage._pg_listener import stop_payloads
from andon._storage._port import Change
from andon._storage._records import CancelNotice
from andon._storage._rows import Row
from andon._storage._sql import read_blocks

__all__ = ["NOTIFYING", "QUERIES", "CommitUnsure", "Cursor", "Mode", "PgTx", "Transient", "in_transaction"]

T = TypeVar("T")
Cursor = psycopg.Cursor[DictRow]


def _read_queries() -> dict[str, bytes]:
    """The named statements, each one statement (one round trip), as psycopg takes them."""
    queries = {}
    for name, statements in read_blocks("queries_postgres.sql").items():
        (statement,) = statements
        queries[name] = statement.encode()
    return queries


NOTIFYING: Final = {"submit": Change.WORK, "withdraw_fresh": Change.ENDED}
"""Statements that send their change's notification themselves (to ``%(channel)s``), so that
one of them alone is a whole operation, committed on its own in one round trip."""

QUERIES: Final = _read_queries()


class Mode(enum.Enum):
    READ = "read"
    """No transaction; nothing to be unsure about."""
    TRANSACTION = "transaction"
    """BEGIN ... COMMIT around the body; only a failing COMMIT leaves the outcome unknown."""
    STATEMENT = "statement"
    """One self-committing statement; a connection lost during it leaves the outcome unknown."""


class Transient(Exception):
    """The connection failed before anything could have been committed: try again."""


class CommitUnsure(Exception):
    """The connection failed while a commit may have been under way."""


@final
class PgTx:
    """A :class:`~andon._storage._engine.Tx` on one cursor of a pooled connection."""

    def __init__(self, cur: Cursor, channel: str, key: bytes | None = None) -> None:
        self.cur = cur
        self._channel = channel
        self._key = key
        """Signs the stops a notification names; without it, they are not named."""
        self._changes: list[Change] = []
        self._sent: set[Change] = set()
        """Changes a statement of this transaction notified by itself (:data:`NOTIFYING`)."""
        self._stopping: list[CancelNotice] = []

    @staticmethod
    def _query(name: str, fragments: dict[str, str]) -> bytes:
        query = QUERIES[name]
        return query.decode().format(**fragments).encode() if fragments else query

    def _args(self, name: str, args: Args) -> Args:
        """``args``, with the channel for a statement that notifies by itself (noted as sent)."""
        change = NOTIFYING.get(name)
        if change is None:
            return args
        self._sent.add(change)
        return {**args, "channel": self._channel}

    def one(self, name: str, args: Args, **fragments: str) -> Row | None:
        cur = self.cur.execute(self._query(name, fragments), self._args(name, args))
        return cur.fetchone() if cur.description is not None else None  # None: it returns no rows

    def all(self, name: str, args: Args, **fragments: str) -> list[Row]:
        cur = self.cur.execute(self._query(name, fragments), self._args(name, args))
        return list(cur.fetchall()) if cur.description is not None else []

    def scan(self, name: str, args: Args, **fragments: str) -> Iterator[Row]:
        return iter(self.cur.execute(self._query(name, fragments), self._args(name, args)))

    def many(self, name: str, rows: Sequence[Args] | Sequence[Sequence[Any]]) -> None:
        self.cur.executemany(QUERIES[name], rows)

    def notify(self, changes: Collection[Change]) -> None:
        """Kept until :meth:`commit` (or :meth:`send_notifications`): NOTIFY is delivered at
        commit anyway, and sent with the COMMIT it costs no round trip of its own."""
        self._changes += [c for c in changes if c not in self._changes and c not in self._sent]

    def stopping(self, notices: Collection[CancelNotice]) -> None:
        """Running attempts this transaction stops: the notifications name them (signed)."""
        self._stopping += notices

    def _payloads(self) -> list[str]:
        """The changes kept so far and the attempts named by :meth:`stopping` (which stand for
        the ``cancel`` change when they name every one of them); both lists emptied."""
        changes, self._changes = self._changes, []
        named: list[str] = []
        if self._stopping and self._key is not None:
            named, left_out = stop_payloads(self._stopping, self._key)
            if not left_out:
                changes = [change for change in changes if change is not Change.CANCEL]
        self._stopping = []
        return [change.value for change in changes] + named

    def send_notifications(self) -> None:
        """The notifications kept so far, sent now (in a transaction not ours to commit)."""
        payloads = self._payloads()
        if payloads:
            self.cur.execute(QUERIES["notify_many"], {"channel": self._channel, "payloads": payloads})

    def commit(self) -> None:
        """COMMIT, with the notifications kept so far in the same round trip (one simple
        query: the channel and payloads are ours, quoted as literals)."""
        notifies = [
            sql.SQL("SELECT pg_notify({}, {})").format(sql.Literal(self._channel), sql.Literal(payload))
            for payload in self._payloads()
        ]
        self.cur.execute(sql.SQL("; ").join([*notifies, sql.SQL("COMMIT")]))


def in_transaction(conn: psycopg.Connection[Any], tx: PgTx, body: Callable[[PgTx], T]) -> T:
    """``body`` between BEGIN and a COMMIT that carries its notifications (one round trip
    fewer than a NOTIFY of its own). Only a failure during the COMMIT leaves the outcome in
    doubt (CommitUnsure); any failure before it rolls back."""
    tx.cur.execute(b"BEGIN")
    try:
        value = body(tx)
    except BaseException:
        if not conn.broken and conn.info.transaction_status is not TransactionStatus.IDLE:
            with contextlib.suppress(psycopg.Error):
                conn.rollback()
        raise
    try:
        tx.commit()
    except psycopg.errors.TransactionRollback:
        raise  # a deferred check or a serialization failure at commit: rolled back for sure
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        raise CommitUnsure() from exc
    return value
