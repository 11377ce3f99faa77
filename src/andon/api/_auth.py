"""Who is calling: bearer tokens, the server's own token, and dashboard sessions.

A request proves who it is with ``Authorization: Bearer <token>`` (the server's
``--token``, which acts as ``admin``, or a token made with ``andon token create``), or
with the dashboard's session cookie. The dashboard exchanges a token for that cookie once
(``POST /api/session``); the cookie is ``HttpOnly`` and ``SameSite=Strict``, so page
scripts never hold the token and other sites cannot send it.

Sessions live in the store (``_storage/_ops/_sessions.py``), so every server of one store
honours them, a restart keeps them, and logging out on one server ends the session on
all. The store keeps a SHA-256 hash of the cookie, never the cookie. Every request with a
cookie reads its session afresh (one lookup by primary key, which brings the token's row):
no server caches it, so a logout or a revoke anywhere is refused everywhere at once.

A session acts for the token it was made from, and only while that token is valid:

* a stored token: its hash is kept with the session; revoking the token deletes its
  sessions, and a session whose token is revoked is refused anyway;
* a server's own token (``--token``): that token is never stored, not even hashed (it
  may be a weak one). The session keeps an HMAC-SHA256 of it keyed by the cookie, and a
  server honours it only if its own token gives the same HMAC. So servers of one store
  with different own tokens each honour only their own token's sessions, and a server
  restarted with a new token no longer honours the old one's. Without the cookie (only
  its hash is stored) the HMAC tells nothing about the token.

Auth is *required* as soon as the server has a ``--token`` or the store holds an active
token; until then the API is open (and answers on loopback names only). Once required,
it stays required for the rest of the server's life, even after the last token is
revoked: a server's access policy may tighten by itself but never loosen. Bearer-token
lookups are cached for ``cache_s`` seconds, so a revoked token stops working as a bearer
token within that time (its sessions at once).
Nothing here ever logs or echoes a token or a cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, final

import andon
from andon._access import STATIC_ADMIN, hash_token
from andon._storage import SessionRecord

__all__ = ["SESSION_COOKIE", "Authenticator", "Caller"]

SESSION_COOKIE: Final = "andon_session"
_MAX_CACHED: Final = 10_000


@final
@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated request: its principal, and the hash of the store token it used
    (``None`` for the server's own token), so a session made from it dies with the token."""

    principal: andon.Principal
    token_hash: str | None


@final
class Authenticator:
    """Resolves requests to callers.

    Args:
        store: where tokens are looked up.
        static_token: the server's own token (acts as admin), or ``None``.
        call: runs a blocking store call off the event loop.
        cache_s: how long a token lookup (and "are there tokens at all") is reused.
        session_ttl_s: how long a dashboard session lasts (from login; using it does not
            extend it, as the cookie's ``Max-Age`` is fixed when it is set).
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

    async def from_session(self, cookie: str) -> Caller | None:
        """The caller of a live session whose token is still valid; ``None`` otherwise.

        A store read every time, never cached (see the module's docstring).
        """
        session_hash = hash_token(cookie)
        found = await self._call(lambda: self._store.find_session(session_hash))
        if not isinstance(found, SessionRecord):
            return None
        if found.own_token_mac is not None:
            honoured = self._static is not None and hmac.compare_digest(
                found.own_token_mac, _own_token_mac(cookie, self._static)
            )
            return Caller(andon.Principal(STATIC_ADMIN, andon.Role.ADMIN), None) if honoured else None
        if found.token is None or not found.token.is_active:
            return None
        self._required = True  # as for a bearer token: an active token exists
        return Caller(found.token.principal, found.token_hash)

    async def open_session(self, caller: Caller) -> str:
        """A new session for ``caller``, in the store; returns its cookie (random, 256 bits)."""
        cookie = secrets.token_urlsafe(32)
        if caller.token_hash is None:  # the server's own token
            assert self._static is not None, "only the server's own token makes a caller without a token hash"
            token_hash, mac = None, _own_token_mac(cookie, self._static)
        else:
            token_hash, mac = caller.token_hash, None
        ttl_s = self._session_ttl_s
        await self._call(lambda: self._store.open_session(hash_token(cookie), token_hash, mac, ttl_s))
        return cookie

    async def close_session(self, cookie: str) -> None:
        """End the session of ``cookie`` on every server of the store (if it exists)."""
        session_hash = hash_token(cookie)
        await self._call(lambda: self._store.close_session(session_hash))

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


def _own_token_mac(cookie: str, own_token: bytes) -> str:
    """What a session made from a server's own token keeps of it: only a server that holds
    the same token and is given the cookie can compute it again."""
    return hmac.new(cookie.encode(), own_token, hashlib.sha256).hexdigest()
