"""A writer paused in the middle of a write: ``python -m tests.faults.lock_holder PATH``.

It opens the SQLite store at ``PATH`` the way a worker does, starts a write (an UPDATE of
every job, never committed), prints ``locked`` and waits for a line on stdin; then it rolls
its write back and exits. Stopped with SIGSTOP while it waits, it is a worker stopped with
Ctrl-Z inside a write: it holds the file's write lock and does nothing.
"""

from __future__ import annotations

import sys

import andon
from andon._storage._sqlite import _SqliteTx

HELD_PRIORITY = 1_000
"""What the held write adds to every job's priority; no committed job ever has it."""


class _LetGo(Exception):
    """Ends the held write: the store rolls it back."""


def hold(tx: _SqliteTx) -> None:
    tx.conn.execute("UPDATE andon_jobs SET priority = priority + ?", (HELD_PRIORITY,))
    print("locked", flush=True)
    sys.stdin.readline()
    raise _LetGo


def main(path: str) -> None:
    with andon.SqliteStore(path) as store:
        try:
            # The private write path: no public call can be paused halfway, which is the point.
            store._db.write(hold)
        except _LetGo:
            print("released", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
