"""Job records, states and the rules for moving between states (pure functions).

Every store calls these functions inside its own transaction, so the rules live in one
place and the SQLite and PostgreSQL stores cannot disagree about them.

State machine (``*`` marks terminal states; a terminal state changes only by an explicit
resume, back to the queue)::

    from        to            trigger
    ----------  ------------  --------------------------------------------------------
    queued      running       a worker claims the job
    queued      cancelled*    cancel requested before it started (withdrawn; never runs)
    queued      failed*       force-fail before it started
    running     succeeded*    the handler returned
    running     failed*       the handler raised, no retry left / worker lost, no retry
    running     queued        the handler raised and the retry policy allows another
                              attempt; or the worker shut down or lost its lease (the
                              attempt goes on from the last checkpoint, or starts over), or
                              was lost and the policy allows another attempt
    running     cancelling    cancel requested (user, timeout, deleted, forced, paused)
    cancelling  cancelled*    the work stopped because of the cancel
    cancelling  succeeded*    the work finished before it saw the cancel
    cancelling  failed*       the work failed before it saw the cancel; or a force-fail
                              stopped it and no retry is left
    cancelling  queued        a force-fail stopped it and the retry policy allows more; or a
                              pause of its kind (``--now``) stopped it
    cancelled   queued        resumed (``andon resume``): the next attempt of the same job
    failed      queued        goes on from its last checkpoint (:func:`decide_resume`)

A cancel of a ``cancelling`` or ``cancelled`` job is a no-op that reports the current state;
a cancel of a ``succeeded`` or ``failed`` job raises :class:`~andon.JobFinished`.
A cancelled job is never retried automatically (only ``andon resume`` queues it again).

What may be asked of a job in each state (:func:`allowed_actions`; ``-`` marks an action that
would be refused or would change nothing)::

    status      cancel  fail  resume  retry  delete
    ----------  ------  ----  ------  -----  ------
    queued      yes     yes   -       -      yes
    running     yes     yes   -       -      yes
    cancelling  (1)     (2)   -       -      yes
    succeeded   -       -     -       -      yes
    failed      -       -     (3)     yes    yes
    cancelled   -       -     (3)     yes    yes

(1) only while the stop in force is a force-fail that allows a retry (a cancel is stronger);
(2) unless the stop in force is already a force-fail without retry, or a delete;
(3) only when the job has a checkpoint to go on from (:func:`decide_resume`).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any, Final

from andon._cancel import CancelReason, StopMethod
from andon._errors import InvalidTransition, JobFinished
from andon._sizes import MAX_ERROR_MESSAGE_CHARS, MAX_TRACEBACK_CHARS, clipped_text

__all__ = [
    "ACTIVE_STATUSES",
    "FAILING_REASONS",
    "RESUMABLE_STATUSES",
    "RETRYABLE_STATUSES",
    "TERMINAL_STATUSES",
    "UNDERWAY_STATUSES",
    "Action",
    "CancelInfo",
    "CancelOutcome",
    "Checkpoint",
    "ErrorInfo",
    "Job",
    "JobEvent",
    "JobStatus",
    "Outcome",
    "OutcomeKind",
    "ResultItem",
    "Settlement",
    "allowed_actions",
    "decide_cancel",
    "decide_resume",
    "decide_settlement",
    "life_stage",
    "retry_delay",
    "shortest_grace",
    "stop_strength",
]


class JobStatus(enum.StrEnum):
    """Where a job is in its life. Values are stored and sent over the API: keep them stable."""

    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def is_active(self) -> bool:
        """Not yet ended: queued, running or cancelling."""
        return self in ACTIVE_STATUSES

    @property
    def is_underway(self) -> bool:
        """Claimed by a worker and not yet ended: running or cancelling."""
        return self in UNDERWAY_STATUSES


TERMINAL_STATUSES: Final = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE_STATUSES: Final = frozenset({JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELLING})
UNDERWAY_STATUSES: Final = frozenset({JobStatus.RUNNING, JobStatus.CANCELLING})
RETRYABLE_STATUSES: Final = frozenset({JobStatus.FAILED, JobStatus.CANCELLED})
"""A job in one of these states may be submitted again as a new job (``retry_of`` the old one)."""
RESUMABLE_STATUSES: Final = RETRYABLE_STATUSES
FAILING_REASONS: Final = frozenset({CancelReason.FORCED, CancelReason.CHILD_FAILED})
"""Stop requests that end the job ``failed`` rather than ``cancelled``."""
"""A job in one of these states with a checkpoint may be resumed: a new attempt of the same job."""

ALLOWED_TRANSITIONS: Final[frozenset[tuple[JobStatus, JobStatus]]] = frozenset(
    {
        (JobStatus.QUEUED, JobStatus.RUNNING),
        (JobStatus.QUEUED, JobStatus.CANCELLED),
        (JobStatus.QUEUED, JobStatus.FAILED),
        (JobStatus.RUNNING, JobStatus.SUCCEEDED),
        (JobStatus.RUNNING, JobStatus.FAILED),
        (JobStatus.RUNNING, JobStatus.QUEUED),
        (JobStatus.RUNNING, JobStatus.CANCELLING),
        (JobStatus.CANCELLING, JobStatus.CANCELLED),
        (JobStatus.CANCELLING, JobStatus.SUCCEEDED),
        (JobStatus.CANCELLING, JobStatus.FAILED),
        (JobStatus.CANCELLING, JobStatus.QUEUED),
        # A queued job (requeued) whose children from an earlier attempt still run, cancelled:
        # it waits in cancelling until they have stopped (Job.awaiting).
        (JobStatus.QUEUED, JobStatus.CANCELLING),
        # An explicit resume only (decide_resume): a new attempt from the last checkpoint.
        (JobStatus.CANCELLED, JobStatus.QUEUED),
        (JobStatus.FAILED, JobStatus.QUEUED),
    }
)


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Why an attempt failed.

    Made storable on construction: the text of any exception a handler raises (NUL
    characters, lone surrogates, a 100 MB message) becomes text every store can keep, cut
    to ``MAX_ERROR_MESSAGE_CHARS`` / ``MAX_TRACEBACK_CHARS`` with the cut marked.
    """

    type: str
    message: str
    traceback: str | None = None

    def __post_init__(self) -> None:
        # A frozen dataclass sets its fields once; these replace them before anyone sees them.
        object.__setattr__(self, "type", clipped_text(self.type, 512))
        object.__setattr__(self, "message", clipped_text(self.message, MAX_ERROR_MESSAGE_CHARS))
        if self.traceback is not None:
            object.__setattr__(self, "traceback", clipped_text(self.traceback, MAX_TRACEBACK_CHARS))


