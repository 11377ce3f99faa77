"""Async handlers, each on an event loop owned by the worker's slot thread.

Guarantee: **immediate at an await.** A cancel cancels the handler's task, so it stops at
the ``await`` it is suspended on (``asyncio.CancelledError``, recorded as stop method
``async``); ``ctx.check()`` raises too (``cooperative``). A handler that swallows the
cancellation or blocks the loop with sync code gets ``Cancelled`` injected into the loop's
thread after ``grace`` seconds, and is abandoned after another grace period. A handler that
has never yielded to its loop (nor reached a cancel point) does not listen: it gets no grace.
As for thread handlers, the process's switch interval is short while it runs
(``andon._runtimes._switching``).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, final

from andon._attempt import Attempt
from andon._cancel import StopMethod
from andon._context import Context
from andon._jobs import Outcome
from andon._runtimes._inject import InjectionGuard, run_injectable
from andon._runtimes._switching import handing_off
from andon._stop import Step, ended_now, failure

__all__ = ["AsyncExecution"]

_loops = threading.local()


def _slot_loop() -> asyncio.AbstractEventLoop:
    """The slot thread's own loop, reused from job to job (made anew after an injection)."""
    loop: asyncio.AbstractEventLoop | None = getattr(_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _loops.loop = loop
    return loop


@final
class AsyncExecution:
    def __init__(self, attempt: Attempt) -> None:
        self._attempt = attempt
        self._guard = InjectionGuard()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None

    async def _main(self, ctx: Context) -> Any:  # Any: the handler's JSON result
        attempt = self._attempt
        with self._lock:
            self._task = asyncio.current_task()
        # An async handler listens once it gives the loop control at an await: from then on
        # a cancel reaches it at its await (this callback runs only when the task first
        # yields; a handler that blocks its loop from the start never shows it listens).
        asyncio.get_running_loop().call_soon(attempt.token.listen)
        # A cancel that arrived before the task existed could not cancel it; look again.
        attempt.token.raise_if_requested()
        return await attempt.spec.handler(ctx, **attempt.job.params)

    def run(self) -> Outcome:
        attempt = self._attempt
        token = attempt.token
        loop = _slot_loop()
        self._loop = loop
        ctx = attempt.context()
        with handing_off():
            outcome = run_injectable(self._guard, token, lambda: loop.run_until_complete(self._main(ctx)))
            if outcome.stop_method is StopMethod.INJECTED:
                _discard(loop)
            errors = ctx._close()
        if errors and outcome.error is None and not token.requested:
            outcome = failure(errors[0], token)
        return ended_now(outcome, attempt.clock)

    def deliver(self) -> None:
        with self._lock:
            loop, task = self._loop, self._task
        if loop is not None and task is not None:
            loop.call_soon_threadsafe(task.cancel)

    def vouched(self) -> None:
        """Nothing to push: the handler reads the attempt's own token."""

    def apply(self, step: Step) -> bool:
        return step is Step.INJECT and self._guard.stop_handler()


def _discard(loop: asyncio.AbstractEventLoop) -> None:
    """An injection interrupted the loop itself; cancel what is left and close it."""
    try:
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.close()
    except Exception:
        _loops.loop = None


def close_thread_loop() -> None:
    loop: asyncio.AbstractEventLoop | None = getattr(_loops, "loop", None)
    _loops.loop = None
    if loop is not None and not loop.is_closed():
        loop.close()
