"""``extract``: pull named properties out of many rows with a language model.

Each row goes to an OpenAI-compatible chat-completions endpoint; the model answers with a
JSON object, and the properties found in it are emitted, one item per row.

Configuration comes from the environment, never from a default that leaves the machine:

* ``ANDON_LLM_URL`` (required): the API's base URL, e.g. ``http://127.0.0.1:8080/v1``;
  requests go to ``$ANDON_LLM_URL/chat/completions``.
* ``ANDON_LLM_MODEL``: the model name, unless the job gives ``model``.
* ``ANDON_LLM_API_KEY``: sent as a bearer token when set.

Why an async handler: at most ``concurrency`` requests are in flight, each an ``await`` in a
task of one task group. A cancel cancels the handler's task at its ``await``; the task group
then cancels every request in flight, which closes its connection (the server sees the
client go away), and the rows not yet sent never are. A thread pool could do neither: a
thread blocked in a socket read cannot be interrupted, so it would hold the cancel up until
the model answered, and would then have paid for an answer nobody reads.

Resume: after each row's item a checkpoint stores the rows done - every row below a mark,
and the few above it that finished early (answers come back out of order) - and the counts
of rows extracted and failed. A resumed job sends only the rows not done, so each row gets
one item; a row whose request the cancel aborted is asked again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from typing import TYPE_CHECKING, Annotated, Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from pydantic import Field

from andon import ConfigurationError, Context
from andon.examples import app

if TYPE_CHECKING:
    import httpx

__all__ = ["extract", "parse_properties", "redact"]

Row = dict[str, Any] | str  # Any: a row is any JSON object, or plain text

_JSON_OBJECT: Final = re.compile(r"\{.*\}", re.DOTALL)


@app.job("extract", grace=1.0)
async def extract(
    ctx: Context,
    rows: list[Row],
    properties: Annotated[list[str], Field(min_length=1)],
    model: str | None = None,
    concurrency: Annotated[int, Field(ge=1, le=64)] = 4,
    request_timeout_s: float = 120.0,
) -> dict[str, int]:
    """Ask a language model (ANDON_LLM_URL, OpenAI-compatible) for the given properties of each row."""
    import httpx

    endpoint, headers = _endpoint()
    model_name = model or os.environ.get("ANDON_LLM_MODEL")
    if not model_name:
        raise ConfigurationError("no model: give the job a model param, or set ANDON_LLM_MODEL")
    done = _RowsDone.resumed(ctx.resumed)
    queue: asyncio.Queue[tuple[int, Row]] = asyncio.Queue()
    for index, row in enumerate(rows):
        if index not in done:
            queue.put_nowait((index, row))
    timeout = httpx.Timeout(request_timeout_s, connect=10.0)
    async with httpx.AsyncClient(headers=headers, timeout=timeout) as client:

        async def ask_until_empty() -> None:
            # Each of the `concurrency` askers takes the next row only when its previous
            # request is over: rows wait in the queue, not in flight.
            while not queue.empty():
                index, row = queue.get_nowait()
                item = await _ask(client, endpoint, model_name, properties, index, row)
                # No await between the item and its checkpoint: no other asker's row can
                # come between them, nor a cancel.
                ctx.emit(item)
                done.add(index, failed="error" in item)
                ctx.checkpoint(done.state())
                count = done.extracted + done.failed
                ctx.progress(count, len(rows), f"{count}/{len(rows)} rows")

        # A cancel lands at an asker's `await`; the task group cancels the others, and
        # leaving the client closes every connection.
        async with asyncio.TaskGroup() as group:
            for _ in range(min(concurrency, len(rows))):
                group.create_task(ask_until_empty())
    return {"rows": len(rows), "extracted": done.extracted, "failed": done.failed}


class _RowsDone:
    """The rows done, as a checkpoint stores them: every row below ``below``, plus the ones
    above it that finished early. Answers come back nearly in order, so the state stays
    small (about ``concurrency`` numbers) however many rows there are."""

    def __init__(self, below: int = 0, above: list[int] | None = None, extracted: int = 0, failed: int = 0) -> None:
        self._below = below
        self._above = set(above or [])
        self.extracted = extracted
        self.failed = failed

    @classmethod
    def resumed(cls, state: dict[str, Any] | None) -> _RowsDone:  # Any: a JSON state
        if state is None:
            return cls()
        return cls(int(state["below"]), [int(n) for n in state["above"]], int(state["extracted"]), int(state["failed"]))

    def __contains__(self, index: int) -> bool:
        return index < self._below or index in self._above

    def add(self, index: int, *, failed: bool) -> None:
        self._above.add(index)
        while self._below in self._above:
            self._above.remove(self._below)
            self._below += 1
        if failed:
            self.failed += 1
        else:
            self.extracted += 1

    def state(self) -> dict[str, Any]:  # Any: a JSON state
        return {"below": self._below, "above": sorted(self._above), "extracted": self.extracted, "failed": self.failed}


def _endpoint() -> tuple[str, dict[str, str]]:
    base = os.environ.get("ANDON_LLM_URL", "").strip()
    if not base:
        raise ConfigurationError(
            "ANDON_LLM_URL is not set: point it at an OpenAI-compatible API, e.g. http://127.0.0.1:8080/v1"
        )
    if not base.startswith(("http://", "https://")):
        raise ConfigurationError(f"ANDON_LLM_URL must be an http(s) URL, not {redact(base)!r}")
    headers = {}
    if key := os.environ.get("ANDON_LLM_API_KEY"):
        headers["Authorization"] = f"Bearer {key}"
    # The suffix goes on the path: a query (``?api-version=...``, ``?key=...``) stays last.
    try:
        parts = urlsplit(base)
    except ValueError as exc:  # e.g. an unclosed "[" of an IPv6 address
        raise ConfigurationError(f"ANDON_LLM_URL is not a valid URL ({exc}): {redact(base)!r}") from None
    path = parts.path.rstrip("/") + "/chat/completions"
    return urlunsplit(parts._replace(path=path)), headers


async def _ask(
    client: httpx.AsyncClient, endpoint: str, model: str, properties: list[str], index: int, row: Row
) -> dict[str, Any]:  # Any: a JSON item
    """One row, one request: ``{"row", "properties"}``, or ``{"row", "error"}`` if it went wrong."""
    import httpx

    text = row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)
    body = {
        "model": model,
        "temperature": 0,
        "messages": [
            {
                "role": "system",
                "content": "Extract these properties from the user's text: "
                + ", ".join(properties)
                + ". Answer with one JSON object with exactly these keys; use null when a property is not in the text.",
            },
            {"role": "user", "content": text},
        ],
    }
    try:
        response = await client.post(endpoint, json=body)
        response.raise_for_status()
        answer = response.json()["choices"][0]["message"]["content"]
        return {"row": index, "properties": parse_properties(answer, properties)}
    except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
        # One bad answer (or an HTTP error) costs one row, not the job.
        # Redacted: httpx names the URL in its messages, and the URL may carry a key.
        return {"row": index, "error": f"{type(exc).__name__}: {redact(str(exc))}"}


def parse_properties(answer: str, properties: list[str]) -> dict[str, Any]:  # Any: JSON values
    """The requested properties from a model's answer: a JSON object, possibly inside prose
    or a fenced code block. Keys the model added are dropped; missing ones are ``None``.

    Raises:
        ValueError: the answer holds no JSON object.
    """
    found = _JSON_OBJECT.search(answer)
    if found is None:
        raise ValueError(f"the answer has no JSON object: {answer[:200]!r}")
    data = json.loads(found.group(0))
    if not isinstance(data, dict):
        raise ValueError("the answer's JSON is not an object")
    return {name: data.get(name) for name in properties}


def _secrets() -> list[str]:
    """The parts of the LLM settings that may be keys: the URL's password (and user) and
    query values, and ANDON_LLM_API_KEY. Read each time, so a changed setting is covered."""
    found = [os.environ.get("ANDON_LLM_API_KEY", "")]
    base = os.environ.get("ANDON_LLM_URL", "").strip()
    try:
        parts = urlsplit(base)
        found += [parts.password or "", parts.username or ""]
        found += [value for _, value in parse_qsl(parts.query, keep_blank_values=True)]
    except ValueError:  # not a URL at all: treat the whole setting as secret
        found.append(base)
    found += [unquote(value) for value in found]
    # Longest first, so a key is never half-replaced through a shorter secret inside it.
    return sorted({value for value in found if len(value) >= 3}, key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with every secret of the LLM settings replaced by ``***``."""
    for secret in _secrets():
        text = text.replace(secret, "***")
    return text


class _RedactingFilter(logging.Filter):
    """httpx logs every request's URL at INFO; the URL may carry a key (``?key=``, ``user:key@``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


for _logger in ("httpx", "httpcore"):
    logging.getLogger(_logger).addFilter(_RedactingFilter())
