"""Past the end of its vouch, an attempt takes no further step (issue 12, item 5).

The worker vouches for an attempt until two thirds of a lease after its last renewal
(``CancelToken.vouched_until``, monotonic). Every call of the context that could start a
side effect judges that locally and raises ``Cancelled`` (reason ``lease_lost``) before
doing anything, without waiting for any worker thread: after a pause, the handler's thread
may run before them. No real pause is needed to show it: the vouch is simply set in the
past (the real pause is ``tests/faults/test_paused_worker.py``).
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import andon
from andon._cancel import CancelToken
from andon._context import Context

pytestmark = pytest.mark.timeout(30)


class Sink:
    def __init__(self) -> None:
        self.items: list[str] = []
        self.reports: list[object] = []

    def emit(self, at: float, encoded: str) -> None:
        self.items.append(encoded)

    def progress(self, done: float, total: float | None, message: str | None) -> None:
        self.reports.append((done, total, message))

    def child_started(self, pid: int) -> None:
        pass

    def checkpoint(self, at: float, encoded: str) -> None:
        self.reports.append(("checkpoint", encoded))


def context(token: CancelToken, sink: Sink) -> Context:
    return Context(job_id="j", kind="k", attempt=1, params={}, token=token, sink=sink, child_grace_s=0.5)


def calls(ctx: Context, marker: Path) -> dict[str, Callable[[], object]]:
    return {
        "check": ctx.check,
        "sleep": lambda: ctx.sleep(0),
        "wait_event": lambda: ctx.wait(threading.Event(), timeout=5),
        "wait_future": lambda: ctx.wait(concurrent.futures.Future(), timeout=5),
        "emit": lambda: ctx.emit({"x": 1}),
        "progress": lambda: ctx.progress(1, 2),
        "checkpoint": lambda: ctx.checkpoint({"next": 1}),
        "run": lambda: ctx.run(["touch", str(marker)]),
        "popen": lambda: ctx.popen(["touch", str(marker)]),
    }


@pytest.mark.parametrize("name", list(calls(context(CancelToken(), Sink()), Path())))
def test_every_call_refuses_once_the_vouch_ended(name: str, tmp_path: Path) -> None:
    token = CancelToken()
    token.vouched_until = time.monotonic() - 0.001
    sink = Sink()
    marker = tmp_path / "side-effect"
    with pytest.raises(andon.Cancelled) as raised:
        calls(context(token, sink), marker)[name]()
    assert raised.value.reason is andon.CancelReason.LEASE_LOST
    assert (sink.items, sink.reports) == ([], [])
    assert not marker.exists(), "a child process was started"
    assert token.requested
    assert token.reason is andon.CancelReason.LEASE_LOST


@pytest.mark.parametrize("name", list(calls(context(CancelToken(), Sink()), Path())))
def test_every_call_goes_on_while_the_vouch_holds(name: str, tmp_path: Path) -> None:
    token = CancelToken()
    token.vouched_until = time.monotonic() + 600
    sink = Sink()
    ctx = context(token, sink)
    call = calls(ctx, tmp_path / "side-effect")[name]
    if name.startswith("wait"):
        with pytest.raises(TimeoutError):
            ctx.wait(threading.Event() if name == "wait_event" else concurrent.futures.Future(), timeout=0.01)
    else:
        call()
    assert not token.requested
    ctx._close()


@pytest.mark.parametrize("how", ["sleep", "wait_event", "wait_future"])
def test_a_wait_ends_when_the_vouch_does(how: str) -> None:
    """A long sleep or wait that began while vouched raises when the vouch ends, not later."""
    token = CancelToken()
    token.vouched_until = time.monotonic() + 0.05
    ctx = context(token, Sink())
    future: concurrent.futures.Future[None] = concurrent.futures.Future()
    waits: dict[str, Callable[[], object]] = {
        "sleep": lambda: ctx.sleep(60),
        "wait_event": lambda: ctx.wait(threading.Event(), timeout=60),
        "wait_future": lambda: ctx.wait(future, timeout=60),
    }
    began = time.monotonic()
    with pytest.raises(andon.Cancelled) as raised:
        waits[how]()
    assert raised.value.reason is andon.CancelReason.LEASE_LOST
    assert time.monotonic() - began < 10  # generous: the point is "not 60 s"
    if how == "wait_future":
        assert future.cancelled()
