"""The built-in example app: kinds used by ``andon demo``, the tests and the benchmarks.

Each handler is written the way we recommend users write theirs. The small kinds are
here; the real workloads have a module each: ``scan`` (ffprobe per media file), ``papers``
(a PDF pipeline), ``crawl`` (a headless browser), ``extract`` (a language model over rows).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from andon import App, Context

__all__ = ["app", "create_sample_data"]

app = App(default_grace=2.0)


@app.job("count")
def count(ctx: Context, n: int = 10, interval_s: float = 0.5) -> dict[str, int]:
    """Count to n, one step every interval_s seconds; cooperative (stops at its next sleep).

    Each step emits its number and then checkpoints the next one, so a resumed count goes on
    where it stopped and the items of all its attempts are 0..n-1, each once.
    """
    start = ctx.resumed["next"] if ctx.resumed else 0
    for i in range(start, n):
        ctx.sleep(interval_s)
        ctx.emit({"i": i, "at": time.time()})
        ctx.checkpoint({"next": i + 1})
        ctx.progress(i + 1, n, f"counted to {i + 1}")
    return {"counted": n}


@app.job("spin", isolation="process", grace=0.5)
def spin(ctx: Context, seconds: float = 3600.0) -> dict[str, int]:
    """Burn CPU in a pure-Python loop that never checks for a cancel: only a process stop ends it."""
    import os

    ctx.emit({"pid": os.getpid()})
    ctx.progress(0, None, "spinning")
    deadline = time.monotonic() + seconds
    loops = 0
    while time.monotonic() < deadline:
        loops += 1
    return {"loops": loops}


@app.job("fail")
def fail(ctx: Context, message: str = "this job fails on purpose", after_items: int = 0) -> None:
    """Emit after_items items, then raise (to see failures, errors and tracebacks in history)."""
    for i in range(after_items):
        ctx.emit({"i": i})
    raise RuntimeError(message)


@app.job("sleeper", grace=1.0)
def sleeper(ctx: Context, seconds: float = 30.0) -> dict[str, int]:
    """Run `sleep` as a child process; a cancel stops the child's whole process group at once."""
    completed = ctx.run(["sleep", str(seconds)])
    return {"returncode": completed.returncode}


@app.job("fanout")
def fanout(
    ctx: Context,
    n: int = 5,
    child_kind: str = "count",
    child_params: dict[str, Any] | None = None,
    fail_fast: bool = True,
) -> dict[str, int]:
    """Start n child jobs of child_kind (each with child_params) and wait for them all.

    The children are one tree with this job: cancelling it stops them all, and it is
    recorded cancelled once they have stopped. With fail_fast a failed child fails this job
    and cancels the others; without, every child runs to its end and the failures are
    counted. An attempt after a shutdown waits for the children it finds instead of
    starting them again.
    """
    have = len(ctx.children())
    if have < n:
        ctx.submit_many(child_kind, [child_params or {}] * (n - have), fail_fast=fail_fast)
    ctx.progress(0, n, f"started {n} {child_kind} jobs")
    ended = ctx.wait_children()
    for child in ended:
        ctx.emit({"child": child.id, "status": child.status.value, "result": child.result})
    counts = Counter(child.status.value for child in ended)
    ctx.progress(n, n, ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return {"children": len(ended), **counts}


# Last, because these modules register their kinds on `app` above.
from andon.examples import _crawl, _extract, _papers, _scan  # noqa: E402, F401
from andon.examples._sample_data import create_sample_data  # noqa: E402
