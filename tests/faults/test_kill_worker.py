"""Kill -9 a worker at chosen points of a job's life, 100 times per store.

Each trial submits one job, waits until its handler announces the phase the trial picked
(``tests/faults/trial_app.py``), waits a random extra moment, reads what the store holds
for the job, and SIGKILLs the worker; a fresh worker (forked by ``tests/faults/zygote.py``)
takes over at once and, one lease later, recovers the job while the next trials run.

Once every job has settled, each is checked against the store itself and the handler's
side log: one terminal state, reached once and last; a recovered attempt recorded as
``worker_lost``; every item seen stored before the kill still there; the items of each
attempt a duplicate-free prefix of what that attempt emitted; no ``(job, seq)`` and no
payload twice. No worker or job process is left at the end.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import andon
from andon._ids import new_job_id
from andon._storage import NewJob
from tests.faults.processes import marked_processes
from tests.faults.trial_app import RETRY_ITEMS
from tests.job_checks import assert_ended_once, assert_items_numbered
from tests.postgres import fresh_schema
from tests.subprocesses import LineReader
from tests.support import is_alive, wait_until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TRIALS = 100
LEASE_S = 1.5
PHASES = ("emitting", "claimed", "finishing", "emitting", "cancelling", "claim", "emitting", "finishing")
"""Cycled through, so each store gets the same mix; ``emitting`` (flushes in progress) most."""
PROCESS_TRIALS = frozenset({7, 33, 61, 95})
"""Trials whose job runs in a child process (``emitting`` there): each costs a new worker's
forkserver start (about a second), so there are only a few."""
DELAY_S = {
    "claim": 0.03,
    "claimed": 0.02,
    "emitting": 0.1,
    "finishing": 0.005,
    "cancelling": 0.3,
    "process": 0.1,
}
"""Upper bound of the random extra delay between the phase's announcement and the kill."""
MARKER = {"claimed": "phase claimed", "emitting": "phase emitting", "finishing": "phase finishing"}
KILLED_MID_RUN = ("claimed", "emitting", "cancelling", "process")
"""Phases in which the handler was certainly still running when its worker died."""


class Zygote:
    """The ``tests.faults.zygote`` process: forks workers on request."""

    def __init__(self, db: str, marker: str, stderr: Path) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "ANDON_FAULT_RUN": marker}
        self._stderr = stderr.open("wb")
        self.stderr_path = stderr
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.zygote", "--db", db, "--lease", str(LEASE_S)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
        )
        self._output = LineReader(self.popen, watched="stdout")

    def _send(self, line: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(line + "\n")
        self.popen.stdin.flush()

    def fork(self, worker_id: str) -> int:
        """Start a worker; returns its pid once it runs."""
        self._send(f"fork {worker_id}")
        try:
            line = self._output.wait_for_line(lambda line: line.split()[:2] == ["ready", worker_id], 30, "ready line")
        except AssertionError as error:
            raise AssertionError(f"worker {worker_id} did not start ({error}): {self.stderr()}") from None
        _, _, pid = line.split()
        return int(pid)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-3000:]

    def close(self) -> None:
        if self.popen.poll() is None:
            self._send("quit")
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self._output.join(10)
        for stream in (self.popen.stdin, self.popen.stdout):
            if stream is not None:
                stream.close()
        self._stderr.close()


@dataclass
class Trial:
    index: int
    job_id: str
    phase: str
    max_attempts: int
    worker_pid: int
    seen: list[andon.ResultItem]
    """What the store held for the job just before the kill."""
    child_pid: int | None = None


def side_log(log_dir: Path, job_id: str) -> list[list[str]]:
    path = log_dir / f"{job_id}.log"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def wait_for_line(log_dir: Path, job_id: str, line: str, what: str) -> list[list[str]]:
    wanted = line.split()
    wait_until(lambda: wanted in side_log(log_dir, job_id), 15, what, interval=0.002)
    return side_log(log_dir, job_id)


