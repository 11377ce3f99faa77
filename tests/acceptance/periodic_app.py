"""The app of the periodic-job process tests (``tests.acceptance.test_periodic_processes``):
importable by ``andon worker --app tests.acceptance.periodic_app:app``. It declares no
schedule; each test adds the runtime schedule it needs."""

from __future__ import annotations

import os

import andon

app = andon.App(default_grace=0.5)


@app.job("noop")
def noop(ctx: andon.Context) -> str:
    return "done"


@app.job("hold", isolation="process")
def hold(ctx: andon.Context, seconds: float = 60.0) -> str:
    """Starts a child process, says which (an item), and waits in a checkpoint."""
    child = ctx.popen(["sh", "-c", "sleep 300"])
    ctx.emit({"handler_pid": os.getpid(), "child_pid": child.pid})
    ctx.sleep(seconds)
    return "held"