@dataclass(frozen=True, slots=True)
class CancelInfo:
    """The life of one cancel: who asked and why, when the work saw it, when and how it stopped."""

    requested_at: float
    reason: CancelReason
    by: str | None = None
    message: str | None = None
    retry: bool = True
    acknowledged_at: float | None = None
    stopped_at: float | None = None
    stop_method: StopMethod | None = None
    origin: str | None = None
    """The job whose cancel reached this one: an ancestor that was cancelled (reason
    ``parent_cancelled``), a parent that ended (``parent_ended``), the job that superseded it
    (``superseded``); ``None`` when it was asked of this job itself."""
    grace_s: float | None = None
    """The shortest grace its requests asked for (``cancel(..., grace=0)``: stop now), or
    ``None`` for the kind's own grace (``andon._stop.first_grace``)."""

    @property
    def stop_seconds(self) -> float | None:
        """Seconds from the request to the work having stopped, once it has."""
        if self.stopped_at is None:
            return None
        return max(0.0, self.stopped_at - self.requested_at)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The last state a handler stored with ``ctx.checkpoint``, and where it stands.

    Stored in the same transaction as every item emitted before it, so it is never ahead of
    or behind the stored items: ``items`` of them came before it (the next attempt that
    resumes from it numbers its first item ``items``).
    """

    state: Any  # the JSON value the handler stored
    items: int
    attempt: int
    at: float


@dataclass(frozen=True, slots=True)
class Job:
    """A snapshot of one job as the store holds it."""

    id: str
    kind: str
    params: dict[str, Any]
    status: JobStatus
    created_at: float
    attempt: int = 0
    failures: int = 0
    max_attempts: int = 1
    retry_backoff_s: float = 0.0
    priority: int = 0
    timeout_s: float | None = None
    available_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    worker_id: str | None = None
    """The worker that holds the job while it runs, and that ran its last attempt once it
    ended (or was queued again); ``None`` only for a job that never started. Whether a worker
    holds it now is ``status`` (running or cancelling), never this field."""
    lease_expires_at: float | None = None
    progress_done: float | None = None
    progress_total: float | None = None
    progress_message: str | None = None
    items_count: int = 0
    result: Any = None  # any JSON value the handler returned
    error: ErrorInfo | None = None
    cancel: CancelInfo | None = None
    checkpoint: Checkpoint | None = None
    events_count: int = 0
    """How many entries the job's history has (see :func:`life_stage`)."""
    resume: bool = False
    """The next attempt starts from :attr:`checkpoint` (set by a resume, or by a requeue
    after a shutdown, a lost worker or lease, a pause, or a failure under ``Retry(resume=True)``)."""
    retry_resume: bool = False
    """The kind's ``Retry(resume=True)``, as it was when the job was submitted."""
    retry_of: str | None = None
    owner: str | None = None
    """Who submitted it (a token's name); ``None`` when made without a token."""
    parent_id: str | None = None
    """The job whose handler submitted it with ``ctx.submit``; ``None`` for a top-level job."""
    root_id: str | None = None
    """The top-level job of its tree; ``None`` for a top-level job (its own root)."""
    detached: bool = False
    """Left running when its parent ends (otherwise it is cancelled then, reason ``parent_ended``)."""
    fail_parent: bool = False
    """Its failure stops its parent as failed, and with it its siblings (fail fast)."""
    key: str | None = None
    """Its business key: no two active jobs of one kind share one."""
    awaiting: JobStatus | None = None
    """Set while a ``cancelling`` job's own work has stopped but some of its descendants have
    not: the status it takes once the last of them has (a cancel means the tree stopped)."""
    schedule: str | None = None
    """The schedule whose tick made it (``@app.periodic``, ``andon schedules``); ``None`` otherwise."""
    pruned_at: float | None = None
    """When its params, result, items and history were pruned (``andon prune``): what is left
    is a tombstone (id, kind, final state, times, its cancel record)."""

    @property
    def due_at(self) -> float | None:
        """When a queued job may start (its ``run_at``, or the end of a retry's backoff);
        ``None`` once it has been claimed or ended. A queued job whose ``due_at`` is still
        ahead is *scheduled*: no worker starts it before then, and a cancel withdraws it."""
        return self.available_at if self.status is JobStatus.QUEUED else None

    @property
    def tree_root(self) -> str:
        """The id of the top-level job of its tree (its own id for a top-level job)."""
        return self.root_id or self.id

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @property
    def cancel_requested(self) -> bool:
        return self.cancel is not None

    def replace(self, **changes: Any) -> Job:  # Any: mirrors dataclasses.replace
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One entry of a job's history: a transition or a cancel request, with time and actor."""

    job_id: str
    seq: int
    at: float
    type: str
    from_status: JobStatus | None
    to_status: JobStatus | None
    actor: str | None = None
    reason: str | None = None
    message: str | None = None
    attempt: int = 0