def run_trials(store: andon.Store, url: str, folder: Path, seed: int) -> tuple[list[Trial], str]:
    """Run the trials; returns them and the marker every process they started carries."""
    rng = random.Random(seed)
    log_dir = folder / "side"
    log_dir.mkdir()
    marker = f"andon-fault-{secrets.token_hex(6)}"
    zygote = Zygote(url, marker, folder / "zygote.log")
    trials: list[Trial] = []
    try:
        pid = zygote.fork("w0")
        for index in range(TRIALS):
            trials.append(_one_trial(store, zygote, rng, index, pid, log_dir))
            pid = zygote.fork(f"w{index + 1}")
        wait_until(
            lambda: all(store.get(t.job_id).is_terminal for t in trials),
            LEASE_S * 4 + 20,
            "every job to settle after the trials",
            interval=0.05,
        )
        os.kill(pid, signal.SIGTERM)  # the last worker: a graceful stop
        wait_until(lambda: not is_alive(pid), 15, "the last worker to stop")
    finally:
        for trial in trials:
            if is_alive(trial.worker_pid):
                os.kill(trial.worker_pid, signal.SIGKILL)
        if is_alive(pid):
            os.kill(pid, signal.SIGKILL)
        zygote.close()
    assert "Traceback" not in zygote.stderr(), zygote.stderr()
    return trials, marker


def phase_of(index: int) -> str:
    return "process" if index in PROCESS_TRIALS else PHASES[index % len(PHASES)]


def _one_trial(store: andon.Store, zygote: Zygote, rng: random.Random, index: int, pid: int, log_dir: Path) -> Trial:
    phase = phase_of(index)
    kind = "trial_process" if phase == "process" else "trial"
    handler_phase = "emitting" if phase == "process" else phase
    max_attempts = rng.choice((1, 2))
    params = {"phase": handler_phase, "log_dir": str(log_dir)}
    job = store.submit([NewJob(new_job_id(), kind, params, max_attempts=max_attempts)], actor="test")[0]
    child_pid = None
    if phase == "claim":
        time.sleep(rng.uniform(0, DELAY_S[phase]))
    else:
        marker = "phase running" if phase == "cancelling" else MARKER[handler_phase]
        lines = wait_for_line(log_dir, job.id, marker, f"trial {index}: job {job.id} to reach {marker!r}")
        [start] = [line for line in lines if line[0] == "start"]
        if phase == "process":
            child_pid = int(start[2])
            assert child_pid != pid
        else:
            assert int(start[2]) == pid, f"trial {index}: the job runs in {start[2]}, not in worker {pid}"
        if phase == "cancelling":
            store.request_cancel(job.id, andon.CancelReason.USER, "test", "cancelled by the trial")
            wait_for_line(log_dir, job.id, "phase cleanup", f"trial {index}: the slow cleanup")
        time.sleep(rng.uniform(0, DELAY_S[phase]))
    seen = store.items(job.id)
    os.kill(pid, signal.SIGKILL)
    if child_pid is not None:
        # The job's own process goes with its worker (its pipe closes: it kills its group).
        wait_until(lambda: not is_alive(child_pid), 10, f"trial {index}: the job's process {child_pid} to die")
    return Trial(index, job.id, phase, max_attempts, pid, seen, child_pid)


# -- checking ---------------------------------------------------------------------------------


