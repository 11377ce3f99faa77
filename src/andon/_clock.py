"""Clocks: the system clock and a controllable one for tests.

Everything in andon that waits or measures a duration (timeouts, grace periods, escalation
steps, lease renewals and fences, shutdown grace, backoffs) reads a :class:`Clock`, so a
test can run the worker on a :class:`ManualClock` and move time on by hand instead of
sleeping through it.
"""

from __future__ import annotations

import threading
import time
from typing import Final, Protocol, final

__all__ = ["SYSTEM_CLOCK", "Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    """Where andon reads the time, and how it waits for it to pass.

    ``now`` is wall-clock unix seconds: what is stored and shown. Durations are measured on
    :meth:`monotonic`, which never steps. Leases are measured on :meth:`lease_now`, a clock
    that does not step when the machine's wall clock does (a VM resume, the first NTP
    sync): ``None`` means the store's own such clock (PostgreSQL: the database server's;
    SQLite, which is one machine by definition: the kernel's ``CLOCK_BOOTTIME``).
    """

    def now(self) -> float: ...

    def lease_now(self) -> float | None: ...

    def monotonic(self) -> float: ...

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        """Block until ``event`` is set (``True``) or ``timeout`` seconds of this clock pass."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` of this clock pass."""
        ...


@final
class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    def lease_now(self) -> None:
        return None

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        return event.wait(timeout)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


SYSTEM_CLOCK: Final = SystemClock()

_NOTICE_S: Final = 0.001
"""How often a thread waiting on a :class:`ManualClock` looks whether time was moved on."""


@final
class ManualClock:
    """A clock that only moves when told to: deadlines, grace periods and backoffs without
    sleeping.

    :meth:`advance` moves time on (leases expire, timeouts and escalation steps come due,
    and threads waiting on this clock whose time has come wake within a millisecond);
    :meth:`step_wall` moves only the wall clock, as an NTP step does, and leaves durations
    and leases alone.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._wall_offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._now + self._wall_offset

    def lease_now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        if timeout is None:
            return event.wait()
        deadline = self._now + timeout
        while not event.wait(_NOTICE_S):
            if self._now >= deadline:
                return False
        return True

    def sleep(self, seconds: float) -> None:
        self.wait(threading.Event(), seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def step_wall(self, seconds: float) -> None:
        """Step the wall clock by ``seconds`` (either way); durations and leases do not move."""
        with self._lock:
            self._wall_offset += seconds
