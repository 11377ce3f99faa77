"""The dashboard: hand-written HTML, CSS and JavaScript, served as they are (no build step).

The page talks to the REST API and its event stream like any other client does.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Final

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

__all__ = ["ASSETS", "router"]

ASSETS: Final = {
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
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
