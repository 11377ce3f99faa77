"""The app of the dashboard truth tests (``tests.acceptance.test_dashboard_truth``):
importable by ``andon serve --app tests.acceptance.truth_app:app``."""

from __future__ import annotations

import time

import andon

app = andon.App(default_grace=0.2)


@app.job("deaf")
def deaf(ctx: andon.Context, seconds: float = 60.0) -> int:
    """A pure-Python loop that never checks for a cancel: only an injected ``Cancelled`` stops it."""
    deadline = time.monotonic() + seconds
    spins = 0
    while time.monotonic() < deadline:
        spins += 1
    return spins


@app.job("polite")
def polite(ctx: andon.Context, seconds: float = 60.0) -> str:
    """The same loop with a ``ctx.check()`` in it: it stops by itself when asked."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ctx.check()
        time.sleep(0.005)
    return "done"


@app.job("retrying", retry=andon.Retry(max_attempts=3, backoff_s=60.0))
def retrying(ctx: andon.Context, seconds: float = 60.0) -> str:
    """Waits cooperatively; three attempts in all, a minute apart."""
    ctx.sleep(seconds)
    return "done"


@app.job("slow", timeout=0.5)
def slow(ctx: andon.Context, seconds: float = 60.0) -> str:
    """Runs past its half-second timeout (cooperatively): stopped with reason ``timeout``."""
    ctx.sleep(seconds)
    return "done"


@app.job("quick")
def quick(ctx: andon.Context, n: int = 1) -> int:
    """Ends at once, with ``n``."""
    return n


@app.job("broken")
def broken(ctx: andon.Context, message: str = "broken on purpose") -> None:
    """Fails at once with ``message`` (long ones test the history's layout)."""
    raise RuntimeError(message)
