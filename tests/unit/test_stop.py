"""The stop path's schedule and classification as pure functions of "now" (``andon._stop``).

No thread, no store, no sleep: the ladder of each isolation, when each rung comes due, what
:func:`due` reports at a given moment, and how an exception or a process death is named.
"""

from __future__ import annotations

import asyncio
import signal

import pytest

from andon import Cancelled, CancelReason, ManualClock, StopMethod
from andon._cancel import CancelToken
from andon._jobs import OutcomeKind
from andon._registry import Isolation, Limits
from andon._stop import (
    FENCE_AT,
    LADDERS,
    MIN_SECOND_STEP_S,
    InjectedCancel,
    Step,
    StopState,
    Terminated,
    death_outcome,
    due,
    first_grace,
    outcome_of,
    stop_method_of,
)

LEASE_S = 30.0
TICK_S = 0.25


class Runtime:
    """A runtime that applies the rungs it is told it can (and records each it is asked for)."""

    def __init__(self, *applicable: Step) -> None:
        self.applicable = set(applicable)
        self.applied: list[Step] = []

    def apply(self, step: Step) -> bool:
        self.applied.append(step)
        return step in self.applicable


def state(isolation: Isolation = Isolation.THREAD, grace: float = 2.0, **fields: object) -> StopState:
    values: dict[str, object] = {"timeout_at": None, "lease_ok_at": 0.0, **fields}
    return StopState(LADDERS[isolation], grace, **values)  # type: ignore[arg-type]  # test data


def test_each_isolation_has_its_ladder() -> None:
    assert LADDERS[Isolation.THREAD] == (Step.INJECT, Step.ABANDON)
    assert LADDERS[Isolation.ASYNC] == (Step.INJECT, Step.ABANDON)
    assert LADDERS[Isolation.PROCESS] == (Step.TERMINATE, Step.KILL)


def test_no_rung_is_due_without_a_request() -> None:
    assert state().next_step_at() is None


@pytest.mark.parametrize("grace", [0.0, 0.1, 2.0, 30.0])
def test_rungs_come_one_grace_apart(grace: float) -> None:
    stop = state(Isolation.PROCESS, grace, requested_at=100.0)
    assert stop.next_step_at() == 100.0 + grace
    assert stop.climb(Runtime(Step.TERMINATE).apply, 100.0 + grace) == [Step.TERMINATE]
    assert stop.next_step_at() == 100.0 + grace + max(grace, MIN_SECOND_STEP_S)
    assert stop.climb(Runtime(Step.KILL).apply, 100.0 + grace + max(grace, MIN_SECOND_STEP_S)) == [Step.KILL]
    assert stop.next_step_at() is None
    assert stop.climb(Runtime(Step.KILL).apply, 200.0) == []


@pytest.mark.parametrize("late", [0.0, 0.3, 1.9, 5.0])
def test_a_late_rung_does_not_make_the_next_one_due_at_once(late: float) -> None:
    """A monitor that ran late (a handler held the GIL) gives the work its whole grace after the rung."""
    stop = state(Isolation.THREAD, 2.0, requested_at=100.0)
    assert stop.climb(Runtime(Step.INJECT).apply, 102.0 + late) == [Step.INJECT]
    assert stop.next_step_at() == 104.0 + late


def test_a_rung_that_cannot_be_applied_leads_to_the_next_at_once() -> None:
    """A thread not inside its handler cannot be injected: it is abandoned there and then."""
    runtime = Runtime()
    stop = state(Isolation.THREAD, requested_at=0.0)
    assert stop.climb(runtime.apply, 2.0) == [Step.INJECT, Step.ABANDON]
    assert runtime.applied == [Step.INJECT]  # abandoning is the worker's, not the runtime's


def test_a_process_already_over_takes_no_further_rung() -> None:
    stop = state(Isolation.PROCESS, requested_at=0.0)
    assert stop.climb(Runtime().apply, 2.0) == [Step.TERMINATE, Step.KILL]
    assert stop.next_step() is None


