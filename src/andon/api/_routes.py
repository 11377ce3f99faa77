"""The REST API's handlers. Each parses its input, calls one :class:`andon.Client`
operation off the event loop, and formats the answer; errors are mapped in one place
(``_app._andon_error``)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Final, cast

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

import andon
from andon.api._auth import SESSION_COOKIE
from andon.api._auth import Caller as AuthenticatedCaller
from andon.api._events import ServerEvent
from andon.api._guard import CALLER_KEY
from andon.api._runtime import Runtime
from andon.api._schemas import (
    BulkCancelBody,
    BulkCancelOut,
    CancelBody,
    ErrorBody,
    EventOut,
    EventsOut,
    FailBody,
    InfoOut,
    JobOut,
    JobPage,
    KindOut,
    KindsOut,
    LeaderOut,
    PauseBody,
    PauseOut,
    PruneBody,
    PruneOut,
    RegisteredWorkerOut,
    ResultItemOut,
    ResultsOut,
    ScheduleBody,
    ScheduleOut,
    SchedulesOut,
    SubmitBody,
    TickOut,
    TicksOut,
    TokenOut,
    TokensOut,
    UserOut,
    WorkerOut,
    WorkersOut,
    WorkersSummaryOut,
)

__all__ = ["router", "session_router"]

MAX_OFFSET: Final = 2**53
WAIT_DEFAULT_S: Final = 30.0
WAIT_MAX_S: Final = 300.0
DELETE_TIMEOUT_S: Final = 60.0


def _runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.andon)  # app.state is untyped; create_app puts a Runtime there


Ctx = Annotated[Runtime, Depends(_runtime)]


def _acting_client(request: Request) -> andon.Client:
    """The app's client acting for whoever the guard found this request comes from."""
    return _runtime(request).client.acting_as(_principal(request))


def _principal(request: Request) -> andon.Principal | None:
    caller = request.scope.get("state", {}).get(CALLER_KEY)
    return caller.principal if isinstance(caller, AuthenticatedCaller) else None


Caller = Annotated[andon.Client, Depends(_acting_client)]
JobId = Annotated[str, Path(max_length=100, description="A job id (a UUIDv7).")]
WaitTimeoutS = Annotated[
    float,
    Query(
        alias="timeout",
        gt=0,
        le=WAIT_MAX_S,
        description="With wait=true: seconds to wait for the work to stop (504 after).",
    ),
]

# Bodies that may be left out (an empty POST) are declared as their model with a default,
# not ``Model | None``: the spec then says "this object, not required" rather than
# ``anyOf [Model, null]``, which generated clients cannot leave out (openapi-python-client
# sends its ``Unset`` marker and crashes). JSON ``null`` is refused (422), as the spec says.
OptionalCancel = Annotated[CancelBody, Body(default_factory=CancelBody)]
OptionalFail = Annotated[FailBody, Body(default_factory=FailBody)]
OptionalBulkCancel = Annotated[BulkCancelBody, Body(default_factory=BulkCancelBody)]
OptionalPause = Annotated[PauseBody, Body(default_factory=PauseBody)]
KindName = Annotated[str, Path(max_length=200, description="A job kind.")]

JOB_ID_PATTERN: Final = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-7[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$"
"""A job id as the API writes it (a UUIDv7): a filter that names no possible job is a 422, not an empty page."""


StatusFilter = Annotated[list[andon.JobStatus] | None, Query(description="Only these states (repeat it).")]
PageLimit = Annotated[int, Query(ge=1, le=1000)]
PageCursor = Annotated[
    str | None, Query(max_length=100, description="`next_cursor` of the page before (a job id; else 422).")
]
ParentFilter = Annotated[str | None, Query(pattern=JOB_ID_PATTERN, description="Only the direct children of this job.")]
RootFilter = Annotated[
    str | None, Query(pattern=JOB_ID_PATTERN, description="Only the jobs of the tree this job started (not itself).")
]

_ERRORS: Final[dict[int | str, dict[str, Any]]] = {  # Any: OpenAPI response objects
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "Malformed request: a body that is not JSON, a bad Content-Length or Host.",
        401: "A token is needed (Authorization: Bearer ...).",
        403: "Refused: a state-changing request from another origin, or an admin-only operation.",
        404: "No job has this id.",
        409: "The job's state does not allow this (the message and `state` name it), or its items are not flat (CSV).",
        413: "The request body (over 1 MiB) or a job's params (over 64 KiB as JSON) are too large.",
        415: "The body must be JSON (Content-Type: application/json).",
        422: "Unknown kind, invalid params, query or key, or an Idempotency-Key sent again with another body.",
        503: "The store cannot be reached.",
        504: "The work did not stop within the wait's timeout (the cancel stays requested).",
    }.items()
}

