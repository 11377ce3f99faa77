"""The job state rules (``andon._jobs``) and job ids (``andon._ids``), as tables."""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from andon import CancelInfo, CancelReason, ErrorInfo, InvalidTransition, Job, JobFinished, JobStatus, StopMethod
from andon._ids import is_job_id, new_job_id
from andon._jobs import (
    ACTIVE_STATUSES,
    ALLOWED_TRANSITIONS,
    RESUMABLE_STATUSES,
    TERMINAL_STATUSES,
    CancelOutcome,
    Outcome,
    OutcomeKind,
    Settlement,
    decide_cancel,
    decide_settlement,
    retry_delay,
    shortest_grace,
    stop_strength,
)

Q, R, C = JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELLING
OK, FAIL, X = JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED

CANCEL_REASONS = (CancelReason.USER, CancelReason.TIMEOUT, CancelReason.DELETED, CancelReason.FORCED)


def make_job(
    status: JobStatus,
    *,
    cancel_reason: CancelReason | None = None,
    cancel_retry: bool = True,
    failures: int = 0,
    max_attempts: int = 1,
    backoff: float = 0.0,
) -> Job:
    cancel = None
    if cancel_reason is not None:
        cancel = CancelInfo(requested_at=100.0, reason=cancel_reason, by="tester", retry=cancel_retry)
    return Job(
        id="job-1",
        kind="k",
        params={},
        status=status,
        created_at=0.0,
        attempt=1 if status is not Q else 0,
        failures=failures,
        max_attempts=max_attempts,
        retry_backoff_s=backoff,
        cancel=cancel,
    )


# -- decide_cancel -------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "earlier", "reason", "outcome", "new_status"),
    [
        (Q, None, CancelReason.USER, CancelOutcome.WITHDRAWN, X),
        (Q, None, CancelReason.TIMEOUT, CancelOutcome.WITHDRAWN, X),
        (Q, None, CancelReason.DELETED, CancelOutcome.WITHDRAWN, X),
        (Q, None, CancelReason.FORCED, CancelOutcome.WITHDRAWN, FAIL),
        (R, None, CancelReason.USER, CancelOutcome.REQUESTED, C),
        (R, None, CancelReason.TIMEOUT, CancelOutcome.REQUESTED, C),
        (R, None, CancelReason.DELETED, CancelOutcome.REQUESTED, C),
        (R, None, CancelReason.FORCED, CancelOutcome.REQUESTED, C),
        (C, CancelReason.USER, CancelReason.USER, CancelOutcome.ALREADY, C),
        (C, CancelReason.TIMEOUT, CancelReason.DELETED, CancelOutcome.ESCALATED, C),
        # A retrying force-fail (the default) is weaker than a cancel; see stop_strength.
        (C, CancelReason.USER, CancelReason.FORCED, CancelOutcome.ALREADY, C),
        (C, CancelReason.TIMEOUT, CancelReason.FORCED, CancelOutcome.ALREADY, C),
        (C, CancelReason.FORCED, CancelReason.FORCED, CancelOutcome.ALREADY, C),
        (C, CancelReason.FORCED, CancelReason.USER, CancelOutcome.ESCALATED, C),
        (C, CancelReason.FORCED, CancelReason.DELETED, CancelOutcome.ESCALATED, C),
        (C, CancelReason.DELETED, CancelReason.FORCED, CancelOutcome.ALREADY, C),
        (X, CancelReason.USER, CancelReason.USER, CancelOutcome.ALREADY, X),
        (X, CancelReason.USER, CancelReason.TIMEOUT, CancelOutcome.ALREADY, X),
        (X, None, CancelReason.DELETED, CancelOutcome.ALREADY, X),
    ],
)
def test_decide_cancel(
    status: JobStatus,
    earlier: CancelReason | None,
    reason: CancelReason,
    outcome: CancelOutcome,
    new_status: JobStatus,
) -> None:
    job = make_job(status, cancel_reason=earlier)
    assert decide_cancel(job, reason) == (outcome, new_status)


REQUESTS = [(reason, retry) for reason in CANCEL_REASONS for retry in (True, False)]


