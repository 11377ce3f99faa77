"""Kill -9 during checkpointing jobs (issue 15): nothing lost, nothing twice, the state never
ahead of the items.

The jobs count like the example kind ``count`` (``counting`` in ``tests/faults/trial_app.py``:
emit item ``i``, then ``ctx.checkpoint({"next": i + 1})``, in a tight loop). Each trial waits
until a running attempt has emitted a random number of items (or, one trial in four, kills
at a random moment whatever the worker is doing: claiming, recovering another worker's jobs,
settling), then SIGKILLs the worker, or, for process-isolated jobs, often only the job's own
process. A fresh worker (forked by ``tests/faults/zygote.py``) takes over; a lost worker's
jobs are recovered one lease later and go on from their last checkpoint, a killed job
process's attempt fails and is retried from it (``Retry(resume=True)``). A job that has
counted to the end waits at a gate until every planned kill is made (and is a target there),
so the number of kills does not depend on how fast the machine counts.

An observer thread reads every job again and again the whole time: at every observation
the stored items are numbered ``0..m-1`` with item ``i`` at ``seq`` ``i`` (nothing twice, no
gap), and the stored checkpoint says ``{"next": k}`` with ``k`` items before it, ``k <= m``.
At the end each job succeeded with items exactly ``0..n-1``, and each attempt after the first
started where the history says its predecessor's checkpoint left it, never before a
checkpoint seen stored before the kill.
"""

from __future__ import annotations

import os
import random
import re
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import andon
from andon._ids import new_job_id
from andon._storage import NewJob
from tests.faults.processes import marked_processes
from tests.faults.test_kill_worker import LEASE_S, Zygote, side_log, wait_for_line
from tests.job_checks import assert_ended_once, assert_items_numbered
from tests.postgres import fresh_database
from tests.support import is_alive, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

RESUMES_FROM = re.compile(r"resumes from the checkpoint of attempt (\d+), after item (\d+)")


@dataclass(frozen=True)
class Plan:
    kind: str
    jobs: int
    n: int
    kills: int
    sleep_every: int
    child_share: float
    """The share of kills aimed at the job's own process (process isolation) rather than the worker."""


THREAD_PLAN = Plan("counting", jobs=6, n=4000, kills=25, sleep_every=5, child_share=0.0)
PROCESS_PLAN = Plan("counting_process", jobs=2, n=8000, kills=20, sleep_every=50, child_share=0.7)
"""A tight loop: a pause of a millisecond only every 50 checkpoints, so most kills land
while checkpoints and items are crossing the pipe."""


@dataclass
class Kill:
    index: int
    target: str
    """``worker``, ``job process``, or ``any moment`` (no job aimed at)."""
    job_id: str | None = None
    attempt: int | None = None
    seen_checkpoint: int | None = None
    """``checkpoint.items`` as stored just before the kill."""


@dataclass
class Observer:
    """Reads every job over and over in a thread of its own, noting each broken invariant."""

    url: str
    job_ids: list[str]
    observations: int = 0
    violations: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="observer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        store = andon.open_store(self.url)
        try:
            while not self._stop.is_set():
                for job_id in self.job_ids:
                    self._observe(store, job_id)
                self._stop.wait(0.02)
        except Exception as exc:  # reported by the test, not lost in a thread
            self.violations.append(f"the observer failed: {exc!r}")
        finally:
            store.close()

    def _observe(self, store: andon.Store, job_id: str) -> None:
        # The job first, then its items: the checkpoint only moves on, and items are only
        # dropped down to the checkpoint in force, so items read later never hold fewer
        # than the checkpoint read first says.
        job = store.get(job_id)
        items = store.items(job_id)
        self.observations += 1
        numbers = [item.data["i"] for item in items]
        if numbers != list(range(len(items))) or [item.seq for item in items] != numbers:
            self.violations.append(f"{job_id}: items {_runs(numbers)} (seq {_runs([i.seq for i in items])})")
        checkpoint = job.checkpoint
        # A fresh attempt that read ctx.resumed stores its start as a checkpoint: state null,
        # no items before it.
        if checkpoint is not None and (checkpoint.state, checkpoint.items) != (None, 0):
            if checkpoint.state != {"next": checkpoint.items}:
                self.violations.append(f"{job_id}: checkpoint {checkpoint.state} after {checkpoint.items} items")
            if checkpoint.items > len(items):
                self.violations.append(f"{job_id}: checkpoint after {checkpoint.items} items, {len(items)} stored")