router = APIRouter(prefix="/api/v1", responses=_ERRORS)


@router.get("/info", operation_id="getInfo", tags=["server"])
async def get_info(rt: Ctx, request: Request) -> InfoOut:
    """This server: version, database, its embedded worker (while it runs), what the store's
    workers registry says (alive workers, their slots and slots in use), whether it needs a
    token and who this request comes from."""
    worker = rt.worker if rt.worker is not None and rt.worker.state is andon.WorkerState.RUNNING else None
    principal = _principal(request)
    workers = await rt.call(rt.client.workers)
    return InfoOut(
        user=UserOut(name=principal.name, role=principal.role) if principal else None,
        version=andon.__version__,
        database=_redacted(rt.client.store.url),
        worker=WorkerOut(id=worker.id, concurrency=worker.concurrency, kinds=worker.kind_names) if worker else None,
        workers=WorkersSummaryOut.of(workers),
        auth=await rt.authenticator.required(),
        server_time=time.time(),
    )


@router.get("/kinds", operation_id="listKinds", tags=["kinds"])
async def list_kinds(rt: Ctx, client: Caller) -> KindsOut:
    """The registered job kinds, each with a JSON schema of its params, while it is paused
    who paused it, when and why, its limits across all workers (`max_running`, `rate`)
    with how many run now and started in the current window, and how its jobs stopped when
    asked (`stops`: count, p50, p99, max, methods, and `needs_force` for a handler that
    ignores Cancel)."""
    paused = {entry.kind: entry for entry in await rt.call(client.paused_kinds)}
    limits = {use.limit.kind: use for use in await rt.call(client.kind_limits)}
    stops = {stats.kind: stats for stats in await rt.call(client.stop_stats)}
    return KindsOut(
        items=[
            KindOut.of(kind, paused.get(kind.kind), limits.get(kind.kind), stops.get(kind.kind)) for kind in rt.kinds
        ]
    )


@router.post("/kinds/{kind}/pause", operation_id="pauseKind", tags=["kinds"])
async def pause_kind(kind: KindName, rt: Ctx, client: Caller, body: OptionalPause) -> PauseOut:
    """Stop workers claiming this kind (admins only, 403: it holds everyone's jobs). With
    `now`, its running jobs also stop (reason `paused`) and go back to the queue, to resume
    from their checkpoints once the kind is unpaused."""
    result = await rt.call(client.pause, kind, now=body.now, message=body.message)
    return PauseOut(kind=kind, paused=True, changed=result.changed, stopping=[job.id for job in result.stopping])


@router.post("/kinds/{kind}/unpause", operation_id="unpauseKind", tags=["kinds"])
async def unpause_kind(kind: KindName, rt: Ctx, client: Caller) -> PauseOut:
    """Let workers claim this kind again (admins only, 403); `changed` is false if it was not paused."""
    changed = await rt.call(client.unpause, kind)
    return PauseOut(kind=kind, paused=False, changed=changed, stopping=[])


IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=andon.MAX_KEY_CHARS,
        description="Makes the submit safe to send again: for 24 hours, the same key (from the same"
        " token) with the same body answers the job the first request answered, with the same status;"
        " with another body, 422 `idempotency_key_reused`.",
    ),
]


@router.post(
    "/jobs",
    operation_id="submitJob",
    status_code=201,
    tags=["jobs"],
    responses={
        200: {"model": JobOut, "description": "A job that was already there (a `key` conflict): nothing was created."}
    },
)
async def submit_job(
    body: SubmitBody, rt: Ctx, client: Caller, response: Response, idempotency_key: IdempotencyKeyHeader = None
) -> JobOut:
    """Validate params and queue one job (201). Leave `timeout_s` out for the kind's default.
    With a `key` and `on_conflict`, an active job of the kind with that key may answer instead (200)."""
    timeout = body.timeout_s if "timeout_s" in body.model_fields_set else andon.DEFAULT
    submission = await rt.call(
        client.submit_once,
        body.kind,
        body.params,
        timeout=timeout,
        priority=body.priority,
        key=body.key,
        on_conflict=body.on_conflict,
        idempotency_key=idempotency_key,
        run_at=body.run_at,
        delay=body.delay_s,
    )
    if not submission.created:
        response.status_code = 200
    return JobOut.of(submission.job)


