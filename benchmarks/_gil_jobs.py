"""The kinds ``benchmarks/gil.py`` runs side by side in one ``andon worker`` process.

A thread-isolated handler that holds the GIL in a pure-Python loop, and cooperative ones
beside it. Each writes a step file (``_stops_jobs.StepFile``): so "it stopped" is judged
by the work itself. Used by ``andon worker --app _gil_jobs:app`` (``benchmarks/`` on
``sys.path``).
"""

from __future__ import annotations

import time
from typing import Final

import andon
from _stops_jobs import STEP_S, StepFile

__all__ = ["SPIN_GRACE_S", "app"]

SPIN_GRACE_S: Final = 2.0

app = andon.App()


@app.job("spin", grace=SPIN_GRACE_S)
def spin(ctx: andon.Context, path: str) -> None:
    """One step, then a pure-Python loop that never lets go of the GIL nor looks at ``ctx``:
    only the exception andon injects after the grace ends it."""
    steps = StepFile(path)
    steps.step()
    spins = 0
    try:
        while True:
            spins += 1
    finally:
        steps.stopped()


@app.job("steps")
def steps(ctx: andon.Context, path: str) -> None:
    """Cooperative: ``STEP_S`` of sleep per step, then record the step, then ``ctx.check()``."""
    file = StepFile(path)
    try:
        while True:
            time.sleep(STEP_S)
            file.step()
            ctx.check()
    finally:
        file.stopped()