def test_due_reports_each_kind_of_deadline_at_its_moment() -> None:
    clock = ManualClock(start=0.0)
    timed = state(timeout_at=5.0, lease_ok_at=0.0)
    asked = state(grace=2.0, requested_at=1.0, lease_ok_at=0.0)
    entries = [("timed", timed, True, True), ("asked", asked, True, True)]

    now = due(clock.monotonic(), entries, LEASE_S, TICK_S)
    assert (now.timeouts, now.steps, now.fences) == ([], [], [])
    assert now.timeout_in == TICK_S
    assert now.stop_in == TICK_S

    clock.advance(3.0)  # the rung of "asked" (1 + 2) is due; the timeout is 2 s away
    now = due(clock.monotonic(), entries, LEASE_S, TICK_S)
    assert now.steps == ["asked"]
    assert now.timeouts == []
    assert now.timeout_in == TICK_S

    clock.advance(2.0)
    now = due(clock.monotonic(), entries, LEASE_S, 10.0)
    assert now.timeouts == ["timed"]
    timed.timeout_sent = True
    assert due(clock.monotonic(), entries, LEASE_S, TICK_S).timeouts == []  # sent once

    clock.advance(LEASE_S * FENCE_AT - 5.0)  # neither was renewed since 0
    fences = due(clock.monotonic(), entries, LEASE_S, TICK_S).fences
    assert sorted(key for key, _ in fences) == ["asked", "timed"]
    assert all(silent == pytest.approx(LEASE_S * FENCE_AT) for _, silent in fences)


def test_due_says_how_long_until_the_next_thing() -> None:
    stop = state(grace=2.0, requested_at=10.0, lease_ok_at=10.0, timeout_at=10.1)
    now = due(11.9, [("a", stop, True, True)], LEASE_S, 5.0)
    assert now.stop_in == pytest.approx(0.1)  # the first rung at 12.0
    assert now.timeouts == ["a"]


def test_work_being_settled_is_neither_escalated_nor_fenced() -> None:
    stop = state(requested_at=0.0, lease_ok_at=0.0)
    now = due(LEASE_S, [("a", stop, False, True)], LEASE_S, TICK_S)
    assert (now.steps, now.fences) == ([], [])


def test_work_no_slot_has_started_is_not_escalated() -> None:
    stop = state(requested_at=0.0)
    assert due(10.0, [("a", stop, True, False)], LEASE_S, TICK_S).steps == []


def test_a_fenced_attempt_is_fenced_once() -> None:
    stop = state(lease_ok_at=0.0, fenced=True)
    assert due(LEASE_S, [("a", stop, True, True)], LEASE_S, TICK_S).fences == []


def requested(reason: CancelReason = CancelReason.USER) -> CancelToken:
    token = CancelToken(ManualClock())
    token.request(reason)
    return token


@pytest.mark.parametrize(
    ("exc", "asked", "method"),
    [
        (InjectedCancel(), True, StopMethod.INJECTED),
        (Terminated(), True, StopMethod.TERMINATED),
        (Cancelled(CancelReason.USER), True, StopMethod.COOPERATIVE),
        (asyncio.CancelledError(), True, StopMethod.ASYNC),
        (Cancelled(CancelReason.USER), False, None),  # a handler's own Cancelled is a failure
        (asyncio.CancelledError(), False, None),
        (ValueError("boom"), True, None),
        (KeyboardInterrupt(), True, None),
    ],
)
def test_how_an_exception_ended_the_work(exc: BaseException, asked: bool, method: StopMethod | None) -> None:
    token = requested() if asked else CancelToken(ManualClock())
    assert stop_method_of(exc, token) is method
    outcome = outcome_of(exc, token)
    assert outcome.kind is (OutcomeKind.STOPPED if method else OutcomeKind.FAILED)
    assert outcome.stopped_at == token.clock.now()


def test_a_stop_records_when_it_was_acknowledged_on_the_tokens_clock() -> None:
    clock = ManualClock(start=500.0)
    token = CancelToken(clock)
    token.request(CancelReason.TIMEOUT)
    clock.advance(1.5)
    outcome = outcome_of(Cancelled(CancelReason.TIMEOUT), token)
    assert outcome.acknowledged_at == 501.5
    assert outcome.stop_reason is CancelReason.TIMEOUT


