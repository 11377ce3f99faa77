"""Injection reaches the handler only, never andon's own bookkeeping around it."""

from __future__ import annotations

import threading

from andon import StopMethod
from andon._cancel import CancelToken
from andon._runtimes._inject import InjectionGuard, run_injectable
from andon._stop import InjectedCancel


def test_injection_never_escapes_bookkeeping() -> None:
    """An injection racing the handler's end lands in the handler, inside the guard's
    ``leave`` (retried there), or is cleared by it: nothing is raised after
    :func:`run_injectable` returns, and what it returns names the stop or the success."""
    escaped = 0
    injectors: list[threading.Thread] = []
    methods: set[StopMethod | None] = set()
    for _ in range(300):
        guard = InjectionGuard()
        token = CancelToken()

        def handler(guard: InjectionGuard = guard) -> None:
            injector = threading.Thread(target=guard.inject)
            injectors.append(injector)
            injector.start()

        try:
            outcome = run_injectable(guard, token, handler)
            for _ in range(2000):  # a pending exception would be raised on these bytecodes
                pass
        except InjectedCancel:
            escaped += 1
            continue
        methods.add(outcome.stop_method)
    for injector in injectors:
        injector.join()
    assert escaped == 0
    assert methods <= {None, StopMethod.INJECTED}


def test_no_injection_outside_the_handler() -> None:
    guard = InjectionGuard()
    assert guard.inject() is False  # never entered
    guard.enter()
    guard.leave()
    assert guard.inject() is False  # left
