"""The stop path: how a requested stop becomes work that has stopped, and how andon says so.

One cancel, from the REST call to the history, in six steps (``docs/design.md`` walks it
with the file of each):

1. **Decide.** The store records the request in one transaction: a queued job is withdrawn
   there and then (stop method ``withdrawn``); a running one becomes ``cancelling``
   (``andon._jobs.decide_cancel``).
2. **Deliver.** The worker running it hears of it (a local call through ``andon._hub`` in
   the same process, or the store's notice) and sets the attempt's token; the runtime
   pushes it to the work at once (:meth:`Execution.deliver`: a flag the cancel points read,
   the asyncio task cancelled, a message down the child's pipe).
3. **Wait a grace period.** The handler may stop by itself (``cooperative``, ``async``),
   if it listens: :func:`first_grace` gives the grace only to work that has shown it can
   hear a stop (a cancel point reached, ``ctx.cancelled`` read, an async handler that has
   awaited), or to every handler of a kind that set ``grace=`` itself. A request may ask
   for less (``cancel(..., grace=0)``): the shortest asked for holds.
4. **Escalate.** Each rung of the isolation's :data:`LADDERS` comes due on the schedule
   below (:func:`due`) and the runtime applies it (:meth:`Execution.apply`): an exception
   injected into the thread, SIGTERM then SIGKILL to the process group. Past the last
   rung of a thread there is nothing stronger: the worker stops waiting for it
   (``abandoned``).
5. **Classify.** However the work ended, :func:`outcome_of` and :func:`death_outcome` say
   how (the stop method), in this one place for every runtime, the child process included.
6. **Settle.** The worker records the outcome; the store decides the terminal state and
   writes the history (``andon._jobs.decide_settlement``).

Timing lives here as pure functions of "now": the worker's monitor and control threads ask
:func:`due` what is due (timeouts, escalation steps, fences) and act, so the whole schedule
is testable on a :class:`~andon.ManualClock` without a thread or a sleep.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import signal
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Generic, Protocol, TypeVar

from andon._cancel import Cancelled, CancelToken, StopMethod
from andon._clock import Clock
from andon._context import encode_output
from andon._jobs import ErrorInfo, Outcome, OutcomeKind
from andon._registry import Isolation, Limits
from andon._sizes import MAX_RESULT_BYTES

__all__ = [
    "LADDERS",
    "Due",
    "Execution",
    "InjectedCancel",
    "Step",
    "StopState",
    "Terminated",
    "death_outcome",
    "due",
    "ended_now",
    "error_outcome",
    "failure",
    "first_grace",
    "outcome_of",
    "stop_method_of",
    "stopped",
    "succeeded",
]

MIN_SECOND_STEP_S: Final = 0.5
"""The least time between two rungs, however short the kind's grace."""
FENCE_AT: Final = 2 / 3
"""Fraction of ``lease_s`` without a successful renewal after which an attempt is stopped."""


class InjectedCancel(Cancelled):
    """The :class:`~andon.Cancelled` that andon raised inside a handler's thread."""


class Terminated(Cancelled):
    """Raised in a job's child process by its SIGTERM handler."""


# -- the ladder ------------------------------------------------------------------------


class Step(enum.Enum):
    """A rung of the escalation ladder: what andon does to work that ignored a stop."""

    INJECT = "inject"
    """Raise ``Cancelled`` inside the handler's thread (pure-Python code only)."""
    TERMINATE = "terminate"
    """SIGTERM to the job's process group: ``Cancelled`` is raised, cleanups run."""
    KILL = "kill"
    """SIGKILL to the job's process group and every group it started."""
    ABANDON = "abandon"
    """Nothing stronger exists: stop waiting for the thread and settle the job now."""


LADDERS: Final[dict[Isolation, tuple[Step, ...]]] = {
    Isolation.THREAD: (Step.INJECT, Step.ABANDON),
    Isolation.ASYNC: (Step.INJECT, Step.ABANDON),
    Isolation.PROCESS: (Step.TERMINATE, Step.KILL),
}
"""The rungs after the first, gentle step (the token set and delivered), in order."""


