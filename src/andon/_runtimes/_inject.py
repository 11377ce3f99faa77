"""Raising an exception inside another thread (CPython only, pure-Python code only).

``PyThreadState_SetAsyncExc`` makes the target thread raise at its next bytecode. A
thread blocked in C code (a ``time.sleep``, a socket read, a C extension's loop) raises
only when that call returns, which may be never: that is why injection is followed by
abandonment, and why hard stops need ``isolation="process"``.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from typing import Any

from andon._cancel import CancelToken, StopMethod
from andon._jobs import Outcome
from andon._stop import InjectedCancel, outcome_of, stopped, succeeded

__all__ = ["InjectionGuard", "run_injectable"]


_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = [ctypes.c_ulong, ctypes.py_object]
_set_async_exc.restype = ctypes.c_int
# A second prototype of the same C function whose exception argument can be NULL (which
# clears a pending exception). ctypes.pythonapi caches its function objects, so setting
# other argtypes on ``ctypes.pythonapi.PyThreadState_SetAsyncExc`` would change the one above.
_clear_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)


class InjectionGuard:
    """Allows injection only while the handler runs, never into andon's own bookkeeping.

    The slot thread calls :meth:`enter` before the handler and :meth:`leave` after it;
    :meth:`inject` (from another thread) only fires between the two. An exception injected
    just before :meth:`leave` may still be pending; :meth:`leave` clears it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread_id: int | None = None
        self._pending = False
        self._armed = False
        self._left = False

    def enter(self) -> None:
        with self._lock:
            self._thread_id = threading.get_ident()
            armed = self._armed
        if armed:
            # A stop came due before the handler started (see stop_handler): it never starts.
            raise InjectedCancel

    def leave(self) -> None:
        # An injected exception can land on any bytecode, including inside this method
        # before the lock is taken; retry until the guard is down (see
        # tests/unit/test_inject.py::test_injection_never_escapes_bookkeeping).
        while True:
            try:
                with self._lock:
                    self._left = True
                    thread_id, self._thread_id = self._thread_id, None
                    if self._pending and thread_id is not None:
                        _clear(thread_id)
                    self._pending = False
                return
            except InjectedCancel:
                continue

    def inject(self) -> bool:
        """Raise :class:`InjectedCancel` in the handler's thread; ``False`` if it is not in one."""
        with self._lock:
            if self._thread_id is None:
                return False
            self._pending = True
            return bool(_set_async_exc(self._thread_id, InjectedCancel) == 1)

    def stop_handler(self) -> bool:
        """The rung ``inject`` of a runtime: raise :class:`InjectedCancel` in the handler.

        A stop may come due at once (work that does not listen has no grace), so also in the
        moments around the handler: before it starts, :meth:`enter` raises instead; once it
        has returned, the slot is settling it and there is nothing to stop (``True``, so
        nothing stronger follows at once; its cleanups keep the next rung's spacing).
        ``False`` only if the thread could not be reached.
        """
        with self._lock:
            if self._thread_id is None:
                self._armed = not self._left
                return True
        return self.inject()


def _clear(thread_id: int) -> None:
    _clear_async_exc(ctypes.c_ulong(thread_id), None)


def run_injectable(guard: InjectionGuard, token: CancelToken, call: Callable[[], Any]) -> Outcome:
    """Run ``call`` on this thread with injection allowed, and say how it ended (``andon._stop``)."""
    outcome: Outcome | None = None
    try:
        guard.enter()
        try:
            outcome = succeeded(call(), token.clock)
        except BaseException as exc:
            outcome = outcome_of(exc, token)
    except InjectedCancel:
        # Landed between the call's end and the assignment of its outcome.
        outcome = outcome or stopped(token, StopMethod.INJECTED)
    finally:
        guard.leave()
    return outcome
