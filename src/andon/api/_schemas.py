"""Request and response bodies of the REST API (Pydantic v2), and their conversion from andon's records.

Names and values here are part of the wire contract: timestamps are unix seconds, states
and reasons are the lower-case values of :class:`andon.JobStatus`, :class:`andon.CancelReason`
and :class:`andon.StopMethod`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import AfterValidator, AliasChoices, AwareDatetime, BaseModel, ConfigDict, Field

import andon
from andon._family import MAX_DELAY_S

__all__ = [
    "BulkCancelBody",
    "BulkCancelOut",
    "CancelBody",
    "CheckpointOut",
    "CheckpointSummary",
    "ErrorBody",
    "ErrorDetail",
    "EventsOut",
    "FailBody",
    "InfoOut",
    "JobOut",
    "JobPage",
    "JobSummary",
    "KindOut",
    "KindsOut",
    "PauseBody",
    "PauseOut",
    "PausedOut",
    "PruneBody",
    "PruneOut",
    "RegisteredWorkerOut",
    "ResultItemOut",
    "ResultsOut",
    "StatusCounts",
    "StopStatsOut",
    "SubmitBody",
    "TokenOut",
    "TokensOut",
    "UserOut",
    "WorkersOut",
    "WorkersSummaryOut",
    "check_json",
]

MAX_JSON_DEPTH: Final = 32
MAX_TEXT_CHARS: Final = 2000
MAX_BULK_IDS: Final = 1000


def check_json(value: Any) -> Any:  # Any: a JSON value
    """Refuse what parses as JSON here but cannot be sent back as JSON, or stored, everywhere.

    Python's JSON reader accepts ``NaN`` and ``Infinity``, strings with lone surrogates
    (``"\\ud800"``) and nesting deep enough to overflow a recursive encoder later. Walks the
    value without recursion, so the check itself cannot overflow.

    Raises:
        ValueError: the value contains one of those (pydantic turns it into a 422).
    """
    stack: list[tuple[Any, int]] = [(value, 1)]  # Any: JSON values
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError("NaN and Infinity are not JSON numbers")
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_text(key)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return value


def _check_text(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from None
    return text


JsonObject = Annotated[dict[str, Any], AfterValidator(check_json)]  # Any: JSON values
Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS), AfterValidator(_check_text)]
Name = Annotated[str, Field(max_length=200), AfterValidator(_check_text)]
Key = Annotated[str, Field(min_length=1, max_length=andon.MAX_KEY_CHARS), AfterValidator(_check_text)]

_STRICT = ConfigDict(extra="forbid")


# -- requests -----------------------------------------------------------------------


class SubmitBody(BaseModel):
    """``POST /api/v1/jobs``. Leave ``timeout_s`` out for the kind's default; ``null`` means no timeout.

    With a ``key``, at most one job of the kind with that key is active at a time; while one
    is, ``on_conflict`` says what this submit does: ``skip`` answers it (200), ``queue`` lets
    one job wait behind it (201; 200 with the waiting one if there is one already),
    ``supersede`` stops it (reason ``superseded``) and queues this one, which starts once it
    has stopped (201).

    ``run_at`` or ``delay_s`` schedule it: it is listed ``queued`` with its ``due_at`` ahead,
    and a cancel before then withdraws it; it never starts."""

    model_config = _STRICT

    kind: Name
    params: JsonObject = Field(default_factory=dict)
    timeout_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    priority: int = Field(default=0, ge=-1_000_000, le=1_000_000)
    key: Key | None = None
    on_conflict: andon.OnConflict = andon.OnConflict.SKIP
    run_at: AwareDatetime | None = None
    """Schedule it: no worker starts it before this moment (ISO 8601 with a time zone)."""
    delay_s: float | None = Field(default=None, ge=0, le=MAX_DELAY_S, allow_inf_nan=False)
    """Schedule it this many seconds from now (not with ``run_at``)."""


class ScheduleBody(BaseModel):
    """``POST /api/v1/schedules``: a runtime schedule making a job of ``kind`` with ``params``
    at every tick of ``cron`` (five fields, read in ``timezone``, an IANA name) or every
    ``every_s`` seconds (give exactly one). ``overlap``: what a tick does while the
    schedule's job is active (``skip``, ``queue``, ``supersede``); ``catch_up``: what
    happens to ticks that came due while no scheduler ran (``latest``, ``all``, ``none``)."""

    model_config = _STRICT

    name: Name
    kind: Name
    params: JsonObject = Field(default_factory=dict)
    cron: Name | None = None
    every_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    timezone: Name = "UTC"
    overlap: andon.OnConflict = andon.OnConflict.SKIP
    catch_up: andon.CatchUp = andon.CatchUp.LATEST
    priority: int = Field(default=0, ge=-1_000_000, le=1_000_000)
    timeout_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)


_GRACE_DESCRIPTION = (
    "At most this many seconds for the work to stop by itself before it is stopped by force; "
    "0 stops it at once. Left out: the kind's rule. It can shorten a stop under way, never lengthen it."
)


class CancelBody(BaseModel):
    """``POST /api/v1/jobs/{id}/cancel``: why, in words (kept as the cancel's ``message``;
    the cancel's ``reason`` code is ``user``). ``reason`` and ``message`` are the same field.
    ``grace_s``: ``0`` stops the work at once (``andon cancel --now``)."""

    model_config = _STRICT

    message: Text | None = Field(default=None, validation_alias=AliasChoices("message", "reason"))
    grace_s: float | None = Field(default=None, ge=0, allow_inf_nan=False, strict=True, description=_GRACE_DESCRIPTION)


class FailBody(BaseModel):
    """``POST /api/v1/jobs/{id}/fail``: ``retry=false`` skips the kind's retry policy."""

    model_config = _STRICT

    message: Text | None = Field(default=None, validation_alias=AliasChoices("message", "reason"))
    retry: bool = True


class PauseBody(BaseModel):
    """``POST /api/v1/kinds/{kind}/pause``: ``now`` also stops the kind's running jobs (reason
    ``paused``; they go back to the queue to resume from their checkpoints); ``message`` says why."""

    model_config = _STRICT

    now: bool = False
    message: Text | None = Field(default=None, validation_alias=AliasChoices("message", "reason"))


class BulkCancelBody(BaseModel):
    """``POST /api/v1/jobs/cancel``: every active job matching all the given filters (all active jobs if none)."""

    model_config = _STRICT

    ids: list[Name] = Field(default_factory=list, max_length=MAX_BULK_IDS)
    status: list[andon.JobStatus] | andon.JobStatus = Field(default_factory=list)
    kind: list[Name] | Name = Field(default_factory=list, max_length=100)
    message: Text | None = Field(default=None, validation_alias=AliasChoices("message", "reason"))
    grace_s: float | None = Field(default=None, ge=0, allow_inf_nan=False, strict=True, description=_GRACE_DESCRIPTION)

    @property
    def statuses(self) -> list[andon.JobStatus]:
        return [self.status] if isinstance(self.status, andon.JobStatus) else self.status

    @property
    def kinds(self) -> list[str]:
        return [self.kind] if isinstance(self.kind, str) else self.kind


# -- responses ----------------------------------------------------------------------


class ProgressOut(BaseModel):
    done: float | None
    total: float | None
    message: str | None


class ErrorSummary(BaseModel):
    type: str
    message: str


class ErrorOut(ErrorSummary):
    traceback: str | None


class CancelOut(BaseModel):
    """The life of the job's cancel: requested (who, why), acknowledged by the work, stopped (how)."""

    requested_at: float
    reason: andon.CancelReason
    by: str | None
    message: str | None
    retry: bool
    acknowledged_at: float | None
    stopped_at: float | None
    stop_method: andon.StopMethod | None
    stop_seconds: float | None
    origin: str | None
    """The job whose cancel reached this one: the ancestor that was cancelled (reason
    ``parent_cancelled``), the parent that ended (``parent_ended``), the job that superseded
    it (``superseded``); ``null`` when the cancel was asked of this job itself."""
    grace_s: float | None = None
    """The shortest grace its requests asked for (``0``: stop at once); ``null`` for the
    kind's rule."""

    @classmethod
    def of(cls, cancel: andon.CancelInfo) -> CancelOut:
        return cls(
            requested_at=cancel.requested_at,
            reason=cancel.reason,
            by=cancel.by,
            message=cancel.message,
            retry=cancel.retry,
            acknowledged_at=cancel.acknowledged_at,
            stopped_at=cancel.stopped_at,
            stop_method=cancel.stop_method,
            stop_seconds=cancel.stop_seconds,
            origin=cancel.origin,
            grace_s=cancel.grace_s,
        )


class CheckpointSummary(BaseModel):
    """Where the job's last checkpoint stands: ``items`` of its items came before it, stored by
    attempt ``attempt`` at ``at``. A resume goes on from there."""

    items: int
    attempt: int
    at: float

    @classmethod
    def of(cls, checkpoint: andon.Checkpoint) -> CheckpointSummary:
        return cls(items=checkpoint.items, attempt=checkpoint.attempt, at=checkpoint.at)


class CheckpointOut(CheckpointSummary):
    """The last checkpoint with the state the handler stored (a JSON value, up to 64 KiB)."""

    state: Any  # Any: the JSON value the handler stored

    @classmethod
    def of(cls, checkpoint: andon.Checkpoint) -> CheckpointOut:
        return cls(items=checkpoint.items, attempt=checkpoint.attempt, at=checkpoint.at, state=checkpoint.state)


class JobSummary(BaseModel):
    """A job without its params, result and traceback: what listings and the event stream carry."""

    id: str
    kind: str
    status: andon.JobStatus
    is_terminal: bool
    actions: list[andon.Action]
    """What may be asked of the job now: the requests that would change it (``cancel`` ->
    ``POST .../cancel``, ``fail`` -> ``POST .../fail``, ``resume`` -> ``POST .../resume``,
    ``retry`` -> ``POST .../retry``, ``delete`` -> ``DELETE``). Whether the caller may act on
    it is not part of this."""
    stage: int
    """How far the job has come in its life. Of two snapshots of one job (from a listing, an
    answer, the event stream), the one with the smaller stage is older: it never decreases."""
    attempt: int
    max_attempts: int
    failures: int
    fail_retries: int
    """Attempts its retry policy still gives it if it is force-failed now (``POST .../fail``
    with ``retry`` true): then it runs again. 0: a force-fail ends it failed for good."""
    priority: int
    timeout_s: float | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    duration_s: float | None
    due_at: float | None
    """While it is queued: when it may start (unix seconds). Ahead of now, the job is
    *scheduled* (``run_at``/``delay_s``, or a retry waiting out its backoff)."""
    worker_id: str | None
    progress: ProgressOut | None
    items_count: int
    error: ErrorSummary | None
    cancel: CancelOut | None
    retry_of: str | None
    owner: str | None
    """Who submitted it (a token's name); ``null`` when made without a token."""
    key: str | None
    """Its business key: at most one job of its kind with it is active at a time."""
    checkpoint: CheckpointSummary | None
    """The last checkpoint its handler stored, without its state (``GET /jobs/{id}`` has it)."""
    resume: bool
    """Its next attempt starts from ``checkpoint`` (after a resume, a pause, a shutdown...)."""
    parent_id: str | None
    """The job whose handler submitted this one (``ctx.submit``); ``null`` for a top-level job."""
    root_id: str | None
    """The top-level job of its tree; ``null`` for a top-level job (its own root)."""
    detached: bool
    """Left running when its parent ends (otherwise cancelled then, reason ``parent_ended``)."""
    fail_parent: bool
    """Its failure stops its parent as failed, and with it its siblings (fail fast)."""
    awaiting: andon.JobStatus | None
    """Set while the job is ``cancelling`` and its own work has stopped, but some of its
    descendants have not: the state it takes once the last of them has."""
    pruned_at: float | None = None
    """When its history was pruned (``POST /api/v1/prune``): the job is a tombstone, its
    params, result, traceback, checkpoint, items and events are gone; its cancel record stays."""

    @classmethod
    def of(cls, job: andon.Job) -> JobSummary:
        return cls(**_summary_fields(job))


class StatusCounts(BaseModel):
    """How many jobs are in each state, and how many of them are still active."""

    queued: int = 0
    running: int = 0
    cancelling: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    total: int = 0
    active: int = 0
    """queued + running + cancelling: the jobs a cancel would still stop."""

    @classmethod
    def of(cls, counts: Mapping[andon.JobStatus, int]) -> StatusCounts:
        by_state = {status.value: counts.get(status, 0) for status in andon.JobStatus}
        active = sum(n for status, n in counts.items() if status.is_active)
        return cls(**by_state, total=sum(counts.values()), active=active)


class JobOut(JobSummary):
    """One job, everything about it, with how many children and descendants it has by state."""

    params: dict[str, Any]  # Any: JSON values
    result: Any  # Any: the handler's JSON return value
    error: ErrorOut | None
    checkpoint: CheckpointOut | None
    children: StatusCounts
    """Its direct children by state (``GET .../children`` lists them)."""
    descendants: StatusCounts
    """Its whole subtree (children, their children...) by state."""

    @classmethod
    def of(
        cls,
        job: andon.Job,
        children: Mapping[andon.JobStatus, int] | None = None,
        descendants: Mapping[andon.JobStatus, int] | None = None,
    ) -> JobOut:
        """``children``/``descendants`` left out: the job has none (it was just created)."""
        fields = _summary_fields(job)
        if job.error is not None:
            fields["error"] = ErrorOut(type=job.error.type, message=job.error.message, traceback=job.error.traceback)
        if job.checkpoint is not None:
            fields["checkpoint"] = CheckpointOut.of(job.checkpoint)
        return cls(
            **fields,
            params=job.params,
            result=job.result,
            children=StatusCounts.of(children or {}),
            descendants=StatusCounts.of(descendants or {}),
        )


def _summary_fields(job: andon.Job) -> dict[str, Any]:  # Any: field values of mixed types
    has_progress = job.progress_done is not None or job.progress_total is not None or job.progress_message
    duration = None
    if job.started_at is not None and job.finished_at is not None:
        duration = max(0.0, job.finished_at - job.started_at)
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "is_terminal": job.is_terminal,
        "actions": [action for action in andon.Action if action in andon.allowed_actions(job)],
        "stage": andon.life_stage(job),
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "failures": job.failures,
        "fail_retries": andon.retries_after_fail(job),
        "priority": job.priority,
        "timeout_s": job.timeout_s,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "duration_s": duration,
        "due_at": job.due_at,
        "worker_id": job.worker_id,
        "progress": ProgressOut(done=job.progress_done, total=job.progress_total, message=job.progress_message)
        if has_progress
        else None,
        "items_count": job.items_count,
        "error": ErrorSummary(type=job.error.type, message=job.error.message) if job.error else None,
        "cancel": CancelOut.of(job.cancel) if job.cancel else None,
        "retry_of": job.retry_of,
        "owner": job.owner,
        "key": job.key,
        "checkpoint": CheckpointSummary.of(job.checkpoint) if job.checkpoint else None,
        "resume": job.resume,
        "parent_id": job.parent_id,
        "root_id": job.root_id,
        "detached": job.detached,
        "fail_parent": job.fail_parent,
        "awaiting": job.awaiting,
        "pruned_at": job.pruned_at,
    }


