"""Dashboard sessions: kept in the store, so every server of it honours them and a restart
keeps them.

A session row holds a hash of the cookie (never the cookie), what it was made from and
when it expires. Who the session acts for is read afresh with every lookup: the row of the
stored token it was made from comes with it (a revoke also deletes the token's sessions,
in its own transaction), so a revoked token's session is refused at once by every server.
Expiry is judged on the store's clock.

The table stays small by itself: each open drops a bounded batch of expired rows, and
keeps at most ``keep`` sessions per token (a caller with a valid token who logs in again
and again replaces its own oldest sessions, and no one else's).
"""

from __future__ import annotations

from typing import Final

from andon._access import Role, TokenRecord
from andon._errors import UsageError
from andon._storage._connector import IfUnsure, Resolution, Tx
from andon._storage._ops._base import C, Operations
from andon._storage._records import SessionRecord
from andon._storage._rows import Row

__all__ = ["MAX_SESSIONS_PER_TOKEN", "SessionOperations"]

MAX_SESSIONS_PER_TOKEN: Final = 1000
"""Live sessions one token may have; a new one beyond it ends that token's oldest."""
PRUNE_BATCH: Final = 100
"""Expired sessions one open drops at most (its transaction stays short)."""
_OWN_TOKEN: Final = ""
"""``token_hash`` of a session made from a server's own token (no stored token has this hash)."""


class SessionOperations(Operations[C]):
    def open_session(
        self,
        session_hash: str,
        token_hash: str | None,
        own_token_mac: str | None,
        ttl_s: float,
        *,
        keep: int = MAX_SESSIONS_PER_TOKEN,
    ) -> SessionRecord:
        if (token_hash is None) == (own_token_mac is None):
            raise UsageError("a session is made from a stored token or from a server's own token: give one of them")
        if not ttl_s > 0 or keep < 1:
            raise UsageError(f"a session needs a positive lifetime and room for one (ttl_s={ttl_s}, keep={keep})")
        now = self._clock.now()
        args = {
            "hash": session_hash,
            "token_hash": _OWN_TOKEN if token_hash is None else token_hash,
            "own_token_mac": own_token_mac,
            "now": now,
            "expires_at": now + ttl_s,
            "keep": keep,
            "limit": PRUNE_BATCH,
        }

        def body(tx: Tx) -> Row | None:
            tx.one("prune_sessions", args)
            tx.one("insert_session", args)
            tx.one("cap_sessions", args)
            return tx.one("find_session", args)

        def applied(tx: Tx) -> Row | Resolution | None:
            return tx.one("find_session", args) or Resolution.NOT_APPLIED

        row = self._db.write(body, applied)
        assert row is not None  # just inserted, unexpired, and the newest of its token
        return _session_from_row(row)

    def find_session(self, session_hash: str) -> SessionRecord | None:
        args = {"hash": session_hash, "now": self._clock.now()}
        row = self._db.read(lambda tx: tx.one("find_session", args))
        return _session_from_row(row) if row is not None else None

    def close_session(self, session_hash: str) -> bool:
        row = self._db.write(lambda tx: tx.one("delete_session", {"hash": session_hash}), IfUnsure.RETRY)
        return row is not None and int(row["n"]) > 0


def _session_from_row(row: Row) -> SessionRecord:
    own = row["token_hash"] == _OWN_TOKEN
    token = None
    if row["name"] is not None:
        token = TokenRecord(row["name"], Role(row["role"]), row["token_created_at"], row["revoked_at"])
    return SessionRecord(
        token_hash=None if own else row["token_hash"],
        token=token,
        own_token_mac=row["own_token_mac"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
    )