@given(st.lists(st.sampled_from(REQUESTS), min_size=1, max_size=6))
def test_while_stopping_the_strongest_accepted_request_is_in_force(requests: list[tuple[CancelReason, bool]]) -> None:
    """Any sequence of stop requests on a running job: the one in force at the end is the
    first of the strongest, and the settlement it leads to is what that request asked."""
    job = make_job(R, max_attempts=3)
    for reason, retry in requests:
        outcome, status = decide_cancel(job, reason, retry=retry)
        if outcome is not CancelOutcome.ALREADY:
            job = dataclasses.replace(job, status=status, cancel=CancelInfo(100.0, reason, retry=retry))
    best = max(stop_strength(r, retry) for r, retry in requests)
    first_best = next((r, retry) for r, retry in requests if stop_strength(r, retry) == best)
    assert job.cancel is not None
    assert (job.cancel.reason, job.cancel.retry if job.cancel.reason is CancelReason.FORCED else True) == (
        first_best[0],
        first_best[1] if first_best[0] is CancelReason.FORCED else True,
    )
    ended = decide_settlement(job, Outcome(OutcomeKind.STOPPED, stop_method=StopMethod.COOPERATIVE))
    reason, retry = first_best
    if reason is CancelReason.FORCED:
        assert ended.status is (Q if retry else FAIL)
    else:
        assert ended.status is X


@pytest.mark.parametrize(
    ("status", "reason", "operation"),
    [
        (OK, CancelReason.USER, "cancel"),
        (OK, CancelReason.TIMEOUT, "cancel"),
        (OK, CancelReason.FORCED, "force-fail"),
        (FAIL, CancelReason.USER, "cancel"),
        (FAIL, CancelReason.DELETED, "cancel"),
        (FAIL, CancelReason.FORCED, "force-fail"),
        (X, CancelReason.FORCED, "force-fail"),
    ],
)
def test_decide_cancel_of_a_finished_job_raises_job_finished(
    status: JobStatus, reason: CancelReason, operation: str
) -> None:
    with pytest.raises(JobFinished) as raised:
        decide_cancel(make_job(status, cancel_reason=CancelReason.USER if status is X else None), reason)
    assert raised.value.state == status.value
    assert raised.value.operation == operation
    assert raised.value.job_id == "job-1"
    assert status.value in str(raised.value)


@pytest.mark.parametrize("status", list(JobStatus))
@pytest.mark.parametrize("earlier", [None, *CANCEL_REASONS])
@pytest.mark.parametrize("reason", CANCEL_REASONS)
def test_every_cancel_decision_is_an_allowed_transition(
    status: JobStatus, earlier: CancelReason | None, reason: CancelReason
) -> None:
    job = make_job(status, cancel_reason=earlier)
    try:
        outcome, new_status = decide_cancel(job, reason)
    except JobFinished:
        assert status in (OK, FAIL) or (status is X and reason is CancelReason.FORCED)
        return
    if outcome in (CancelOutcome.ALREADY, CancelOutcome.ESCALATED):
        assert new_status is status
    else:
        assert (status, new_status) in ALLOWED_TRANSITIONS


# -- retry_delay -----------------------------------------------------------------


def test_retry_delay_doubles_the_backoff() -> None:
    job = make_job(R, max_attempts=5, backoff=1.5)
    assert [retry_delay(job, n) for n in range(1, 6)] == [1.5, 3.0, 6.0, 12.0, None]


def test_retry_delay_with_no_retries_left_is_none() -> None:
    job = make_job(R, max_attempts=1, backoff=10.0)
    assert retry_delay(job, 1) is None
    assert retry_delay(job, 7) is None


def test_retry_delay_zero_backoff() -> None:
    job = make_job(R, max_attempts=3)
    assert retry_delay(job, 1) == 0.0
    assert retry_delay(job, 2) == 0.0
    assert retry_delay(job, 3) is None


# -- decide_settlement -------------------------------------------------------------

ERROR = ErrorInfo("RuntimeError", "boom", "Traceback ...")
SUCCEEDED = Outcome(OutcomeKind.SUCCEEDED, result={"ok": True})
FAILED = Outcome(OutcomeKind.FAILED, error=ERROR)
STOPPED = Outcome(OutcomeKind.STOPPED, stop_method=StopMethod.COOPERATIVE)
SHUTDOWN = Outcome(OutcomeKind.STOPPED, stop_method=StopMethod.COOPERATIVE, stop_reason=CancelReason.SHUTDOWN)
LOST = Outcome(OutcomeKind.LOST)