@dataclass(frozen=True, slots=True)
class ResultItem:
    """One partial result a handler emitted with ``ctx.emit``."""

    job_id: str
    seq: int
    attempt: int
    at: float
    data: Any  # any JSON value the handler emitted


class CancelOutcome(enum.StrEnum):
    """What a cancel request did."""

    WITHDRAWN = "withdrawn"
    """The job was queued; it is now terminal and will never start."""
    REQUESTED = "requested"
    """The job was running; it is now ``cancelling`` until the work stops."""
    ESCALATED = "escalated"
    """A stronger stop request replaced the one in force of a ``cancelling`` job."""
    HURRIED = "hurried"
    """A request for a shorter grace (``cancel(..., grace=0)``) brought the stop of a
    ``cancelling`` job forward; the request in force stays."""
    ALREADY = "already"
    """Nothing changed: the job was already cancelling or cancelled."""


def decide_cancel(
    job: Job, reason: CancelReason, *, retry: bool = True, grace_s: float | None = None
) -> tuple[CancelOutcome, JobStatus]:
    """Decide what a stop request does to ``job``; returns the outcome and the new status.

    ``retry`` matters only for a force-fail: whether the retry policy may run the job again.
    While a stop is in flight (``cancelling``) a stronger request replaces the one in force
    (:data:`CancelOutcome.ESCALATED`), a weaker or equal one changes nothing, so the job ends
    as the strongest request that was accepted asked (see :func:`stop_strength`).

    ``grace_s`` is the most grace the request allows the work (``None``: the kind's). How
    long the work gets is apart from how it ends: the shortest grace any accepted request
    asked for holds (:func:`shortest_grace`), so a request that changes nothing else but asks
    for less grace brings the stop forward (:data:`CancelOutcome.HURRIED`).

    Raises:
        JobFinished: the job already succeeded or failed (or is cancelled and this is a
            force-fail, which cannot change a terminal state).
    """
    operation = "force-fail" if reason is CancelReason.FORCED else "cancel"
    status = job.status
    if status is JobStatus.QUEUED:
        final = JobStatus.FAILED if reason in FAILING_REASONS else JobStatus.CANCELLED
        return CancelOutcome.WITHDRAWN, final
    if status is JobStatus.RUNNING:
        return CancelOutcome.REQUESTED, JobStatus.CANCELLING
    if status is JobStatus.CANCELLING:
        current = job.cancel
        if current is None or stop_strength(reason, retry) > stop_strength(current.reason, current.retry):
            return CancelOutcome.ESCALATED, status
        if shortest_grace(current.grace_s, grace_s) != current.grace_s and job.awaiting is None:
            return CancelOutcome.HURRIED, status
        return CancelOutcome.ALREADY, status
    if status is JobStatus.CANCELLED and reason is not CancelReason.FORCED:
        return CancelOutcome.ALREADY, status
    raise JobFinished(job.id, status.value, operation)