class JobPage(BaseModel):
    """One page of history, newest first; pass ``next_cursor`` as ``cursor`` for the next one.
    A page may hold fewer jobs than ``limit`` (it ends at 4 MiB of job data); only
    ``next_cursor: null`` means the end."""

    items: list[JobSummary]
    next_cursor: str | None
    child_counts: dict[str, StatusCounts] = Field(default_factory=dict)
    """Direct children by state of the page's jobs that have any, by job id (read in one
    grouped query per page; the event stream's summaries do not carry them)."""

    @classmethod
    def of(cls, page: andon.Page, counts: Mapping[str, Mapping[andon.JobStatus, int]]) -> JobPage:
        return cls(
            items=[JobSummary.of(job) for job in page.items],
            next_cursor=page.next_cursor,
            child_counts={job_id: StatusCounts.of(by_state) for job_id, by_state in counts.items()},
        )


class PausedOut(BaseModel):
    """A pause in force: since when, who paused the kind and why."""

    paused_at: float
    by: str | None
    message: str | None

    @classmethod
    def of(cls, paused: andon.PausedKind) -> PausedOut:
        return cls(paused_at=paused.paused_at, by=paused.by, message=paused.message)


class LimitsOut(BaseModel):
    """A kind's limits as the store enforces them across all workers, with their use now."""

    max_running: int | None
    running_now: int
    """Jobs of the kind running or cancelling (what ``max_running`` counts)."""
    rate_starts: int | None
    rate_s: float | None
    starts_in_window: int | None
    """Starts within the last ``rate_s`` seconds (a sliding window)."""

    @classmethod
    def of(cls, use: andon.KindLimitUse) -> LimitsOut:
        rate = use.limit.rate
        return cls(
            max_running=use.limit.max_running,
            running_now=use.running_now,
            rate_starts=rate[0] if rate else None,
            rate_s=rate[1] if rate else None,
            starts_in_window=use.starts_in_window,
        )


