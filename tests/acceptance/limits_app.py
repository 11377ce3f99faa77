"""The app of the limits process tests (``tests.acceptance.test_limits_processes``):
importable by ``andon worker --app tests.acceptance.limits_app:app``."""

from __future__ import annotations

import andon

app = andon.App(default_grace=0.5)


@app.job("browse", max_running=2)
def browse(ctx: andon.Context, seconds: float = 0.3) -> str:
    """Holds one of the two places for ``seconds`` (cooperatively)."""
    ctx.sleep(seconds)
    return "browsed"


@app.job("tick", rate=(5, 1.0))
def tick(ctx: andon.Context) -> str:
    return "ticked"


@app.job("free")
def free(ctx: andon.Context) -> str:
    return "free"