def shortest_grace(current: float | None, asked: float | None) -> float | None:
    """The grace of a stop once a request asking for ``asked`` joins it (``None``: the kind's).

    A request can shorten the wait, never lengthen it: the kind's grace is what its author
    judged the handler needs at most.
    """
    if asked is None:
        return current
    return asked if current is None else min(current, asked)


def stop_strength(reason: CancelReason, retry: bool) -> int:
    """How strong a stop request is; a stronger one replaces a weaker one in flight.

    ==========================  ========  ==================================================
    request                     strength  the job ends
    ==========================  ========  ==================================================
    pause of its kind (--now)   0         queued again, to resume when the kind is unpaused
    force-fail with retry       1         failed, or queued again if its policy allows
    cancel (user, timeout...)   2         cancelled (never retried)
    force-fail without retry    3         failed (never retried)
    a fail-fast child failed    3         failed (never retried)
    delete                      4         gone
    ==========================  ========  ==================================================

    So a cancel, or a force-fail that says no retry, answered while a retrying force-fail is
    in flight is never overruled by that force-fail's retry; and nothing overrules a delete.
    """
    if reason is CancelReason.DELETED:
        return 4
    if reason is CancelReason.PAUSED:
        return 0
    if reason is CancelReason.FORCED:
        return 1 if retry else 3
    if reason is CancelReason.CHILD_FAILED:
        return 3
    return 2


class Action(enum.StrEnum):
    """What may be asked of a job (see :func:`allowed_actions`). Values are sent over the API: keep them stable."""

    CANCEL = "cancel"
    """Stop it as cancelled: withdrawn if it is queued, asked to stop if it runs."""
    FAIL = "fail"
    """Force-fail it: stop it and record it as failed (reason ``forced``)."""
    RESUME = "resume"
    """Queue it again as a new attempt of the same job, from its last checkpoint."""
    RETRY = "retry"
    """Submit it again, as a new job."""
    DELETE = "delete"
    """Stop it if it is active, then delete it with its history and results."""


