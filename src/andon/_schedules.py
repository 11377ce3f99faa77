"""Periodic jobs: what a schedule is, when it ticks, and what a scheduler does with ticks it
missed. Pure functions and values; the stores apply them inside each tick's transaction.

A **schedule** makes one job of its kind per **tick**. Ticks come from a cron expression
(``croniter``, five fields, read in the schedule's IANA time zone) or a fixed interval in
seconds (``every``, for sub-minute schedules). Each job is submitted with the key
``schedule:<name>`` and the schedule's ``overlap`` as its ``on_conflict`` (see
``andon._keys``), so what happens while the previous run is still active is decided
atomically with the submit:

==============  ==============================================================================
overlap         a tick while the schedule's previous job is active
==============  ==============================================================================
``skip``        (default) makes no job; the tick is recorded ``skipped``, naming the active job
``queue``       makes one job that waits behind the active one (``queued``); while one
                already waits, the tick is ``skipped`` naming it
``supersede``   stops the active job (reason ``superseded``) and makes the new one
                (``superseded``, naming the stopped job)
==============  ==============================================================================

After downtime (no scheduler running, the schedule paused and resumed is different: resume
starts from the next tick after now), ``catch_up`` says what happens to the ticks that
came due meanwhile:

==============  ==============================================================================
catch_up        ticks that came due while no scheduler ran
==============  ==============================================================================
``latest``      (default) fire only the most recent one; the others are recorded as one
                ``missed`` trace (the first missed tick, with the count and range)
``all``         fire every one, oldest first (at most :data:`MAX_CATCH_UP` per round)
``none``        fire none of them (one ``missed`` trace); resume with the next tick
==============  ==============================================================================

A tick is late (not missed) while the next one has not come: a scheduler that handles the
12:30 tick at 12:30:02 fires it under every policy.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from andon._errors import InvalidSchedule
from andon._keys import OnConflict

__all__ = [
    "MAX_CATCH_UP",
    "MIN_EVERY_S",
    "CatchUp",
    "Schedule",
    "ScheduleSource",
    "ScheduleSpec",
    "Tick",
    "TickOutcome",
    "TickPlan",
    "plan_ticks",
    "schedule_key",
]

MAX_CATCH_UP: Final = 100
"""The most ticks ``catch_up="all"`` fires in one round; the next round goes on."""

MIN_EVERY_S: Final = 0.05
"""The shortest interval ``every`` may give (seconds)."""

_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


class CatchUp(enum.StrEnum):
    """What happens to ticks that came due while no scheduler ran. Stored: keep stable."""

    LATEST = "latest"
    ALL = "all"
    NONE = "none"


class ScheduleSource(enum.StrEnum):
    APP = "app"
    """Declared in code (``@app.periodic``): changed by changing the code."""
    RUNTIME = "runtime"
    """Added through the client, the API or the CLI: removable there."""


class TickOutcome(enum.StrEnum):
    """What became of a tick. Stored and sent over the API: keep stable."""

    ENQUEUED = "enqueued"
    SKIPPED = "skipped"
    QUEUED = "queued"
    SUPERSEDED = "superseded"
    MISSED = "missed"
    TRIGGERED = "triggered"


def schedule_key(name: str) -> str:
    """The job key of the jobs schedule ``name`` makes (one active at a time, by its overlap)."""
    return f"schedule:{name}"


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """A schedule as declared (``@app.periodic``) or added at run time.

    Exactly one of ``cron`` and ``every_s`` is set. Raises :class:`~andon.InvalidSchedule`
    when built with a bad name, cron expression, interval, time zone or policy.
    """

    name: str
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)  # Any: JSON values
    cron: str | None = None
    every_s: float | None = None
    timezone: str = "UTC"
    overlap: OnConflict = OnConflict.SKIP
    catch_up: CatchUp = CatchUp.LATEST
    priority: int = 0
    timeout_s: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise InvalidSchedule(
                str(self.name), "a name is 1-128 letters, digits and _ . : - (starting with a letter or digit)"
            )
        if not isinstance(self.kind, str) or not self.kind:
            raise InvalidSchedule(self.name, "give the job kind it runs")
        if (self.cron is None) == (self.every_s is None):
            raise InvalidSchedule(self.name, "give exactly one of cron and every")
        if self.every_s is not None:
            every = self.every_s
            if isinstance(every, bool) or not isinstance(every, int | float) or not math.isfinite(every):
                raise InvalidSchedule(self.name, f"every must be a number of seconds, not {every!r}")
            if every < MIN_EVERY_S:
                raise InvalidSchedule(self.name, f"every must be at least {MIN_EVERY_S} s, not {every!r}")
        if self.cron is not None:
            _check_cron(self.name, self.cron)
        _zone(self.name, self.timezone)
        for attribute, enum_type in (("overlap", OnConflict), ("catch_up", CatchUp)):
            value = getattr(self, attribute)
            if value not in tuple(enum_type):
                choices = ", ".join(enum_type)
                raise InvalidSchedule(self.name, f"unknown {attribute} {value!r}: use one of {choices}")
            object.__setattr__(self, attribute, enum_type(value))
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise InvalidSchedule(self.name, f"priority must be a whole number, not {self.priority!r}")
        timeout = self.timeout_s
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
            raise InvalidSchedule(self.name, f"timeout must be a positive number of seconds, not {timeout!r}")

    @property
    def timing(self) -> str:
        """The timing in words: the cron expression (and zone), or ``every N s``."""
        if self.cron is not None:
            return self.cron if self.timezone == "UTC" else f"{self.cron} ({self.timezone})"
        return f"every {self.every_s:g} s"

    def next_after(self, t: float) -> float:
        """The first tick strictly after unix time ``t``."""
        if self.every_s is not None:
            # Ticks of an interval are whole multiples of it since the epoch, so every
            # scheduler (and every restart) agrees on them: the tick's time is its identity.
            # A tick is always the float ``k * every_s`` for a whole k (never a sum of steps),
            # so two schedulers, or a catch-up and a plain tick, name one tick by one float;
            # the 1e-9 keeps a tick's own time (k * every_s / every_s can come out k - 1 ulp)
            # from being "after" itself.
            return (math.floor(t / self.every_s + 1e-9) + 1) * self.every_s
        assert self.cron is not None, "a spec has cron or every_s"
        from croniter import croniter  # imported only when a cron schedule ticks

        start = datetime.fromtimestamp(t, UTC).astimezone(_zone(self.name, self.timezone))
        following: datetime = croniter(self.cron, start).get_next(datetime)
        return following.timestamp()

    def same_timing(self, other: ScheduleSpec) -> bool:
        return (self.cron, self.every_s, self.timezone) == (other.cron, other.every_s, other.timezone)


def _check_cron(name: str, expression: str) -> None:
    from croniter import croniter

    if not isinstance(expression, str) or len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise InvalidSchedule(name, f"bad cron expression {expression!r}: use five fields, e.g. '*/5 * * * *'")


def _zone(name: str, timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidSchedule(
            name, f"unknown time zone {timezone!r}: use an IANA name such as 'Europe/Paris'"
        ) from None


@dataclass(frozen=True, slots=True)
class Tick:
    """The trace of one tick: when it was due, when and by whom it was handled, what became
    of it (``job_id``: the job it made, or the one that made it skip)."""

    schedule: str
    tick_at: float
    at: float
    outcome: TickOutcome
    job_id: str | None
    by: str | None
    message: str | None


@dataclass(frozen=True, slots=True)
class Schedule:
    """A stored schedule, its state and its latest ticks (newest first)."""

    spec: ScheduleSpec
    source: ScheduleSource
    next_at: float | None
    """The next tick; ``None`` while paused."""
    paused_at: float | None
    paused_by: str | None
    created_at: float
    updated_at: float
    last_ticks: tuple[Tick, ...] = ()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def is_paused(self) -> bool:
        return self.paused_at is not None


@dataclass(frozen=True, slots=True)
class TickPlan:
    """What one round does with a schedule whose ``next_at`` has come: record ``missed``
    (the first missed tick, how many, the last), fire ``fire`` (if any), set ``next_at``."""

    fire: float | None
    missed: tuple[float, int, float] | None
    next_at: float


def plan_ticks(spec: ScheduleSpec, next_at: float, now: float) -> TickPlan:
    """The plan for the tick at ``next_at`` (due: ``next_at <= now``) and any after it that
    are due too, by ``spec.catch_up``. ``catch_up="all"`` fires one tick per plan: the
    caller plans again (one transaction per tick)."""
    following = spec.next_after(next_at)
    # A long outage of a fast schedule has many missed ticks: count them without listing
    # more than needed (interval ticks are counted by arithmetic).
    if spec.catch_up is CatchUp.ALL:
        return TickPlan(next_at, None, following)
    if following > now:
        return TickPlan(next_at, None, following)
    if spec.every_s is not None:
        first = round(next_at / spec.every_s)  # next_at is a tick: k * every_s
        # The last tick at or before now, by next_after's own arithmetic (counting from the
        # difference now - next_at lost the tick at exactly now to rounding: planned as
        # the next one, it was not after now).
        count = max(1, math.floor(now / spec.every_s + 1e-9) - first + 1)
        while count > 1 and (first + count - 1) * spec.every_s > now:  # float rounding
            count -= 1
        latest = (first + count - 1) * spec.every_s
        after = spec.next_after(latest)
    else:
        latest, after, count = next_at, following, 1
        while after <= now:
            latest, after, count = after, spec.next_after(after), count + 1
    if count < 2 and spec.catch_up is CatchUp.LATEST:  # float rounding at the edge: on time after all
        return TickPlan(latest, None, after)
    if spec.catch_up is CatchUp.LATEST:
        first_missed, missed_count = next_at, count - 1
        last_missed = (
            (round(latest / spec.every_s) - 1) * spec.every_s
            if spec.every_s is not None
            else _before(spec, next_at, latest)
        )
        return TickPlan(latest, (first_missed, missed_count, last_missed), after)
    return TickPlan(None, (next_at, count, latest), after)


def _before(spec: ScheduleSpec, first: float, tick: float) -> float:
    """The cron tick just before ``tick`` (walking from ``first``; only after an outage)."""
    previous = first
    following = spec.next_after(first)
    while following < tick:
        previous, following = following, spec.next_after(following)
    return previous