def _runs(numbers: list[int]) -> str:
    """``numbers`` as ranges (``0-41 40-99``), so a repeat or a gap shows in a short line."""
    parts: list[str] = []
    start = previous = None
    for number in [*numbers, None]:
        if start is not None and number != (previous or 0) + 1:
            parts.append(f"{start}-{previous}")
            start = None
        if start is None and number is not None:
            start = number
        previous = number
    return " ".join(parts) or "none"


def latest_start(lines: list[list[str]]) -> tuple[int, int, int, bool] | None:
    """``(attempt, pid, emitted by it so far, at the gate)`` of the job's latest attempt to start."""
    starts = [index for index, line in enumerate(lines) if line[0] == "start"]
    if not starts:
        return None
    start = lines[starts[-1]]
    emitted = sum(1 for line in lines[starts[-1] :] if line[0] == "emit")
    at_gate = ["phase", "gate"] in lines[starts[-1] :]
    return int(start[1]), int(start[2]), emitted, at_gate


def running_target(log_dir: Path, job_ids: list[str], worker: int, kind: str) -> tuple[str, int, int, int, bool] | None:
    """``(job id, attempt, pid, emitted, at the gate)`` of an attempt running now under ``worker``."""
    for job_id in job_ids:
        found = latest_start(side_log(log_dir, job_id))
        if found is None:
            continue
        attempt, pid, emitted, at_gate = found
        # A thread-run attempt names its worker; a process-isolated one its own process,
        # alive only under the one live worker (a killed worker's job processes die with it).
        if (pid == worker if kind == "counting" else is_alive(pid)) and side_log_open(log_dir, job_id, attempt):
            return job_id, attempt, pid, emitted, at_gate
    return None


def side_log_open(log_dir: Path, job_id: str, attempt: int) -> bool:
    """The attempt has not ended on its own (the job is not finished)."""
    return not any(line[:2] == ["done", str(attempt)] for line in side_log(log_dir, job_id))


def run_kills(store: andon.Store, url: str, folder: Path, plan: Plan, seed: int) -> tuple[list[str], list[Kill], str]:
    rng = random.Random(seed)
    log_dir = folder / "side"
    log_dir.mkdir()
    marker = f"andon-fault-{secrets.token_hex(6)}"
    release = folder / "release"
    params = {"n": plan.n, "log_dir": str(log_dir), "sleep_every": plan.sleep_every, "release": str(release)}
    new = [
        NewJob(new_job_id(), plan.kind, params, max_attempts=100, retry_resume=plan.child_share > 0)
        for _ in range(plan.jobs)
    ]
    job_ids = [job.id for job in store.submit(new, actor="test")]
    observer = Observer(url, job_ids)
    observer.start()
    zygote = Zygote(url, marker, folder / "zygote.log")
    kills: list[Kill] = []
    workers: list[int] = []
    try:
        workers.append(zygote.fork("w0"))
        for index in range(plan.kills):
            kill = _one_kill(store, zygote, rng, log_dir, job_ids, plan, index, workers)
            if kill is None:
                break  # every job ended before the planned kills were all made (see check_all)
            kills.append(kill)
        release.touch()  # the jobs that counted to n may now finish
        wait_until(
            lambda: all(store.get(job_id).is_terminal for job_id in job_ids),
            LEASE_S * 4 + 60,
            "every job to finish after the kills",
            interval=0.05,
        )
        os.kill(workers[-1], signal.SIGTERM)
        wait_until(lambda: not is_alive(workers[-1]), 15, "the last worker to stop")
    finally:
        observer.stop()
        for pid in workers:
            if is_alive(pid):
                os.kill(pid, signal.SIGKILL)
        zygote.close()
    assert "Traceback" not in zygote.stderr(), zygote.stderr()
    assert not observer.violations, f"{len(observer.violations)} violations: {observer.violations[:5]}"
    assert observer.observations >= plan.jobs * 20, f"only {observer.observations} observations"
    print(f"{len(kills)} kills, {observer.observations} observations, none broke an invariant")
    return job_ids, kills, marker


