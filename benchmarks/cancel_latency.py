"""Cancel latency: how long after ``Client.cancel()`` the work has really stopped.

Usage::

    python benchmarks/cancel_latency.py [--runs N] [--spin-runs N] [--quick] [--out PATH]

Three measurements, each over many cancels of a freshly started job:

(a) in-process: a worker in this process runs ``count`` (andon.examples) with
    ``interval_s=0.001``, so the job emits ``{"i", "at": time.time()}`` about every
    millisecond. Figures: from the cancel call to the ``at`` of the *last* item the job
    emitted (negative: its last item came before the call, i.e. nothing was emitted after
    it), and from the cancel call to the store reading ``cancelled``.
(b) across processes: the same, with the worker in a subprocess and the cancel travelling
    through the SQLite file only.
(c) ``spin`` (andon.examples; a process-isolated pure-Python loop that never checks): from
    the cancel call to its process having exited (``/proc/<pid>`` gone or a zombie). Its
    grace period is printed: SIGTERM comes after it, so it bounds the figure from below.

Prints a table and writes everything (every sample too) as JSON to
``benchmarks/out/cancel_latency.json`` (or ``--out``). ``--quick`` does a handful of runs,
for a smoke test; the figures are then not meaningful.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _report
import andon
from _report import summary, table
from andon.examples import app

DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "cancel_latency.json"
POLL_S = 0.0005
WAIT_BOUND_S = 30.0

WORKER_CODE = """
import signal, sys, threading
import andon
from andon.examples import app

stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
with andon.SqliteStore(sys.argv[1]) as store:
    with andon.Worker(app, store, concurrency=1, worker_id=sys.argv[2], shutdown_grace_s=1.0):
        print("ready", flush=True)
        while not stop.wait(0.1):
            pass
"""


@dataclass
class Series:
    """One measured figure: its samples in seconds."""

    name: str
    label: str
    samples: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:  # Any: JSON values
        return summary(self.label, self.samples)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT_BOUND_S) -> None:
    _report.wait_for(condition, what, timeout, POLL_S)


def has_items(client: andon.Client, job_id: str) -> Callable[[], bool]:
    return lambda: client.get(job_id).items_count >= 1


def is_cancelled(client: andon.Client, job_id: str) -> Callable[[], bool]:
    return lambda: client.get(job_id).status is andon.JobStatus.CANCELLED


def stop_method(job: andon.Job) -> str:
    if job.status is not andon.JobStatus.CANCELLED or job.cancel is None or job.cancel.stop_method is None:
        raise SystemExit(f"job {job.id} did not end cancelled with a stop method: {job}")
    return job.cancel.stop_method.value


def exited(pid: int) -> bool:
    """The process is gone, or a zombie (it has ended; only its exit status is left)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    except OSError:  # no /proc: fall back on a signal probe (which sees zombies as alive)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    return text[text.rindex(")") + 2] == "Z"


# -- (a) and (b): cooperative count ------------------------------------------------------------


def measure_count(
    client: andon.Client, runs: int, rng: random.Random, last_item: Series, store_reads: Series
) -> dict[str, int]:
    """Cancel ``runs`` count jobs (plus one warm-up) shortly after they start emitting."""
    methods: dict[str, int] = {}
    for run in range(runs + 1):
        job = client.submit("count", {"n": 10_000_000, "interval_s": 0.001})
        wait_for(has_items(client, job.id), f"job {job.id} to emit")
        time.sleep(rng.uniform(0.0, 0.005))  # land the cancel anywhere in the emit cycle
        called = time.time()
        client.cancel(job.id)
        wait_for(is_cancelled(client, job.id), f"job {job.id} to be cancelled")
        read_cancelled = time.time()
        finished = client.get(job.id)
        items = client.results(job.id, offset=max(0, finished.items_count - 1))
        method = stop_method(finished)
        if run == 0:
            continue  # warm-up
        methods[method] = methods.get(method, 0) + 1
        last_item.samples.append(items[-1].data["at"] - called)
        store_reads.samples.append(read_cancelled - called)
    return methods


def bench_in_process(db: Path, runs: int, rng: random.Random, series: dict[str, Series]) -> dict[str, int]:
    with andon.SqliteStore(str(db)) as store:
        client = andon.Client(store, app, actor="bench")
        with andon.Worker(app, store, concurrency=1, shutdown_grace_s=1.0):
            return measure_count(client, runs, rng, series["a_last_item"], series["a_store"])


