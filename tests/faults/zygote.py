"""Worker processes on demand, forked from one process that already imported andon.

Run as ``python -m tests.faults.zygote --db URL --lease S`` from the repository root. It reads
commands on stdin, one a line:

* ``fork <worker id>`` - fork a worker process (``andon.Worker`` on a store of its own);
  it prints ``ready <worker id> <pid>`` once it runs;
* ``quit`` - exit (after reaping every worker that has ended).

Forking takes a millisecond where starting Python and importing andon takes a few hundred,
so the kill -9 trials can start a fresh worker for every kill. The zygote itself is single
threaded and holds no connection, so forking it is safe; each worker opens its own store.
The zygote reaps its children; a worker stopped with SIGTERM shuts down gracefully.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

import andon
from tests.faults.trial_app import app


def _say(line: str) -> None:
    os.write(1, f"{line}\n".encode())  # one write: lines of several processes never mix


def _run_worker(db: str, worker_id: str, lease_s: float, concurrency: int) -> None:
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format=f"%(asctime)s {worker_id} %(levelname)s: %(message)s"
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    store = andon.open_store(db)
    try:
        with andon.Worker(
            app,
            store,
            concurrency=concurrency,
            worker_id=worker_id,
            lease_s=lease_s,
            shutdown_grace_s=2.0,
            idle_poll_s=0.2,
        ):
            _say(f"ready {worker_id} {os.getpid()}")
            stop.wait()
    finally:
        store.close()


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tests.faults.zygote")
    parser.add_argument("--db", required=True)
    parser.add_argument("--lease", type=float, required=True)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args(argv)
    # Connect once, closed before any fork: the first connection of a process initialises
    # the driver's libraries (libpq's security layers take most of a second), which every
    # forked worker then inherits ready.
    andon.open_store(args.db).close()
    for line in sys.stdin:
        command = line.split()
        _reap()
        if command[:1] == ["fork"]:
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    _run_worker(args.db, command[1], args.lease, args.concurrency)
                except BaseException as exc:
                    print(f"worker {command[1]} failed: {exc!r}", file=sys.stderr, flush=True)
                    code = 1
                os._exit(code)
        elif command[:1] == ["quit"]:
            break
    _reap()
    return 0


if __name__ == "__main__":
    sys.exit(main())