def check_trial(store: andon.Store, trial: Trial, log_dir: Path) -> str:
    """Check one job after recovery; returns a one-word summary of how it ended."""
    job = store.get(trial.job_id)
    events = store.events(job.id)
    items = store.items(job.id)
    lines = side_log(log_dir, job.id)
    context = f"trial {trial.index} ({trial.phase}, max {trial.max_attempts}): job {job.id} {job.status.value}"

    # One terminal state, reached once, and last.
    assert_ended_once(job, events, context)
    started = [e for e in events if e.type == "started"]
    # A fenced attempt (lease_lost, when a loaded machine delays a renewal) goes back to the
    # queue without counting as a failure, so it may add an attempt.
    requeued = [e for e in events if e.type == "requeued"]
    assert job.attempt == len(started) <= trial.max_attempts + len(requeued), f"{context}: {len(started)} starts"
    runs = [int(line[1]) for line in lines if line[0] == "start"]
    assert runs == sorted(set(runs)), f"{context}: an attempt ran twice: {runs}"
    assert set(runs) <= set(range(1, job.attempt + 1)), f"{context}: runs {runs}, attempts {job.attempt}"

    # Items: stored once each, in order, never lost once seen stored.
    assert_items_numbered(job, items, context)
    payloads = [(item.data["a"], item.data["i"]) for item in items]
    assert len(set(payloads)) == len(payloads), f"{context}: a payload was stored twice"
    final = {(item.seq, item.attempt, item.at): item.data for item in items}
    for item in trial.seen:
        assert final.get((item.seq, item.attempt, item.at)) == item.data, f"{context}: lost seen item {item}"
    for attempt in {item.attempt for item in items}:
        stored = [item.data["i"] for item in items if item.attempt == attempt]
        emitted = [int(line[2]) for line in lines if line[:2] == ["emit", str(attempt)]]
        assert all(item.data["a"] == item.attempt for item in items), context
        assert stored == emitted[: len(stored)], f"{context}: attempt {attempt} stored {stored[:5]}..., not a prefix"

    lost = [e for e in events if e.type == "worker lost" or e.reason == "worker_lost"]
    if trial.phase in KILLED_MID_RUN:
        assert lost, f"{context}: the killed attempt was not recovered as worker_lost: {events}"
    if job.status is andon.JobStatus.SUCCEEDED:
        assert job.result is not None
        expected = RETRY_ITEMS if job.attempt > 1 or trial.phase == "claim" else 10
        assert job.result == {"attempt": job.attempt, "items": expected}, context
        assert [i for a, i in payloads if a == job.attempt] == list(range(expected)), f"{context}: items lost"
        return "succeeded" + (" after worker_lost" if lost else "")
    if job.status is andon.JobStatus.CANCELLED:
        assert trial.phase == "cancelling", f"{context}: cancelled without a cancel"
        assert job.cancel is not None
        assert job.cancel.reason is andon.CancelReason.USER, context
        return "cancelled"
    assert job.status is andon.JobStatus.FAILED, context
    assert job.error is not None
    assert job.error.type == "WorkerLost", f"{context}: {job.error}"
    assert lost, context
    return "failed worker_lost"


def check_all(store: andon.Store, trials: list[Trial], folder: Path, marker: str) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    for trial in trials:
        outcomes[f"{trial.phase}: {check_trial(store, trial, folder / 'side')}"] += 1
    assert len({t.job_id for t in trials}) == TRIALS
    assert len({t.worker_pid for t in trials}) == TRIALS, "a worker survived its kill"
    wait_until(lambda: not marked_processes(marker), 10, "every worker and job process to be gone")
    print(f"{TRIALS} kills: {dict(sorted(outcomes.items()))}")
    return outcomes


def assert_mix(outcomes: Counter[str]) -> None:
    """The trials really hit every phase and both retry policies."""
    for phase in {*PHASES, "process"}:
        assert any(key.startswith(f"{phase}:") for key in outcomes), f"no trial in phase {phase}"
    assert any("failed worker_lost" in key for key in outcomes), outcomes
    assert any("succeeded after worker_lost" in key for key in outcomes), outcomes
    assert outcomes["cancelling: cancelled"] >= 1, outcomes


# -- the tests ----------------------------------------------------------------------------------


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_schema() as url:
        yield url


@pytest.mark.timeout(150)
def test_kill_9_trials_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'andon.db'}"
    store = andon.open_store(url)
    try:
        trials, marker = run_trials(store, url, tmp_path, seed=11)
        assert_mix(check_all(store, trials, tmp_path, marker))
    finally:
        store.close()


@pytest.mark.timeout(150)
def test_kill_9_trials_on_postgres(tmp_path: Path, pg_url: str) -> None:
    store = andon.open_store(pg_url)
    try:
        trials, marker = run_trials(store, pg_url, tmp_path, seed=12)
        assert_mix(check_all(store, trials, tmp_path, marker))
    finally:
        store.close()