@router.get("/jobs", operation_id="listJobs", tags=["jobs"])
async def list_jobs(
    rt: Ctx,
    client: Caller,
    status: StatusFilter = None,
    kind: Annotated[list[str] | None, Query(max_length=100, description="Only these kinds (repeat it).")] = None,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
    parent: ParentFilter = None,
    root: RootFilter = None,
    scheduled: Annotated[
        bool | None, Query(description="true: only queued jobs not due yet; false: all but those.")
    ] = None,
) -> JobPage:
    """History, newest first, one page at a time. Items are summaries (no params, result or traceback);
    `child_counts` has the direct children by state of the page's jobs that have any.
    A page ends at `limit` jobs or 4 MiB of stored job data, whichever comes first (always at
    least one job): follow `next_cursor` until it is null."""
    page, counts = await rt.call(
        _page_with_counts,
        client.list_jobs,
        client,
        statuses=status or (),
        kinds=kind or (),
        limit=limit,
        cursor=cursor,
        parent=parent,
        root=root,
        scheduled=scheduled,
    )
    return JobPage.of(page, counts)


def _page_with_counts(
    read: Callable[..., andon.Page],  # ...: the keyword arguments of list_jobs or children
    client: andon.Client,
    *args: Any,  # Any: passed through to ``read``
    **kwargs: Any,
) -> tuple[andon.Page, dict[str, dict[andon.JobStatus, int]]]:
    page = read(*args, **kwargs)
    return page, client.child_counts([job.id for job in page.items])


def _job_out(client: andon.Client, job: andon.Job) -> JobOut:
    """``job`` with its children's and descendants' counts (read after it: never fewer)."""
    return JobOut.of(job, client.child_counts([job.id]).get(job.id, {}), client.descendant_counts(job.id))


@router.post("/jobs/cancel", operation_id="cancelJobs", tags=["stopping"])
async def cancel_jobs(rt: Ctx, client: Caller, body: OptionalBulkCancel) -> BulkCancelOut:
    """Cancel every active job matching all the filters given (every active job if none is)."""
    done = await rt.call(
        client.cancel_many,
        ids=body.ids,
        statuses=body.statuses,
        kinds=body.kinds,
        message=body.message,
        grace=body.grace_s,
    )
    return BulkCancelOut(cancelled=len(done), ids=done.ids)


@router.get("/jobs/{job_id}", operation_id="getJob", tags=["jobs"])
async def get_job(job_id: JobId, rt: Ctx, client: Caller) -> JobOut:
    """One job: params, state, progress, counts, result, error, cancel lifecycle, timestamps,
    its place in a tree (`parent_id`, `root_id`) and its `children` and `descendants` by state."""
    return await rt.call(lambda: _job_out(client, client.get(job_id)))


