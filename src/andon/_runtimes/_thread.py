"""Sync handlers on the worker's slot thread.

Guarantee: **cooperative, then best effort.** A cancel sets the flag that cancel points
(``ctx.check()``, ``ctx.sleep()``, ``ctx.wait()``, ``ctx.run()``) raise on, and stops the
job's child processes. After ``grace`` seconds andon raises ``Cancelled`` inside the thread;
that works for pure-Python code. A thread stuck in C code cannot be stopped: after another
grace period the job is settled ``cancelled`` with stop method ``abandoned`` and the worker
replaces the slot thread. Use ``isolation="process"`` when you need a hard stop.

While it runs, the process's switch interval is short (``andon._runtimes._switching``), so
a handler that holds the GIL does not hold up the worker's own threads: cancels still reach
the other slots and the injection comes on time.
"""

from __future__ import annotations

from typing import final

from andon._attempt import Attempt
from andon._jobs import Outcome
from andon._runtimes._inject import InjectionGuard, run_injectable
from andon._runtimes._switching import handing_off
from andon._stop import Step, ended_now, failure

__all__ = ["ThreadExecution"]


@final
class ThreadExecution:
    def __init__(self, attempt: Attempt) -> None:
        self._attempt = attempt
        self._guard = InjectionGuard()

    def run(self) -> Outcome:
        attempt = self._attempt
        token = attempt.token
        ctx = attempt.context()
        with handing_off():
            outcome = run_injectable(self._guard, token, lambda: attempt.spec.handler(ctx, **attempt.job.params))
            errors = ctx._close()
        if errors and outcome.error is None and not token.requested:
            outcome = failure(errors[0], token)
        return ended_now(outcome, attempt.clock)

    def deliver(self) -> None:
        """Nothing to push: the token is the flag cancel points read."""

    def vouched(self) -> None:
        """Nothing to push: the handler reads the attempt's own token."""

    def apply(self, step: Step) -> bool:
        return step is Step.INJECT and self._guard.stop_handler()
