"""Who may do what: roles, principals and API tokens.

Two roles: ``admin`` may do everything; ``user`` may submit jobs and see, cancel, retry and
delete only the jobs it owns (every job records its ``owner``, the name of whoever
submitted it). The rules are applied by :class:`andon.Client` when it acts for a
:class:`Principal`, so every shell (HTTP, CLI, dashboard) gets the same answers: another
user's job is :class:`~andon.JobNotFound`, exactly as if it did not exist.

Tokens are 32 random bytes from :mod:`secrets`; stores keep only their SHA-256 hash (a
token has 256 bits of entropy, so a slow password hash would add nothing).
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Final, final

from andon._errors import UsageError

__all__ = ["IssuedToken", "Principal", "Role", "TokenRecord", "check_token_name", "hash_token", "new_token"]

TOKEN_PREFIX: Final = "andon_"
_TOKEN_BYTES: Final = 32
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
STATIC_ADMIN: Final = "admin"
"""The name of the principal the server's own ``--token`` / ``ANDON_TOKEN`` stands for."""


class Role(enum.StrEnum):
    """What a principal may do."""

    ADMIN = "admin"
    """Everything, on every job."""
    USER = "user"
    """Submit; see, cancel, retry and delete only its own jobs."""


@final
@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a token's name and role."""

    name: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def actor(self) -> str:
        """How job history names this caller (``"user:alice"``)."""
        return f"{self.role.value}:{self.name}"

    def may_see(self, owner: str | None) -> bool:
        """Whether a job owned by ``owner`` is visible to this principal."""
        return self.is_admin or owner == self.name


@final
@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A stored token, without its secret (stores hold only its hash)."""

    name: str
    role: Role
    created_at: float
    revoked_at: float | None = None

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def principal(self) -> Principal:
        return Principal(self.name, self.role)


@final
@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token just created: ``token`` is the secret, shown this once and never stored."""

    token: str
    record: TokenRecord

    def __repr__(self) -> str:  # never print the secret by accident
        return f"IssuedToken(token='***', record={self.record!r})"


def new_token() -> str:
    """A fresh token: ``andon_`` and 32 random bytes, URL-safe base64."""
    return TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The SHA-256 hex digest stores keep instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def check_token_name(name: str) -> str:
    """Return ``name`` if it can name a token.

    Raises:
        UsageError: empty, too long, odd characters, or the reserved name ``admin``.
    """
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"bad token name {name!r}: use 1-64 letters, digits, '.', '_', '-' or '@', starting with a letter or digit"
        )
    if name == STATIC_ADMIN:
        raise UsageError(f"the token name {STATIC_ADMIN!r} is reserved for the server's own --token; pick another")
    return name
