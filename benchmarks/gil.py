"""A handler that holds the GIL: are stops still on time, for it and for its neighbours? (issue 20)

Usage::

    python benchmarks/gil.py [--quick] [--db POSTGRES_URL | --no-postgres]

One ``andon worker`` process (4 slots) per store, on SQLite and on PostgreSQL, runs a
thread-isolated handler spinning in a pure-Python loop (``while True: spins += 1``: it
never lets go of the GIL nor looks at its context; grace 2 s) and three cooperative ones
beside it (1 ms of sleep per step, then ``ctx.check()``). This process cancels the three
cooperative jobs one after the other at random moments while the first one spins, then
the spinning one. Every job writes its own step file (``_stops_jobs``), so "stopped" is
judged by the work itself.

Figures: cancel call -> the cooperative job's last step; cancel call -> the spinning
handler's ``finally`` ran (the ``Cancelled`` andon injects after the grace). What they test
is the worker's own threads (the store's watcher or listener, the control thread, the
monitor) while one of its slots holds the GIL: see ``andon._runtimes._switching``.
The first round is a warm-up, not counted. Every figure includes whatever else the machine
is doing.
"""

from __future__ import annotations

import contextlib
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import andon
from _common import andon_workers, fresh_schema, group_main
from _gil_jobs import SPIN_GRACE_S, app
from _report import latency_row
from _stops_jobs import read_steps
from stops import Files, stop_method, wait_for, wait_started

GROUP = "GIL-holding handler"
NEIGHBOURS = 3
"""Cooperative jobs beside the spinning one (the worker has one slot more)."""
SPINNING_FOR_S = 0.2
"""How long the handler has held the GIL when the first cancel comes."""
CANCEL_AFTER_S = 0.010
"""Each cancel lands at a uniformly random moment up to this long after the previous one's effect."""
FULL_ROUNDS = 20
QUICK_ROUNDS = 1


@dataclass
class Series:
    neighbour_last_step: list[float] = field(default_factory=list)
    spin_stopped: list[float] = field(default_factory=list)
    methods: Counter[str] = field(default_factory=Counter)


@contextlib.contextmanager
def worker_on(url: str) -> Iterator[andon.Client]:
    """An ``andon worker`` process with a slot for each job of a round, and a client here."""
    store = andon.open_store(url)  # creates a SQLite schema before the worker opens the file
    try:
        with andon_workers(url, 1, NEIGHBOURS + 1, app="_gil_jobs:app"):
            yield andon.Client(store, app, actor="bench")
    finally:
        store.close()


def progress(text: str) -> None:
    print(f"gil: {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def cancel_neighbour(client: andon.Client, job_id: str, path: Path, rng: random.Random) -> float:
    """Cancel a cooperative job; seconds from the call to its last step."""
    time.sleep(rng.uniform(0.0, CANCEL_AFTER_S))
    called = time.time()
    client.cancel(job_id)
    wait_for(lambda: read_steps(path).stopped_at > 0, f"cooperative job {job_id} to see its cancel")
    return read_steps(path).last_at - called


def one_round(client: andon.Client, files: Files, rng: random.Random, series: Series | None) -> None:
    spin_path = files.new()
    spinning = client.submit("spin", {"path": str(spin_path)})
    neighbours = []
    for _ in range(NEIGHBOURS):
        path = files.new()
        neighbours.append((client.submit("steps", {"path": str(path)}).id, path))
    wait_started(client, spinning.id, spin_path, f"spinning job {spinning.id} to start")
    for job_id, path in neighbours:
        wait_started(client, job_id, path, f"cooperative job {job_id} to start")
    time.sleep(SPINNING_FOR_S)
    last_steps = [cancel_neighbour(client, job_id, path, rng) for job_id, path in neighbours]
    time.sleep(rng.uniform(0.0, CANCEL_AFTER_S))
    called = time.time()
    client.cancel(spinning.id)
    wait_for(lambda: read_steps(spin_path).stopped_at > 0, f"spinning job {spinning.id} to stop", 60.0)
    stopped = read_steps(spin_path).stopped_at - called
    method = stop_method(client, spinning.id)
    for job_id, _ in neighbours:
        stop_method(client, job_id)
    if series is not None:
        series.neighbour_last_step += last_steps
        series.spin_stopped.append(stopped)
        series.methods[method] += 1


def rows_for(setup: str, url: str, rounds: int, files: Files) -> list[dict[str, Any]]:  # Any: JSON values
    progress(f"GIL-holding handler, {setup}")
    rng = random.Random(20)
    series = Series()
    with worker_on(url) as client:
        for index in range(rounds + 1):
            one_round(client, files, rng, series if index else None)
    note = "stop method " + ", ".join(f"{name} {count}" for name, count in series.methods.most_common())
    return [
        latency_row(
            GROUP,
            f"{setup}, thread isolation, pure-Python CPU loop, grace {SPIN_GRACE_S:g} s: cancel -> stopped",
            series.spin_stopped,
            target_p95_ms=SPIN_GRACE_S * 1000 + 100,
            note=note,
        ),
        latency_row(
            GROUP,
            f"{setup}, cooperative cancel of another job while one handler spins: cancel -> last step",
            series.neighbour_last_step,
            target_p99_ms=20.0,
        ),
    ]


def measure(quick: bool, postgres_url: str | None) -> list[dict[str, Any]]:  # Any: JSON values
    rounds = QUICK_ROUNDS if quick else FULL_ROUNDS
    rows: list[dict[str, Any]] = []  # Any: JSON values
    with tempfile.TemporaryDirectory(prefix="andon-gil-") as folder:
        files = Files(Path(folder))
        rows += rows_for("SQLite", f"sqlite:///{Path(folder) / 'gil.db'}", rounds, files)
        if postgres_url is not None:
            with fresh_schema(postgres_url, "gil") as url:
                rows += rows_for("PostgreSQL", url, rounds, files)
    return rows


if __name__ == "__main__":
    raise SystemExit(group_main(__doc__ or "", measure))
