"""Who is calling: bearer tokens, the server's own token, and dashboard sessions.

A request proves who it is with ``Authorization: Bearer <token>`` (the server's
``--token``, which acts as ``admin``, or a token made with ``andon token create``), or
with the dashboard's session cookie. The dashboard exchanges a token for that cookie once
(``POST /api/session``); the cookie is ``HttpOnly`` and ``SameSite=Strict``, so page
scripts never hold the token and other sites cannot send it.

Auth is *required* as soon as the server has a ``--token`` or the store holds an active
token; until then the API is open (and answers on loopback names only). Once required,
it stays required for the rest of the server's life, even after the last token is
revoked: a server's access policy may tighten by itself but never loosen. Store lookups
are cached for ``cache_s`` seconds, so a revoked token stops working within that time.
Nothing here ever logs or echoes a token.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, final

import andon
from andon._access import STATIC_ADMIN, hash_token

__all__ = ["SESSION_COOKIE", "Authenticator", "Caller"]

SESSION_COOKIE: Final = "andon_session"
_MAX_CACHED: Final = 10_000
_MAX_SESSIONS: Final = 10_000


@final
@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated request: its principal, and the hash of the store token it used
    (``None`` for the server's own token), so a session made from it dies with the token."""

    principal: andon.Principal
    token_hash: str | None


@final
@dataclass(slots=True)
class _Session:
    caller: Caller
    expires_at: float


@final
class Authenticator:
    """Resolves requests to callers.

    Args:
        store: where tokens are looked up.
        static_token: the server's own token (acts as admin), or ``None``.
        call: runs a blocking store call off the event loop.
        cache_s: how long a token lookup (and "are there tokens at all") is reused.
        session_ttl_s: how long a dashboard session lasts.
        required: auth is required from the start (the store held an active token when
            the server was made); ``static_token`` implies it.
    """

    def __init__(
        self,
        store: andon.Store,
        *,
        static_token: str | None,
        call: Callable[[Callable[[], object]], Awaitable[object]],
        cache_s: float = 1.0,
        session_ttl_s: float = 12 * 3600.0,
        required: bool = False,
    ) -> None:
        self._store = store
        self._static = static_token.encode() if static_token else None
        self._call = call
        self._cache_s = cache_s
        self._session_ttl_s = session_ttl_s
        self._lookups: dict[str, tuple[float, andon.TokenRecord | None]] = {}
        self._any_tokens: tuple[float, bool] | None = None
        self._required = required or self._static is not None
        self._sessions: dict[str, _Session] = {}

    @property
    def session_ttl_s(self) -> float:
        return self._session_ttl_s

    async def required(self) -> bool:
        """Whether requests must prove who they are; once true, true for good.

        The latch is the point: a server that had tokens answers any Host, because tokens
        guard it; had revoking the last one made it open again, anyone could use it under
        any name. Only a restart with no active token re-opens it, and then on loopback
        names only (``test_auth_never_loosens.py``).
        """
        # Set, never assigned from the lookup: a slower concurrent lookup that read the
        # store before a token was created must not undo a latch another one just set.
        if not self._required and await self._any_active_token():
            self._required = True
        return self._required

    async def _any_active_token(self) -> bool:
        now = time.monotonic()
        if self._any_tokens is None or now - self._any_tokens[0] >= self._cache_s:
            tokens = await self._call(self._store.list_tokens)
            assert isinstance(tokens, list)
            self._any_tokens = (now, any(t.is_active for t in tokens))
        return self._any_tokens[1]

    async def from_bearer(self, token: str) -> Caller | None:
        """The caller a bearer token stands for; ``None`` if it is unknown or revoked."""
        if self._static is not None and hmac.compare_digest(token.encode(), self._static):
            return Caller(andon.Principal(STATIC_ADMIN, andon.Role.ADMIN), None)
        digest = hash_token(token)
        record = await self._lookup(digest)
        if record is None:
            return None
        # An active token exists, so auth is required from now on, even if no anonymous
        # request ever saw it before it is revoked.
        self._required = True
        return Caller(record.principal, digest)

    async def from_session(self, session_id: str) -> Caller | None:
        """The caller of a live session whose token is still valid; ``None`` otherwise."""
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if time.time() >= session.expires_at:
            self._sessions.pop(session_id, None)
            return None
        digest = session.caller.token_hash
        if digest is not None and await self._lookup(digest) is None:
            self._sessions.pop(session_id, None)  # the token was revoked
            return None
        return session.caller

    def open_session(self, caller: Caller) -> str:
        """A new session id for ``caller`` (random, 256 bits)."""
        if len(self._sessions) >= _MAX_SESSIONS:
            oldest = min(self._sessions, key=lambda key: self._sessions[key].expires_at)
            del self._sessions[oldest]
        session_id = secrets.token_urlsafe(32)
        self._sessions[session_id] = _Session(caller, time.time() + self._session_ttl_s)
        return session_id

    def close_session(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    async def _lookup(self, digest: str) -> andon.TokenRecord | None:
        now = time.monotonic()
        cached = self._lookups.get(digest)
        if cached is not None and now - cached[0] < self._cache_s:
            record = cached[1]
        else:
            found = await self._call(lambda: self._store.find_token(digest))
            record = found if isinstance(found, andon.TokenRecord) else None
            if len(self._lookups) >= _MAX_CACHED:  # random wrong tokens must not grow memory
                self._lookups.clear()
            self._lookups[digest] = (now, record)
        return record if record is not None and record.is_active else None
