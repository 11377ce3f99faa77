"""Clocks: the system clock and a controllable one for tests."""

from __future__ import annotations

import threading
import time
from typing import Protocol, final

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    """Where andon reads the time. ``now`` is wall-clock unix seconds (what is stored)."""

    def now(self) -> float: ...


@final
class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()


@final
class ManualClock:
    """A clock that only moves when told to: deadlines and backoffs without sleeping."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
