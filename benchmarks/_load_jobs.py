"""The job kinds ``benchmarks/load.py`` runs on its server (``--app _load_jobs:app``).

They do next to nothing, so what the load benchmark measures is andon's own cost: the
API, the store and the worker.
"""

from __future__ import annotations

import andon

__all__ = ["app"]

app = andon.App(default_grace=1.0)


@app.job("noop")
def noop(ctx: andon.Context) -> None:
    """Nothing at all."""


@app.job("short")
def short(ctx: andon.Context, seconds: float = 0.05) -> dict[str, float]:
    """Sleep ``seconds`` at a checkpoint, then succeed."""
    ctx.sleep(seconds)
    return {"slept_s": seconds}


@app.job("hold", timeout=None)
def hold(ctx: andon.Context, seconds: float = 3600.0) -> None:
    """Wait at a checkpoint until cancelled (or ``seconds`` pass): a job to press Cancel on."""
    ctx.sleep(seconds)