def settlement(status: JobStatus, event: str, delay: float | None = None, failure: bool = False) -> Settlement:
    return Settlement(status, event, requeue_delay=delay, counts_as_failure=failure)


@pytest.mark.parametrize(
    ("job_args", "outcome", "expected"),
    [
        # running -> succeeded
        ({"status": R}, SUCCEEDED, settlement(OK, "succeeded")),
        ({"status": R, "max_attempts": 3}, SUCCEEDED, settlement(OK, "succeeded")),
        # running -> failed: no retry left
        ({"status": R}, FAILED, settlement(FAIL, "failed", failure=True)),
        ({"status": R, "max_attempts": 3, "failures": 2}, FAILED, settlement(FAIL, "failed", failure=True)),
        # running -> queued: the retry policy allows another attempt, backoff doubles
        ({"status": R, "max_attempts": 3, "backoff": 2.0}, FAILED, settlement(Q, "retry scheduled", 2.0, True)),
        (
            {"status": R, "max_attempts": 3, "failures": 1, "backoff": 2.0},
            FAILED,
            settlement(Q, "retry scheduled", 4.0, True),
        ),
        (
            {"status": R, "max_attempts": 4, "failures": 2, "backoff": 2.0},
            FAILED,
            settlement(Q, "retry scheduled", 8.0, True),
        ),
        # running, worker lost -> failed or queued by policy
        ({"status": R}, LOST, settlement(FAIL, "worker lost", failure=True)),
        ({"status": R, "max_attempts": 2, "backoff": 1.0}, LOST, settlement(Q, "retry scheduled", 1.0, True)),
        ({"status": R, "max_attempts": 2, "failures": 1}, LOST, settlement(FAIL, "worker lost", failure=True)),
        # running, stopped without a cancel (shutdown): back to the queue, not a failure
        ({"status": R}, SHUTDOWN, settlement(Q, "requeued", 0.0)),
        ({"status": R, "max_attempts": 3, "failures": 2, "backoff": 5.0}, SHUTDOWN, settlement(Q, "requeued", 0.0)),
        ({"status": R}, STOPPED, settlement(Q, "requeued", 0.0)),
        # cancelling -> cancelled: the work stopped because of the cancel (never retried)
        ({"status": C, "cancel_reason": CancelReason.USER}, STOPPED, settlement(X, "cancelled")),
        ({"status": C, "cancel_reason": CancelReason.TIMEOUT, "max_attempts": 3}, STOPPED, settlement(X, "cancelled")),
        ({"status": C, "cancel_reason": CancelReason.DELETED}, STOPPED, settlement(X, "cancelled")),
        ({"status": C, "cancel_reason": CancelReason.USER, "max_attempts": 3}, LOST, settlement(X, "cancelled")),
        # cancelling -> succeeded: finished before it saw the cancel
        ({"status": C, "cancel_reason": CancelReason.USER}, SUCCEEDED, settlement(OK, "succeeded")),
        ({"status": C, "cancel_reason": CancelReason.FORCED}, SUCCEEDED, settlement(OK, "succeeded")),
        # cancelling -> failed: failed before it saw the cancel; never retried unless forced
        ({"status": C, "cancel_reason": CancelReason.USER}, FAILED, settlement(FAIL, "failed", failure=True)),
        (
            {"status": C, "cancel_reason": CancelReason.TIMEOUT, "max_attempts": 3},
            FAILED,
            settlement(FAIL, "failed", failure=True),
        ),
        (
            {"status": C, "cancel_reason": CancelReason.FORCED, "max_attempts": 3, "backoff": 1.0},
            FAILED,
            settlement(Q, "retry scheduled", 1.0, True),
        ),
        (
            {"status": C, "cancel_reason": CancelReason.FORCED, "cancel_retry": False, "max_attempts": 3},
            FAILED,
            settlement(FAIL, "failed", failure=True),
        ),
        # cancelling, force-fail stopped it: failed, or queued if retry is allowed and left
        ({"status": C, "cancel_reason": CancelReason.FORCED}, STOPPED, settlement(FAIL, "force-failed", failure=True)),
        (
            {"status": C, "cancel_reason": CancelReason.FORCED, "max_attempts": 3, "backoff": 3.0},
            STOPPED,
            settlement(Q, "retry scheduled", 3.0, True),
        ),
        (
            {"status": C, "cancel_reason": CancelReason.FORCED, "max_attempts": 3, "failures": 1, "backoff": 3.0},
            STOPPED,
            settlement(Q, "retry scheduled", 6.0, True),
        ),
        (
            {"status": C, "cancel_reason": CancelReason.FORCED, "cancel_retry": False, "max_attempts": 3},
            STOPPED,
            settlement(FAIL, "force-failed", failure=True),
        ),
        (
            {"status": C, "cancel_reason": CancelReason.FORCED, "max_attempts": 2, "failures": 1},
            STOPPED,
            settlement(FAIL, "force-failed", failure=True),
        ),
        (
            {"status": C, "cancel_reason": CancelReason.FORCED, "max_attempts": 2},
            LOST,
            settlement(Q, "retry scheduled", 0.0, True),
        ),
    ],
)
def test_decide_settlement(job_args: dict[str, Any], outcome: Outcome, expected: Settlement) -> None:
    assert decide_settlement(make_job(**job_args), outcome) == expected


