"""Limits per kind (``max_running``, ``rate``): stored by workers as they start, enforced by
each claim inside its transaction, and read back for display.

A claim of kinds none of which is limited is the one ``claim`` statement, as before (its
one-time filter finds no limit and costs nothing more). Otherwise the claim takes the way
of the limits, in the same transaction:

1. ``claim_limits`` reads the limited kinds' rows and, on PostgreSQL, locks them in kind
   order: concurrent claims of one limited kind take turns from here to their commit, so
   the second counts what the first started. (Under READ COMMITTED with SKIP LOCKED alone,
   both would count "1 running" and each start one more.) SQLite has one writer: its write
   transaction is the lock.
2. ``limit_usage`` counts each limited kind's running and cancelling jobs and its starts
   within the window, which gives its room: the limit minus what is in use.
3. ``claim_candidates`` takes, locked, the next ``n`` jobs of the unlimited kinds and the
   next ``room`` jobs of each limited kind with room; the best ``n`` of all of them (claim
   order) are started by ``start_claimed``, which logs the starts of rate-limited kinds.

A kind at its limit is not asked for at all, so it never fills a claim's ``n`` with jobs it
cannot start: the other kinds' jobs go on being claimed.

Rate windows are counted from a log of starts (``andon_kind_starts``), one row per attempt,
kept for one window, rather than from the jobs' ``started_at``: a retried job's next attempt
overwrites that, and its earlier start must still count.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from andon._storage._connector import Tx
from andon._storage._ops._base import C, Operations
from andon._storage._records import KindLimit, KindLimitUse
from andon._storage._rows import Row

__all__ = ["LimitOperations", "claim_limited", "rate_due", "room_of"]


class LimitOperations(Operations[C]):
    def sync_kind_limits(self, limits: Sequence[KindLimit], by: str | None) -> None:
        now = self._clock.now()
        limited = [limit for limit in limits if limit.is_limited]
        unlimited = self._db.array([limit.kind for limit in limits if not limit.is_limited])

        def body(tx: Tx) -> None:
            # In kind order, the order claims lock these rows in.
            for limit in sorted(limited, key=lambda limit: limit.kind):
                tx.one("put_kind_limit", _put_args(limit, by, now))
            tx.all("drop_kind_limits", {"kinds": unlimited})

        # Writing the same limits again changes nothing: safe to repeat after a commit in doubt.
        self._db.write(body)

    def kind_limits(self) -> list[KindLimitUse]:
        rows = self._db.read(lambda tx: tx.all("kind_limits", {"now": self._clock.now()}))
        return [_use_from_row(row) for row in rows]


def rate_due(tx: Tx, kinds: Any, now: float) -> float | None:  # Any: the connector's array
    """When the oldest start within the window of a rate-limited kind among ``kinds`` leaves
    it (so another may start): an idle worker held back by a rate wakes then."""
    row = tx.one("rate_due", {"kinds": kinds, "now": now})
    return None if row is None or row["due"] is None else float(row["due"])


def claim_limited(
    tx: Tx,
    args: Mapping[str, Any],  # Any: parameter values
    kinds: Collection[str],
    array: Any,  # Any: the connector's array
    clock: Callable[[], float],
) -> list[Row]:
    """Claim up to ``args["n"]`` jobs of ``kinds`` within their stored limits, after the
    ``claim`` statement found a limited kind among them (see the module docstring);
    ``array`` makes the connector's array parameter of a list of kinds."""
    limits = {row["kind"]: row for row in tx.all("claim_limits", {"kinds": args["kinds"]})}
    if not limits:
        return []  # the limits went meanwhile: the next claim is a plain one
    # The time is read again once the limits are ours: claims then start jobs at times in the
    # order they held the lock, so a start never lands before one already counted, and the
    # starts a later claim drops as out of its window are out of every later claim's window.
    args = {**args, "now": clock()}
    n, now = args["n"], args["now"]
    usage = tx.all("limit_usage", {"kinds": array(sorted(limits)), "now": now})
    candidates: list[Row] = []
    free = [kind for kind in kinds if kind not in limits]
    if free:
        candidates += tx.all("claim_candidates", {"kinds": array(free), "n": n, "now": now})
    for row in usage:
        room = min(n, room_of(row))
        if room > 0:
            candidates += tx.all("claim_candidates", {"kinds": array([row["kind"]]), "n": room, "now": now})
    chosen = sorted(candidates, key=lambda row: (-row["priority"], row["id"]))[:n]
    if not chosen:
        return []
    rated = [kind for kind, row in limits.items() if row["rate_starts"] is not None]
    ids = array(sorted(row["id"] for row in chosen))
    return tx.all("start_claimed", {**args, "ids": ids, "rated": array(rated)})


def room_of(usage: Row) -> int:
    """How many more jobs of a limited kind may start now (``limit_usage`` row)."""
    room: int | None = None
    if usage["max_running"] is not None:
        room = usage["max_running"] - usage["running"]
    if usage["rate_starts"] is not None:
        by_rate = usage["rate_starts"] - usage["starts"]
        room = by_rate if room is None else min(room, by_rate)
    return max(0, room or 0)


def _put_args(limit: KindLimit, by: str | None, now: float) -> dict[str, Any]:  # Any: parameter values
    return {
        "kind": limit.kind,
        "max_running": limit.max_running,
        "rate_starts": limit.rate[0] if limit.rate is not None else None,
        "rate_s": float(limit.rate[1]) if limit.rate is not None else None,
        "now": now,
        "by": by,
    }


def _use_from_row(row: Row) -> KindLimitUse:
    rate = (row["rate_starts"], row["rate_s"]) if row["rate_starts"] is not None else None
    limit = KindLimit(row["kind"], row["max_running"], rate)
    return KindLimitUse(limit, row["running"], row["starts"] if rate is not None else None)