def _one_kill(
    store: andon.Store,
    zygote: Zygote,
    rng: random.Random,
    log_dir: Path,
    job_ids: list[str],
    plan: Plan,
    index: int,
    workers: list[int],
) -> Kill | None:
    worker = workers[-1]
    if rng.random() < 0.25:
        time.sleep(rng.uniform(0, 0.4))
        kill = Kill(index, "any moment")
    else:
        at_least = rng.randint(1, 400)

        def target() -> tuple[str, int, int, int, bool] | bool | None:
            if all(store.get(job_id).is_terminal for job_id in job_ids):
                return True
            found = running_target(log_dir, job_ids, worker, plan.kind)
            # An attempt waiting at the gate will emit no more: it is a target as it is.
            return found if found is not None and (found[3] >= at_least or found[4]) else None

        found = wait_until(target, LEASE_S * 4 + 30, f"kill {index}: an attempt {at_least} items in", interval=0.005)
        if found is True:
            return None
        assert isinstance(found, tuple)
        job_id, attempt, pid, _, _ = found
        time.sleep(rng.uniform(0, 0.01))
        checkpoint = store.get(job_id).checkpoint
        seen = checkpoint.items if checkpoint is not None else None
        if rng.random() < plan.child_share:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # its attempt ended meanwhile: the worker gets this kill instead
            else:
                wait_until(lambda: not is_alive(pid), 10, f"kill {index}: job process {pid} to die")
                return Kill(index, "job process", job_id, attempt, seen)
        kill = Kill(index, "worker", job_id, attempt, seen)
    os.kill(worker, signal.SIGKILL)
    wait_until(lambda: not is_alive(worker), 10, f"kill {index}: worker {worker} to die")
    workers.append(zygote.fork(f"w{index + 1}"))
    return kill


# -- checking ---------------------------------------------------------------------------------


def check_job(store: andon.Store, job_id: str, plan: Plan, kills: list[Kill], log_dir: Path) -> int:
    """Check one job after every kill; returns how many times it resumed."""
    job = store.get(job_id)
    events = store.events(job_id)
    items = store.items(job_id)
    lines = side_log(log_dir, job_id)
    context = f"job {job_id} ({job.status.value}, {job.attempt} attempts)"
    assert_ended_once(job, events, context)
    assert job.status is andon.JobStatus.SUCCEEDED, f"{context}: {job.error} {events[-3:]}"
    assert_items_numbered(job, items, context)
    assert [item.data["i"] for item in items] == list(range(plan.n)), f"{context}: an item is missing or twice"
    assert all(item.data["a"] == item.attempt for item in items), context
    assert job.checkpoint is not None, context
    assert job.checkpoint.items == plan.n, f"{context}: {job.checkpoint}"

    # Where each attempt started, by its own side log and by the history.
    # (An attempt killed with its worker while its job process was starting has no line.)
    firsts = {int(line[1]): int(line[3]) for line in lines if line[0] == "start"}
    assert set(firsts) <= set(range(1, job.attempt + 1)), f"{context}: attempts started {sorted(firsts)}"
    assert job.attempt in firsts, context
    resumes = 0
    for attempt in sorted(a for a in firsts if a > 1):
        started = next(e for e in events if e.type == "started" and e.attempt == attempt)
        ended = [
            e
            for e in events
            if e.attempt == attempt - 1 and e.to_status is andon.JobStatus.QUEUED and e.seq < started.seq
        ]
        assert ended, f"{context}: attempt {attempt - 1} never went back to the queue: {events}"
        match = RESUMES_FROM.search(ended[-1].message or "")
        if match is None:
            # Ended before any checkpoint was stored: the next attempt starts from scratch,
            # and only if nothing was stored before it either.
            assert firsts[attempt] == 0, f"{context}: attempt {attempt} began at {firsts[attempt]}"
            continue
        resumes += 1
        assert int(match.group(1)) <= attempt - 1, f"{context}: {ended[-1].message}"
        assert firsts[attempt] == int(match.group(2)), f"{context}: attempt {attempt} began at {firsts[attempt]}"
        first_emit = next((line for line in lines if line[:2] == ["emit", str(attempt)]), None)
        assert first_emit is None or int(first_emit[2]) == firsts[attempt], f"{context}: attempt {attempt}"
    for kill in kills:
        if kill.job_id != job_id or kill.attempt is None:
            continue
        # The checkpoint stored before the kill is never lost: the next attempt starts at it
        # or later (one committed after the look and before the death).
        after = [a for a in firsts if a > kill.attempt]
        if not after:
            # The attempt's work was over when the kill landed (its process had reported, or
            # the worker had recorded it): it is the job's last attempt, the one that succeeded.
            assert kill.attempt == job.attempt, f"{context}: {kill} left no later attempt"
            continue
        later = firsts[min(after)]
        assert later >= (kill.seen_checkpoint or 0), f"{context}: {kill} but attempt {kill.attempt + 1} began {later}"
        emitted = [int(line[2]) for line in lines if line[:2] == ["emit", str(kill.attempt)]]
        assert later <= max(emitted, default=firsts[kill.attempt] - 1) + 1, f"{context}: state ahead of items"
    return resumes