def allowed_actions(job: Job) -> frozenset[Action]:
    """The actions that would change ``job`` now (the table in this module's docstring).

    An action left out would be refused (a finished job cannot be cancelled) or would change
    nothing (a second cancel while the first is in force). ``fail`` is in when a force-fail
    without retry would change the job; one that allows a retry is weaker and may not (see
    :func:`stop_strength`). Who may act on a job is not decided here.
    """
    allowed = {Action.DELETE}
    if _stop_changes(job, CancelReason.USER, retry=True):
        allowed.add(Action.CANCEL)
    if _stop_changes(job, CancelReason.FORCED, retry=False):
        allowed.add(Action.FAIL)
    if job.status in RETRYABLE_STATUSES and job.pruned_at is None:
        allowed.add(Action.RETRY)
    if job.status in RESUMABLE_STATUSES and job.checkpoint is not None:
        allowed.add(Action.RESUME)
    return frozenset(allowed)


def retries_after_fail(job: Job) -> int:
    """How many more attempts the retry policy gives ``job`` if it is force-failed now with
    retry allowed; 0: such a force-fail ends it ``failed`` for good (a queued job is failed at
    once, a running one on its last attempt fails), or would change nothing (a stronger stop
    is in force). So a shell can say what "Force fail" will really do before it is pressed."""
    try:
        outcome, _ = decide_cancel(job, CancelReason.FORCED, retry=True)
    except JobFinished:
        return 0
    if outcome not in (CancelOutcome.REQUESTED, CancelOutcome.ESCALATED):
        return 0
    if retry_delay(job, job.failures + 1) is None:
        return 0
    return job.max_attempts - job.failures - 1


def _stop_changes(job: Job, reason: CancelReason, *, retry: bool) -> bool:
    try:
        outcome, _ = decide_cancel(job, reason, retry=retry)
    except JobFinished:
        return False
    return outcome is not CancelOutcome.ALREADY


def life_stage(job: Job) -> int:
    """How far ``job`` has come in its life: a later snapshot of a job never has a smaller one.

    It is the length of the job's history (:attr:`Job.events_count`): every change of state,
    every stop request and every resume adds an entry, in the same transaction. So a client
    that gets snapshots of one job from several places (a listing, the answer to a request,
    the event stream) in any order keeps the one with the larger stage. Two snapshots of
    equal stage differ only in progress, items or a checkpoint.
    """
    return job.events_count


class OutcomeKind(enum.StrEnum):
    """How an attempt ended, as seen by the worker."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"
    """The work stopped because it was asked to (any :class:`StopMethod`)."""
    LOST = "lost"
    """The worker disappeared (its lease expired); found by recovery, not by a worker."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a worker reports when an attempt ends."""

    kind: OutcomeKind
    result: Any = None  # the handler's JSON return value
    error: ErrorInfo | None = None
    stop_method: StopMethod | None = None
    stop_reason: CancelReason | None = None
    """The reason the worker stopped the work for (shutdown is known only to the worker)."""
    acknowledged_at: float | None = None
    stopped_at: float | None = None


@dataclass(frozen=True, slots=True)
class Settlement:
    """What the store writes when an attempt ends."""

    status: JobStatus
    event: str
    requeue_delay: float | None = None
    """Seconds until the requeued job may be claimed again (``None`` unless ``queued``)."""
    counts_as_failure: bool = False
    resume: bool = False
    """Requeued to go on from the job's last checkpoint (what it emitted after it is dropped)."""


def retry_delay(job: Job, failures: int) -> float | None:
    """Seconds until the next attempt after ``failures`` failures, or ``None`` for no retry."""
    if failures >= job.max_attempts:
        return None
    return float(job.retry_backoff_s * 2 ** max(0, failures - 1))