class Execution(Protocol):
    """One attempt running in one runtime. ``run`` is called on the worker's slot thread."""

    def run(self) -> Outcome:
        """Run the handler and its cleanups to the end; never raises."""
        ...

    def deliver(self) -> None:
        """The attempt's token was just set: push the stop to the work at once."""
        ...

    def apply(self, step: Step) -> bool:
        """Apply a rung of the ladder (never :attr:`Step.ABANDON`, the worker's own).

        ``False`` if it could not be applied (the work is not where the step can reach
        it, or is already over): the next rung is then due at once.
        """
        ...

    def vouched(self) -> None:
        """The attempt's ``token.vouched_until`` moved: make the work see it (if it cannot already)."""
        ...


def first_grace(grace_s: float, *, always: bool, listening: bool, asked_s: float | None) -> float:
    """Seconds between a stop request and the first rung of its ladder.

    The grace period exists so that a handler can stop by itself, cleanly. Only a handler
    that listens can: one that has reached a cancel point or read ``ctx.cancelled`` in this
    attempt (``emit``, ``progress`` and ``checkpoint`` cannot tell it of a stop, so they do
    not count), or an async handler that has given its loop control at an ``await``. One
    that has not would spend the grace running on, so the first rung comes at once.

    Args:
        grace_s: the kind's grace (``@app.job(grace=...)``, else ``App(default_grace=...)``).
        always: the kind set ``grace=`` itself: every handler of it gets that grace,
            listening or not.
        listening: the work has shown it listens (``CancelToken.listening``).
        asked_s: the shortest grace the stop's requests asked for (``cancel(..., grace=0)``),
            or ``None``. A request can shorten the wait, never lengthen it.
    """
    grace = grace_s if always or listening else 0.0
    return grace if asked_s is None else min(grace, asked_s)


@dataclass(slots=True)
class StopState:
    """Where one running attempt stands on the stop path (times on the worker's clock)."""

    ladder: tuple[Step, ...]
    grace_s: float
    """The kind's grace period (see :func:`first_grace` for who gets it)."""
    timeout_at: float | None
    """When the job's own timeout comes due, or ``None``."""
    lease_ok_at: float
    """When the last claim or lease renewal that succeeded for it began."""
    requested_at: float | None = None
    """When the worker first heard of a stop (for escalation)."""
    steps_taken: int = 0
    stepped_at: float | None = None
    """When the last rung was taken (the next one is measured from it, not from the request)."""
    timeout_sent: bool = False
    fenced: bool = False
    token: CancelToken | None = None
    """The attempt's token, whose ``listening`` says whether the work listens (``None``:
    assume it does)."""
    grace_always: bool = False
    """The kind set its grace itself: it applies to work that does not listen too."""
    asked_grace_s: float | None = None
    """The shortest grace a request of this stop asked for (``None``: none asked)."""

    def next_step(self) -> Step | None:
        return self.ladder[self.steps_taken] if self.steps_taken < len(self.ladder) else None

    def grace(self) -> float:
        """The grace between rungs: the kind's, or less if a request asked for less."""
        return self.grace_s if self.asked_grace_s is None else min(self.grace_s, self.asked_grace_s)

    def next_step_at(self) -> float | None:
        """When the next rung is due: :func:`first_grace` after the request, then one grace
        (at least :data:`MIN_SECOND_STEP_S`) after the rung before was taken. ``None``
        without a request or rungs left.

        Each rung is timed from when the one before it was really taken: a monitor that ran
        late (a handler holding the GIL, a loaded machine) must not find two rungs due at
        once and abandon work it has just injected an exception into. That spacing holds
        for work that does not listen too: its first rung comes at once, the next a whole
        grace later (an injected exception lands only when a C call returns; SIGTERM runs
        the handler's cleanups).
        """
        if self.requested_at is None or self.next_step() is None:
            return None
        if self.stepped_at is None:
            listening = self.token is None or self.token.listening
            return self.requested_at + first_grace(
                self.grace_s, always=self.grace_always, listening=listening, asked_s=self.asked_grace_s
            )
        return self.stepped_at + max(self.grace(), MIN_SECOND_STEP_S)

    def ask_grace(self, grace_s: float | None) -> bool:
        """A request of this stop asked for at most ``grace_s`` seconds of grace (``None``:
        the kind's). ``True`` if that makes the next rung come sooner."""
        if grace_s is None or (self.asked_grace_s is not None and self.asked_grace_s <= grace_s):
            return False
        before = self.next_step_at()
        self.asked_grace_s = grace_s
        after = self.next_step_at()
        return after is not None and (before is None or after < before)

    def fence_at(self, lease_s: float) -> float:
        return self.lease_ok_at + lease_s * FENCE_AT

    def climb(self, apply: Callable[[Step], bool], now: float) -> list[Step]:
        """Take the rung that is due at ``now``, and the next ones at once while one cannot be applied.

        ``apply`` is the runtime's :meth:`Execution.apply`. Returns the rungs taken; the
        worker abandons the attempt when the last is :attr:`Step.ABANDON`.
        """
        taken: list[Step] = []
        while (step := self.next_step()) is not None:
            self.steps_taken += 1
            self.stepped_at = now
            taken.append(step)
            if step is Step.ABANDON or apply(step):
                break
        return taken


