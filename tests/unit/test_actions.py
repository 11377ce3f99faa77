"""What may be asked of a job in each state (``allowed_actions``) and the order of a job's
snapshots (``life_stage``), both checked against the rules they are derived from."""

from __future__ import annotations

import dataclasses

import pytest

from andon import (
    Action,
    CancelInfo,
    CancelReason,
    Checkpoint,
    InvalidTransition,
    Job,
    JobFinished,
    JobStatus,
    StopMethod,
    allowed_actions,
    life_stage,
    retries_after_fail,
)
from andon._jobs import (
    RETRYABLE_STATUSES,
    CancelOutcome,
    Outcome,
    OutcomeKind,
    decide_cancel,
    decide_resume,
    decide_settlement,
)

Q, R, C = JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELLING
OK, FAIL, X = JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED
CANCEL, FORCE, RETRY, DELETE = Action.CANCEL, Action.FAIL, Action.RETRY, Action.DELETE
RESUME = Action.RESUME
SAVED = Checkpoint(state={"next": 3}, items=3, attempt=1, at=50.0)

STOPS = [
    (CancelReason.USER, True),
    (CancelReason.TIMEOUT, True),
    (CancelReason.FORCED, True),
    (CancelReason.FORCED, False),
    (CancelReason.DELETED, True),
]


def job(status: JobStatus, stop: tuple[CancelReason, bool] | None = None, *, attempt: int = 1) -> Job:
    cancel = None if stop is None else CancelInfo(requested_at=100.0, reason=stop[0], retry=stop[1])
    return Job(id="job-1", kind="k", params={}, status=status, created_at=0.0, attempt=attempt, cancel=cancel)


TABLE: list[tuple[JobStatus, tuple[CancelReason, bool] | None, set[Action]]] = [
    (Q, None, {CANCEL, FORCE, DELETE}),
    (R, None, {CANCEL, FORCE, DELETE}),
    (C, (CancelReason.USER, True), {FORCE, DELETE}),
    (C, (CancelReason.TIMEOUT, True), {FORCE, DELETE}),
    (C, (CancelReason.FORCED, True), {CANCEL, FORCE, DELETE}),
    (C, (CancelReason.FORCED, False), {DELETE}),
    (C, (CancelReason.DELETED, True), {DELETE}),
    (OK, None, {DELETE}),
    (FAIL, None, {RETRY, DELETE}),
    (FAIL, (CancelReason.FORCED, True), {RETRY, DELETE}),
    (X, (CancelReason.USER, True), {RETRY, DELETE}),
    (X, (CancelReason.TIMEOUT, True), {RETRY, DELETE}),
]


@pytest.mark.parametrize(("status", "stop", "expected"), TABLE)
def test_allowed_actions_in_every_state(
    status: JobStatus, stop: tuple[CancelReason, bool] | None, expected: set[Action]
) -> None:
    assert allowed_actions(job(status, stop)) == expected


@pytest.mark.parametrize(("status", "stop", "expected"), TABLE)
def test_a_checkpoint_adds_resume_to_a_cancelled_or_failed_job_only(
    status: JobStatus, stop: tuple[CancelReason, bool] | None, expected: set[Action]
) -> None:
    resumable = status in (FAIL, X)
    assert allowed_actions(job(status, stop).replace(checkpoint=SAVED)) == expected | ({RESUME} if resumable else set())


@pytest.mark.parametrize("status", list(JobStatus))
@pytest.mark.parametrize("checkpoint", [None, SAVED])
def test_resume_is_allowed_exactly_when_decide_resume_accepts(status: JobStatus, checkpoint: Checkpoint | None) -> None:
    subject = job(status).replace(checkpoint=checkpoint)
    try:
        decide_resume(subject)
    except InvalidTransition:
        accepted = False
    else:
        accepted = True
    assert (RESUME in allowed_actions(subject)) == accepted


