"""A worker paused past its lease takes no step after it resumes (issue 12, item 5).

A real ``Worker`` runs in a subprocess; it is stopped with SIGSTOP (as Ctrl-Z does) for
longer than its lease while a handler takes steps with side effects, and a second worker in
this process recovers the job and runs attempt 2 meanwhile. Each step notes the monotonic
time *before* its checkpoint, so a step that was begun after the pause is told apart
exactly from one that was in progress when the pause came (CLOCK_MONOTONIC is one clock for
the whole machine).

* thread isolation: the handler is paused with its worker. No step may begin after the
  pause: the first checkpoint after SIGCONT raises, before the side effect.
* process isolation: the handler's process is not paused (it leads its own process group).
  It stops by itself once its worker can no longer vouch for the lease, at most two thirds
  of a lease after the last renewal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import andon
from tests.support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

LEASE_S = 3.0
PAUSE_S = 5.0  # longer than the lease: another worker may recover the job meanwhile

app = andon.App(default_grace=0.5)


def _step(ctx: andon.Context, path: str) -> None:
    began = time.monotonic()
    ctx.check()
    with open(path, "a") as steps:  # the side effect
        steps.write(f"{ctx.attempt} {os.getpid()} {began!r}\n")
    time.sleep(0.005)  # not a checkpoint: after a pause here, the next call is the check


@app.job("stepper", retry=andon.Retry(max_attempts=3))
def stepper(ctx: andon.Context, path: str) -> None:
    while True:
        _step(ctx, path)


@app.job("stepper_process", isolation="process", retry=andon.Retry(max_attempts=3))
def stepper_process(ctx: andon.Context, path: str) -> None:
    while True:
        _step(ctx, path)


WORKER = f"""
import signal, sys, threading
import andon
from tests.faults.test_paused_worker import app
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
with andon.SqliteStore(sys.argv[1]) as store:
    with andon.Worker(app, store, concurrency=1, lease_s={LEASE_S}, shutdown_grace_s=1.0):
        print("ready", flush=True)
        stop.wait()
"""


@pytest.fixture
def paused_worker(db_path: Path) -> Iterator[subprocess.Popen[str]]:
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(db_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        start_new_session=True,
    )
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "ready"
        yield worker
    finally:
        os.killpg(worker.pid, signal.SIGCONT)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
        if worker.stdout is not None:
            worker.stdout.close()


def all_stopped(pid: int) -> float | None:
    """The monotonic time at which every thread of ``pid`` was seen stopped, if they are."""
    states = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{task}/stat").read_text()
        except FileNotFoundError:
            continue  # the thread ended meanwhile
        states.append(stat.rsplit(")", 1)[1].split()[0])
    seen_at = time.monotonic()
    return seen_at if states and all(state in ("T", "t") for state in states) else None


def read_steps(path: Path) -> list[tuple[int, float]]:
    if not path.exists():
        return []
    steps = []
    for line in path.read_text().splitlines():
        attempt, _pid, began = line.split()
        steps.append((int(attempt), float(began)))
    return steps


@pytest.mark.parametrize("kind", ["stepper", "stepper_process"])
def test_a_worker_paused_past_its_lease_takes_no_step_after_it_resumes(
    paused_worker: subprocess.Popen[str], store: andon.SqliteStore, tmp_path: Path, kind: str
) -> None:
    steps = tmp_path / "steps.txt"
    client = andon.Client(store, app, actor="test")
    job = client.submit(kind, {"path": str(steps)})
    wait_until(lambda: len(read_steps(steps)) >= 20, timeout=30, what="attempt 1 to take steps")

    os.kill(paused_worker.pid, signal.SIGSTOP)
    # Taken once every thread of the worker is stopped, not when the signal was sent: a busy
    # machine may run the handler for a few more milliseconds between the two, and a step
    # begun then was begun before the pause.
    stopped_at = wait_until(lambda: all_stopped(paused_worker.pid), timeout=10, what="the worker to stop")
    assert stopped_at is not None  # wait_until returns only something true
    paused_at = stopped_at
    peer = andon.Worker(app, store, concurrency=1, lease_s=LEASE_S, shutdown_grace_s=1.0)
    peer.start()
    try:
        time.sleep(PAUSE_S)
        os.kill(paused_worker.pid, signal.SIGCONT)
        resumed_at = time.monotonic()
        wait_until(lambda: any(a == 2 for a, _ in read_steps(steps)), timeout=30, what="attempt 2 to run")
        time.sleep(1.0)  # the resumed worker's chance to take a stale step
        client.cancel(job.id, wait=True, timeout=20)
    finally:
        peer.stop()

    first = [began for attempt, began in read_steps(steps) if attempt == 1]
    assert first, "attempt 1 took no step at all"
    if kind == "stepper":
        late = [began for began in first if began > paused_at]
        assert late == [], f"attempt 1 began {len(late)} step(s) after its worker was paused"
    vouch_ends = paused_at + LEASE_S * 2 / 3  # the last renewal was before the pause
    late = [began - vouch_ends for began in first if began >= vouch_ends]
    assert late == [], f"attempt 1 took steps past its lease (seconds past: {late[:5]})"
    assert max(first) < resumed_at
    history = client.events(job.id)
    assert any(e.reason == "worker_lost" for e in history), [(e.type, e.reason) for e in history]
