"""The job app the API tests that serve a real uvicorn share: one kind that ticks until stopped."""

from __future__ import annotations

import andon

jobs = andon.App()


@jobs.job("tick")
def tick(ctx: andon.Context, n: int = 10_000) -> None:
    """Emits an item every 20 ms until cancelled (``ctx.sleep`` is a checkpoint)."""
    for i in range(n):
        ctx.emit({"i": i})
        ctx.sleep(0.02)