def bench_cross_process(db: Path, runs: int, rng: random.Random, series: dict[str, Series]) -> dict[str, int]:
    with andon.SqliteStore(str(db)) as store:  # the schema exists before the worker opens the file
        client = andon.Client(store, app, actor="bench")
        worker = subprocess.Popen(
            [sys.executable, "-c", WORKER_CODE, str(db), "bench-subprocess-worker"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert worker.stdout is not None
            if worker.stdout.readline().strip() != "ready":
                raise SystemExit("the worker subprocess did not start")
            return measure_count(client, runs, rng, series["b_last_item"], series["b_store"])
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.communicate()


# -- (c): spin -------------------------------------------------------------------------------


def bench_spin(db: Path, runs: int, series: dict[str, Series]) -> dict[str, int]:
    methods: dict[str, int] = {}
    with andon.SqliteStore(str(db)) as store:
        client = andon.Client(store, app, actor="bench")
        with andon.Worker(app, store, concurrency=1, shutdown_grace_s=1.0):
            for run in range(runs + 1):
                job = client.submit("spin")
                wait_for(has_items(client, job.id), f"spin job {job.id} to report its pid")
                pid: int = client.results(job.id)[0].data["pid"]
                called = time.time()
                client.cancel(job.id)
                wait_for(functools.partial(exited, pid), f"spin process {pid} to exit")
                gone = time.time()
                finished = client.wait_finished(job.id, timeout=WAIT_BOUND_S)
                method = stop_method(finished)
                if run == 0:
                    continue  # warm-up (starts the forkserver)
                methods[method] = methods.get(method, 0) + 1
                series["c_spin"].samples.append(gone - called)
    return methods


# -- report ----------------------------------------------------------------------------------


def series_table(series: dict[str, Series]) -> str:
    rows: list[list[str]] = [["measurement", "runs", "p50", "p99", "max"]]
    for item in series.values():
        figures = item.summary()
        values = [figures[key] for key in ("p50_ms", "p99_ms", "max_ms")]
        rows.append([item.label, str(figures["runs"]), *(f"{v:.1f} ms" if v is not None else "-" for v in values)])
    return table(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure how fast a cancel stops the work.")
    parser.add_argument("--runs", type=int, default=100, help="cancels of count, in-process and across processes")
    parser.add_argument("--spin-runs", type=int, default=20, help="cancels of spin")
    parser.add_argument("--quick", action="store_true", help="a handful of runs (a smoke test)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    runs, spin_runs = (3, 2) if args.quick else (args.runs, args.spin_runs)
    rng = random.Random(args.seed)
    spin_grace = app.get("spin").grace_s
    series = {
        "a_last_item": Series("a_last_item", "(a) in-process: cancel call -> last item emitted"),
        "a_store": Series("a_store", "(a) in-process: cancel call -> store reads cancelled"),
        "b_last_item": Series("b_last_item", "(b) cross-process: cancel call -> last item emitted"),
        "b_store": Series("b_store", "(b) cross-process: cancel call -> store reads cancelled"),
        "c_spin": Series("c_spin", f"(c) spin, grace {spin_grace:g} s: cancel call -> process exited"),
    }
    methods: dict[str, dict[str, int]] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="andon-bench-") as folder:
        methods["a"] = bench_in_process(Path(folder) / "a.db", runs, rng, series)
        methods["b"] = bench_cross_process(Path(folder) / "b.db", runs, rng, series)
        methods["c"] = bench_spin(Path(folder) / "c.db", spin_runs, series)
    took = time.monotonic() - started

    meta = {
        "andon": andon.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "quick": args.quick,
        "seed": args.seed,
        "count_interval_s": 0.001,
        "spin_grace_s": spin_grace,
        "stop_methods": methods,
        "seconds": round(took, 1),
    }
    print(
        f"andon {andon.__version__} cancel latency - Python {meta['python']}, {meta['platform']}, {meta['cpus']} CPUs"
    )
    print("(one warm-up run per section not counted; negative 'last item': no item came after the cancel call)")
    print()
    print(series_table(series))
    print()
    print("stop methods: " + "; ".join(f"({k}) {v}" for k, v in methods.items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"meta": meta, "results": {k: s.summary() for k, s in series.items()}}, indent=2) + "\n"
    )
    print(f"written to {args.out} ({took:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
