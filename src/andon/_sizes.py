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
* ``MAX_CHECKPOINT_BYTES``: the state passed to ``ctx.checkpoint`` (``ResultTooLarge`` raised
  in the handler, and the checkpoint before it stays the last one).
* ``MAX_REQUEST_BYTES``: the default cap on an HTTP request body (413).
* ``MAX_MESSAGE_CHARS``: a progress message (``ValueError`` raised in the handler).
* ``MAX_ERROR_MESSAGE_CHARS`` / ``MAX_TRACEBACK_CHARS``: how much of a failure's message and
  traceback is kept; the rest is cut, and the cut says so (a failure cannot be refused).

Text bound for the store goes through :func:`storable_text` first: both stores keep UTF-8
text, and PostgreSQL refuses NUL characters, so a lone surrogate (``"\\ud800"``) or a NUL
in a message would fail the write of a whole batch of other jobs' output.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "MAX_CHECKPOINT_BYTES",
    "MAX_ERROR_MESSAGE_CHARS",
    "MAX_ITEM_BYTES",
    "MAX_MESSAGE_CHARS",
    "MAX_PARAMS_BYTES",
    "MAX_REQUEST_BYTES",
    "MAX_RESULT_BYTES",
    "MAX_TRACEBACK_CHARS",
    "clipped_text",
    "storable_text",
]

MAX_PARAMS_BYTES: Final = 64 * 1024
MAX_ITEM_BYTES: Final = 1024 * 1024
MAX_RESULT_BYTES: Final = 1024 * 1024
MAX_CHECKPOINT_BYTES: Final = 64 * 1024
MAX_REQUEST_BYTES: Final = 1024 * 1024
MAX_MESSAGE_CHARS: Final = 4096
MAX_ERROR_MESSAGE_CHARS: Final = 16 * 1024
MAX_TRACEBACK_CHARS: Final = 64 * 1024

_REPLACEMENT: Final = "\ufffd"


def storable_text(text: str) -> str:
    """``text`` with what no store can keep (NUL, lone surrogates) replaced by U+FFFD."""
    if "\x00" in text:
        text = text.replace("\x00", _REPLACEMENT)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = "".join(_REPLACEMENT if "\ud800" <= char <= "\udfff" else char for char in text)
    return text


def clipped_text(text: str, limit: int) -> str:
    """``text`` made storable and cut to ``limit`` characters, the cut marked in the text."""
    text = storable_text(text)
    if len(text) <= limit:
        return text
    keep = max(0, limit - 64)  # room for the marker, whatever the count's length
    return f"{text[:keep]}\n... [{len(text) - keep:,} more characters cut by andon]"
