"""Separate processes for the PostgreSQL acceptance tests: workers and a client.

Run as ``python -m tests.acceptance.pg_processes worker|client ...`` from the repository
root. Every handler here appends a line to ``$ANDON_TEST_EXEC_LOG`` when it starts and when
it ends (with how), so a test can count how often each job really ran and see when and
why it stopped, even when the database could not be told.

The client stands in for the API nodes (the REST API is not part of this test): it submits
jobs and cancels some of them at random moments through :class:`andon.Client`, on a store
of its own, and writes what each cancel answered to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import andon
from tests.job_checks import assert_ended_once, assert_items_numbered, assert_stopped_within
from tests.subprocesses import LineReader

app = andon.App(default_grace=0.5)
READY = "ready"
ROOT = Path(__file__).resolve().parents[2]


def log_execution(ctx: andon.Context, what: str, detail: str = "") -> None:
    """One line per event: ``<start|end> <job> <attempt> <pid> <unix time> <detail>``."""
    path = os.environ.get("ANDON_TEST_EXEC_LOG")
    if path:
        with open(path, "a") as log:  # one short append: atomic
            log.write(f"{what} {ctx.job_id} {ctx.attempt} {os.getpid()} {time.time():.6f} {detail}\n")


@app.job("tick")
def tick(ctx: andon.Context, n: int = 10, interval_s: float = 0.01) -> dict[str, int]:
    """Cooperative counting: a ``ctx.sleep`` checkpoint, then one item, per step."""
    log_execution(ctx, "start")
    try:
        for i in range(n):
            ctx.sleep(interval_s)
            ctx.emit({"i": i, "at": time.time()})
    except andon.Cancelled as stop:
        log_execution(ctx, "end", f"cancelled:{stop.reason.value if stop.reason else ''}")
        raise
    log_execution(ctx, "end", "returned")
    return {"counted": n}


app.job("tick_retry", retry=andon.Retry(max_attempts=2))(tick)


@dataclass(frozen=True)
class Execution:
    """One line of an execution log."""

    what: str
    job_id: str
    attempt: int
    pid: int
    at: float
    detail: str


def read_executions(path: Path) -> list[Execution]:
    if not path.exists():
        return []
    found = []
    text = path.read_text()
    # A worker may be appending while this reads: a last line without its newline is still
    # being written (a read can see part of a write to a file), and is read next time.
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    for line in complete.splitlines():
        what, job_id, attempt, pid, at, *rest = line.split(" ")
        found.append(Execution(what, job_id, int(attempt), int(pid), float(at), " ".join(rest)))
    return found


# -- worker ------------------------------------------------------------------------------


def run_worker(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="pg_processes worker")
    parser.add_argument("--db", required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--lease", type=float, default=30.0)
    parser.add_argument("--kinds", default=None)
    parser.add_argument(
        "--lookout-every",
        type=float,
        default=0.5,
        help="how often it looks for dead workers of this machine (long: it judges by leases only,"
        " as a worker on another machine does)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    store = andon.open_store(args.db)
    try:
        kinds = args.kinds.split(",") if args.kinds else None
        with andon.Worker(
            app,
            store,
            concurrency=args.concurrency,
            worker_id=args.id,
            lease_s=args.lease,
            shutdown_grace_s=1.0,
            kind_names=kinds,
            lookout_every_s=args.lookout_every,
        ):
            print(READY, flush=True)
            while not stop.wait(0.1):
                pass
    finally:
        store.close()
    return 0


# -- client ------------------------------------------------------------------------------


def run_client(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="pg_processes client")
    parser.add_argument("--db", required=True)
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--cancels", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--window", type=float, default=4.0, help="seconds over which timed cancels are spread")
    parser.add_argument("--submit-over", type=float, default=0.0, help="spread submissions over this many seconds")
    parser.add_argument("--max-n", type=int, default=30)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    rng = random.Random(args.seed)
    store = andon.open_store(args.db)
    try:
        client = andon.Client(store, app, actor="client")
        report = _submit_and_cancel(client, store, rng, args)
    finally:
        store.close()
    args.out.write_text(json.dumps(report))
    print("done", flush=True)
    return 0


def _submit_and_cancel(
    client: andon.Client, store: andon.Store, rng: random.Random, args: argparse.Namespace
) -> dict[str, object]:
    """Submit the jobs in batches spread over ``--submit-over`` seconds while cancelling.

    Half of the chosen jobs are cancelled at a random moment of the ``--window`` (they find
    the job queued, running or over); the other half a short random delay after the job
    is first seen running.
    """
    plan = [
        {"n": rng.randint(1, args.max_n), "interval_s": round(rng.uniform(0.002, 0.01), 4)} for _ in range(args.jobs)
    ]
    chosen = rng.sample(range(args.jobs), args.cancels)
    at_moment = {index: rng.uniform(0.0, args.window) for index in chosen[::2]}
    after_start_of = {index: rng.uniform(0.0, 0.05) for index in chosen[1::2]}
    batches = max(1, int(args.submit_over / 0.05)) if args.submit_over else 1
    size = -(-len(plan) // batches)
    began = time.monotonic()
    ids: list[str] = []
    due: dict[str, float] = {}
    after_start: dict[str, float] = {}
    outcomes: dict[str, str] = {}
    called_at: dict[str, float] = {}
    deadline = began + 120
    while (len(ids) < len(plan) or due or after_start) and time.monotonic() < deadline:
        now = time.monotonic()
        if len(ids) < len(plan) and now >= began + len(ids) // size * (args.submit_over / batches):
            first = len(ids)
            ids.extend(job.id for job in client.submit_many("tick", plan[first : first + size]))
            for index in range(first, len(ids)):
                if index in at_moment:
                    due[ids[index]] = began + at_moment[index]
                elif index in after_start_of:
                    after_start[ids[index]] = after_start_of[index]
        if after_start:
            for job in store.list_jobs(andon.JobFilter(ids=sorted(after_start)), limit=len(after_start)).items:
                if job.status is not andon.JobStatus.QUEUED:  # running, or already over
                    delay = after_start.pop(job.id)
                    due[job.id] = now + (delay if job.status.is_active else 0.0)
        for job_id in [job_id for job_id, at in due.items() if at <= now]:
            del due[job_id]
            called_at[job_id] = time.time()
            try:
                outcomes[job_id] = client.cancel(job_id).outcome.value
            except andon.JobFinished as exc:
                outcomes[job_id] = f"finished:{exc.state}"
        time.sleep(0.003)
    while time.monotonic() < deadline:
        if not client.list_jobs(statuses=["queued", "running", "cancelling"], limit=1).items:
            break
        time.sleep(0.05)
    return {"ids": ids, "params": dict(zip(ids, plan, strict=True)), "outcomes": outcomes, "called_at": called_at}


# -- for the tests: checking the outcome ---------------------------------------------------------


STOP_BOUND_S = 5.0
"""A cancel that takes this long to stop the work is a bug, however loaded the machine."""


def check_jobs(
    store: andon.Store, report: dict[str, object], exec_log: Path, *, workers: int, commits_in_doubt: bool = False
) -> Counter[str]:
    """Check every job the client submitted, from the store and the execution log; returns
    the count of stop methods. ``commits_in_doubt``: the database went away meanwhile, so a
    cancel retried after a commit in doubt may answer ``already`` for its own withdrawal."""
    ids: list[str] = report["ids"]  # type: ignore[assignment]  # JSON written by the client
    params: dict[str, dict[str, float]] = report["params"]  # type: ignore[assignment]
    outcomes: dict[str, str] = report["outcomes"]  # type: ignore[assignment]
    assert len(ids) == len(set(ids))
    listed = store.list_jobs(andon.JobFilter(), limit=len(ids) + 1).items
    assert sorted(job.id for job in listed) == sorted(ids), "jobs were lost or made up"

    executions = read_executions(exec_log)
    starts = Counter(e.job_id for e in executions if e.what == "start")
    ends = Counter(e.job_id for e in executions if e.what == "end")
    statuses: Counter[str] = Counter()
    methods: Counter[str] = Counter()
    for job in listed:
        events = store.events(job.id)
        items = store.items(job.id)
        context = f"job {job.id} ({job.status.value}, cancel: {outcomes.get(job.id)})"
        statuses[job.status.value] += 1

        ended = assert_ended_once(job, events, context)
        assert_items_numbered(job, items, context)

        started = [e for e in events if e.type == "started"]
        assert len(started) <= 1, f"{context}: started {len(started)} times"
        assert starts[job.id] == len(started), f"{context}: ran {starts[job.id]} times, {len(started)} started"
        assert ends[job.id] == starts[job.id], f"{context}: {starts[job.id]} starts, {ends[job.id]} ends"
        assert job.attempt == len(started), context

        if job.status is andon.JobStatus.SUCCEEDED:
            n = int(params[job.id]["n"])
            assert job.result == {"counted": n}, context
            assert [item.data["i"] for item in items] == list(range(n)), context
            continue
        assert job.status is andon.JobStatus.CANCELLED, f"{context}: {job.error}"
        assert job.id in outcomes, f"{context}: cancelled without being asked"
        cancel = job.cancel
        assert cancel is not None, context
        assert cancel.reason is andon.CancelReason.USER, context
        assert cancel.stopped_at is not None, context
        assert cancel.stop_method is not None, context
        methods[cancel.stop_method.value] += 1
        if not started:
            answers = ("withdrawn", "already") if commits_in_doubt else ("withdrawn",)
            assert outcomes[job.id] in answers, context
            assert cancel.stop_method is andon.StopMethod.WITHDRAWN, context
            assert not items, context
            continue
        assert outcomes[job.id] in ("requested", "already"), context
        assert cancel.stop_method is andon.StopMethod.COOPERATIVE, f"{context}: {cancel}"
        assert_stopped_within(cancel, items, STOP_BOUND_S, context)
        assert all(item.at <= ended.at for item in items), f"{context}: emitted after it was settled"

    for job_id in set(ids) - set(outcomes):
        assert store.get(job_id).status is andon.JobStatus.SUCCEEDED, job_id
    print(f"{dict(statuses)}, stop methods {dict(methods)}, {len(executions) // 2} executions")
    assert len({e.pid for e in executions}) == workers, "not every worker ran jobs"
    return methods


# -- for the tests: starting them ------------------------------------------------------------


class Spawned:
    """One ``worker`` or ``client`` subprocess; its output is collected by reader threads."""

    def __init__(self, role: str, *args: str, exec_log: Path | None = None) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if exec_log is not None:
            env["ANDON_TEST_EXEC_LOG"] = str(exec_log)
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "tests.acceptance.pg_processes", role, *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._output = LineReader(self.popen, watched="stdout")

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait_for(self, text: str, timeout: float) -> None:
        """Wait for a stdout line equal to ``text``."""
        self._output.wait_for_line(lambda line: line.strip() == text, timeout, repr(text))

    def output(self) -> str:
        return self._output.output()

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit on its own; returns the exit code."""
        code = self.popen.wait(timeout)
        self._output.join(timeout)
        return code

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait for the exit; returns the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        code = self.popen.wait(timeout)
        self._output.join(timeout)
        return code

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(30)
        self._output.join(30)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("worker", "client"):
        print("usage: python -m tests.acceptance.pg_processes worker|client ...", file=sys.stderr)
        return 2
    return run_worker(argv[1:]) if argv[0] == "worker" else run_client(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
