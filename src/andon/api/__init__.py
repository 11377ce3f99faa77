"""The REST API, its live event stream and the dashboard: one FastAPI app.

``create_app(store_or_client, app, worker=..., token=...)`` builds it; ``andon serve`` runs it
with uvicorn. To serve Andon inside your own FastAPI app, make a :class:`Service`, mount its
``app`` and enter its ``lifespan`` from your app's lifespan. Needs only the public
:mod:`andon` API.
"""

from __future__ import annotations

from andon.api._app import ERROR_STATUS, MAX_BODY_BYTES, Service, create_app, runtime_of
from andon.api._runtime import Runtime, RuntimeState

__all__ = ["ERROR_STATUS", "MAX_BODY_BYTES", "Runtime", "RuntimeState", "Service", "create_app", "runtime_of"]
