"""What the storage engine needs of a database: a :class:`Connector` per backend, and the
:class:`Tx` it runs each operation's named statements through."""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

from andon._output import ProgressUpdate
from andon._storage._async_watch import AsyncChanges
from andon._storage._port import Change, ChangeWatcher
from andon._storage._records import CancelNotice, JobFilter, NewJob
from andon._storage._rows import Row

__all__ = ["Args", "Connector", "IfUnsure", "Resolution", "Resolver", "Tx"]

T = TypeVar("T")
Args = Mapping[str, Any]  # Any: SQL parameter values


class IfUnsure(enum.Enum):
    """What to do when the connection broke while a commit may have been under way."""

    RETRY = "retry"
    """Run the operation again: doing it twice is the same as doing it once."""
    RAISE = "raise"
    """Report it to the caller (StorageUnavailable saying so)."""


class Resolution(enum.Enum):
    NOT_APPLIED = "not applied"
    """A resolver found that the ambiguous commit did not happen: run the operation again."""


class Tx(Protocol):
    """One transaction (or one read) of a connector, running named statements."""

    def one(self, name: str, args: Args, **fragments: str) -> Row | None:
        """Run block ``name``; the first row of its last statement, if any."""
        ...

    def all(self, name: str, args: Args, **fragments: str) -> list[Row]:
        """Run block ``name``; every row of its last statement."""
        ...

    def scan(self, name: str, args: Args, **fragments: str) -> Iterator[Row]:
        """Run block ``name``; its rows, read only as far as the caller goes."""
        ...

    def many(self, name: str, rows: Sequence[Args] | Sequence[Sequence[Any]]) -> None:
        """Run one-statement block ``name`` once for each of ``rows`` (named or positional parameters)."""
        ...

    def notify(self, changes: Collection[Change]) -> None:
        """Tell every watcher, at commit, what kind of change this transaction made."""
        ...

    def stopping(self, notices: Collection[CancelNotice]) -> None:
        """Name the attempts this transaction asks to stop, for the notification of its
        ``cancel`` change (call it before :meth:`notify`): a worker may hear of them without
        a read (PostgreSQL), or is woken at once (SQLite, ``_wake.py``). A hint only: the
        store stays the record of every cancel."""
        ...


Resolver = Callable[[Tx], T | Resolution]


class Connector(Protocol):
    """How the engine reaches one database, and the steps that database does its own way."""

    @property
    def url(self) -> str: ...

    def open(self) -> None: ...

    def close(self) -> None: ...

    def upgrade(self) -> tuple[int, int]: ...

    def read(self, body: Callable[[Tx], T]) -> T:
        """``body`` outside any transaction (each statement sees the latest commit)."""
        ...

    async def insert_jobs_async(
        self, connection: object, jobs: Sequence[NewJob], now: float, actor: str | None
    ) -> None:
        """``insert_jobs`` and its notification on the caller's async connection, in its open
        transaction, not committed (see :meth:`caller_tx`). Raises UsageError likewise."""
        ...

    def caller_tx(self, connection: object) -> AbstractContextManager[Tx]:
        """A :class:`Tx` inside the caller's own open transaction on ``connection`` (a
        connection of theirs to this database), which this does not commit: what the body
        writes exists if and only if the caller commits.

        Raises:
            UsageError: this database cannot take part in the caller's transaction, or
                ``connection`` is not usable (autocommit, a failed transaction, another database).
        """
        ...

    def write(
        self, body: Callable[[Tx], T], if_unsure: IfUnsure | Resolver[T] = IfUnsure.RAISE, *, single: bool = False
    ) -> T:
        """``body`` in one transaction; ``single``: it is one statement, which a connector
        may run on its own, committing itself. ``if_unsure``: what a connector that can lose
        a commit's outcome does then, or a resolver that looks whether the commit happened."""
        ...

    def watch(self, changes: frozenset[Change], on_stop: Callable[[CancelNotice], None] | None = None) -> ChangeWatcher:
        """A watcher of ``changes``; ``on_stop``: see :meth:`~andon._storage.Store.watch`."""
        ...

    def watch_async(self, changes: frozenset[Change]) -> AsyncChanges:
        """A change feed for one event loop (see ``_async_watch.py``), not started yet."""
        ...

    def job_filter(self, where: JobFilter, cursor: str | None, now: float = 0.0) -> tuple[str, str, dict[str, Any]]:
        """The ``{where}`` and ``{order}`` fragments of a filter, and their parameters (``now``:
        the store's time, for ``where.scheduled``)."""
        ...

    def subtree_clause(self, *, root: bool = False) -> str:
        """A ``{where}`` fragment: the row is a descendant of the job named ``origin`` (with
        ``root``: of the top-level job ``origin``, found by its root id, not by recursion)."""
        ...

    def array(self, values: Collection[str]) -> Any:  # Any: a parameter value
        """A list of strings as one parameter (``json_each`` on SQLite, an array on PostgreSQL)."""
        ...

    def lease_base(self) -> float | None:
        """The time leases are set from and judged against; ``None``: the server's clock."""
        ...

    def insert_jobs(self, tx: Tx, jobs: Sequence[NewJob], now: float, actor: str | None) -> None: ...

    def insert_items(self, tx: Tx, update: ProgressUpdate) -> None: ...

    def settle_rows(
        self, tx: Tx, rows: Sequence[dict[str, Any]], at: float, events: Sequence[dict[str, Any]]
    ) -> list[Row]:
        """Apply the settlement ``rows`` (:func:`settlement_write` columns and ``id``) and
        write their ``events`` at ``at``; the jobs after it. Each event is the ``k``-th of
        the ``n`` its job gets: its ``seq`` is the job's new events_count - n + k. A row
        may say ``active_children`` (a bool): false, the job has no active child (so the
        engine need not ask)."""
        ...

    def expired_args(self, tx: Tx) -> dict[str, Any]:
        """The parameters of the ``expired`` query (which leases are over)."""
        ...