class StopStatsOut(BaseModel):
    """How the kind's running jobs stopped when asked (withdrawn ones left out)."""

    count: int
    p50_s: float | None
    """Median time from the request to the stop, in seconds; ``null`` without stops."""
    p99_s: float | None
    """99th percentile of the same (``percentile_cont``: linear between two stops)."""
    max_s: float | None
    methods: dict[str, int]
    """Stops per stop method (``cooperative``, ``injected``, ``killed``...)."""
    forced: int
    """Stops the handler did not make itself: injected, terminated, killed or abandoned."""
    needs_force: bool
    """More than half of at least three stops were forced: the handler ignores Cancel (a
    ``ctx.check()`` in its loop lets it stop by itself)."""

    @classmethod
    def of(cls, stats: andon.StopStats | None) -> StopStatsOut:
        if stats is None:
            return cls(count=0, p50_s=None, p99_s=None, max_s=None, methods={}, forced=0, needs_force=False)
        return cls(
            count=stats.stops,
            p50_s=stats.p50_s,
            p99_s=stats.p99_s,
            max_s=stats.max_s,
            methods=stats.methods,
            forced=stats.forced_stops,
            needs_force=stats.needs_force,
        )


class KindOut(BaseModel):
    kind: str
    description: str
    isolation: andon.Isolation
    timeout_s: float | None
    grace_s: float
    max_attempts: int
    params_schema: dict[str, Any]  # Any: a JSON schema document
    paused: PausedOut | None
    """Set while the kind is paused: no worker claims its jobs."""
    limits: LimitsOut | None = None
    """Set while the store has limits for the kind (``@app.job(max_running=, rate=)``)."""
    stops: StopStatsOut
    """How its jobs stopped when asked: count, p50, p99, max, methods, and ``needs_force``."""

    @classmethod
    def of(
        cls,
        kind: andon.JobKind,
        paused: andon.PausedKind | None,
        limits: andon.KindLimitUse | None = None,
        stops: andon.StopStats | None = None,
    ) -> KindOut:
        return cls(
            kind=kind.kind,
            description=kind.description,
            isolation=kind.isolation,
            timeout_s=kind.timeout_s,
            grace_s=kind.grace_s,
            max_attempts=kind.retry.max_attempts,
            params_schema=kind.params_schema(),
            paused=PausedOut.of(paused) if paused else None,
            limits=LimitsOut.of(limits) if limits else None,
            stops=StopStatsOut.of(stops),
        )


