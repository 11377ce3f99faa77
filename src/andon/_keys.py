"""Keyed jobs and idempotent submits: the rules, as pure functions both stores apply inside
the transaction of a submit.

A job may carry a business **key**: while a job of the same kind with that key is active
(queued, running or cancelling), a submit with the key does what its ``on_conflict`` says:

==============  ==============================================================================
on_conflict     a submit while a job of the kind with the key is active
==============  ==============================================================================
``skip``        creates nothing; answers the newest active job with the key
``queue``       creates one job to wait behind the active one; while a job with the key is
                queued (not started), answers that one instead
``supersede``   stops every active job with the key (a queued one is withdrawn, a running one
                asked to stop; reason ``superseded``, origin the new job) and creates the new
                job, which no worker claims before every one of them has stopped
==============  ==============================================================================

A worker never starts a keyed job while another job of its kind and key is running or
cancelling, or queued ahead of it (the ``claim`` statement of each store): so at most one
job per kind and key runs at a time, whatever the policies that made them.

An **idempotency key** (the HTTP ``Idempotency-Key`` header) makes a submit safe to send
again: within :data:`IDEMPOTENCY_WINDOW_S` of the first, the same key from the same caller
answers what the first answered (the job it created or found, and whether it created it),
stored in the same transaction as the job.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from andon._errors import InvalidKey, UsageError
from andon._jobs import Job, JobStatus

__all__ = [
    "IDEMPOTENCY_WINDOW_S",
    "MAX_KEY_CHARS",
    "Conflict",
    "OnConflict",
    "check_key",
    "decide_conflict",
    "on_conflict_of",
]

MAX_KEY_CHARS: Final = 256
"""The longest job key or idempotency key, in characters."""

IDEMPOTENCY_WINDOW_S: Final = 24 * 3600.0
"""How long an idempotency key is remembered (seconds): a request sent again within this
time after the first answers what the first did; after it, the key may be used anew."""


class OnConflict(enum.StrEnum):
    """What a submit with a key does while a job of its kind with that key is active.
    Values are sent over the API: keep them stable."""

    SKIP = "skip"
    QUEUE = "queue"
    SUPERSEDE = "supersede"


@dataclass(frozen=True, slots=True)
class Conflict:
    """What a keyed submit does: answer ``existing`` (create nothing), or create the new job
    after stopping ``superseded``."""

    existing: Job | None
    superseded: tuple[Job, ...] = ()


def on_conflict_of(value: OnConflict | str) -> OnConflict:
    """``value`` as an :class:`OnConflict`. Raises :class:`~andon.UsageError` for another word."""
    if value not in tuple(OnConflict):
        raise UsageError(f"unknown on_conflict {value!r}: use one of {', '.join(OnConflict)}")
    return OnConflict(value)


def check_key(key: str, field: str = "key") -> str:
    """``key`` if andon can store it as a job key or idempotency key.

    Raises:
        InvalidKey: it is not a string, is empty, longer than :data:`MAX_KEY_CHARS`, or holds
            control characters or lone surrogates.
    """
    if not isinstance(key, str):
        raise InvalidKey(field, f"must be a string, not {type(key).__name__}")
    if not key:
        raise InvalidKey(field, "must not be empty")
    if len(key) > MAX_KEY_CHARS:
        raise InvalidKey(field, f"is {len(key)} characters long, the limit is {MAX_KEY_CHARS}")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidKey(field, "must be valid Unicode (no lone surrogates)") from None
    if not key.isprintable():
        raise InvalidKey(field, "must not hold control characters")
    return key


def decide_conflict(active: Sequence[Job], on_conflict: OnConflict) -> Conflict:
    """What a submit with ``on_conflict`` does, given the ``active`` jobs of its kind and key
    (oldest first, locked by the caller)."""
    if not active:
        return Conflict(None)
    if on_conflict is OnConflict.SKIP:
        return Conflict(active[-1])
    if on_conflict is OnConflict.QUEUE:
        waiting = [job for job in active if job.status is JobStatus.QUEUED]
        return Conflict(waiting[-1] if waiting else None)
    return Conflict(None, tuple(active))
