"""Limits per kind with workers in separate processes (issue 19, part 3), on SQLite and
PostgreSQL: ``max_running=2`` holds across three workers of four slots each, ``rate=(5, 1)``
spreads 20 starts over at least 3 seconds, and a job held back by a limit is withdrawn at
once by a cancel.

Real time and real processes: the limits are checked exactly (they do not depend on timing),
the waits are generous; the figures measured are printed (``-s``) for the record.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import andon
from tests.acceptance.limits_app import app
from tests.postgres import fresh_database
from tests.subprocesses import WorkerProcess
from tests.support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

APP = "tests.acceptance.limits_app:app"
ACTIVE = (andon.JobStatus.RUNNING, andon.JobStatus.CANCELLING)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as found:
        if found.startswith("sqlite"):
            andon.upgrade_database(found)
        yield found


@pytest.fixture
def client(url: str) -> Iterator[andon.Client]:
    with andon.connect(url, app, actor="test") as opened:
        yield opened


@pytest.fixture
def workers(tmp_path: Path, url: str) -> Iterator[list[WorkerProcess]]:
    started = [WorkerProcess(tmp_path, url, name=f"w{i}", concurrency=4, app=APP) for i in range(3)]
    try:
        for worker in started:
            worker.wait_started(60)
        yield started
    finally:
        for worker in started:
            worker.stop()


def all_finished(client: andon.Client, ids: list[str]) -> bool:
    return all(client.get(job_id).status.is_terminal for job_id in ids)


def test_max_running_holds_across_three_workers(client: andon.Client, workers: list[WorkerProcess]) -> None:
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(len(client.list_jobs(statuses=ACTIVE, kinds=["browse"], limit=100).items))
            done.wait(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        jobs = [client.submit("browse", {"seconds": random.uniform(0.2, 0.5)}) for _ in range(20)]
        ids = [job.id for job in jobs]
        wait_until(lambda: all_finished(client, ids), 120, "all 20 jobs to finish", interval=0.1)
    finally:
        done.set()
        sampler.join()
    print(f"\nsamples: {len(samples)}, most running at once: {max(samples)}")
    assert len(samples) >= 10
    assert max(samples) <= 2
    assert [client.get(job_id).status for job_id in ids] == [andon.JobStatus.SUCCEEDED] * 20


def test_a_rate_spreads_starts_over_windows(client: andon.Client, workers: list[WorkerProcess]) -> None:
    jobs = client.submit_many("tick", [{}] * 20)
    ids = [job.id for job in jobs]
    wait_until(lambda: all_finished(client, ids), 120, "all 20 jobs to finish", interval=0.1)
    starts = sorted(client.get(job_id).started_at or 0.0 for job_id in ids)
    spread = starts[-1] - starts[0]
    print(f"\n20 starts at rate (5, 1 s) over {spread:.2f} s")
    assert [client.get(job_id).status for job_id in ids] == [andon.JobStatus.SUCCEEDED] * 20
    assert spread >= 3.0 - 1e-6
    # No half-open window of one second holds six starts: the 6th after any start comes a
    # second or more later (the store counts a start at t until t + 1 s, exclusive).
    assert min(later - first for first, later in zip(starts, starts[5:], strict=False)) >= 1.0 - 1e-6


def test_a_job_held_back_by_a_limit_is_withdrawn_at_once(client: andon.Client, workers: list[WorkerProcess]) -> None:
    holding = [client.submit("browse", {"seconds": 60}) for _ in range(2)]
    wait_until(lambda: all(client.get(j.id).status is andon.JobStatus.RUNNING for j in holding), 30, "two running")
    held = client.submit("browse", {"seconds": 60})
    others = [client.submit("free", {}) for _ in range(3)]
    # Other kinds go on while browse is at its limit.
    wait_until(lambda: all_finished(client, [j.id for j in others]), 30, "the free jobs to finish", interval=0.05)
    assert client.get(held.id).status is andon.JobStatus.QUEUED
    began = time.monotonic()
    result = client.cancel(held.id)
    took = time.monotonic() - began
    print(f"\ncancel of a held-back job took {took * 1000:.1f} ms")
    assert result.job.status is andon.JobStatus.CANCELLED
    assert result.job.cancel is not None
    assert result.job.cancel.stop_method is andon.StopMethod.WITHDRAWN
    for job in holding:
        client.cancel(job.id, wait=True, timeout=30)
    after = client.get(held.id)
    assert (after.status, after.started_at, after.attempt) == (andon.JobStatus.CANCELLED, None, 0)