class KindsOut(BaseModel):
    items: list[KindOut]


FinalStatus = Literal["succeeded", "failed", "cancelled"]


class PruneBody(BaseModel):
    """``POST /api/v1/prune``: prune the history of jobs that finished more than
    ``older_than_s`` seconds ago, of the given states and kinds (all finished states and
    every kind when left out); ``purge`` deletes the jobs instead of leaving tombstones;
    ``dry_run`` only counts."""

    model_config = _STRICT

    older_than_s: float = Field(ge=0, allow_inf_nan=False)
    statuses: list[FinalStatus] = Field(default_factory=lambda: list(get_args(FinalStatus)), min_length=1)
    kinds: list[Name] = Field(default_factory=list, max_length=MAX_BULK_IDS)
    purge: bool = False
    dry_run: bool = False
    batch: int = Field(default=andon.DEFAULT_PRUNE_BATCH, ge=1, le=10_000)


class PruneOut(BaseModel):
    """What a prune removed (with ``dry_run``: would remove): jobs tombstoned (or with
    ``purged``, deleted), items and events removed, and the transactions it took."""

    jobs: int
    items: int
    events: int
    purged: bool
    dry_run: bool
    batches: int

    @classmethod
    def of(cls, result: andon.PruneResult) -> PruneOut:
        return cls(
            jobs=result.jobs,
            items=result.items,
            events=result.events,
            purged=result.purged,
            dry_run=result.dry_run,
            batches=result.batches,
        )


