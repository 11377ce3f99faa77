"""``andon.AsyncClient`` in an asyncio program, against a real ``andon worker`` process and
a real store (SQLite and PostgreSQL): hundreds of concurrent submits and cancels with
``wait=True`` while a ticker measures how long the event loop was ever held up, and
``watch()`` following a cancel from ``running`` to ``cancelled``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import andon
from tests.acceptance.async_jobs import APP, jobs
from tests.postgres import fresh_database
from tests.subprocesses import WorkerProcess

pytestmark = pytest.mark.timeout(180)

SUBMITS = 200
CANCELS = 100
TICK_S = 0.005
STALL_BOUND_S = 0.5
"""A generous bound on the longest stall of the loop, which any machine meets: a blocking
store call on the loop, or a cancel awaited by blocking, would exceed it (a cancel of a
running job waits for its stop). The real figure is a benchmark's (``benchmarks/throughput.py``,
rows ``async``: the issue's target is 50 ms), not this test's: on a 2-core machine running the
suite, the operating system alone delays a process by more than 50 ms at times. (Measured
alone: 6-16 ms on either store.)"""


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        if request.param == "sqlite":
            andon.open_store(url).close()  # the schema, before the worker and the client start
        yield url


@contextlib.contextmanager
def running_worker(url: str, folder: Path) -> Iterator[WorkerProcess]:
    process = WorkerProcess(folder, url, concurrency=8, app=APP)
    try:
        process.wait_started(30)
        yield process
    finally:
        process.stop()


class Ticker:
    """Sleeps ``TICK_S`` again and again, keeping the longest excess: how long the loop was
    held up by something else at once."""

    def __init__(self) -> None:
        self.longest_s = 0.0
        self.ticks = 0

    async def run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(TICK_S)
            self.longest_s = max(self.longest_s, time.perf_counter() - start - TICK_S)
            self.ticks += 1


async def _submit_then_cancel(client: andon.AsyncClient, i: int) -> andon.Job:
    """Odd ``i``: a short job left to finish. Even: a job that runs until cancelled, cancelled
    with ``wait=True`` at once (queued: withdrawn) or, every fourth, once it runs."""
    if i % 2:
        return await client.submit("tick", {"n": 3})
    job = await client.submit("tick")
    if i % 4 == 0:
        async for seen in client.watch(job.id):
            if seen.status is not andon.JobStatus.QUEUED:
                break
    cancelled = await client.cancel(job.id, wait=True, timeout=60)
    return cancelled.job


async def _concurrent_run(url: str) -> tuple[Ticker, list[andon.Job], list[andon.Job]]:
    async with andon.connect_async(url, jobs) as client:
        ticker = Ticker()
        ticking = asyncio.create_task(ticker.run())
        await asyncio.sleep(0.05)  # the ticker is under way before the load starts
        async with asyncio.timeout(120):
            answered = await asyncio.gather(*(_submit_then_cancel(client, i) for i in range(SUBMITS)))
            finished = await asyncio.gather(*(client.wait_finished(job.id, timeout=60) for job in answered))
        ticking.cancel()
        return ticker, answered, finished


@contextlib.contextmanager
def heap_frozen() -> Iterator[None]:
    """The test process's heap (pytest, hypothesis, earlier tests) kept out of the cyclic
    garbage collector while the loop is measured: a full collection of it stopped the loop
    for 50-80 ms here (seen with ``gc.callbacks``), a pause of this process, not of andon."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def test_200_submits_and_100_cancels_with_wait_never_stall_the_loop(
    url: str, tmp_path: Path, record_property: Any
) -> None:
    with running_worker(url, tmp_path), heap_frozen():
        ticker, answered, finished = asyncio.run(_concurrent_run(url))
    cancelled = [job for i, job in enumerate(answered) if i % 2 == 0]
    assert len(cancelled) == CANCELS
    assert {job.status for job in cancelled} == {andon.JobStatus.CANCELLED}
    stopped_running = [job for job in cancelled if job.started_at is not None]
    assert len(stopped_running) >= CANCELS // 2  # every fourth was cancelled while it ran
    short = [job for i, job in enumerate(finished) if i % 2]
    assert {job.status for job in short} == {andon.JobStatus.SUCCEEDED}
    record_property("longest_loop_stall_ms", round(ticker.longest_s * 1000, 2))
    print(f"\nlongest event-loop stall on {url.split(':')[0]}: {ticker.longest_s * 1000:.1f} ms ({ticker.ticks} ticks)")
    assert ticker.ticks > 50
    assert ticker.longest_s < STALL_BOUND_S, f"the loop stalled for {ticker.longest_s * 1000:.1f} ms"


async def _watch_a_cancel(url: str) -> tuple[list[andon.Job], andon.CancelResult]:
    async with andon.connect_async(url, jobs) as client:
        job = await client.submit("slow_stop")
        seen: list[andon.Job] = []
        cancelling: asyncio.Task[andon.CancelResult] | None = None
        async with asyncio.timeout(60):
            async for snapshot in client.watch(job.id):
                seen.append(snapshot)
                if snapshot.status is andon.JobStatus.RUNNING and cancelling is None:
                    cancelling = asyncio.create_task(client.cancel(job.id, wait=True, timeout=30))
        assert cancelling is not None
        return seen, await cancelling


def test_watch_yields_a_cancel_in_order_and_ends_with_the_job(url: str, tmp_path: Path) -> None:
    with running_worker(url, tmp_path):
        seen, cancelled = asyncio.run(_watch_a_cancel(url))
    statuses = [job.status.value for job in seen]
    stages = [andon.life_stage(job) for job in seen]
    assert stages == sorted(stages)
    assert len(set(map(id, seen))) == len(seen)
    assert statuses[-3:] == ["running", "cancelling", "cancelled"], statuses
    assert set(statuses[:-3]) <= {"queued"}
    assert seen[-1] == cancelled.job
    assert cancelled.outcome is andon.CancelOutcome.REQUESTED