def decide_settlement(job: Job, outcome: Outcome) -> Settlement:
    """Decide the one state an attempt ends in; called by stores inside their transaction.

    Raises:
        InvalidTransition: the job is not running (it was already settled).
    """
    status = job.status
    if not status.is_underway:
        raise InvalidTransition(job.id, status.value, "settle")
    kind = outcome.kind
    cancel = job.cancel if status is JobStatus.CANCELLING else None
    if kind is OutcomeKind.SUCCEEDED:
        return Settlement(JobStatus.SUCCEEDED, "succeeded")
    if cancel is not None and cancel.reason is CancelReason.PAUSED and kind is not OutcomeKind.FAILED:
        # Stopped for a pause of its kind: back to the queue, to go on where it left off.
        return _requeued(job, "requeued (paused)")
    if cancel is not None and kind in (OutcomeKind.STOPPED, OutcomeKind.LOST):
        if cancel.reason is CancelReason.FORCED:
            return _failure(job, "force-failed", allow_retry=cancel.retry)
        if cancel.reason is CancelReason.CHILD_FAILED:
            return _failure(job, "child failed", allow_retry=False)
        return Settlement(JobStatus.CANCELLED, "cancelled")
    if cancel is not None and kind is OutcomeKind.FAILED and cancel.reason is not CancelReason.PAUSED:
        # The work failed before it saw the cancel: a failure, but never retried, because
        # someone asked for this job to stop (unless it was a force-fail, which is a failure
        # on purpose and keeps its retry rules).
        forced = cancel.reason is CancelReason.FORCED
        return _failure(job, "failed", allow_retry=forced and cancel.retry)
    if kind is OutcomeKind.FAILED:
        return _failure(job, "failed", allow_retry=True)
    if kind is OutcomeKind.LOST:
        return _failure(job, "worker lost", allow_retry=True, resume=True)
    # Stopped while still ``running`` in the store: the worker stopped it on its own
    # (shutdown or lost lease). The attempt goes on later and is not a failure.
    return _requeued(job, "requeued")


def _requeued(job: Job, event: str) -> Settlement:
    return Settlement(JobStatus.QUEUED, event, requeue_delay=0.0, resume=job.checkpoint is not None)


def _failure(job: Job, event: str, *, allow_retry: bool, resume: bool = False) -> Settlement:
    delay = retry_delay(job, job.failures + 1) if allow_retry else None
    if delay is None:
        return Settlement(JobStatus.FAILED, event, counts_as_failure=True)
    resume = (resume or job.retry_resume) and job.checkpoint is not None
    return Settlement(JobStatus.QUEUED, "retry scheduled", requeue_delay=delay, counts_as_failure=True, resume=resume)


def decide_resume(job: Job, parent_status: JobStatus | None = None) -> Checkpoint:
    """Check that ``job`` can be resumed; returns the checkpoint its next attempt starts from.

    ``parent_status``: its parent's status, for a child that is not detached (``None``: the
    parent is gone). Such a child runs only under a running parent: resumed after its parent
    stopped or ended, it would run on as work nobody waits for, beyond the parent's cancel.

    Raises:
        InvalidTransition: the job is not cancelled or failed, it has no checkpoint, or it
            is a child whose parent is not running.
    """
    if job.status not in RESUMABLE_STATUSES:
        message = f"job {job.id} is {job.status.value}; only a cancelled or failed job can be resumed"
        raise InvalidTransition(job.id, job.status.value, "resume", message)
    if job.checkpoint is None:
        message = f"job {job.id} has no checkpoint to resume from (its handler never stored one); retry it instead"
        raise InvalidTransition(job.id, job.status.value, "resume", message)
    if job.parent_id is not None and not job.detached and parent_status is not JobStatus.RUNNING:
        state = "gone" if parent_status is None else parent_status.value
        message = (
            f"job {job.id} is a child of job {job.parent_id}, which is {state}: it is resumed only while its"
            " parent runs (retry it as a job of its own instead)"
        )
        raise InvalidTransition(job.id, job.status.value, "resume", message)
    return job.checkpoint


def check_transition(old: JobStatus, new: JobStatus) -> None:
    """Internal invariant: every status change a store writes is in the table above."""
    assert (old, new) in ALLOWED_TRANSITIONS or old == new, f"illegal transition {old} -> {new}"