class PauseOut(BaseModel):
    """What a pause or unpause did: ``changed`` is false when the kind was already so;
    ``stopping`` lists the running jobs a pause with ``now`` asked to stop."""

    kind: str
    paused: bool
    changed: bool
    stopping: list[str]


class EventOut(BaseModel):
    seq: int
    at: float
    type: str
    from_status: andon.JobStatus | None
    to_status: andon.JobStatus | None
    actor: str | None
    reason: str | None
    message: str | None
    attempt: int

    @classmethod
    def of(cls, event: andon.JobEvent) -> EventOut:
        return cls(
            seq=event.seq,
            at=event.at,
            type=event.type,
            from_status=event.from_status,
            to_status=event.to_status,
            actor=event.actor,
            reason=event.reason,
            message=event.message,
            attempt=event.attempt,
        )


class EventsOut(BaseModel):
    """A page of a job's history, oldest first; pass ``next_offset`` as ``offset`` for the
    next one (``null``: this page reached the end)."""

    items: list[EventOut]
    next_offset: int | None


class ResultItemOut(BaseModel):
    seq: int
    attempt: int
    at: float
    data: Any  # Any: the JSON value the handler emitted

    @classmethod
    def of(cls, item: andon.ResultItem) -> ResultItemOut:
        return cls(seq=item.seq, attempt=item.attempt, at=item.at, data=item.data)


