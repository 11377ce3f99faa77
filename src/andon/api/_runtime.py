"""What one API app owns while it serves: the client, the embedded worker (or, without one,
a lookout for dead workers), the event broadcaster and the threads that run blocking andon
calls."""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import functools
import logging
from collections.abc import Callable
from typing import Final, ParamSpec, TypeVar, final

import andon
from andon.api._auth import Authenticator
from andon.api._events import Broadcaster

__all__ = ["Runtime", "RuntimeState"]

log = logging.getLogger("andon.api")

P = ParamSpec("P")
T = TypeVar("T")

_QUICK_THREADS: Final = 8
_WAIT_THREADS: Final = 8


class RuntimeState(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPED = "stopped"


@final
class Runtime:
    """The app's background pieces; started and stopped by the app's lifespan.

    Blocking andon calls run on two fixed pools of threads: short calls on one, calls that
    wait for a job to stop (``cancel?wait=true``, ``DELETE``) on the other, so waiters
    cannot starve the rest. The pools are fixed, not Starlette's default pool, because
    that pool retires idle threads and starts new ones later, and a store may keep one
    connection per thread it has seen (the SQLite store does) for as long as it is open.
    """

    def __init__(
        self,
        client: andon.Client,
        *,
        worker: andon.Worker | None,
        token: str | None,
        stream_keepalive_s: float,
    ) -> None:
        self.client = client
        self.worker = worker
        self.auth = token is not None
        self.authenticator = Authenticator(client.store, static_token=token, call=self.call)
        """Replaced by ``create_app`` with one configured as it was asked."""
        self.stream_keepalive_s = stream_keepalive_s
        self.broadcaster = Broadcaster(client)
        self.lookout = andon.Lookout(client.store) if worker is None else None
        """Without a worker of its own (whose lookout does it), the server looks for workers
        of this machine whose process is gone, and recovers their jobs at once."""
        self.state = RuntimeState.NEW
        self._quick = concurrent.futures.ThreadPoolExecutor(_QUICK_THREADS, thread_name_prefix="andon-api")
        self._waits = concurrent.futures.ThreadPoolExecutor(_WAIT_THREADS, thread_name_prefix="andon-api-wait")
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def kinds(self) -> list[andon.JobKind]:
        return self.client.app.kinds if self.client.app is not None else []

    async def call(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a short blocking call off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._quick, functools.partial(function, *args, **kwargs))

    async def wait(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a call that may block until a job has stopped, off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._waits, functools.partial(function, *args, **kwargs))

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        if self.state is not RuntimeState.NEW:
            raise andon.LifecycleError(f"this app was {self.state.value} already; create a new app to serve again")
        self.state = RuntimeState.RUNNING
        self._loop = asyncio.get_running_loop()
        if self.worker is not None and self.worker.state is andon.WorkerState.NEW:
            await asyncio.to_thread(self.worker.start)
        await self.broadcaster.start()
        if self.lookout is not None:
            self.lookout.start()

    async def stop(self) -> None:
        """End the streams, stop the worker (running jobs get its shutdown grace, then go
        back to the queue), and let the threads go."""
        if self.state is not RuntimeState.RUNNING:
            return
        self.state = RuntimeState.STOPPED
        await self.broadcaster.stop()
        if self.lookout is not None:
            await asyncio.to_thread(self.lookout.stop)
        if self.worker is not None:
            await asyncio.to_thread(self.worker.stop)
        for pool in (self._quick, self._waits):
            pool.shutdown(wait=False, cancel_futures=True)

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` on the app's event loop, once it serves.

        Safe to call from any thread and from a signal handler: it only schedules.
        """
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(callback)

    def end_streams_soon(self) -> None:
        """End every open event stream, so the server can close its connections (see :meth:`call_soon`)."""
        self.call_soon(self.broadcaster.close_streams)

    def interrupt_worker_soon(self) -> None:
        """Cut the worker's shutdown grace short (:meth:`andon.Worker.interrupt`; see :meth:`call_soon`)."""
        if self.worker is not None:
            self.call_soon(self.worker.interrupt)
