"""Stop now, continue later (issue 15), with a real worker process on each store.

``count`` (the example kind) emits each number and then checkpoints the next one; cancelled
at random steps and resumed again and again, its items over all attempts are 0..n-1, each
exactly once, and its history shows every stop and every resume.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

import andon
from andon.examples import app as example_app
from tests.postgres import fresh_database
from tests.subprocesses import WorkerProcess
from tests.support import wait_items, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

N = 200
ROUNDS = 4


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def worker(db: str, tmp_path: Path) -> Iterator[WorkerProcess]:
    process = WorkerProcess(tmp_path, db, concurrency=2)
    try:
        process.wait_started(60)
        yield process
        assert process.stop() == 0, process.output()
        assert "Traceback" not in process.output(), process.output()
    finally:
        process.kill()


def test_count_cancelled_and_resumed_again_and_again_counts_each_number_once(db: str, worker: WorkerProcess) -> None:
    rng = random.Random(15)
    with andon.connect(db, example_app, actor="tester") as client:
        job = client.submit("count", {"n": N, "interval_s": 0.01})
        for _ in range(ROUNDS):
            wait_items(client, job.id, client.get(job.id).items_count + rng.randint(1, 8), timeout=60)
            stopped = client.cancel(job.id, wait=True, timeout=30).job
            assert stopped.status is andon.JobStatus.CANCELLED
            assert stopped.checkpoint is not None
            assert stopped.checkpoint.items <= stopped.items_count
            resumed = client.resume(job.id)
            assert resumed.status is andon.JobStatus.QUEUED
            assert resumed.items_count == stopped.checkpoint.items
        finished = client.wait_finished(job.id, timeout=120)
        assert finished.status is andon.JobStatus.SUCCEEDED, finished
        numbers = [item.data["i"] for item in client.results(job.id)]
        assert numbers == list(range(N)), "an item is missing or stored twice"
        assert finished.attempt == ROUNDS + 1
        history = client.events(job.id)
        assert [e.type for e in history].count("resumed") == ROUNDS
        assert [e.to_status for e in history].count(andon.JobStatus.CANCELLED) == ROUNDS
        assert all(e.actor == "tester" for e in history if e.type == "resumed")


def test_resuming_what_cannot_be_resumed_says_why(db: str, worker: WorkerProcess) -> None:
    with andon.connect(db, example_app, actor="tester") as client:
        failed = client.submit("fail", {})
        assert client.wait_finished(failed.id, timeout=60).status is andon.JobStatus.FAILED
        with pytest.raises(andon.InvalidTransition, match="no checkpoint"):
            client.resume(failed.id)
        running = client.submit("count", {"n": 1000, "interval_s": 0.05})
        wait_until(lambda: client.get(running.id).status is andon.JobStatus.RUNNING, timeout=60)
        with pytest.raises(andon.InvalidTransition, match="only a cancelled or failed job"):
            client.resume(running.id)
        client.cancel(running.id, wait=True, timeout=30)
        with pytest.raises(andon.JobNotFound):
            client.resume("01900000-0000-7000-8000-000000000000")