class ResultsOut(BaseModel):
    """A page of a job's result items.

    ``count`` is how many items the job has in all. ``complete`` is true once the job is
    in a terminal state, so no item will be added. ``cancelled`` is true when it was
    cancelled: the items are what the work produced before it stopped. ``next_offset`` is
    where the next page starts (a page ends early at 4 MiB of items), ``null`` when this
    page reached the last item stored so far.
    """

    items: list[ResultItemOut]
    next_offset: int | None
    count: int
    offset: int
    status: andon.JobStatus
    cancelled: bool
    complete: bool


class BulkCancelOut(BaseModel):
    """How many jobs this request cancelled (withdrawn, or now ``cancelling``), and which."""

    cancelled: int
    ids: list[str]


class WorkerOut(BaseModel):
    id: str
    concurrency: int
    kinds: list[str]


class RegisteredWorkerOut(BaseModel):
    """A worker in the store's registry, with what it is now (decided from facts)."""

    id: str
    host: str
    pid: int
    version: str
    kinds: list[str]
    slots: int
    slots_in_use: int
    """Slots it fills now: the jobs it holds (none once it stopped or died)."""
    running: int
    """Jobs it holds now (running or cancelling)."""
    job_ids: list[str]
    """Those jobs' ids (a ``user`` token sees only its own)."""
    status: andon.WorkerStatus
    """``alive``: heartbeat fresh; ``silent``: none for two thirds of its lease or more
    (``silent_s``); ``stopped``: it stopped cleanly; ``dead``: its process was found gone."""
    silent_s: float | None
    """For a silent worker: seconds since its last heartbeat."""
    heartbeat_age_s: float
    lease_s: float
    started_at: float
    heartbeat_at: float
    stopped_at: float | None
    """When it stopped cleanly or was found dead."""
    end_message: str | None
    """For a dead worker: which process was found gone."""

    @classmethod
    def of(cls, worker: andon.WorkerInfo) -> RegisteredWorkerOut:
        return cls(
            id=worker.id,
            host=worker.host,
            pid=worker.pid,
            version=worker.version,
            kinds=list(worker.kinds),
            slots=worker.slots,
            slots_in_use=worker.slots_in_use,
            running=worker.running,
            job_ids=list(worker.job_ids),
            status=worker.status,
            silent_s=worker.silent_s,
            heartbeat_age_s=worker.heartbeat_age_s,
            lease_s=worker.lease_s,
            started_at=worker.started_at,
            heartbeat_at=worker.heartbeat_at,
            stopped_at=worker.stopped_at,
            end_message=worker.end_message,
        )


class WorkersSummaryOut(BaseModel):
    """What the store's workers registry says now, in numbers."""

    alive: int
    """Workers whose heartbeat is fresh."""
    silent: int
    """Workers not ended whose heartbeat is late (two thirds of their lease or more)."""
    slots: int
    """Slots of the alive workers."""
    slots_in_use: int
    """Of those, how many hold a job now."""
    alive_ids: list[str]

    @classmethod
    def of(cls, workers: list[andon.WorkerInfo]) -> WorkersSummaryOut:
        alive = [w for w in workers if w.status is andon.WorkerStatus.ALIVE]
        return cls(
            alive=len(alive),
            silent=sum(w.status is andon.WorkerStatus.SILENT for w in workers),
            slots=sum(w.slots for w in alive),
            slots_in_use=sum(w.slots_in_use for w in alive),
            alive_ids=[w.id for w in alive],
        )


