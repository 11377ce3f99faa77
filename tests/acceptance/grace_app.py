"""Kinds for the tests of a cancel's own grace (``cancel --now``, ``grace_s``), run by a
separate ``andon worker`` process."""

from __future__ import annotations

import andon

app = andon.App()


@app.job("listens_then_spins", grace=60.0)
def listens_then_spins(ctx: andon.Context) -> None:
    """Reached a cancel point once, then spins in pure Python; its kind grants a minute of
    grace to every handler, so within a test only a cancel that asks for less stops it."""
    ctx.check()
    ctx.emit({"started": True})
    n = 0
    while True:
        n += 1
