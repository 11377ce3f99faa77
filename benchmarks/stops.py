"""Stops: how soon after a cancel the work itself has stopped (issue 6, stop benchmarks).

Usage::

    python benchmarks/stops.py [--quick] [--db POSTGRES_URL] [--out PATH]

Every job under test writes its own progress into a small memory-mapped file (see
``_stops_jobs``): the wall-clock time of its last step, its pid, its child's pid. So
"stopped" is judged by the work, not by andon's status; "gone" means the process no
longer exists or is a zombie (it has ended; only its exit status is left).

cooperative stop
    A sync handler doing 1 ms steps with ``ctx.check()`` after each, and an async handler
    awaiting ``asyncio.sleep(0.001)`` per step, cancelled at a random moment after they
    started. Figures: cancel call -> the work's last step (negative: no step began after
    the call); cancel call -> this process reads ``cancelled`` from the store (polled every
    0.5 ms); the work stopped (the handler records when its checkpoint raised or its await
    was cancelled) -> store reads ``cancelled``. Three setups: the worker in this process
    (SQLite), in another process (SQLite), in another process (PostgreSQL, only with
    ``--db``, in a schema of its own dropped afterwards).
cooperative stop through the REST API
    The same sync handler, run by an ``andon worker`` process, cancelled through a separate
    ``andon serve --no-worker`` process: ``POST /api/v1/jobs/{id}/cancel?wait=true`` on a
    kept-alive connection. Figures: cancel request -> the work's last step; cancel request ->
    the answer (the job ``cancelled``, read through the API). SQLite, and PostgreSQL with
    ``--db``; the targets are the client's (issue 20) plus the 1.5 ms the API may add.
uncooperative stop
    Process-isolated handlers that never check: a pure-Python CPU loop, and one blocked in
    ``time.sleep(3600)``, each with ``grace=0`` and with default settings (which give a
    handler that never looked at its context no grace). Figures: cancel call -> the
    handler's process is gone; gone -> the first step of the job queued behind it on the
    same (``concurrency=1``) worker. And the CPU loop in a thread with default settings:
    cancel call -> the injected ``Cancelled`` reached it.
child processes
    A handler starting ``sleep 3600`` through ``ctx.popen`` (thread and process isolation)
    and through plain ``subprocess.Popen`` in a process-isolated handler (waiting at a
    checkpoint, or blocked in ``wait()`` with ``grace=0``). Figures: cancel call -> the
    child is gone; children still alive at least 1 s after their job ended; and, at the
    end, every ``sleep`` this run started that is still alive (they carry an argument
    unique to the run, so no other process is counted or touched).

The uncooperative and child rows use a worker in this process on SQLite: what they time
is signals and process ends, not the store. Warm-up runs (a worker's first job) are not
counted. Every figure includes whatever else the machine is doing: ``main`` records the
load average with the rows.

``measure(quick, postgres_url)`` returns the rows for the suite (``benchmarks/suite.py``);
run alone, this prints the table and writes the rows as JSON to
``benchmarks/out/stops.json``. ``--quick`` does a handful of runs, for a smoke test; its
figures are not meaningful.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _report
import andon
from _common import ANDON, HERE, OUT, andon_workers, fresh_schema, machine
from _report import figure_row, latency_row, rows_table
from _stops_jobs import STEP_S, app, create_step_file, read_steps

COOPERATIVE = "cooperative stop"
THROUGH_API = "cooperative stop through the REST API"
UNCOOPERATIVE = "uncooperative stop"
CHILDREN = "child processes"
DEFAULT_OUT = OUT / "stops.json"
POLL_S = 0.0005
WAIT_BOUND_S = 30.0
ORPHAN_AFTER_S = 1.0
CANCEL_AFTER_S = 0.010
CLIENT_TARGETS_MS = {"SQLite": (0.5, 3.0), "PostgreSQL": (1.5, 6.0)}
"""Issue 20's p50 targets for a worker in another process: cancel -> last step, cancel -> status read."""
"""The cancel lands at a uniformly random moment this long after the work's first step."""