@pytest.mark.parametrize("status", [Q, OK, FAIL, X])
@pytest.mark.parametrize("kind", list(OutcomeKind))
def test_settling_a_job_that_is_not_running_is_an_invalid_transition(status: JobStatus, kind: OutcomeKind) -> None:
    job = make_job(status, cancel_reason=CancelReason.USER if status is X else None)
    with pytest.raises(InvalidTransition) as raised:
        decide_settlement(job, Outcome(kind))
    assert raised.value.state == status.value
    assert raised.value.operation == "settle"


@pytest.mark.parametrize("status", [R, C])
@pytest.mark.parametrize("earlier", [None, *CANCEL_REASONS])
@pytest.mark.parametrize("cancel_retry", [True, False])
@pytest.mark.parametrize(("failures", "max_attempts"), [(0, 1), (0, 3), (2, 3)])
@pytest.mark.parametrize("outcome", [SUCCEEDED, FAILED, STOPPED, SHUTDOWN, LOST])
def test_every_settlement_is_an_allowed_transition(
    status: JobStatus,
    earlier: CancelReason | None,
    cancel_retry: bool,
    failures: int,
    max_attempts: int,
    outcome: Outcome,
) -> None:
    if status is C and earlier is None:
        earlier = CancelReason.USER
    job = make_job(
        status,
        cancel_reason=earlier,
        cancel_retry=cancel_retry,
        failures=failures,
        max_attempts=max_attempts,
        backoff=1.0,
    )
    decided = decide_settlement(job, outcome)
    assert (status, decided.status) in ALLOWED_TRANSITIONS
    assert (decided.requeue_delay is not None) == (decided.status is Q)
    if decided.status is Q and decided.counts_as_failure:
        assert failures + 1 < max_attempts, "a retry was scheduled with no attempt left"
    if status is C and earlier is not CancelReason.FORCED:
        assert decided.status is not Q, "a cancelled job must never be retried automatically"


def test_allowed_transitions_match_the_status_sets() -> None:
    assert set(JobStatus) == ACTIVE_STATUSES | TERMINAL_STATUSES
    assert not ACTIVE_STATUSES & TERMINAL_STATUSES
    for old, new in ALLOWED_TRANSITIONS:
        # A terminal state changes only by an explicit resume: back to the queue.
        assert old not in TERMINAL_STATUSES or (old in RESUMABLE_STATUSES and new is Q), f"{old} -> {new}"
        assert old is not new
    for status in JobStatus:
        assert status.is_terminal == (status in TERMINAL_STATUSES)
        assert status.is_active == (status in ACTIVE_STATUSES)


def test_cancel_info_stop_seconds() -> None:
    info = CancelInfo(requested_at=10.0, reason=CancelReason.USER)
    assert info.stop_seconds is None
    assert CancelInfo(requested_at=10.0, reason=CancelReason.USER, stopped_at=12.5).stop_seconds == 2.5
    assert CancelInfo(requested_at=10.0, reason=CancelReason.USER, stopped_at=9.0).stop_seconds == 0.0


