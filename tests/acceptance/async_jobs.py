"""The app of the async client's tests, run by an ``andon worker`` process."""

from __future__ import annotations

import time

import andon

APP = "tests.acceptance.async_jobs:jobs"

jobs = andon.App()


@jobs.job("tick")
def tick(ctx: andon.Context, n: int = 10_000) -> int:
    """Sleeps 20 ms ``n`` times (``ctx.sleep`` is a checkpoint), then returns ``n``."""
    for _ in range(n):
        ctx.sleep(0.02)
    return n


@jobs.job("slow_stop")
def slow_stop(ctx: andon.Context) -> None:
    """Runs until stopped, then takes 300 ms to clean up, so ``cancelling`` lasts long
    enough for a watch to see it whatever the machine's speed."""
    try:
        while True:
            ctx.sleep(0.02)
    except andon.Cancelled:
        time.sleep(0.3)
        raise
