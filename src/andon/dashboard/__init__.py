"""The dashboard: hand-written HTML, CSS and JavaScript modules, served as they are (no build step).

The page talks to the REST API and its event stream like any other client does. Its script
is native ES modules: ``app.js`` imports the others by relative URL, so they load from
``static/`` at any mount path, under the same Content-Security-Policy (``'self'``).
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Final

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

__all__ = ["ASSETS", "SCRIPTS", "router"]

SCRIPTS: Final = (
    "actions.js",
    "api.js",
    "app.js",
    "cards.js",
    "dom.js",
    "format.js",
    "history.js",
    "jobpage.js",
    "kinds.js",
    "schedules.js",
    "live.js",
    "notices.js",
    "session.js",
    "state.js",
    "submit.js",
    "tree.js",
    "workers.js",
)
"""The dashboard's modules; only files named here (and below) are served."""

ASSETS: Final = {
    "app.css": "text/css; charset=utf-8",
    "kinds.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
    **dict.fromkeys(SCRIPTS, "text/javascript; charset=utf-8"),
}

router = APIRouter(include_in_schema=False)


@functools.cache
def _read(name: str) -> bytes:
    return resources.files(__name__).joinpath(name).read_bytes()


@router.get("/")
async def index() -> Response:
    return Response(_read("index.html"), media_type="text/html; charset=utf-8", headers={"cache-control": "no-cache"})


@router.get("/static/{name}")
async def asset(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        return JSONResponse({"error": {"code": "not_found", "message": "no such file"}}, 404)
    return Response(_read(name), media_type=media_type, headers={"cache-control": "no-cache"})
