"""Size limits on what users send and what handlers produce, in one place.

Sizes are characters of the value's JSON text as andon encodes it (Python's ``json``,
non-ASCII escaped, so one character is one byte). Each limit protects the store and every
reader of it (API, dashboard, CLI, the event stream) from one value too large to handle:

* ``MAX_PARAMS_BYTES``: a job's params, checked before the job exists (``ParamsTooLarge``,
  HTTP 413).
* ``MAX_ITEM_BYTES``: one item passed to ``ctx.emit`` (``ResultTooLarge`` raised in the
  handler; nothing of the item is stored).
* ``MAX_RESULT_BYTES``: the value a handler returns (the job fails with ``ResultTooLarge``
  and stores no result).
* ``MAX_REQUEST_BYTES``: the default cap on an HTTP request body (413).
"""

from __future__ import annotations

from typing import Final

__all__ = ["MAX_ITEM_BYTES", "MAX_PARAMS_BYTES", "MAX_REQUEST_BYTES", "MAX_RESULT_BYTES"]

MAX_PARAMS_BYTES: Final = 64 * 1024
MAX_ITEM_BYTES: Final = 1024 * 1024
MAX_RESULT_BYTES: Final = 1024 * 1024
MAX_REQUEST_BYTES: Final = 1024 * 1024
