"""The interpreter's switch interval while handlers run on this process's own threads.

CPython passes the GIL from the thread that holds it to one that waits for it only after
the waiter has waited ``sys.getswitchinterval()`` (5 ms by default) and asked. A handler
that never lets go of the GIL (a pure-Python loop) thus makes every other thread of its
worker pay up to that long each time it wakes or comes back from a blocking call: the
control thread hearing a cancel (one wait on the store's change watcher, one store read),
the monitor waking to inject ``Cancelled`` when the grace is over, the cooperative
handlers on the other slots at each ``time.sleep`` or I/O call between their cancel
points. On a loaded machine the holder may also be off the CPU when asked, and each
hand-off costs more. Measured with one spinning handler and three cooperative ones on a
worker process of their own (``benchmarks/gil.py``, load average 8-10 on 2 cores), the
cancels reached the cooperative jobs after 17 ms (SQLite) and 49 ms (PostgreSQL) at p50,
up to 440 ms; with the interval short, 5 ms and 22 ms.

So while at least one handler runs on a thread of this process (thread and async
isolation; a process-isolated one runs elsewhere), the interval is at most
:data:`HANDOFF_S`, and each hand-off costs that much. When the last such handler has ended
the interval it replaced comes back, unless someone else set another one meanwhile
(theirs stays). A thread that was abandoned (stuck in C code) still counts until it ends.

The cost: threads that all want the GIL (CPU-bound handlers side by side) take turns every
:data:`HANDOFF_S` instead of every 5 ms. Measured on a worker with four slots of CPU-bound
thread handlers: about 5% more CPU time per job, and no fewer jobs per second (those want
``isolation="process"`` anyway, to run in parallel).
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Final, final

__all__ = ["HANDOFF_S", "handing_off"]

HANDOFF_S: Final = 0.0005
"""The longest a thread of the worker waits for the GIL before the holder is asked for it."""


@final
class _SwitchInterval:
    """Counts the handlers running on threads of this process; lowers the interval for them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._replaced: float | None = None
        """The interval in force before the first handler started, if it was longer."""
        self._ours: float | None = None
        """The interval as the interpreter reports it once set (it keeps microseconds)."""

    def enter(self) -> None:
        with self._lock:
            self._running += 1
            if self._running > 1:
                return
            current = sys.getswitchinterval()
            if current > HANDOFF_S:
                _set_interval(HANDOFF_S)
                self._replaced, self._ours = current, sys.getswitchinterval()

    def leave(self) -> None:
        with self._lock:
            self._running -= 1
            if self._running > 0 or self._replaced is None:
                return
            if sys.getswitchinterval() == self._ours:
                _set_interval(self._replaced)
            self._replaced = self._ours = None


def _set_interval(seconds: float) -> None:
    """Set the interval to ``seconds`` as the interpreter reports it: it keeps whole
    microseconds, truncating, so a value read back and set again as it is (0.099999... for
    0.1) would lose one each time."""
    sys.setswitchinterval((round(seconds * 1e6) + 0.5) / 1e6)


_interval: Final = _SwitchInterval()


@contextlib.contextmanager
def handing_off() -> Iterator[None]:
    """Run a handler on this thread with the switch interval at most :data:`HANDOFF_S`.

    Enter and leave it outside the part where ``Cancelled`` may be injected
    (``andon._runtimes._inject``): an exception landing inside would leave the count wrong.
    """
    _interval.enter()
    try:
        yield
    finally:
        _interval.leave()
