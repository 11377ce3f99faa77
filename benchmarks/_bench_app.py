"""Kinds the benchmarks run in real ``andon worker`` processes (``--app _bench_app:app``)."""

from __future__ import annotations

import andon

app = andon.App(default_grace=1.0)


@app.job("noop")
def noop(ctx: andon.Context) -> None:
    """Nothing: what is measured is andon's own cost per job."""


@app.job("hold")
def hold(ctx: andon.Context, seconds: float = 3600.0) -> None:
    """Keep a slot busy until cancelled (a cooperative wait)."""
    ctx.sleep(seconds)


@app.job("emit")
def emit(ctx: andon.Context, n: int = 100_000) -> int:
    """Emit ``n`` small items as fast as the handler can."""
    for i in range(n):
        ctx.emit({"i": i})
    return n
