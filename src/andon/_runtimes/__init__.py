"""How a handler runs, and how each step of a stop reaches it. One module per isolation.

When each step comes and what follows it is decided in ``andon._stop`` (the ladder per
isolation); a runtime only applies a step. Each gives a different guarantee (see each
class's docstring):

=========  ======================================  =====================================
runtime    first step (at the cancel request)      escalation (after ``grace`` seconds)
=========  ======================================  =====================================
async      the task is cancelled at its ``await``  ``Cancelled`` injected, then abandoned
thread     cooperative: cancel points raise    ``Cancelled`` injected, then abandoned
process    cooperative (flag sent to the child)    SIGTERM, then SIGKILL: always stops
=========  ======================================  =====================================

The async and thread runtimes run handlers on the worker's own threads; while they do, the
process's switch interval is short (``andon._runtimes._switching``), so a handler that
holds the GIL does not delay the worker's other threads (cancels, escalation, other slots).
"""

from __future__ import annotations

from andon._attempt import Attempt
from andon._registry import Isolation
from andon._stop import Execution

__all__ = ["close_slot_loop", "execution_for"]


def execution_for(attempt: Attempt) -> Execution:
    isolation = attempt.spec.isolation
    if isolation is Isolation.PROCESS:
        from andon._runtimes._process import ProcessExecution

        return ProcessExecution(attempt)
    if isolation is Isolation.ASYNC:
        from andon._runtimes._asyncio import AsyncExecution

        return AsyncExecution(attempt)
    from andon._runtimes._thread import ThreadExecution

    return ThreadExecution(attempt)


def close_slot_loop() -> None:
    """Close the event loop async handlers used on this slot thread, if any (thread exit)."""
    from andon._runtimes._asyncio import close_thread_loop

    close_thread_loop()