class WorkersOut(BaseModel):
    items: list[RegisteredWorkerOut]
    """Newest first; rows of workers gone for a day are pruned."""
    summary: WorkersSummaryOut


class InfoOut(BaseModel):
    version: str
    database: str
    worker: WorkerOut | None
    """The worker this server runs, if any (jobs may also run on workers elsewhere: see ``workers``)."""
    workers: WorkersSummaryOut
    """Every worker of the store, as its registry says now (this server's own included)."""
    auth: bool
    user: UserOut | None = None
    """Who this request comes from, when auth is required."""
    server_time: float


class UserOut(BaseModel):
    name: str
    role: andon.Role


class TokenOut(BaseModel):
    """A token as listed: never its secret or hash."""

    name: str
    role: andon.Role
    created_at: float
    revoked_at: float | None
    active: bool

    @classmethod
    def of(cls, record: andon.TokenRecord) -> TokenOut:
        return cls(
            name=record.name,
            role=record.role,
            created_at=record.created_at,
            revoked_at=record.revoked_at,
            active=record.is_active,
        )


class TokensOut(BaseModel):
    items: list[TokenOut]


class ErrorDetail(BaseModel):
    code: str
    message: str
    state: str | None = None
    """The job's state, for conflicts (409) and timeouts (504)."""
    job_id: str | None = None
    problems: list[str] | None = None
    """What is wrong with the input, one line per problem (422)."""


class ErrorBody(BaseModel):
    """Every error answer: ``{"error": {"code", "message", ...}}``."""

    error: ErrorDetail


class TickOut(BaseModel):
    """What became of one tick: ``enqueued``, ``queued`` (waits behind the active job),
    ``superseded`` (the message names the stopped job), ``skipped`` (``job_id`` is the active
    job), ``missed`` (no scheduler ran; one trace for a run of them), ``triggered`` (by hand)."""

    schedule: str
    tick_at: float
    at: float
    outcome: andon.TickOutcome
    job_id: str | None
    by: str | None
    message: str | None

    @classmethod
    def of(cls, tick: andon.Tick) -> TickOut:
        return cls(
            schedule=tick.schedule,
            tick_at=tick.tick_at,
            at=tick.at,
            outcome=tick.outcome,
            job_id=tick.job_id,
            by=tick.by,
            message=tick.message,
        )


class ScheduleOut(BaseModel):
    """A schedule, its state and its latest ticks (newest first). ``source``: ``app``
    (declared in code: removable only there) or ``runtime``. ``next_at`` is null while paused."""

    name: str
    kind: str
    params: dict[str, Any]  # Any: JSON values
    cron: str | None
    every_s: float | None
    timezone: str
    timing: str
    overlap: andon.OnConflict
    catch_up: andon.CatchUp
    priority: int
    timeout_s: float | None
    source: andon.ScheduleSource
    next_at: float | None
    paused_at: float | None
    paused_by: str | None
    created_at: float
    updated_at: float
    last_ticks: list[TickOut]

    @classmethod
    def of(cls, schedule: andon.Schedule) -> ScheduleOut:
        spec = schedule.spec
        return cls(
            name=spec.name,
            kind=spec.kind,
            params=dict(spec.params),
            cron=spec.cron,
            every_s=spec.every_s,
            timezone=spec.timezone,
            timing=spec.timing,
            overlap=spec.overlap,
            catch_up=spec.catch_up,
            priority=spec.priority,
            timeout_s=spec.timeout_s,
            source=schedule.source,
            next_at=schedule.next_at,
            paused_at=schedule.paused_at,
            paused_by=schedule.paused_by,
            created_at=schedule.created_at,
            updated_at=schedule.updated_at,
            last_ticks=[TickOut.of(tick) for tick in schedule.last_ticks],
        )


class LeaderOut(BaseModel):
    """The scheduler that fires every schedule's ticks now (a worker's id), since when."""

    holder: str
    since: float
    expires_in_s: float


class SchedulesOut(BaseModel):
    items: list[ScheduleOut]
    leader: LeaderOut | None
    """``null``: no worker's scheduler leads (none runs, or the last one died and its lease
    has not expired yet): ticks wait."""


class TicksOut(BaseModel):
    items: list[TickOut]
