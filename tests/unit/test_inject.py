"""Injection reaches the handler only, never andon's own bookkeeping around it."""

from __future__ import annotations

import threading

import pytest

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


def test_a_stop_due_before_the_handler_starts_is_raised_as_it_starts() -> None:
    """Work that never listened is stopped at the request, which may come before its handler runs."""
    guard = InjectionGuard()
    assert guard.stop_handler() is True  # armed, not lost, and nothing stronger follows at once
    with pytest.raises(InjectedCancel):
        guard.enter()
    guard.leave()


def test_a_stop_due_after_the_handler_returned_asks_for_nothing_more() -> None:
    guard = InjectionGuard()
    guard.enter()
    guard.leave()
    assert guard.stop_handler() is True  # its slot is settling it: no abandon at once
    assert guard.inject() is False  # and nothing was injected
