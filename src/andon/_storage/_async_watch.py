"""Change feeds for asyncio: how an async client learns, without blocking its event loop,
that the store may have changed.

A feed counts changes (a *generation*); a waiter remembers the count it has seen and
awaits a larger one. PostgreSQL's feed is an async ``LISTEN`` connection
(``_pg_async_listener.py``); SQLite's runs the store's blocking watcher (``PRAGMA
data_version`` polling) on a thread of its own and hands each wake-up to the loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Final, Protocol, final

from andon._aio import wait_event
from andon._storage._port import ChangeWatcher

__all__ = ["AsyncChanges", "Generations", "ThreadedChanges"]

_THREAD_SLICE_S: Final = 0.5
"""How long the watcher thread waits at a time, so a close is noticed even without a change."""


class AsyncChanges(Protocol):
    """Counts the changes a store reports; awaited on one event loop."""

    @property
    def generation(self) -> int:
        """How many changes were counted so far."""
        ...

    async def start(self) -> None:
        """Start counting: no change committed after this returns is missed.

        Raises:
            StorageUnavailable: the store could not be watched.
        """
        ...

    async def wait(self, seen: int, at_most_s: float) -> int:
        """Wait until the count is past ``seen`` or ``at_most_s`` seconds passed; the count."""
        ...

    async def aclose(self) -> None: ...


@final
class Generations:
    """A change counter with an :class:`asyncio.Event` per generation; loop-side only."""

    def __init__(self) -> None:
        self.count = 0
        self._next = asyncio.Event()

    def bump(self) -> None:
        self.count += 1
        self._next.set()
        self._next = asyncio.Event()

    async def wait(self, seen: int, at_most_s: float) -> int:
        if self.count == seen:
            await wait_event(self._next, at_most_s)
        return self.count


@final
class ThreadedChanges:
    """A blocking :class:`ChangeWatcher` run on a thread of its own, each wake-up handed to
    the event loop (``call_soon_threadsafe``): the loop itself never waits on the store."""

    def __init__(self, open_watcher: Callable[[], ChangeWatcher]) -> None:
        self._open_watcher = open_watcher
        self._generations = Generations()
        self._watcher: ChangeWatcher | None = None
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()

    @property
    def generation(self) -> int:
        return self._generations.count

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        watcher = await asyncio.to_thread(self._open_watcher)
        self._watcher = watcher
        self._thread = threading.Thread(target=self._run, args=(loop, watcher), name="andon-async-watch", daemon=True)
        self._thread.start()

    async def wait(self, seen: int, at_most_s: float) -> int:
        return await self._generations.wait(seen, at_most_s)

    def _run(self, loop: asyncio.AbstractEventLoop, watcher: ChangeWatcher) -> None:
        while not self._closed.is_set():
            if watcher.wait(_THREAD_SLICE_S) and not self._closed.is_set():
                try:
                    loop.call_soon_threadsafe(self._generations.bump)
                except RuntimeError:  # the loop was closed under us: nobody waits any more
                    return

    async def aclose(self) -> None:
        self._closed.set()
        if self._watcher is not None:
            self._watcher.close()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5.0)
