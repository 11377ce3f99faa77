"""The app of the dashboard's "Stop now" tests (``tests.acceptance.test_dashboard_stop_now``):
importable by ``andon serve --app tests.acceptance.stop_now_app:app``."""

from __future__ import annotations

import time

import andon

GRACE_S = 60.0
"""The grace of ``careful``: far beyond any bound the tests wait for a stop, so a stop within
one can only be a request for less grace at work."""

app = andon.App()


@app.job("careful", grace=GRACE_S)
def careful(ctx: andon.Context) -> None:
    """Cooperative but slow to stop: it works in short steps, an item each, and reads
    ``ctx.cancelled`` between them (so it listens, and a cancel gives it the kind's grace).
    Asked to stop, it winds down with a step longer than any grace, in plain sleeps with no
    cancel point: only a stop by force ends it, and within a test only a cancel asking for
    less grace than the kind's (Stop now) comes to that."""
    step = 0
    while not ctx.cancelled:
        ctx.emit({"step": step})
        step += 1
        time.sleep(0.05)
    while True:  # finishing its step, for ever
        time.sleep(0.01)


@app.job("steady")
def steady(ctx: andon.Context) -> None:
    """Waits at a cancel point until asked to stop: any stop ends it at once."""
    while True:
        ctx.sleep(0.05)