@router.get("/jobs/{job_id}/children", operation_id="listChildren", tags=["jobs"])
async def list_children(
    job_id: JobId,
    rt: Ctx,
    client: Caller,
    status: StatusFilter = None,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> JobPage:
    """The job's direct children, newest first, paged as the jobs list (404 for an unknown job);
    `child_counts` has their own children by state, for a tree view to expand."""
    page, counts = await rt.call(
        _page_with_counts, client.children, client, job_id, statuses=status or (), limit=limit, cursor=cursor
    )
    return JobPage.of(page, counts)


@router.post("/jobs/{job_id}/cancel", operation_id="cancelJob", tags=["stopping"])
async def cancel_job(
    job_id: JobId,
    rt: Ctx,
    client: Caller,
    body: OptionalCancel,
    wait: Annotated[bool, Query(description="Answer once the work has stopped.")] = False,
    wait_timeout: WaitTimeoutS = WAIT_DEFAULT_S,
) -> JobOut:
    """Cancel: a queued job never starts (`cancelled` at once); a running one is `cancelling`
    until its work stops. Cancelling again answers the current state; a job that already
    succeeded or failed is a 409. With `wait=true`, answers once the job is terminal.
    `grace_s: 0` stops the work at once (a second cancel with it brings a stop under way forward)."""
    if wait:
        result = await rt.wait(
            client.cancel, job_id, message=body.message, wait=True, timeout=wait_timeout, grace=body.grace_s
        )
    else:
        result = await rt.call(client.cancel, job_id, message=body.message, grace=body.grace_s)
    return await rt.call(_job_out, client, result.job)


@router.post("/jobs/{job_id}/fail", operation_id="failJob", tags=["stopping"])
async def fail_job(job_id: JobId, rt: Ctx, client: Caller, body: OptionalFail) -> JobOut:
    """Force-fail: stop the work and record the job `failed` (cancel reason `forced`).
    It counts as a failure: the kind's retry policy applies unless `retry` is false."""
    result = await rt.call(client.fail, job_id, retry=body.retry, message=body.message)
    return await rt.call(_job_out, client, result.job)


@router.post("/jobs/{job_id}/retry", operation_id="retryJob", status_code=201, tags=["jobs"])
async def retry_job(job_id: JobId, rt: Ctx, client: Caller) -> JobOut:
    """Queue a new job with the kind and params of a failed or cancelled one (`retry_of` points back)."""
    return JobOut.of(await rt.call(client.retry, job_id))


@router.post("/jobs/{job_id}/resume", operation_id="resumeJob", tags=["jobs"])
async def resume_job(job_id: JobId, rt: Ctx, client: Caller) -> JobOut:
    """Queue a cancelled or failed job again as a new attempt of the same job, starting from
    its last checkpoint (409 if it has none, or is in another state; retry it instead)."""
    return await rt.call(lambda: _job_out(client, client.resume(job_id)))


@router.delete("/jobs/{job_id}", operation_id="deleteJob", status_code=204, tags=["jobs"])
async def delete_job(job_id: JobId, rt: Ctx, client: Caller) -> Response:
    """Cancel the job if it is active, wait until its work stopped, and delete it with its
    history and results."""
    await rt.wait(client.delete, job_id, timeout=DELETE_TIMEOUT_S)
    return Response(status_code=204)


@router.get("/jobs/{job_id}/results", operation_id="getResults", tags=["jobs"])
async def get_results(
    job_id: JobId,
    rt: Ctx,
    client: Caller,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ResultsOut:
    """The items the job emitted, in order; readable while it runs and after a cancel. A page
    ends at `limit` items or 4 MiB of item data, whichever comes first (always at least one
    item): `next_offset` is where the next page starts."""
    job, page = await rt.call(_results, client, job_id, offset, limit)
    return ResultsOut(
        items=[ResultItemOut.of(item) for item in page.items],
        next_offset=page.next_offset,
        count=job.items_count,
        offset=offset,
        status=job.status,
        cancelled=job.status is andon.JobStatus.CANCELLED,
        complete=job.is_terminal,
    )


def _results(
    client: andon.Client, job_id: str, offset: int, limit: int
) -> tuple[andon.Job, andon.OffsetPage[andon.ResultItem]]:
    # Items first: the job read after them has a count at least as large as what was read.
    page = client.results_page(job_id, offset, limit)
    return client.get(job_id), page


@router.get(
    "/jobs/{job_id}/results.{format}",
    operation_id="downloadResults",
    tags=["jobs"],
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"application/jsonl": {}, "text/csv": {}},
            "description": "The file, as an attachment.",
        }
    },
)
async def download_results(job_id: JobId, format: andon.ResultsFormat, rt: Ctx, client: Caller) -> StreamingResponse:
    """The job's items as a file, in any state: `jsonl` (each item's data on a line) or `csv`
    (a header of keys, a row per item; 409 `items_not_flat` unless every item is a JSON
    object of scalars). Holds the items stored when asked; sent a page at a time."""
    export = await rt.call(client.export_results, job_id, format)

    async def body() -> AsyncIterator[bytes]:
        chunks = iter(export)
        while (chunk := await rt.call(next, chunks, None)) is not None:
            yield chunk.encode()

    return StreamingResponse(
        body(),
        media_type=export.media_type,
        headers={"content-disposition": f'attachment; filename="{export.filename}"', "cache-control": "no-store"},
    )


