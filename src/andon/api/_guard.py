"""The request guard: one ASGI middleware that every HTTP request passes first.

In order, it refuses:

1. a ``Host`` the server does not answer to (400): without a token only loopback names,
   so a web page cannot reach a local server through DNS rebinding; with one, any name,
   which is safe only because auth then stays required for the server's whole life
   (``Authenticator.required`` latches), so revoking the last token closes the API
   rather than opening it to every name;
2. a state-changing request (POST, PUT, PATCH, DELETE) whose ``Origin`` (or, without one,
   ``Referer``) is another site (403): cross-site request forgery;
3. an API request (``/metrics`` included) that does not prove who it is, when auth is
   required (401): a bearer token (the server's or one from ``andon token create``) or
   the dashboard's session cookie (``_auth.py``); the caller is put in ``scope["state"]["andon.caller"]``;
4. an API request before the service's lifespan ran, when it has a worker to start (503
   ``not_started``): its jobs would stay queued;
5. a body larger than the limit (413), or a body that is not declared JSON (415).

Paths are read relative to where the app is mounted (``root_path``), so every rule holds
the same for ``/api/v1/jobs`` served alone and ``/andon/api/v1/jobs`` mounted at ``/andon``.

It also adds security headers to every answer. It is a plain ASGI middleware (not
Starlette's ``BaseHTTPMiddleware``) so it never buffers responses: the event stream flows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from typing import Final, final
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import andon
from andon.api._auth import SESSION_COOKIE, Authenticator, Caller

__all__ = ["CALLER_KEY", "LOOPBACK_HOSTS", "METRICS_PATH", "RETRY_AFTER", "Guard", "route_path"]

CALLER_KEY: Final = "andon.caller"
METRICS_PATH: Final = "/metrics"
"""The scrape target: guarded as the API is (whoever may read jobs may scrape)."""

LOOPBACK_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})
RETRY_AFTER: Final = {"retry-after": "1"}
"""The header of every 503: it did nothing, and the database may be free in a moment."""
_UNSAFE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})

_CSP: Final = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
# FastAPI's /docs page loads Swagger UI from a CDN and starts it with an inline script.
_DOCS_CSP: Final = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net;"
    " style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com;"
    " base-uri 'none'; frame-ancestors 'none'"
)
_HEADERS: Final = {
    "x-content-type-options": "nosniff",
    # same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on the
    # dashboard's own POSTs, which the cross-site check would then refuse.
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}


@final
class Guard:
    """Wraps ``app``; see the module docstring for what it refuses.

    Args:
        auth: tells who a request comes from, and whether it must say.
        allowed_hosts: host names the server answers to; ``None`` for any.
        max_body_bytes: the largest request body accepted.
        readiness: why API requests cannot be served yet (answered 503), or ``None``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        auth: Authenticator,
        allowed_hosts: Collection[str] | None,
        max_body_bytes: int,
        readiness: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.app = app
        self._auth = auth
        self._hosts = frozenset(h.lower() for h in allowed_hosts) if allowed_hosts is not None else None
        self._max_body = max_body_bytes
        self._readiness = readiness

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        send = _with_security_headers(send, path)
        headers = Headers(scope=scope)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await _answer(send, *refusal)
            return
        is_api = path.startswith("/api/") or path == METRICS_PATH
        if is_api and (not_ready := self._readiness()) is not None:
            await _answer(send, 503, "not_started", not_ready)
            return
        try:
            allowed = not is_api or await self._authenticate(scope, path, headers)
        except (andon.StorageError, andon.LifecycleError) as exc:  # fail closed, and say why
            code = "storage_unavailable" if isinstance(exc, andon.StorageError) else "unavailable"
            await _answer(send, 503, code, f"cannot check who this request comes from: {exc}", RETRY_AFTER)
            return
        if not allowed:
            message = "this server needs a token: send Authorization: Bearer <token>, or log in to the dashboard"
            await _answer(send, 401, "unauthorized", message, {"www-authenticate": 'Bearer realm="andon"'})
            return
        if scope["method"] in _UNSAFE_METHODS or "content-length" in headers or "transfer-encoding" in headers:
            body = await self._read_body(headers, receive, send)
            if body is None:
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope, headers: Headers) -> tuple[int, str, str, dict[str, str]] | None:
        host = headers.get("host", "")
        if self._hosts is not None and _host_name(host) not in self._hosts:
            message = "this server does not answer to that Host (bind a token to serve other names)"
            return 400, "bad_host", message, {}
        if scope["method"] in _UNSAFE_METHODS and not _same_origin(headers, host):
            return 403, "cross_origin", "state-changing requests from another origin are refused", {}
        return None

    async def _authenticate(self, scope: Scope, path: str, headers: Headers) -> bool:
        """Whether the request may go on; records its caller (if any) in the scope's state.

        A request that brings no credentials is let through only when auth is not required;
        one that brings wrong ones never is (logging out needs none).
        """
        caller: Caller | None = None
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if given.strip() and scheme.lower() == "bearer":
            caller = await self._auth.from_bearer(given.strip())
            if caller is None:
                return False
        elif session := cookie_parser(headers.get("cookie", "")).get(SESSION_COOKIE):
            caller = await self._auth.from_session(session)
        if caller is not None:
            scope.setdefault("state", {})[CALLER_KEY] = caller
            return True
        if path == "/api/session" and scope["method"] == "DELETE":
            return True
        return not await self._auth.required()

    async def _read_body(self, headers: Headers, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or ``None`` after answering an error (or if the client left)."""
        declared = headers.get("content-length")
        if declared is not None and not declared.isdigit():
            await _answer(send, 400, "bad_request", "Content-Length is not a number")
            return None
        if declared is not None and int(declared) > self._max_body:
            await _answer(send, 413, "body_too_large", f"the request body is larger than {self._max_body} bytes")
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                await _answer(send, 413, "body_too_large", f"the request body is larger than {self._max_body} bytes")
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body and not _is_json(headers.get("content-type", "")):
            await _answer(send, 415, "unsupported_media_type", "send the body as JSON (Content-Type: application/json)")
            return None
        return body


def route_path(scope: Scope) -> str:
    """The request's path below where the app is mounted: what its routes match.

    Starlette's ``Mount`` keeps the full ``path`` and extends ``root_path`` by the mount
    prefix; the routes match what follows it. The guard must decide on that same string,
    or ``/andon/api/...`` would pass as a non-API path without auth.
    """
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :] or "/"
    return path


def _host_name(host: str) -> str:
    """``"127.0.0.1:8000"`` -> ``"127.0.0.1"``, ``"[::1]:8000"`` -> ``"::1"``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, sep, port = host.rpartition(":")
    return name if sep and port.isdigit() else host


def _same_origin(headers: Headers, host: str) -> bool:
    """Whether a request's Origin (or Referer) is this server; true when it sends neither.

    Compares ``host[:port]`` only, not the scheme, so a TLS-terminating proxy in front of
    the server does not break it; one port cannot serve two schemes, so this is as strict.
    """
    source = headers.get("origin") or headers.get("referer")
    if source is None:
        return True
    try:
        netloc = urlsplit(source).netloc.lower()
    except ValueError:
        return False
    return bool(netloc) and netloc == host.strip().lower()


def _is_json(content_type: str) -> bool:
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then defers to the real one."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _with_security_headers(send: Send, path: str) -> Send:
    csp = _DOCS_CSP if path in ("/docs", "/docs/oauth2-redirect") else _CSP

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            for name, value in (*_HEADERS.items(), ("content-security-policy", csp)):
                headers.setdefault(name, value)
            if path.startswith("/api/"):
                headers.setdefault("cache-control", "no-store")
        await send(message)

    return send_with_headers


async def _answer(
    send: Send, status: int, code: str, message: str, extra_headers: dict[str, str] | None = None
) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name.encode(), value.encode()) for name, value in (extra_headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