K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class Due(Generic[K]):
    """What is due at one moment, and how long until the next thing is."""

    timeouts: list[K]
    """Attempts past their timeout that have not been sent one."""
    steps: list[K]
    """Attempts whose next rung is due."""
    fences: list[tuple[K, float]]
    """Attempts not vouched for long enough (with the seconds since their last renewal)."""
    timeout_in: float
    """Seconds until the next timeout (at most ``tick``)."""
    stop_in: float
    """Seconds until the next rung or fence (at most ``tick``)."""


def due(now: float, attempts: Iterable[tuple[K, StopState, bool, bool]], lease_s: float, tick: float) -> Due[K]:
    """What is due at ``now`` among ``attempts``: ``(key, state, live, started)``.

    ``live``: the work still runs (its end is not being recorded); only live work is fenced
    or escalated (an attempt being settled has stopped, and while the store is away its
    fence would stay in the past). ``started``: a slot runs it (for some microseconds a
    claimed attempt waits for one); only started work is escalated.
    """
    timeouts: list[K] = []
    steps: list[K] = []
    fences: list[tuple[K, float]] = []
    next_timeout = next_stop = now + tick
    for key, state, live, started in attempts:
        if state.timeout_at is not None and not state.timeout_sent:
            if now >= state.timeout_at:
                timeouts.append(key)
            next_timeout = min(next_timeout, state.timeout_at)
        if not live:
            continue
        step_at = state.next_step_at() if started else None
        if step_at is not None:
            if now >= step_at:
                steps.append(key)
            next_stop = min(next_stop, step_at)
        if not state.fenced:
            fence_at = state.fence_at(lease_s)
            if now >= fence_at:
                fences.append((key, now - state.lease_ok_at))
            next_stop = min(next_stop, fence_at)
    return Due(timeouts, steps, fences, max(0.0, next_timeout - now), max(0.0, next_stop - now))


# -- how it ended ----------------------------------------------------------------------


def stop_method_of(exc: BaseException, token: CancelToken) -> StopMethod | None:
    """Which stop ended the work that raised ``exc``; ``None`` if it was not a stop (a failure).

    A ``Cancelled`` or ``CancelledError`` raised without a request (a handler's own) is a
    failure, not a stop.
    """
    if isinstance(exc, InjectedCancel):
        return StopMethod.INJECTED
    if isinstance(exc, Terminated):
        return StopMethod.TERMINATED
    if not token.requested:
        return None
    if isinstance(exc, asyncio.CancelledError):
        return StopMethod.ASYNC
    if isinstance(exc, Cancelled):
        return StopMethod.COOPERATIVE
    return None


