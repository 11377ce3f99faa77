"""Clocks: the system clock and a controllable one for tests."""

from __future__ import annotations

import threading
import time
from typing import Protocol, final

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    """Where andon reads the time.

    ``now`` is wall-clock unix seconds: what is stored and shown. Leases are measured on
    :meth:`lease_now` instead, a clock that does not step when the machine's wall clock
    does (a VM resume, the first NTP sync): ``None`` means the store's own such clock
    (PostgreSQL: the database server's; SQLite, which is one machine by definition: the
    kernel's ``CLOCK_BOOTTIME``).
    """

    def now(self) -> float: ...

    def lease_now(self) -> float | None: ...


@final
class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    def lease_now(self) -> None:
        return None


@final
class ManualClock:
    """A clock that only moves when told to: deadlines and backoffs without sleeping.

    :meth:`advance` moves time on (leases expire); :meth:`step_wall` moves only the wall
    clock, as an NTP step does, and leaves leases alone.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._wall_offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._now + self._wall_offset

    def lease_now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def step_wall(self, seconds: float) -> None:
        """Step the wall clock by ``seconds`` (either way); the lease clock does not move."""
        with self._lock:
            self._wall_offset += seconds
