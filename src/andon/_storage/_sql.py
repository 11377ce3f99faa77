"""Where the stores' SQL comes from: named blocks in ``.sql`` files, and the few fragments
composed at run time (the conditions of a :class:`~andon._storage.JobFilter`).

A ``.sql`` file is a list of blocks, each opened by a ``-- name: NAME`` line and running
to the next one; a block may hold several statements, each ending in ``;`` at the end of a
line. Comment lines are dropped. Every fragment built here is fixed text chosen from the
filter's shape (which fields it sets); values always travel as parameters.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Final

from andon._storage._records import JobFilter

__all__ = ["postgres_filter", "read_blocks", "read_sql", "sqlite_filter"]

_NAME_LINE: Final = re.compile(r"^-- name: (\w+)[ \t]*$", re.MULTILINE)
_STATEMENT_END: Final = re.compile(r";[ \t]*$", re.MULTILINE)
_TRIGGER: Final = re.compile(r"CREATE\s+TRIGGER\b", re.IGNORECASE)


def read_sql(filename: str) -> str:
    """One ``.sql`` file shipped in this package (read beside this module: importlib.resources
    would import zipfile at every start-up of the CLI for a package that is never zipped)."""
    return Path(__file__).with_name(filename).read_text(encoding="utf-8")


def read_blocks(filename: str) -> dict[str, tuple[str, ...]]:
    """The named blocks of ``filename``: each name's statements, in order."""
    pieces = _NAME_LINE.split(read_sql(filename))
    blocks: dict[str, tuple[str, ...]] = {}
    for name, body in zip(pieces[1::2], pieces[2::2], strict=True):
        code = "\n".join(line for line in body.splitlines() if not line.lstrip().startswith("--"))
        statements = _join_triggers(tuple(s.strip() for s in _STATEMENT_END.split(code) if s.strip()))
        if name in blocks or not statements:
            raise ValueError(f"{filename}: block {name!r} is repeated or empty")
        blocks[name] = statements
    return blocks


def _join_triggers(pieces: tuple[str, ...]) -> tuple[str, ...]:
    """A SQLite ``CREATE TRIGGER`` holds statements of its own, each ending in ``;``: it runs
    to the piece that ends with its ``END``, and is one statement."""
    statements: list[str] = []
    body: list[str] = []
    for piece in pieces:
        if body or _TRIGGER.match(piece):
            body.append(piece)
            if piece.upper().endswith("END"):
                statements.append(";\n".join(body))
                body = []
        else:
            statements.append(piece)
    if body:
        raise ValueError(f"a CREATE TRIGGER without its END: {body[0][:60]!r}")
    return tuple(statements)


def _filter_values(where: JobFilter) -> list[tuple[str, list[str]]]:
    return [
        ("status", [str(s) for s in where.statuses]),
        ("kind", list(where.kinds)),
        ("id", list(where.ids)),
        ("owner", list(where.owners)),
        ("parent_id", list(where.parents)),
        ("root_id", list(where.roots)),
    ]


def sqlite_filter(where: JobFilter, cursor: str | None, now: float = 0.0) -> tuple[str, str, dict[str, Any]]:
    """The condition (``:fN`` parameters; ``1`` when empty), the listing order and the
    parameters of a filter on SQLite, and ``id < :cursor`` when a listing goes on. ``now``
    decides which queued jobs are not due yet (``where.scheduled``)."""
    parts: list[str] = ["1"]
    args: dict[str, Any] = {}
    for column, values in _filter_values(where):
        if values:
            name = f"f{len(args)}"
            parts.append(f"{column} IN (SELECT value FROM json_each(:{name}))")
            args[name] = json.dumps(values)
    if where.scheduled is not None:
        parts.append(("" if where.scheduled else "NOT ") + "(status = 'queued' AND available_at > :due_after)")
        args["due_after"] = now
    if cursor is not None:
        parts.append("id < :cursor")
        args["cursor"] = cursor
    return " AND ".join(parts), "id DESC", args


def postgres_filter(where: JobFilter, cursor: str | None, now: float = 0.0) -> tuple[str, str, dict[str, Any]]:
    """:func:`sqlite_filter` for PostgreSQL (``%(f_column)s`` parameters; ``true`` when empty)."""
    parts = ["true"]
    args: dict[str, Any] = {}
    if where.scheduled is not None:
        parts.append(("" if where.scheduled else "NOT ") + "(status = 'queued' AND available_at > %(due_after)s)")
        args["due_after"] = now
    for column, values in _filter_values(where):
        if len(values) == 1:
            # One value: written as a range (the same rows) so that the planner keeps
            # "ORDER BY column, id" (below) and reads the (column, id) index in order.
            parts.append(f"{column} BETWEEN %(f_{column})s AND %(f_{column})s")
            args[f"f_{column}"] = values[0]
        elif values:
            parts.append(f"{column} = ANY(%(f_{column})s::text[])")
            args[f"f_{column}"] = values
    if cursor is not None:
        parts.append("id < %(cursor)s")
        args["cursor"] = cursor
    # Filtered on one status (or else one kind), order by that column too: the result is
    # the same, and the planner then reads the (status, id) index backwards and stops after
    # one page. Ordered by id alone it may walk the table newest-first, filtering, when the
    # newest jobs are of another status: 100,000 queued jobs before the first succeeded one
    # took 80 ms a page at a million jobs.
    order = "id DESC"
    if len(where.statuses) == 1:
        order = "status DESC, id DESC"
    elif len(where.kinds) == 1:
        order = "kind DESC, id DESC"
    return " AND ".join(parts), order, args
