"""The PostgreSQL store's notifications for asyncio: one ``LISTEN`` on a psycopg
:class:`~psycopg.AsyncConnection`, read by a task on the caller's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final, final

import psycopg
from psycopg import sql

from andon._errors import StorageUnavailable
from andon._storage._async_watch import Generations
from andon._storage._pg_listener import PROBE_INTERVAL_S
from andon._storage._port import Change
from andon._storage._url import one_line

__all__ = ["AsyncListener"]

log = logging.getLogger("andon.postgres")

_RECONNECT_MAX_S: Final = 1.0


@final
class AsyncListener:
    """An :class:`~andon._storage._async_watch.AsyncChanges` fed by ``LISTEN`` on an async
    connection: a task waits on ``notifies()``, so no thread and no blocking call is involved.

    As the threaded :class:`~andon._storage._pg_listener.Listener` does, it probes its
    connection after :data:`PROBE_INTERVAL_S` of silence and counts a (re)connection as a
    change, since what was notified while nobody listened is lost.
    """

    def __init__(self, conninfo: str, channel: str, display: str, changes: frozenset[Change], timeout: float) -> None:
        self._conninfo = conninfo
        self._listen = sql.SQL("LISTEN {}").format(sql.Identifier(channel))
        self._display = display
        self._payloads = frozenset(change.value for change in changes)
        self._timeout = timeout
        self._generations = Generations()
        self._listening: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def generation(self) -> int:
        return self._generations.count

    async def start(self) -> None:
        self._listening = asyncio.Event()
        self._task = asyncio.create_task(self._run(self._listening), name="andon-pg-async-listener")
        try:
            await asyncio.wait_for(self._listening.wait(), self._timeout)
        except TimeoutError:
            await self.aclose()
            raise StorageUnavailable(f"cannot listen for changes on PostgreSQL at {self._display}") from None

    async def wait(self, seen: int, at_most_s: float) -> int:
        return await self._generations.wait(seen, at_most_s)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, listening: asyncio.Event) -> None:
        failures = 0
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
            except psycopg.Error as exc:
                failures += 1
                if failures == 1:
                    log.warning("cannot listen on %s (%s); retrying", self._display, one_line(exc))
                await asyncio.sleep(min(_RECONNECT_MAX_S, 0.05 * 2**failures))
                continue
            try:
                async with conn:
                    await conn.execute(self._listen)
                    if failures:
                        log.warning("listening on %s again", self._display)
                    failures = 0
                    self._generations.bump()  # whatever was notified while nobody listened is lost
                    listening.set()
                    await self._listen_on(conn)
            except (psycopg.Error, OSError) as exc:
                failures += 1
                log.warning("lost the async listening connection to %s (%s)", self._display, one_line(exc))

    async def _listen_on(self, conn: psycopg.AsyncConnection[object]) -> None:
        while True:
            async for notification in conn.notifies(timeout=PROBE_INTERVAL_S):
                # A payload from a newer andon may be anything: count it.
                if notification.payload in self._payloads or notification.payload not in _KNOWN:
                    self._generations.bump()
            # A second of silence (or many notifications): a probe raises on a dead connection.
            await conn.execute("SELECT 1")


_KNOWN: Final = frozenset(change.value for change in Change)
