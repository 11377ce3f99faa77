"""API access tokens: only their hashes are stored; a revoked token is kept (names are never reused)."""

from __future__ import annotations

from andon._access import Role, TokenRecord
from andon._errors import UsageError
from andon._storage._connector import IfUnsure, Resolution, Tx
from andon._storage._ops._base import C, Operations
from andon._storage._rows import Row

__all__ = ["TokenOperations"]


class TokenOperations(Operations[C]):
    def create_token(self, name: str, role: Role, token_hash: str) -> TokenRecord:
        args = {"name": name, "role": role.value, "hash": token_hash, "now": self._clock.now()}

        def applied(tx: Tx) -> Row | Resolution | None:
            row = tx.one("find_token", args)
            return row if row is not None and row["name"] == name else Resolution.NOT_APPLIED

        row = self._db.write(lambda tx: tx.one("insert_token", args), applied, single=True)
        if row is None:
            raise UsageError(f"a token named {name!r} exists already (names are never reused); pick another")
        return _token_from_row(row)

    def find_token(self, token_hash: str) -> TokenRecord | None:
        row = self._db.read(lambda tx: tx.one("find_token", {"hash": token_hash}))
        return _token_from_row(row) if row is not None else None

    def list_tokens(self) -> list[TokenRecord]:
        return [_token_from_row(r) for r in self._db.read(lambda tx: tx.all("list_tokens", {}))]

    def revoke_token(self, name: str) -> TokenRecord:
        args = {"name": name, "now": self._clock.now()}

        def revoke(tx: Tx) -> Row | None:
            row = tx.one("revoke_token", args)
            tx.one("drop_token_sessions", args)  # its sessions end with it, on every server
            return row

        row = self._db.write(revoke, IfUnsure.RETRY)
        if row is None:
            raise UsageError(f"no token is named {name!r} (see: andon token ls)")
        return _token_from_row(row)


def _token_from_row(row: Row) -> TokenRecord:
    return TokenRecord(row["name"], Role(row["role"]), row["created_at"], row["revoked_at"])