@router.get("/jobs/{job_id}/events", operation_id="getEvents", tags=["jobs"])
async def get_events(
    job_id: JobId,
    rt: Ctx,
    client: Caller,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Skip this many events.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> EventsOut:
    """The job's history, oldest first: every transition and cancel request, with actor and
    reason. A page ends at `limit` events or 4 MiB, whichever comes first (always at least
    one event): `next_offset` is where the next page starts, null at the end."""
    page = await rt.call(client.events_page, job_id, offset, limit)
    return EventsOut(items=[EventOut.of(event) for event in page.items], next_offset=page.next_offset)


@router.get(
    "/stream",
    operation_id="streamEvents",
    tags=["events"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events."}},
)
async def stream_events(rt: Ctx, request: Request) -> StreamingResponse:
    """Server-Sent Events: `hello` first, then `job.created`, `job.status`, `job.progress`,
    `job.items` and `job.deleted`, each with `{"type", "id", "job"}` (the job's summary);
    `resync` when this client fell behind (fetch the state again). Fetch the state you show
    after `hello`: every change after that is in the stream. A `user` sees only its own jobs."""
    keepalive = rt.stream_keepalive_s
    principal = _principal(request)
    owner = principal.name if principal is not None and not principal.is_admin else None

    async def body() -> AsyncIterator[bytes]:
        # Subscribed here, not in the handler, so a response that is never sent holds nothing.
        subscription = rt.broadcaster.subscribe(owner=owner)
        try:
            hello = ServerEvent.of(rt.broadcaster.last_id, "hello", '{"type":"hello"}')
            yield b"retry: 2000\n\n" + hello.data
            while (event := await subscription.next(keepalive)) is not None:
                yield event.data
        finally:
            rt.broadcaster.unsubscribe(subscription)

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


ScheduleName = Annotated[str, Path(max_length=200, description="A schedule's name.")]


@router.get("/schedules", operation_id="listSchedules", tags=["schedules"])
async def list_schedules(
    rt: Ctx, client: Caller, ticks: Annotated[int, Query(ge=0, le=100, description="Latest ticks per schedule.")] = 5
) -> SchedulesOut:
    """Every schedule, by name: its timing, next tick, pause and latest ticks; and which
    worker's scheduler leads (fires the ticks) now."""
    schedules, lease = await rt.call(lambda: (client.list_schedules(ticks=ticks), client.scheduler_lease()))
    leader = (
        None if lease is None else LeaderOut(holder=lease.holder, since=lease.since, expires_in_s=lease.expires_in_s)
    )
    return SchedulesOut(items=[ScheduleOut.of(s) for s in schedules], leader=leader)


@router.post("/schedules", operation_id="addSchedule", status_code=201, tags=["schedules"])
async def add_schedule(rt: Ctx, client: Caller, body: ScheduleBody) -> ScheduleOut:
    """Add a runtime schedule (admins only, 403). 422 for a bad cron expression, interval,
    time zone, unknown kind or params that do not fit it; 409 if the name is taken."""
    schedule = await rt.call(
        client.add_schedule,
        body.name,
        body.kind,
        body.params,
        cron=body.cron,
        every=body.every_s,
        timezone=body.timezone,
        overlap=body.overlap,
        catch_up=body.catch_up,
        priority=body.priority,
        timeout=body.timeout_s,
    )
    return ScheduleOut.of(schedule)


@router.get("/schedules/{name}", operation_id="getSchedule", tags=["schedules"])
async def get_schedule(name: ScheduleName, rt: Ctx, client: Caller) -> ScheduleOut:
    """One schedule with its latest ticks (404 if there is none by that name)."""
    return ScheduleOut.of(await rt.call(client.get_schedule, name))


@router.delete("/schedules/{name}", operation_id="removeSchedule", status_code=204, tags=["schedules"])
async def remove_schedule(name: ScheduleName, rt: Ctx, client: Caller) -> Response:
    """Remove a runtime schedule (admins only); 409 for one the app declares (remove it from
    the code, or pause it). Its ticks stay in history; jobs it made go on."""
    await rt.call(client.remove_schedule, name)
    return Response(status_code=204)


@router.post("/schedules/{name}/pause", operation_id="pauseSchedule", tags=["schedules"])
async def pause_schedule(name: ScheduleName, rt: Ctx, client: Caller) -> ScheduleOut:
    """Stop the schedule's ticks (admins only); a job it made goes on. Idempotent."""
    return ScheduleOut.of(await rt.call(client.pause_schedule, name))


@router.post("/schedules/{name}/resume", operation_id="resumeSchedule", tags=["schedules"])
async def resume_schedule(name: ScheduleName, rt: Ctx, client: Caller) -> ScheduleOut:
    """Tick again from the first tick after now (admins only). Idempotent."""
    return ScheduleOut.of(await rt.call(client.resume_schedule, name))


@router.post("/schedules/{name}/trigger", operation_id="triggerSchedule", tags=["schedules"])
async def trigger_schedule(name: ScheduleName, rt: Ctx, client: Caller) -> TickOut:
    """Make the schedule's job now through its overlap policy (admins only): the trace is
    `triggered`, or `skipped` naming the job still active."""
    return TickOut.of(await rt.call(client.trigger_schedule, name))


@router.get("/schedules/{name}/ticks", operation_id="listTicks", tags=["schedules"])
async def list_ticks(
    name: ScheduleName, rt: Ctx, client: Caller, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> TicksOut:
    """What became of the schedule's ticks, newest first (also of a removed schedule)."""
    return TicksOut(items=[TickOut.of(tick) for tick in await rt.call(client.schedule_ticks, name, limit=limit)])


@router.get("/workers", operation_id="listWorkers", tags=["server"])
async def list_workers(rt: Ctx, client: Caller) -> WorkersOut:
    """Every worker in the store's registry, newest first: host, pid, version, kinds, slots,
    when it started and last sent a heartbeat, and what it is now, decided from those facts
    (`alive`, `silent` for `silent_s` seconds, `stopped` cleanly, `dead`: its process was
    found gone and its jobs recovered), with the jobs it holds now (a `user` token sees the
    ids of its own jobs only). Rows of workers gone for a day are pruned."""
    workers = await rt.call(client.workers)
    return WorkersOut(items=[RegisteredWorkerOut.of(w) for w in workers], summary=WorkersSummaryOut.of(workers))


@router.get("/tokens", operation_id="listTokens", tags=["server"])
async def list_tokens(rt: Ctx, client: Caller) -> TokensOut:
    """Every API token: name, role, created, revoked (never a secret or hash). Admins only (403)."""
    return TokensOut(items=[TokenOut.of(record) for record in await rt.call(client.list_tokens)])


@router.post("/prune", operation_id="pruneHistory", tags=["server"])
async def prune(rt: Ctx, client: Caller, body: PruneBody) -> PruneOut:
    """Prune old history (admins only, 403: it removes everyone's). Jobs that finished more
    than `older_than_s` seconds ago keep a tombstone (id, kind, state, times, owner, tree and
    their cancel record) and lose params, result, traceback, checkpoint, items and events;
    with `purge` they are deleted. Runs in short transactions of `batch` jobs; a job whose
    tree still has an active job is left alone. Answers when done."""
    result = await rt.call(
        client.prune,
        body.older_than_s,
        statuses=body.statuses,
        kinds=body.kinds,
        purge=body.purge,
        dry_run=body.dry_run,
        batch=body.batch,
    )
    return PruneOut.of(result)


session_router = APIRouter(prefix="/api", tags=["session"], responses=_ERRORS)


@session_router.post("/session", operation_id="logIn", status_code=204)
async def log_in(request: Request, rt: Ctx) -> Response:
    """Exchange `Authorization: Bearer <token>` for a session cookie (HttpOnly, SameSite=Strict),
    so the dashboard's page never keeps the token. Without auth configured, sets nothing."""
    caller = request.scope.get("state", {}).get(CALLER_KEY)
    response = Response(status_code=204)
    if isinstance(caller, AuthenticatedCaller):
        response.set_cookie(
            SESSION_COOKIE,
            await rt.authenticator.open_session(caller),
            max_age=int(rt.authenticator.session_ttl_s),
            path=_cookie_path(request),
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
    return response


@session_router.delete("/session", operation_id="logOut", status_code=204)
async def log_out(request: Request, rt: Ctx) -> Response:
    """End this browser's session and clear its cookie."""
    session = request.cookies.get(SESSION_COOKIE)
    if session:
        await rt.authenticator.close_session(session)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path=_cookie_path(request), httponly=True, samesite="strict")
    return response


def _cookie_path(request: Request) -> str:
    """Where the app is served (``/``, or ``/andon/`` when mounted there): the session cookie
    goes only to this app's requests, not to the rest of the site it is mounted in."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/") + "/"


def _redacted(url: str) -> str:
    """The database URL without a password (``scheme://user:***@host/...``)."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.partition(':')[0]}:***@{host}{slash}{path}"
