"""``andon worker`` with every PostgreSQL connection it makes traced at the protocol level,
so a benchmark can count the round trips and transactions each job costs, from outside.

Usage (as ``andon worker``, the trace folder first)::

    python benchmarks/_traced_worker.py TRACE_DIR worker --db URL --app APP ...

Each connection writes libpq's trace (``PQtrace``, without timestamps) to a file of its own
in ``TRACE_DIR``; :func:`count_trace` reads them. Every round trip ends with the server's
``ReadyForQuery``; one whose status is ``I`` (idle) ended a transaction.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import psycopg
from psycopg import pq


def _traced(folder: Path) -> None:
    connect = psycopg.Connection.connect.__func__  # type: ignore[attr-defined]  # the classmethod's function
    opened = iter(range(1_000_000))

    def traced_connect(cls: Any, *args: Any, **kwargs: Any) -> Any:  # Any: psycopg's own signature
        conn = connect(cls, *args, **kwargs)
        fd = os.open(folder / f"conn-{os.getpid()}-{next(opened)}.trace", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        conn.pgconn.trace(fd)
        conn.pgconn.set_trace_flags(
            pq.Trace(0) if os.environ.get("ANDON_TRACE_TIMES") else pq.Trace.SUPPRESS_TIMESTAMPS
        )
        return conn

    psycopg.Connection.connect = classmethod(traced_connect)  # type: ignore[method-assign,assignment]  # the hook


def count_trace(folder: Path) -> tuple[int, int]:
    """(round trips, transactions ended) over every trace file in ``folder``."""
    trips = ended = 0
    for path in folder.glob("*.trace"):
        for line in path.read_text(errors="replace").splitlines():
            if "\tReadyForQuery\t" in line:
                trips += 1
                ended += line.rstrip().endswith("I")
    return trips, ended


if __name__ == "__main__":
    _traced(Path(sys.argv.pop(1)))
    from andon.cli import main

    sys.argv[0] = "andon"
    main()