@pytest.mark.parametrize(
    ("exitcode", "asked", "signalled", "method", "error"),
    [
        (-signal.SIGKILL, True, StopMethod.KILLED, StopMethod.KILLED, None),
        (-signal.SIGTERM, True, StopMethod.TERMINATED, StopMethod.TERMINATED, None),
        (-signal.SIGKILL, True, None, StopMethod.KILLED, None),  # killed by someone else, during a stop
        (-signal.SIGKILL, False, None, None, "ProcessDied"),
        (1, False, None, None, "ProcessDied"),
        (0, True, None, None, "ProcessDied"),  # exited without reporting, not by a stop
    ],
)
def test_how_a_process_death_is_named(
    exitcode: int, asked: bool, signalled: StopMethod | None, method: StopMethod | None, error: str | None
) -> None:
    token = requested() if asked else CancelToken(ManualClock())
    outcome = death_outcome(exitcode, token, signalled, None, None)
    assert outcome.stop_method is method
    assert (outcome.error.type if outcome.error else None) == error


def test_a_death_at_the_cpu_limit_says_so() -> None:
    limits = Limits(cpu_s=2)
    outcome = death_outcome(-signal.SIGKILL, CancelToken(), None, limits, 2.4)
    assert outcome.error is not None
    assert outcome.error.type == "CpuLimitExceeded"
    outcome = death_outcome(-signal.SIGKILL, CancelToken(), None, limits, 0.3)
    assert outcome.error is not None
    assert outcome.error.type == "ProcessDied"
    assert "its limits" in outcome.error.message


# -- who gets the grace ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("always", "listening", "asked", "grace"),
    [
        (False, True, None, 2.0),  # listens: the kind's grace
        (False, False, None, 0.0),  # never listened: the first rung at once
        (True, False, None, 2.0),  # the kind set grace itself: for everyone
        (True, True, None, 2.0),
        (False, True, 0.0, 0.0),  # a request for less (cancel --now)
        (True, False, 0.5, 0.5),
        (False, True, 30.0, 2.0),  # a request never lengthens it
        (False, False, 30.0, 0.0),
    ],
)
def test_first_grace(always: bool, listening: bool, asked: float | None, grace: float) -> None:
    assert first_grace(2.0, always=always, listening=listening, asked_s=asked) == grace


def listening_state(listening: bool, **fields: object) -> StopState:
    token = CancelToken(ManualClock())
    if listening:
        token.listen()
    return state(Isolation.THREAD, 2.0, token=token, **fields)


def test_work_that_never_listened_gets_its_first_rung_at_the_request_and_the_next_a_grace_later() -> None:
    stop = listening_state(False, requested_at=100.0)
    assert stop.next_step_at() == 100.0
    assert due(100.0, [("a", stop, True, True)], LEASE_S, TICK_S).steps == ["a"]
    assert stop.climb(Runtime(Step.INJECT).apply, 100.0) == [Step.INJECT]
    assert stop.next_step_at() == 102.0  # the injection may land only when a C call returns


def test_work_that_starts_listening_gets_the_grace_from_then_on() -> None:
    stop = listening_state(False, requested_at=100.0)
    assert stop.token is not None
    stop.token.listen()
    assert stop.next_step_at() == 102.0


def test_an_explicit_grace_holds_for_work_that_never_listened() -> None:
    stop = listening_state(False, requested_at=100.0, grace_always=True)
    assert stop.next_step_at() == 102.0


def test_a_request_for_less_grace_brings_the_next_rung_forward() -> None:
    stop = listening_state(True, requested_at=100.0)
    assert stop.ask_grace(None) is False
    assert stop.ask_grace(5.0) is False  # longer than the kind's: nothing changes
    assert stop.next_step_at() == 102.0
    assert stop.ask_grace(0.0) is True
    assert stop.next_step_at() == 100.0
    assert stop.ask_grace(0.0) is False  # asked already
    stop.climb(Runtime(Step.INJECT).apply, 100.0)
    assert stop.next_step_at() == 100.0 + MIN_SECOND_STEP_S  # rungs keep their least spacing


def test_a_grace_asked_before_the_request_is_kept_for_it() -> None:
    stop = listening_state(True)
    assert stop.ask_grace(0.0) is False  # nothing is due yet
    stop.requested_at = 50.0
    assert stop.next_step_at() == 50.0
