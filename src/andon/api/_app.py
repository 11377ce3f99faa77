"""The service (its FastAPI app and lifespan) and the app factory: routes, the request guard,
error mapping and the lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import AbstractAsyncContextManager
from typing import Final, final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

import andon
from andon import dashboard
from andon._sizes import MAX_REQUEST_BYTES
from andon.api._auth import Authenticator
from andon.api._guard import LOOPBACK_HOSTS, RETRY_AFTER, Guard
from andon.api._metrics import metrics_registry, metrics_router
from andon.api._routes import router, session_router
from andon.api._runtime import Runtime, RuntimeState
from andon.api._schemas import ErrorBody, ErrorDetail

__all__ = ["ERROR_STATUS", "MAX_BODY_BYTES", "Service", "create_app", "runtime_of"]

log = logging.getLogger("andon.api")

MAX_BODY_BYTES: Final = MAX_REQUEST_BYTES

ERROR_STATUS: Final[tuple[tuple[type[andon.AndonError], int, str], ...]] = (
    (andon.JobNotFound, 404, "job_not_found"),
    (andon.ScheduleNotFound, 404, "schedule_not_found"),
    (andon.ScheduleExists, 409, "schedule_exists"),
    (andon.ScheduleFromApp, 409, "schedule_from_app"),
    (andon.InvalidSchedule, 422, "invalid_schedule"),
    (andon.NotAllowed, 403, "not_allowed"),
    (andon.JobFinished, 409, "job_finished"),
    (andon.JobPruned, 409, "job_pruned"),
    (andon.InvalidTransition, 409, "invalid_transition"),
    (andon.ItemsNotFlat, 409, "items_not_flat"),
    (andon.ParamsTooLarge, 413, "params_too_large"),
    (andon.InvalidCursor, 422, "invalid_request"),
    (andon.InvalidKey, 422, "invalid_key"),
    (andon.IdempotencyKeyReused, 422, "idempotency_key_reused"),
    (andon.InvalidParams, 422, "invalid_params"),
    (andon.UnknownKind, 422, "unknown_kind"),
    (andon.WaitTimeout, 504, "wait_timeout"),
    (andon.ConfigurationError, 400, "configuration_error"),
    (andon.StorageBusy, 503, "storage_busy"),
    (andon.StorageError, 503, "storage_unavailable"),
    (andon.LifecycleError, 503, "unavailable"),
    (andon.UsageError, 400, "bad_request"),
    (andon.AndonError, 500, "internal_error"),
)
"""How andon's errors become HTTP answers; the first matching class wins.