def test_every_state_is_in_the_table_above() -> None:
    assert {status for status, _, _ in TABLE} == set(JobStatus)


# Every status with every stop request it can have in force (a cancelling or cancelled job
# always has one, a failed one has one after a force-fail).
STATES = [(status, None) for status in (Q, R, OK, FAIL)] + [(status, stop) for status in (C, X, FAIL) for stop in STOPS]


@pytest.mark.parametrize(("status", "stop"), STATES)
def test_cancel_and_fail_are_allowed_exactly_when_decide_cancel_would_change_the_job(
    status: JobStatus, stop: tuple[CancelReason, bool] | None
) -> None:
    subject = job(status, stop)
    actions = allowed_actions(subject)
    assert (CANCEL in actions) == _changes(subject, CancelReason.USER, retry=True)
    # fail is offered when its strongest form (no retry) changes the job
    assert (FORCE in actions) == _changes(subject, CancelReason.FORCED, retry=False)
    assert (RETRY in actions) == (status in RETRYABLE_STATUSES)
    assert DELETE in actions


def test_action_values_are_stable() -> None:
    assert [action.value for action in Action] == ["cancel", "fail", "resume", "retry", "delete"]


def test_the_life_stage_is_the_length_of_the_history() -> None:
    """Every change a store makes adds an event in the same transaction (the store contract
    and the lifecycle machine check that stages never go back on a real store)."""
    assert life_stage(job(Q)) == 0
    assert life_stage(job(Q).replace(events_count=7)) == 7


def _changes(subject: Job, reason: CancelReason, *, retry: bool) -> bool:
    try:
        outcome, _ = decide_cancel(subject, reason, retry=retry)
    except JobFinished:
        return False
    return outcome is not CancelOutcome.ALREADY


def with_policy(base: Job, *, max_attempts: int, failures: int) -> Job:
    return dataclasses.replace(base, max_attempts=max_attempts, failures=failures, attempt=failures + 1)


@pytest.mark.parametrize(
    ("status", "stop", "max_attempts", "failures", "expected"),
    [
        (R, None, 3, 0, 2),  # the first of three attempts: two more after a force-fail
        (R, None, 3, 1, 1),
        (R, None, 3, 2, 0),  # the last attempt: it fails for good
        (R, None, 1, 0, 0),  # no retry policy
        (Q, None, 3, 0, 0),  # a queued job is failed at once, never retried
        (C, (CancelReason.PAUSED, True), 3, 0, 2),  # a force-fail replaces the pause's stop
        (C, (CancelReason.USER, True), 3, 0, 0),  # a cancel is stronger: it stays cancelled
        (C, (CancelReason.FORCED, True), 3, 0, 0),  # the same force-fail again changes nothing
        (FAIL, None, 3, 3, 0),
        (X, (CancelReason.USER, True), 3, 0, 0),
    ],
)
def test_retries_after_fail_say_what_a_force_fail_with_retry_would_do(
    status: JobStatus, stop: tuple[CancelReason, bool] | None, max_attempts: int, failures: int, expected: int
) -> None:
    subject = with_policy(job(status, stop), max_attempts=max_attempts, failures=failures)
    assert retries_after_fail(subject) == expected
    if expected:  # and the settlement agrees: the stopped attempt goes back to the queue
        stopping = dataclasses.replace(subject, status=C, cancel=CancelInfo(100.0, CancelReason.FORCED, retry=True))
        settled = decide_settlement(stopping, Outcome(OutcomeKind.STOPPED, stop_method=StopMethod.COOPERATIVE))
        assert settled.status is JobStatus.QUEUED
    elif status is R:
        stopping = dataclasses.replace(subject, status=C, cancel=CancelInfo(100.0, CancelReason.FORCED, retry=True))
        settled = decide_settlement(stopping, Outcome(OutcomeKind.STOPPED, stop_method=StopMethod.COOPERATIVE))
        assert settled.status is JobStatus.FAILED
