"""How a handler runs, and how a stop reaches it. One module per isolation.

Each runtime gives a different guarantee (see each class's docstring):

=========  ======================================  =====================================
runtime    first step (at the cancel request)      escalation (after ``grace`` seconds)
=========  ======================================  =====================================
async      the task is cancelled at its ``await``  ``Cancelled`` injected, then abandoned
thread     cooperative: checkpoints raise          ``Cancelled`` injected, then abandoned
process    cooperative (flag sent to the child)    SIGTERM, then SIGKILL: always stops
=========  ======================================  =====================================
"""

from __future__ import annotations

import enum
from typing import Protocol

from andon._attempt import Attempt
from andon._jobs import Outcome
from andon._registry import Isolation

__all__ = ["Escalation", "Execution", "close_slot_loop", "execution_for"]


class Escalation(enum.Enum):
    """What an escalation step did."""

    NOTHING = "nothing"
    """The work had already stopped, or this runtime has no further step."""
    APPLIED = "applied"
    """A stronger stop was applied; wait another grace period for it."""
    ABANDON = "abandon"
    """Nothing stronger exists: stop waiting for the work and settle the job now."""


class Execution(Protocol):
    """One attempt running in one runtime. ``run`` is called on the worker's slot thread."""

    def run(self) -> Outcome:
        """Run the handler and its cleanups to the end; never raises."""
        ...

    def deliver(self) -> None:
        """The attempt's token was just set: push the stop to the work at once."""
        ...

    def escalate(self, step: int) -> Escalation:
        """The work ignored the stop for another grace period: apply step ``step`` (1, 2...)."""
        ...

    def vouched(self) -> None:
        """The attempt's ``token.vouched_until`` moved: make the work see it (if it cannot already)."""
        ...


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