# -- job ids ---------------------------------------------------------------------


def test_new_job_ids_strictly_increase() -> None:
    ids = [new_job_id() for _ in range(10_000)]
    assert all(a < b for a, b in itertools.pairwise(ids))
    assert len(set(ids)) == len(ids)


def test_new_job_ids_are_uuid7() -> None:
    for job_id in (new_job_id() for _ in range(10_000)):
        assert is_job_id(job_id)
        parsed = uuid.UUID(job_id)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == job_id


@pytest.mark.parametrize(
    "text",
    [
        "abc",
        "",
        "5f0c8c4e-6d1a-4c1e-9b7e-2a4f1d3c6b8a",  # a UUID4
        "07d44e22-eff8-11f1-95d6-02fc00000001",  # a UUID1
        "../etc",
        "../etc/passwd",
        "0" * 36,
        "urn:uuid:" + "0190a0d4-4b3e-7c4a-8a5b-0123456789ab",
        "{0190a0d4-4b3e-7c4a-8a5b-0123456789ab}",
        "0190a0d44b3e7c4a8a5b0123456789ab",
    ],
)
def test_is_job_id_rejects_junk(text: str) -> None:
    assert not is_job_id(text)


@given(st.text())
def test_is_job_id_never_raises(text: str) -> None:
    assert isinstance(is_job_id(text), bool)


# -- the grace a stop asks for ----------------------------------------------------------


GRACES = [None, 0.0, 0.5, 2.0, 30.0]


@given(st.lists(st.tuples(st.sampled_from(REQUESTS), st.sampled_from(GRACES)), min_size=1, max_size=6))
def test_while_stopping_the_shortest_grace_asked_for_holds(
    requests: list[tuple[tuple[CancelReason, bool], float | None]],
) -> None:
    """Any sequence of stop requests with graces: how long the work gets is the shortest
    grace any of them asked for (``None``: the kind's), whichever request is in force."""
    job = make_job(R, max_attempts=3)
    for (reason, retry), grace in requests:
        outcome, status = decide_cancel(job, reason, retry=retry, grace_s=grace)
        held = job.cancel.grace_s if job.cancel is not None else None
        if outcome is CancelOutcome.HURRIED:
            assert status is C
            assert job.cancel is not None
            shorter = dataclasses.replace(job.cancel, grace_s=shortest_grace(held, grace))
            job = dataclasses.replace(job, cancel=shorter)
        elif outcome is not CancelOutcome.ALREADY:
            kept = grace if job.cancel is None else shortest_grace(held, grace)
            job = dataclasses.replace(job, status=status, cancel=CancelInfo(100.0, reason, retry=retry, grace_s=kept))
        else:
            assert shortest_grace(held, grace) == held  # nothing shorter was asked
    asked = [g for _, g in requests if g is not None]
    assert job.cancel is not None
    assert job.cancel.grace_s == (min(asked) if asked else None)


def test_a_request_for_less_grace_hurries_a_stop_and_changes_nothing_else() -> None:
    job = make_job(C, cancel_reason=CancelReason.DELETED)
    assert decide_cancel(job, CancelReason.USER, grace_s=0.0) == (CancelOutcome.HURRIED, C)
    assert decide_cancel(job, CancelReason.USER) == (CancelOutcome.ALREADY, C)
    at_once = dataclasses.replace(
        job, cancel=dataclasses.replace(job.cancel or CancelInfo(0.0, CancelReason.USER), grace_s=0.0)
    )
    assert decide_cancel(at_once, CancelReason.USER, grace_s=0.0) == (CancelOutcome.ALREADY, C)
    assert decide_cancel(at_once, CancelReason.USER, grace_s=5.0) == (CancelOutcome.ALREADY, C)


@pytest.mark.parametrize(
    ("current", "asked", "held"),
    [(None, None, None), (None, 0.0, 0.0), (2.0, None, 2.0), (2.0, 0.5, 0.5), (0.5, 2.0, 0.5)],
)
def test_a_request_shortens_the_grace_never_lengthens_it(
    current: float | None, asked: float | None, held: float | None
) -> None:
    assert shortest_grace(current, asked) == held