@dataclass(frozen=True)
class Plan:
    """How many counted runs each series gets."""

    cooperative: int
    grace0: int
    default_grace: int
    children: int


FULL = Plan(cooperative=100, grace0=40, default_grace=40, children=30)
QUICK = Plan(cooperative=3, grace0=2, default_grace=1, children=2)


# -- the pieces every measurement uses ----------------------------------------------------


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT_BOUND_S) -> None:
    _report.wait_for(condition, what, timeout, POLL_S)


def gone(pid: int) -> bool:
    """The process no longer exists, or is a zombie (ended; only its exit status is left)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # the latter: it ended between open and read
        return True
    return text[text.rindex(")") + 2] == "Z"


@dataclass
class Files:
    """Fresh step files in one folder."""

    folder: Path
    numbers: Iterator[int] = field(default_factory=itertools.count)

    def new(self) -> Path:
        path = self.folder / f"{next(self.numbers)}.steps"
        create_step_file(path)
        return path


def wait_started(client: andon.Client, job_id: str, path: Path, what: str) -> None:
    """Wait for the job's first step; end the benchmark, with the job's error, if it ends first."""

    def stepped_or_ended() -> bool:
        return read_steps(path).count >= 1 or client.get(job_id).is_terminal

    wait_for(stepped_or_ended, what)
    if read_steps(path).count < 1:
        job = client.get(job_id)
        raise SystemExit(f"{what}: the job ended {job.status.value} first ({job.error})")


def terminal(client: andon.Client, job_id: str) -> Callable[[], bool]:
    return lambda: client.get(job_id).is_terminal


def stop_method(client: andon.Client, job_id: str) -> str:
    """How the job stopped, once it has; the benchmark ends if it did not end ``cancelled``."""
    job = client.wait_finished(job_id, timeout=WAIT_BOUND_S)
    if job.status is not andon.JobStatus.CANCELLED or job.cancel is None or job.cancel.stop_method is None:
        raise SystemExit(f"job {job.id} ({job.kind}) did not end cancelled: {job}")
    return job.cancel.stop_method.value


def methods_note(methods: Counter[str]) -> str:
    return "stop method " + ", ".join(f"{name} {count}" for name, count in methods.most_common())


def progress(text: str) -> None:
    print(f"stops: {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


# -- setups: where the worker runs ---------------------------------------------------------


@contextlib.contextmanager
def worker_here(db: Path) -> Iterator[andon.Client]:
    """A ``concurrency=1`` worker in this process on a SQLite file, and a client."""
    with andon.SqliteStore(str(db)) as store, andon.Worker(app, store, concurrency=1, shutdown_grace_s=1.0):
        yield andon.Client(store, app, actor="bench")


@contextlib.contextmanager
def worker_elsewhere(url: str) -> Iterator[andon.Client]:
    """A ``concurrency=1`` ``andon worker`` process on ``url``, and a client of this process."""
    store = andon.open_store(url)  # creates a SQLite schema before the worker opens the file
    try:
        with andon_workers(url, 1, 1, app="_stops_jobs:app"):
            yield andon.Client(store, app, actor="bench")
    finally:
        store.close()


# -- cooperative stop ----------------------------------------------------------------------


@dataclass
class CooperativeSeries:
    last_step: list[float] = field(default_factory=list)
    store: list[float] = field(default_factory=list)
    stopped_to_store: list[float] = field(default_factory=list)
    methods: Counter[str] = field(default_factory=Counter)


def cooperative_runs(client: andon.Client, kind: str, runs: int, rng: random.Random, files: Files) -> CooperativeSeries:
    series = CooperativeSeries()
    for run in range(runs + 1):
        path = files.new()
        job = client.submit(kind, {"path": str(path)})
        wait_started(client, job.id, path, f"{kind} job {job.id} to make its first step")
        time.sleep(rng.uniform(0.0, CANCEL_AFTER_S))
        called = time.time()
        client.cancel(job.id)
        wait_for(terminal(client, job.id), f"{kind} job {job.id} to end")
        read_at = time.time()
        method = stop_method(client, job.id)
        steps = read_steps(path)
        if not steps.stopped_at:
            raise SystemExit(f"{kind} job {job.id} ended {method} without its handler seeing the stop")
        if run == 0:
            continue  # warm-up
        series.methods[method] += 1
        series.last_step.append(steps.last_at - called)
        series.store.append(read_at - called)
        series.stopped_to_store.append(read_at - steps.stopped_at)
    return series


def cooperative_rows(
    setup: str,
    client: andon.Client,
    target_ms: float | None,
    runs: int,
    rng: random.Random,
    files: Files,
    p50_targets_ms: tuple[float, float] | None = None,
) -> list[dict[str, Any]]:  # Any: JSON values
    """``target_ms``: the last step's p99; ``p50_targets_ms``: the sync handler's p50 (stop,
    status read), issue 20's targets for a worker in another process."""
    rows = []
    for kind, handler in (("coop_sync", "sync check"), ("coop_async", "async await")):
        progress(f"cooperative, {setup}, {handler}")
        series = cooperative_runs(client, kind, runs, rng, files)
        label = f"{setup}, {handler} per {STEP_S * 1000:g} ms"
        note = methods_note(series.methods)
        stop_p50, status_p50 = p50_targets_ms if p50_targets_ms and kind == "coop_sync" else (None, None)
        rows += [
            latency_row(
                COOPERATIVE,
                f"{label}: cancel -> last step",
                series.last_step,
                target_p99_ms=target_ms,
                target_p50_ms=stop_p50,
                note=note,
            ),
            latency_row(
                COOPERATIVE, f"{label}: cancel -> store reads cancelled", series.store, target_p50_ms=status_p50
            ),
            latency_row(
                COOPERATIVE,
                f"{label}: work stopped -> store reads cancelled",
                series.stopped_to_store,
                target_p50_ms=10.0,
            ),
        ]
    return rows