``WaitTimeout`` is 504 (the server gave up waiting for the work, which goes on; the
cancel stays requested), not 408, which means the *client* was too slow to send its
request and which browsers may silently resend. Every 503 carries ``Retry-After``: the
request did nothing, and the same request may succeed a moment later.
"""


@final
class Service:
    """Andon's REST API, event stream and dashboard, with the background pieces they need.

    ``app`` is an ASGI app (a FastAPI) to serve on its own or to mount in your FastAPI app;
    ``lifespan`` starts and stops what it needs: the worker (if given), the event stream's
    broadcaster and the threads that run blocking calls. A server that runs ``app`` on its
    own runs ``lifespan`` itself. A *mounted* app's lifespan never runs (Starlette only runs
    the top-level app's), so your app enters ``lifespan`` in its own::

        andon_api = Service(store, jobs, worker=andon.Worker(jobs, store))

        @contextlib.asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            async with andon_api.lifespan(app):
                yield

        app = FastAPI(lifespan=lifespan)
        app.mount("/andon", andon_api.app)

    Until ``lifespan`` has been entered, the API answers 503 ``not_started`` when it has a
    worker (its jobs would stay queued), and logs an error otherwise; its info endpoint
    lists the worker only while the worker runs. Without a worker, the lifespan runs a
    :class:`andon.Lookout`: a worker of this machine whose process is gone has its jobs
    recovered at once even when no other worker runs. Every request to ``app`` passes the same
    guard (Host check, same-origin check for state changes, tokens, body limits, security
    headers) at any mount path, and the dashboard works at ``<prefix>/``.

    Args:
        source: a client, or a store to make one on (it is not closed by the service).
        app: the job kinds that may be submitted (default: the client's app).
        worker: a worker the lifespan starts (if new) and stops, gracefully.
        token: the server's own token; it acts as ``admin``. With it, or with any active
            token in the store (``andon token create``), every ``/api/`` request must
            prove who it is: ``Authorization: Bearer <token>`` or a dashboard session.
            Once that is so, it stays so until the service is made again, even if the last
            token is revoked.
        allowed_hosts: host names the server answers to. Default: loopback names only
            when no auth is configured (so a web page cannot reach it by DNS rebinding),
            any name when it is.
        max_body_bytes: larger request bodies get 413.
        stream_keepalive_s: seconds between keep-alive comments on an idle event stream.
        auth_cache_s: how long a token lookup is reused (a revoked token works at most
            this much longer).
    """

    def __init__(
        self,
        source: andon.Client | andon.Store,
        app: andon.App | None = None,
        *,
        worker: andon.Worker | None = None,
        token: str | None = None,
        allowed_hosts: Collection[str] | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        stream_keepalive_s: float = 15.0,
        auth_cache_s: float = 1.0,
    ) -> None:
        if isinstance(source, andon.Client):
            client = source if app is None or app is source.app else andon.Client(source.store, app, actor=source.actor)
        else:
            client = andon.Client(source, app, actor="http")
        self.runtime = Runtime(client, worker=worker, token=token or None, stream_keepalive_s=stream_keepalive_s)
        # One reading decides both the Host rule and auth at start-up, so they cannot disagree:
        # "any Host" is only ever granted to a server whose auth is latched on for good.
        guarded = bool(token) or any(t.is_active for t in client.store.list_tokens())
        self.runtime.authenticator = Authenticator(
            client.store, static_token=token or None, call=self.runtime.call, cache_s=auth_cache_s, required=guarded
        )
        if allowed_hosts is None and not guarded:
            allowed_hosts = LOOPBACK_HOSTS
        self.app = _fastapi(self.runtime, self.lifespan)
        self.app.add_middleware(
            Guard,
            auth=self.runtime.authenticator,
            allowed_hosts=allowed_hosts,
            max_body_bytes=max_body_bytes,
            readiness=self._readiness,
        )
        self._warned_not_started = False

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: object = None) -> AsyncIterator[None]:
        """Start the worker (if new), the event broadcaster and the call threads; stop them on exit.

        The worker's stop is graceful: running jobs get its shutdown grace, then go back to
        the queue. Enter it once: a service serves one lifespan (``LifecycleError`` after).
        Takes (and ignores) an app argument so it can be passed as ``FastAPI(lifespan=...)``.
        """
        await self.runtime.start()
        try:
            yield
        finally:
            await self.runtime.stop()

    def _readiness(self) -> str | None:
        """Why an API request cannot be served yet, or ``None`` when it can."""
        if self.runtime.state is not RuntimeState.NEW:
            return None
        message = (
            "andon's lifespan has not run, so its worker and event stream are not started:"
            " enter andon.api.Service.lifespan in your app's lifespan (see the README, 'Inside your FastAPI app')"
        )
        if not self._warned_not_started:
            self._warned_not_started = True
            log.error("%s", message)
        return message if self.runtime.worker is not None else None


def create_app(
    source: andon.Client | andon.Store,
    app: andon.App | None = None,
    *,
    worker: andon.Worker | None = None,
    token: str | None = None,
    allowed_hosts: Collection[str] | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    stream_keepalive_s: float = 15.0,
    auth_cache_s: float = 1.0,
) -> FastAPI:
    """The REST API, its event stream and the dashboard, as one ASGI app that runs its own lifespan.

    ``Service(...).app``: see :class:`Service` for the arguments, and to mount Andon in your
    own FastAPI app (where this app's lifespan would never run).
    """
    return Service(
        source,
        app,
        worker=worker,
        token=token,
        allowed_hosts=allowed_hosts,
        max_body_bytes=max_body_bytes,
        stream_keepalive_s=stream_keepalive_s,
        auth_cache_s=auth_cache_s,
    ).app


def _fastapi(runtime: Runtime, lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]]) -> FastAPI:
    api = FastAPI(
        title="andon",
        version=andon.__version__,
        summary="Background jobs that really stop when you press Cancel.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    api.state.andon = runtime
    api.state.andon_metrics = metrics_registry(runtime)
    api.include_router(router)
    api.include_router(session_router)
    api.include_router(metrics_router)
    api.include_router(dashboard.router)
    api.add_exception_handler(andon.AndonError, _andon_error)
    api.add_exception_handler(RequestValidationError, _invalid_request)
    api.add_exception_handler(HTTPException, _http_error)
    return api


def runtime_of(api: FastAPI) -> Runtime:
    """The background pieces of an app made by :func:`create_app` (or a :class:`Service`'s ``app``)."""
    runtime = api.state.andon
    if not isinstance(runtime, Runtime):
        raise andon.ConfigurationError("this app was not made by andon.api.create_app")
    return runtime


def _error(status: int, detail: ErrorDetail, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(ErrorBody(error=detail).model_dump(mode="json", exclude_none=True), status, headers)


async def _andon_error(_request: Request, exc: Exception) -> JSONResponse:
    status, code = next((s, c) for cls, s, c in ERROR_STATUS if isinstance(exc, cls))
    if status >= 500:
        log.warning("%s: %s", type(exc).__name__, exc)
    return _error(
        status,
        ErrorDetail(
            code=code,
            message=str(exc),
            state=getattr(exc, "state", None),
            job_id=getattr(exc, "job_id", None),
            problems=getattr(exc, "problems", None),
        ),
        RETRY_AFTER if status == 503 else None,
    )


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [_problem(error) for error in exc.errors()]
    return _error(422, ErrorDetail(code="invalid_request", message="; ".join(problems), problems=problems))


def _problem(error: object) -> str:
    if not isinstance(error, dict):
        return str(error)
    where = ".".join(str(part) for part in error.get("loc", ()))
    return f"{where}: {error.get('msg', 'invalid')}"


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    message = "no such endpoint" if exc.status_code == 404 and exc.detail == "Not Found" else str(exc.detail)
    return _error(exc.status_code, ErrorDetail(code=code, message=message), dict(exc.headers or {}))
