"""The storage engine: every store operation, once, over a :class:`Connector` per database.

An operation is a body run by the connector in one transaction (or one read), made of
named statements (``queries_sqlite.sql``, ``queries_postgres.sql``: the same names for the
same steps) and the state rules of ``andon._jobs``. What a connector adds is how to reach
its database: connections, retries, what to do when a commit's outcome is unknown,
notifications, and the few steps one database does its own way (bulk inserts, the
settlement of many attempts at once, how leases are judged).

A body may run more than once (a connector retries it after a lost connection or a busy
database), so it only reads and writes through its :class:`Tx` and computes its result
from what it read.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, TypeAlias

from andon._storage._async_watch import AsyncChanges
from andon._storage._ops._base import C
from andon._storage._ops._cancels import CancelOperations
from andon._storage._ops._control import ControlOperations
from andon._storage._ops._jobs import JobOperations
from andon._storage._ops._limits import LimitOperations
from andon._storage._ops._metrics import MetricsOperations
from andon._storage._ops._retention import RetentionOperations
from andon._storage._ops._schedules import ScheduleOperations
from andon._storage._ops._sessions import SessionOperations
from andon._storage._ops._tokens import TokenOperations
from andon._storage._ops._work import Settled, WorkOperations
from andon._storage._ops._workers import WorkerOperations
from andon._storage._port import ALL_CHANGES, Change, ChangeWatcher
from andon._storage._records import CancelNotice

__all__ = ["Engine", "Settled", "StoreEngine"]


class Engine(
    ScheduleOperations[C],
    JobOperations[C],
    CancelOperations[C],
    ControlOperations[C],
    LimitOperations[C],
    WorkerOperations[C],
    WorkOperations[C],
    TokenOperations[C],
    SessionOperations[C],
    RetentionOperations[C],
    MetricsOperations[C],
):
    """A :class:`~andon._storage.Store` over connector ``C``; ``SqliteStore`` and
    ``PostgresStore`` are this with their connector. Its operations are grouped by who
    calls them, one module each in ``_storage/_ops/``."""

    @property
    def url(self) -> str:
        return self._db.url

    def open(self) -> None:
        self._db.open()

    def close(self) -> None:
        self._db.close()

    def upgrade(self) -> tuple[int, int]:
        """Create or upgrade the schema; returns (version before, after). See the
        connector's ``upgrade`` for what each database does and raises."""
        return self._db.upgrade()

    def watch(
        self, changes: Collection[Change] = ALL_CHANGES, *, on_stop: Callable[[CancelNotice], None] | None = None
    ) -> ChangeWatcher:
        """A watcher for ``changes`` made by any process; the caller closes it."""
        return self._db.watch(frozenset(changes), on_stop)

    def watch_async(self, changes: Collection[Change] = ALL_CHANGES) -> AsyncChanges:
        """A change feed for asyncio (not started yet); the caller closes it."""
        return self._db.watch_async(frozenset(changes))


StoreEngine: TypeAlias = Engine[Any]  # Any: either connector
"""A store as the engine serves it: the port, plus what only tests and tools use
(:meth:`Engine.claim`, :meth:`Engine.settle`, :meth:`Engine.upgrade`)."""