def check_all(store: andon.Store, job_ids: list[str], kills: list[Kill], plan: Plan, folder: Path, marker: str) -> None:
    resumes = sum(check_job(store, job_id, plan, kills, folder / "side") for job_id in job_ids)
    wait_until(lambda: not marked_processes(marker), 10, "every worker and job process to be gone")
    aimed = [kill for kill in kills if kill.job_id is not None]
    targets = {
        target: sum(kill.target == target for kill in kills) for target in ("worker", "job process", "any moment")
    }
    print(f"{plan.kind}: {len(kills)} kills {targets}, {resumes} resumes from a checkpoint")
    # The jobs wait at their gate until the kills are made: every planned kill is made.
    assert len(kills) == plan.kills, f"only {len(kills)} kills: every job ended before the rest"
    assert resumes >= len(aimed) // 2, f"{resumes} resumes for {len(aimed)} kills of running attempts"
    if plan.child_share:
        assert targets["job process"] >= 3, targets
        assert targets["worker"] >= 1, targets


# -- the tests ----------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.mark.parametrize("plan", [THREAD_PLAN, PROCESS_PLAN], ids=["worker_killed", "process_job_killed"])
def test_kill_9_while_checkpointing_loses_and_doubles_nothing(db: str, plan: Plan, tmp_path: Path) -> None:
    store = andon.open_store(db)
    try:
        seed = 1500 + (plan.child_share > 0) + 10 * db.startswith("sqlite")
        job_ids, kills, marker = run_kills(store, db, tmp_path, plan, seed)
        check_all(store, job_ids, kills, plan, tmp_path, marker)
    finally:
        store.close()


@pytest.mark.parametrize(
    "hold_at",
    [
        0,  # only the start is a checkpoint (the handler read ctx.resumed): it goes on from scratch
        5,
    ],
    ids=["before_the_first_checkpoint", "past_a_checkpoint"],
)
def test_kill_9_with_an_item_stored_past_the_last_checkpoint(db: str, hold_at: int, tmp_path: Path) -> None:
    """Item ``hold_at`` is stored and its checkpoint is not when the worker dies: the next
    attempt must neither lose it nor store it twice."""
    log_dir = tmp_path / "side"
    log_dir.mkdir()
    marker = f"andon-fault-{secrets.token_hex(6)}"
    store = andon.open_store(db)
    zygote = Zygote(db, marker, tmp_path / "zygote.log")
    workers: list[int] = []
    try:
        workers.append(zygote.fork("w0"))
        params = {"n": 20, "log_dir": str(log_dir), "hold_at": hold_at}
        [job] = store.submit([NewJob(new_job_id(), "counting", params, max_attempts=3)], actor="test")
        wait_for_line(log_dir, job.id, "phase holding", "the handler to hold")
        wait_until(lambda: store.get(job.id).items_count == hold_at + 1, 15, f"item {hold_at} to be stored")
        held = store.get(job.id)
        assert held.checkpoint is not None
        assert (held.checkpoint.state is None) == (hold_at == 0), held.checkpoint
        os.kill(workers[0], signal.SIGKILL)
        workers.append(zygote.fork("w1"))
        wait_until(lambda: store.get(job.id).is_terminal, LEASE_S * 4 + 30, "the job to be recovered and finish")
        os.kill(workers[1], signal.SIGTERM)
        wait_until(lambda: not is_alive(workers[1]), 15, "the last worker to stop")
        finished = store.get(job.id)
        assert finished.status is andon.JobStatus.SUCCEEDED, finished
        assert finished.attempt == 2, finished
        numbers = [item.data["i"] for item in store.items(job.id)]
        assert numbers == list(range(20)), f"items {_runs(numbers)}: one is missing or stored twice"
    finally:
        for pid in workers:
            if is_alive(pid):
                os.kill(pid, signal.SIGKILL)
        zygote.close()
        store.close()
    wait_until(lambda: not marked_processes(marker), 10, "every worker to be gone")