def outcome_of(exc: BaseException, token: CancelToken) -> Outcome:
    """The outcome of work that raised ``exc``: stopped (and how), or failed."""
    method = stop_method_of(exc, token)
    return stopped(token, method) if method is not None else failure(exc, token)


def death_outcome(
    exitcode: int | None,
    token: CancelToken,
    signalled: StopMethod | None,
    limits: Limits | None,
    cpu_s: float | None,
) -> Outcome:
    """The outcome of a job process that died without reporting its end.

    ``signalled`` is the rung andon applied to it, if any; ``cpu_s`` its CPU time as last
    seen (to tell the kernel's enforcement of a CPU limit from any other kill).
    """
    if token.requested and signalled is not None:
        return stopped(token, signalled)
    if exitcode is None or exitcode >= 0:
        return error_outcome(ErrorInfo("ProcessDied", f"the handler's process exited with code {exitcode}"), token)
    signum = -exitcode
    if token.requested and signum in (signal.SIGTERM, signal.SIGKILL):
        return stopped(token, StopMethod.KILLED if signum == signal.SIGKILL else StopMethod.TERMINATED)
    past_cpu_limit = _cpu_limit_death(limits, signum, cpu_s)
    if past_cpu_limit is not None:
        return error_outcome(ErrorInfo("CpuLimitExceeded", past_cpu_limit), token)
    message = f"the handler's process was killed by {signal_name(signum)}"
    if limits is not None:
        message += f" (its limits: {limits.describe()})"
    return error_outcome(ErrorInfo("ProcessDied", message), token)


def _cpu_limit_death(limits: Limits | None, signum: int, cpu_s: float | None) -> str | None:
    """Describe a death by ``signum`` that was the kernel enforcing ``RLIMIT_CPU`` (SIGXCPU
    at the soft limit when the child's handler could not run, SIGKILL at the hard one)."""
    if limits is None or limits.cpu_s is None or cpu_s is None:
        return None
    if signum not in (signal.SIGKILL, signal.SIGXCPU) or cpu_s < limits.cpu_s - 0.05:
        return None
    return (
        f"the handler's process exceeded its CPU limit of {limits.cpu_s} s "
        f"(used {cpu_s:.1f} s) and was killed by {signal_name(signum)}"
    )


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def ended_now(outcome: Outcome, clock: Clock) -> Outcome:
    """Stamp the moment the work was entirely over (handler, cleanups, children, process)."""
    return dataclasses.replace(outcome, stopped_at=clock.now())


def succeeded(result: Any, clock: Clock) -> Outcome:  # Any: the handler's JSON result
    """The handler returned ``result``; a failure instead if the store could not keep it.

    A result that is not JSON (a set, NaN) or takes more than ``MAX_RESULT_BYTES`` fails
    the job with a message saying so, and nothing of it is stored: left to the store, it
    would break the final write (the job stuck ``running``) or every later read of it.
    """
    try:
        encode_output(result, "the job's result", MAX_RESULT_BYTES)
    except (TypeError, ValueError, RecursionError) as exc:  # ResultTooLarge is a ValueError
        error = ErrorInfo(type(exc).__qualname__, str(exc) or repr(exc), None)
        return Outcome(OutcomeKind.FAILED, error=error, stopped_at=clock.now())
    return Outcome(OutcomeKind.SUCCEEDED, result=result, stopped_at=clock.now())


def stopped(token: CancelToken, method: StopMethod) -> Outcome:
    token.acknowledge()
    return Outcome(
        OutcomeKind.STOPPED,
        stop_method=method,
        stop_reason=token.reason,
        acknowledged_at=token.acknowledged_at,
        stopped_at=token.clock.now(),
    )


def failure(exc: BaseException, token: CancelToken) -> Outcome:
    text = "".join(traceback.format_exception(exc))
    return error_outcome(ErrorInfo(type(exc).__qualname__, str(exc) or repr(exc), text), token)


def error_outcome(error: ErrorInfo, token: CancelToken) -> Outcome:
    return Outcome(
        OutcomeKind.FAILED,
        error=error,
        acknowledged_at=token.acknowledged_at,
        stopped_at=token.clock.now(),
    )