# -- cooperative stop through the REST API -------------------------------------------------

API_TARGETS_MS = {setup: (stop + 1.5, status + 1.5) for setup, (stop, status) in CLIENT_TARGETS_MS.items()}
"""p50 targets (stop, status read) through the API: the client's, plus the 1.5 ms the API may add."""
_JSON = {"content-type": "application/json"}


@contextlib.contextmanager
def served(url: str) -> Iterator[http.client.HTTPConnection]:
    """``andon serve --no-worker`` on ``url`` (a free loopback port), and a kept-alive connection to it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    env.pop("ANDON_TOKEN", None)
    command = [str(ANDON), "serve", "--db", url, "--app", "_stops_jobs:app", "--no-worker", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT_BOUND_S)

    def answers() -> bool:
        try:
            connection.request("GET", "/api/v1/info")
            connection.getresponse().read()
            return True
        except OSError:
            connection.close()
            return False

    try:
        _report.wait_for(answers, "andon serve to answer", WAIT_BOUND_S, 0.05)
        yield connection
    finally:
        connection.close()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def api_cancel_runs(
    client: andon.Client, connection: http.client.HTTPConnection, runs: int, rng: random.Random, files: Files
) -> CooperativeSeries:
    """Cancel through the API with ``wait=true``; ``store``: when the answer (``cancelled``) came."""
    series = CooperativeSeries()
    for run in range(runs + 1):
        path = files.new()
        job = client.submit("coop_sync", {"path": str(path)})
        wait_started(client, job.id, path, f"coop_sync job {job.id} to make its first step")
        time.sleep(rng.uniform(0.0, CANCEL_AFTER_S))
        called = time.time()
        connection.request("POST", f"/api/v1/jobs/{job.id}/cancel?wait=true", body=b"{}", headers=_JSON)
        answer = connection.getresponse()
        body = json.loads(answer.read())
        read_at = time.time()
        if answer.status != 200 or body.get("status") != "cancelled":
            raise SystemExit(f"cancel of job {job.id} through the API answered {answer.status}: {body}")
        steps = read_steps(path)
        if run == 0:
            continue  # warm-up
        series.methods[body["cancel"]["stop_method"]] += 1
        series.last_step.append(steps.last_at - called)
        series.store.append(read_at - called)
        series.stopped_to_store.append(read_at - steps.stopped_at)
    return series


def api_rows(setup: str, url: str, runs: int, rng: random.Random, files: Files) -> list[dict[str, Any]]:  # Any: JSON
    """The API rows of one store: an ``andon worker`` process and an ``andon serve --no-worker`` process."""
    progress(f"cooperative through the API, {setup}")
    with worker_elsewhere(url) as client, served(url) as connection:
        series = api_cancel_runs(client, connection, runs, rng, files)
    label = f"other process {setup} via API, sync check per {STEP_S * 1000:g} ms"
    stop_ms, status_ms = API_TARGETS_MS[setup]
    return [
        latency_row(
            THROUGH_API,
            f"{label}: cancel?wait=true -> last step",
            series.last_step,
            target_p50_ms=stop_ms,
            note=methods_note(series.methods),
        ),
        latency_row(THROUGH_API, f"{label}: cancel?wait=true -> answer", series.store, target_p50_ms=status_ms),
    ]


# -- uncooperative stop --------------------------------------------------------------------


@dataclass
class UncooperativeSeries:
    process_gone: list[float] = field(default_factory=list)
    next_job: list[float] = field(default_factory=list)
    methods: Counter[str] = field(default_factory=Counter)


def uncooperative_runs(
    client: andon.Client, kind: str, runs: int, warm_up: bool, rng: random.Random, files: Files
) -> UncooperativeSeries:
    series = UncooperativeSeries()
    grace = app.get(kind).grace_s
    for run in range(runs + warm_up):
        path, follow = files.new(), files.new()
        job = client.submit(kind, {"path": str(path)})
        wait_started(client, job.id, path, f"{kind} job {job.id} to start")
        pid = read_steps(path).pid
        next_job = client.submit("first_step", {"path": str(follow)})  # queued behind it on the only slot
        time.sleep(rng.uniform(0.0, CANCEL_AFTER_S))
        called = time.time()
        client.cancel(job.id)
        wait_for(functools.partial(gone, pid), f"the process of {kind} job {job.id} to end", grace + WAIT_BOUND_S)
        gone_at = time.time()
        wait_started(client, next_job.id, follow, f"the job queued behind {kind} job {job.id} to start")
        next_at = read_steps(follow).last_at
        method = stop_method(client, job.id)
        client.wait_finished(next_job.id, timeout=WAIT_BOUND_S)
        if warm_up and run == 0:
            continue
        series.methods[method] += 1
        series.process_gone.append(gone_at - called)
        series.next_job.append(next_at - gone_at)
    return series


def uncooperative_rows(
    client: andon.Client, plan: Plan, rng: random.Random, files: Files
) -> list[dict[str, Any]]:  # Any: JSON values
    rows = []
    cases = [
        ("cpu_loop_grace0", "CPU loop", False, plan.grace0),
        ("blocked_sleep_grace0", "time.sleep(3600)", False, plan.grace0),
        ("cpu_loop", "CPU loop", True, plan.default_grace),
        ("blocked_sleep", "time.sleep(3600)", True, plan.default_grace),
    ]
    for index, (kind, what, default, runs) in enumerate(cases):
        grace = app.get(kind).grace_s
        # Default settings: the kind's grace goes only to a handler that listens, and these
        # never look at their context, so SIGTERM is due at the request (issue 20, item 4).
        label = f"{what}, default settings, never looks at its context" if default else f"{what}, grace {grace:g} s"
        progress(f"uncooperative, {label}")
        # Only the first series warms up (the forkserver starts).
        series = uncooperative_runs(client, kind, runs, index == 0, rng, files)
        note = methods_note(series.methods)
        rows += [
            latency_row(
                UNCOOPERATIVE,
                f"{label}: cancel -> process gone",
                series.process_gone,
                target_p99_ms=50.0 if default else grace * 1000 + 20,
                note=note,
            ),
            latency_row(UNCOOPERATIVE, f"{label}: gone -> next job starts", series.next_job, target_p99_ms=50.0),
        ]
    label = "thread, CPU loop, default settings, never looks at its context"
    progress(f"uncooperative, {label}")
    injected, methods = thread_runs(client, plan.default_grace, rng, files)
    rows.append(
        latency_row(
            UNCOOPERATIVE,
            f"{label}: cancel -> injected stop",
            injected,
            target_p99_ms=50.0,
            note=methods_note(methods),
        )
    )
    return rows


def saw_the_stop(path: Path) -> bool:
    return read_steps(path).stopped_at != 0.0


def thread_runs(client: andon.Client, runs: int, rng: random.Random, files: Files) -> tuple[list[float], Counter[str]]:
    """Cancel call -> the moment the injected ``Cancelled`` reached the handler's loop (its
    ``finally`` records it), for a thread handler that never looked at its context."""
    samples: list[float] = []
    methods: Counter[str] = Counter()
    for _ in range(runs):
        path = files.new()
        job = client.submit("cpu_loop_thread", {"path": str(path)})
        wait_started(client, job.id, path, f"cpu_loop_thread job {job.id} to start")
        time.sleep(rng.uniform(0.0, CANCEL_AFTER_S))
        called = time.time()
        client.cancel(job.id)
        wait_for(functools.partial(saw_the_stop, path), f"job {job.id} to see the injection")
        samples.append(read_steps(path).stopped_at - called)
        client.wait_finished(job.id, timeout=WAIT_BOUND_S)
        methods[stop_method(client, job.id)] += 1
    return samples, methods


# -- child processes -----------------------------------------------------------------------


def marked_sleeps(marker: str) -> dict[int, int]:
    """pid -> parent pid of every live (not zombie) ``sleep <marker>`` process."""
    wanted = b"sleep\0" + marker.encode() + b"\0"
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "cmdline").read_bytes() != wanted:
                continue
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            found[int(entry.name)] = int(fields[1])
    return found


@dataclass
class ChildSeries:
    child_gone: list[float] = field(default_factory=list)
    children: list[int] = field(default_factory=list)
    last_end: float = 0.0
    methods: Counter[str] = field(default_factory=Counter)


def child_runs(
    client: andon.Client, kind: str, marker: str, runs: int, warm_up: bool, rng: random.Random, files: Files
) -> ChildSeries:
    series = ChildSeries()
    bound = app.get(kind).grace_s * 2 + WAIT_BOUND_S
    for run in range(runs + warm_up):
        path = files.new()
        job = client.submit(kind, {"path": str(path), "marker": marker})
        wait_started(client, job.id, path, f"{kind} job {job.id} to start its child")
        child = read_steps(path).child_pid
        time.sleep(rng.uniform(0.0, CANCEL_AFTER_S))
        called = time.time()
        client.cancel(job.id)
        # A child that outlives its job is not fatal here: it is what the orphan count reports.
        with contextlib.suppress(SystemExit):
            wait_for(functools.partial(gone, child), f"child {child} of {kind} job {job.id} to end", bound)
        gone_at = time.time() if gone(child) else None
        method = stop_method(client, job.id)
        series.last_end = time.monotonic()
        series.children.append(child)
        if warm_up and run == 0:
            continue
        series.methods[method] += 1
        if gone_at is not None:
            series.child_gone.append(gone_at - called)
    return series


def child_rows(
    client: andon.Client, plan: Plan, marker: str, rng: random.Random, files: Files
) -> list[dict[str, Any]]:  # Any: JSON values
    rows = []
    cases = [
        ("child_ctx_thread", "ctx.popen, thread handler"),
        ("child_ctx_process", "ctx.popen, process handler"),
        ("child_plain_checks", "plain Popen, process handler at ctx.sleep"),
        ("child_plain_blocked", "plain Popen, process handler in wait(), grace 0"),
    ]
    measured = []
    for index, (kind, label) in enumerate(cases):
        progress(f"children, {label}")
        measured.append((label, child_runs(client, kind, marker, plan.children, index == 0, rng, files)))
    # One wait for every mode: each job ended at least ORPHAN_AFTER_S before the count.
    time.sleep(max(0.0, max(series.last_end for _, series in measured) + ORPHAN_AFTER_S - time.monotonic()))
    alive = marked_sleeps(marker)
    for label, series in measured:
        orphans = sum(1 for pid in series.children if pid in alive)
        note = methods_note(series.methods)
        if len(series.child_gone) < plan.children:
            note += f"; {plan.children - len(series.child_gone)} child(ren) not gone within the wait"
        rows += [
            latency_row(CHILDREN, f"{label}: cancel -> child gone", series.child_gone, note=note),
            figure_row(
                CHILDREN,
                f"{label}: children alive >= {ORPHAN_AFTER_S:g} s after the job",
                orphans,
                "processes",
                at_most=0,
                runs=len(series.children),
            ),
        ]
    return rows


def leftover_row(marker: str) -> dict[str, Any]:  # Any: JSON values
    """Every child this run started that is still alive now, every worker stopped; then kill them."""
    alive = marked_sleeps(marker)
    orphaned = sum(1 for parent in alive.values() if parent == 1 or gone(parent))
    note = f"{orphaned} of them with parent 1 or gone" if alive else ""
    for pid in alive:  # ours: they carry this run's unique argument
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return figure_row(CHILDREN, "whole run: children alive at the end", len(alive), "processes", at_most=0, note=note)


# -- the suite's entry point ---------------------------------------------------------------


def measure(quick: bool, postgres_url: str | None) -> list[dict[str, Any]]:  # Any: JSON values
    """Every stop measurement; the PostgreSQL rows only when ``postgres_url`` is given."""
    plan = QUICK if quick else FULL
    rng = random.Random(1)
    marker = f"3600.{os.getpid()}{time.time_ns() % 10**6:06d}"  # a unique, still valid, sleep argument
    rows: list[dict[str, Any]] = []  # Any: JSON values
    with tempfile.TemporaryDirectory(prefix="andon-stops-") as folder:
        files = Files(Path(folder))
        try:
            with worker_here(Path(folder) / "here.db") as client:
                rows += cooperative_rows("in-process SQLite", client, 5.0, plan.cooperative, rng, files)
            elsewhere = f"sqlite:///{Path(folder) / 'elsewhere.db'}"
            with worker_elsewhere(elsewhere) as client:
                rows += cooperative_rows(
                    "other process SQLite", client, 20.0, plan.cooperative, rng, files, CLIENT_TARGETS_MS["SQLite"]
                )
            rows += api_rows("SQLite", elsewhere, plan.cooperative, rng, files)
            if postgres_url is not None:
                with fresh_schema(postgres_url, "stops") as url:
                    with worker_elsewhere(url) as client:
                        rows += cooperative_rows(
                            "other process PostgreSQL",
                            client,
                            20.0,
                            plan.cooperative,
                            rng,
                            files,
                            CLIENT_TARGETS_MS["PostgreSQL"],
                        )
                    rows += api_rows("PostgreSQL", url, plan.cooperative, rng, files)
            with worker_here(Path(folder) / "uncooperative.db") as client:
                rows += uncooperative_rows(client, plan, rng, files)
            with worker_here(Path(folder) / "children.db") as client:
                rows += child_rows(client, plan, marker, rng, files)
        finally:
            rows.append(leftover_row(marker))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure how soon a cancel stops the work itself.")
    parser.add_argument("--quick", action="store_true", help="a handful of runs (a smoke test)")
    parser.add_argument("--db", default=None, help="a PostgreSQL server URL for the PostgreSQL rows (else skipped)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON")
    args = parser.parse_args(argv)
    began, load_before = time.monotonic(), os.getloadavg()
    rows = measure(args.quick, args.db)
    took = time.monotonic() - began
    print(rows_table(rows))
    # Other work on the machine shows in every figure here: keep the load with the rows.
    load = {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in os.getloadavg()]}
    meta = {**machine(), "quick": args.quick, "postgres": args.db is not None, "seconds": round(took, 1), "load": load}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"\nload average (1/5/15 min) {load['before']} before, {load['after']} after")
    print(f"written to {args.out} ({took:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
